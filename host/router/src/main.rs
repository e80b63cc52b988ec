//! `trunkline`: the SIP trunking router with Wasm policy plugins.

use trunkline_router::{config, plugin_cmd, records, simulate};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trunkline_plugin_host::types::Direction;

#[derive(Parser)]
#[command(name = "trunkline", version, about = "SIP trunking router with sandboxed WebAssembly policy plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router: SIP over UDP (this version), plugins hot-reloaded on change and on SIGHUP.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Print each finished call (route, hooks, outcome) on stdout.
        #[arg(long)]
        print_calls: bool,
    },
    /// Validate a configuration file and its plugins, and print the trunks.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Route one INVITE offline through a configuration (real plugins, simulated targets).
    Simulate {
        #[arg(long)]
        config: PathBuf,
        /// The INVITE, as a SIP message file.
        #[arg(long)]
        request: PathBuf,
        /// How a target answers: `URI-SUBSTRING=STATUS[:CONTACT]` (default: every target answers 200).
        #[arg(long = "answer")]
        answers: Vec<simulate::Answer>,
        /// Seed for the weighted choice among equal priorities.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Call records: list them (filters, table/json/csv), or `show ID` as a SIP ladder.
    Calls {
        #[command(subcommand)]
        command: Option<CallsCommand>,
        /// Calls on this trunk.
        #[arg(long)]
        trunk: Option<String>,
        /// Calls from or to this number (a leading + optional).
        #[arg(long)]
        number: Option<String>,
        /// Calls that started since: a duration back from now (30s, 15m, 1h, 7d) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// answered, rejected, failed or cancelled.
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: records::cli::Format,
        /// Most calls listed (newest first).
        #[arg(long, default_value_t = records::query::DEFAULT_LIMIT)]
        limit: usize,
        /// The router's configuration (its [records] path, or [store] postgres_url, names the store).
        #[arg(long, global = true, default_value = "trunkline.toml")]
        config: PathBuf,
        /// The store's file itself, instead of the configuration's.
        #[arg(long, global = true)]
        store: Option<PathBuf>,
    },
    /// Plugin tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum CallsCommand {
    /// One call as a SIP ladder diagram (caller, router, each target), its route and hook decisions.
    Show {
        /// The number `trunkline calls` shows, or the caller's Call-ID.
        id: String,
        /// The whole record as JSON instead.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Validate a component against the trunkline:policy world; print its exports, imports and limits.
    Check { file: PathBuf },
    /// Run one hook offline on a SIP message file and print the decision.
    Run {
        file: PathBuf,
        #[arg(long, default_value = "on-invite")]
        hook: String,
        /// The INVITE the call starts with.
        #[arg(long)]
        request: PathBuf,
        /// A response (for on-redirect and on-failure).
        #[arg(long)]
        response: Option<PathBuf>,
        /// The plugin's config table (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// origination or termination.
        #[arg(long, default_value = "origination")]
        direction: String,
        /// Candidate target URIs (select-uri, pre-dial).
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Numbers the account owns (numbers interface).
        #[arg(long = "owned")]
        owned: Vec<String>,
    },
}

/// mimalloc instead of glibc malloc: per-thread heaps make the engine's
/// many small allocations, and frees of memory another thread allocated
/// (plugin instances are prepared and dropped off the engine thread), cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Numbers `trunkline check` prints per trunk (the rest are counted).
const SHOWN_NUMBERS: usize = 20;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TRUNKLINE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config, print_calls } => run(&config, print_calls),
        Command::Check { config } => check(&config),
        Command::Simulate { config, request, answers, seed } => {
            simulate::simulate(simulate::SimArgs { config, request, answers, seed })
        }
        Command::Calls { command, trunk, number, since, outcome, format, limit, config, store } => {
            calls(command, (trunk, number, since, outcome, limit), format, &config, store)
        }
        Command::Plugin { command: PluginCommand::Check { file } } => plugin_cmd::check(&file),
        Command::Plugin {
            command: PluginCommand::Run { file, hook, request, response, config, direction, targets, owned },
        } => match direction.as_str() {
            "origination" | "termination" => plugin_cmd::run(plugin_cmd::RunArgs {
                file,
                hook,
                request,
                response,
                config,
                direction: if direction == "origination" { Direction::Origination } else { Direction::Termination },
                targets,
                owned,
            }),
            other => Err(anyhow::anyhow!("--direction must be origination or termination, not `{other}`")),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `trunkline calls` and `trunkline calls show ID`.
fn calls(
    command: Option<CallsCommand>,
    (trunk, number, since, outcome, limit): (Option<String>, Option<String>, Option<String>, Option<String>, usize),
    format: records::cli::Format,
    config: &std::path::Path,
    store: Option<PathBuf>,
) -> anyhow::Result<()> {
    let store: records::source::RecordSource = match store {
        Some(s) => config::RecordsAt::File(s),
        None => config::records_at(config)?
            .ok_or_else(|| anyhow::anyhow!("{}: [records] enabled = false: no call records", config.display()))?,
    }
    .into();
    let mut out = std::io::stdout().lock();
    match command {
        Some(CallsCommand::Show { id, json }) => records::cli::show(&store, &id, json, &mut out),
        None => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let filter = records::query::Filter::new(trunk, number, since.as_deref(), outcome, Some(limit), now)
                .map_err(|e| anyhow::anyhow!("--{e}"))?;
            records::cli::list(&records::cli::ListArgs { store, filter, format }, &mut out)
        }
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let settings = config::load(path)?;
    let rt = simulate::runtime_for(&settings)?;
    println!(
        "config ok: {} listener(s), {} trunk(s), {} plugin(s)",
        settings.listen.len(),
        settings.trunks.len(),
        rt.plugins().len()
    );
    if let Some(file) = &settings.numbers_file {
        println!("  numbers_file {}: {} number(s) in all", file.display(), settings.numbers.len());
    }
    let listed = settings.numbers.by_trunk(SHOWN_NUMBERS);
    for (i, t) in settings.trunks.iter().enumerate() {
        let chain: Vec<&str> = t.chain.entries.iter().map(|e| &*e.plugin).collect();
        let count = settings.numbers.count_of(i);
        let numbers = listed.get(i).cloned().unwrap_or_default();
        let more = if count > numbers.len() { format!(" and {} more", count - numbers.len()) } else { String::new() };
        println!(
            "  trunk {} ({}): numbers {numbers:?}{more}, {} origination URI(s), plugins {:?}",
            t.name,
            t.id,
            t.origination.len(),
            chain
        );
        if let Some(term) = &t.termination {
            let carrier = &settings.carriers[term.carrier];
            let gateways = carrier.gateways.len();
            let auth: Vec<&str> =
                [(!term.acl.is_empty()).then_some("acl"), (!term.credentials.is_empty()).then_some("digest")]
                    .into_iter()
                    .flatten()
                    .collect();
            println!(
                "    termination {} -> carrier {} ({} gateway(s)), auth: {}",
                term.domain,
                carrier.name,
                gateways,
                auth.join(" + ")
            );
        }
    }
    Ok(())
}

fn run(path: &std::path::Path, print_calls: bool) -> anyhow::Result<()> {
    let settings = config::load(path)?;
    let rt = simulate::runtime_for(&settings)?;
    // The engine's loop polls its own sockets on this thread: a datagram
    // wakes one thread, not a tokio worker that then wakes the engine.
    // TCP/TLS connections (handshakes, framing) run on a worker of their own.
    let engine_rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let connections = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("connections")
        .enable_all()
        .build()?;
    let opts = trunkline_router::serve::RunOptions {
        print_calls,
        connections: Some(connections.handle().clone()),
        config: Some(path.to_owned()),
    };
    engine_rt.block_on(trunkline_router::serve::run(settings, rt, opts))
}
