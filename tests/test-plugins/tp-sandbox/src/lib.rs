//! Probes its sandbox in `on-invite` and reports what it found as variables:
//! `env` (number of environment variables), `file` (whether /etc/passwd could
//! be read), `args` (number of arguments), `net` (whether a TCP connect to
//! 127.0.0.1:9 succeeded). Prints one line to stdout and one to stderr.
use trunkline_sdk::*;
#[derive(Default)]
struct Sandbox;
#[policy]
impl Policy for Sandbox {
    fn on_invite(&self, _: &Call, _: &Request) -> InviteDecision {
        println!("tp-sandbox stdout line");
        eprintln!("tp-sandbox stderr line");
        let env = std::env::vars().count();
        let file = std::fs::read("/etc/passwd").is_ok();
        let args = std::env::args().count();
        let net = std::net::TcpStream::connect("127.0.0.1:9").is_ok();
        Decision::edit(
            InviteEdits::new()
                .set_variable("env", env.to_string())
                .set_variable("file", file.to_string())
                .set_variable("args", args.to_string())
                .set_variable("net", net.to_string()),
        )
    }
}
