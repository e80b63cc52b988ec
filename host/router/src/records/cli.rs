//! `trunkline calls`: the call records from the terminal, read straight
//! from the store's file or from PostgreSQL (the router may be running or
//! not).

use std::io::Write;

use super::query::Filter;
use super::source::RecordSource;
use super::store::CallRow;

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// What `trunkline calls` was asked.
pub struct ListArgs {
    pub store: RecordSource,
    pub filter: Filter,
    pub format: Format,
}

/// Print the calls `args` selects.
pub fn list(args: &ListArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rows = open(&args.store)?.list(&args.filter)?;
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            for r in &rows {
                w.serialize(r)?;
            }
            w.flush()?;
        }
        Format::Table => table(&rows, out)?,
    }
    Ok(())
}

/// Print one call: its ladder, or its whole record as JSON.
pub fn show(store: &RecordSource, id: &str, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = open(store)?;
    let Some(record) = store.get(id)? else {
        anyhow::bail!("no call record {id} (give the number `trunkline calls` shows, or the caller's Call-ID)");
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &record)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", super::ladder::draw(&record))?;
    }
    Ok(())
}

fn open(source: &RecordSource) -> anyhow::Result<&RecordSource> {
    if let RecordSource::File(path) = source {
        if !path.exists() {
            anyhow::bail!(
                "no call records at {} (the router creates the file on its first start; [records] path says where)",
                path.display()
            );
        }
    }
    Ok(source)
}

fn table(rows: &[CallRow], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>6}  {:<19}  {:<12}  {:<4}  {:<16}  {:<16}  {:<9}  {:>6}  {:>7}  {:>8}  {:>3}",
        "ID", "STARTED (UTC)", "TRUNK", "DIR", "CALLER", "CALLED", "OUTCOME", "STATUS", "PDD ms", "SECONDS", "TRY"
    )?;
    for r in rows {
        let dir = match r.direction.as_str() {
            "origination" => "orig",
            "termination" => "term",
            _ => "-",
        };
        let status = if r.status == 404 { "404!".to_owned() } else { r.status.to_string() };
        writeln!(
            out,
            "{:>6}  {:<19}  {:<12}  {:<4}  {:<16}  {:<16}  {:<9}  {:>6}  {:>7}  {:>8.1}  {:>3}",
            r.id,
            time(r.started_at),
            cut(&r.trunk, 12),
            dir,
            cut(&r.caller, 16),
            cut(&r.called, 16),
            r.outcome,
            status,
            r.pdd_ms.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            r.duration_ms as f64 / 1000.0,
            r.attempts
        )?;
    }
    if rows.is_empty() {
        writeln!(out, "(no calls match)")?;
    } else if rows.iter().any(|r| r.status == 404) {
        writeln!(out, "404!: no route accepted the number")?;
    }
    Ok(())
}

pub use trunkline_records::ladder::time;

fn cut(s: &str, n: usize) -> String {
    if s.is_empty() {
        return "-".into();
    }
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(n - 1).collect();
    t.push('~');
    t
}
