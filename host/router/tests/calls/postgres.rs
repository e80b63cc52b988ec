//! Call records in PostgreSQL (`[store] postgres_url`): a real server
//! (Debian's `postgresql`), made by `initdb` in a folder of the test's own
//! and started on a loopback port of its own; stopped and started again
//! under the records writer.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Instant;

use trunkline_router::config::{PostgresSettings, SecretUrl};
use trunkline_router::records::pg::{PgReader, PgWriter};
use trunkline_router::records::query::Filter;
use trunkline_router::records::writer::{Backend, RecordSink, Retention};
use trunkline_router::records::{CallRecord, Draft, RawTrace, Sealed};

use super::*;

/// A PostgreSQL server on 127.0.0.1:`port`, its data in a folder of its
/// own; stopped (fast shutdown) when dropped. As root it runs as the
/// `postgres` user (the server refuses root).
pub(super) struct Postgres {
    pub(super) port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Settings given to the server on its command line (`-c name=value`).
    settings: Vec<String>,
}

/// Where Debian puts the server's programs (the newest version installed).
fn bin(program: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (Debian package postgresql) must be installed")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(program)))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| panic!("no {program} under /usr/lib/postgresql/*/bin"))
}

/// The user the server runs as: ourselves, or `postgres` when we are root.
fn server_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> u32 {
        let out = Command::new("id").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id(&["-u"]) == 0).then(|| (id(&["-u", "postgres"]), id(&["-g", "postgres"])))
}

fn as_server_user(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = server_user() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

impl Postgres {
    pub(super) fn start() -> Postgres {
        Postgres::made(Vec::new(), None)
    }

    /// A server that also speaks TLS, with `pki`'s certificate for 127.0.0.1.
    pub(super) fn tls(pki: &super::tls::Pki) -> Postgres {
        Postgres::made(vec!["ssl=on".into()], Some(pki))
    }

    fn made(settings: Vec<String>, pki: Option<&super::tls::Pki>) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = server_user() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let out = as_server_user(Command::new(bin("initdb")).args([
            "-D",
            data.to_str().unwrap(),
            "-U",
            "trunkline",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]))
        .output()
        .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let mut settings = settings;
        if let Some(pki) = pki {
            // The key must belong to the server's user, readable by it alone.
            for (from, to) in [("server.pem", "server.crt"), ("server.key", "server.key")] {
                let target = data.join(to);
                std::fs::copy(pki.dir.path().join(from), &target).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
                if let Some((uid, gid)) = server_user() {
                    std::os::unix::fs::chown(&target, Some(uid), Some(gid)).unwrap();
                }
            }
            settings.extend(["ssl_cert_file=server.crt".into(), "ssl_key_file=server.key".into()]);
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut pg = Postgres { port, dir, child: None, settings };
        pg.run();
        pg
    }

    /// Start the server on its data and port (again).
    pub(super) fn run(&mut self) {
        let data = self.dir.path().join("data");
        let child = as_server_user(
            Command::new(bin("postgres"))
                .args([
                    "-D",
                    data.to_str().unwrap(),
                    "-p",
                    &self.port.to_string(),
                    "-k",
                    self.dir.path().to_str().unwrap(),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=50",
                ])
                .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()])),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        self.child = Some(child);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && ::postgres::Client::connect(&self.url(), ::postgres::NoTls).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("PostgreSQL did not start on port {}", self.port);
    }

    /// Stop it at once (SIGQUIT: immediate shutdown, as a crash; the data stays).
    pub(super) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-QUIT", &child.id().to_string()]).status();
            let _ = child.wait();
        }
        // Its backends go with it; the port is free once nothing answers.
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(super) fn url(&self) -> String {
        format!("postgres://trunkline@127.0.0.1:{}/postgres", self.port)
    }

    pub(super) fn client(&self) -> ::postgres::Client {
        ::postgres::Client::connect(&self.url(), ::postgres::NoTls).unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: fast shutdown.
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

fn settings(pg: &Postgres) -> PostgresSettings {
    PostgresSettings { url: SecretUrl::new(pg.url()), timeout: Duration::from_millis(1000), ca_pem: None }
}

fn draft(i: u64, trunk: &str) -> Sealed {
    let now = Instant::now();
    let mut trace = RawTrace::default();
    let caps = trunkline_router::records::trace::TraceCaps { messages: 4, bytes: 4096 };
    let message = format!("INVITE sip:+12125550123@x SIP/2.0\r\nCall-ID: c{i}\r\n\r\n");
    trace.push(caps, now, false, trunkline_sip_core::Peer::udp("127.0.0.1:5060".parse().unwrap()), message.as_bytes());
    let record = CallRecord {
        call_id: format!("c{i}@test"),
        started_at: 1_700_000_000_000 + i as i64,
        ended_at: 1_700_000_000_100 + i as i64,
        trunk: trunk.into(),
        direction: "termination".into(),
        caller: "+15551230001".into(),
        called: "+12125550123".into(),
        outcome: if i.is_multiple_of(2) { "answered" } else { "failed" }.into(),
        status: if i.is_multiple_of(2) { 200 } else { 486 },
        ..CallRecord::default()
    };
    Draft { call: i, record, started: now, ended: now, trace }.seal(Vec::new())
}

fn count(pg: &Postgres) -> i64 {
    pg.client().query_one("SELECT count(*) FROM calls", &[]).unwrap().get(0)
}

#[test]
fn postgres_keeps_records_with_their_trace_and_routers_migrate_it_once() {
    let pg = Postgres::start();
    // Two routers starting at once: one creates the schema, the other finds it.
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let s = settings(&pg);
            std::thread::spawn(move || {
                let mut w = PgWriter::new(s);
                w.write(&mut [], &[Default::default()]).map_err(|e| e.to_string())
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap().unwrap();
    }
    let version: i64 = pg.client().query_one("SELECT version FROM trunkline_schema", &[]).unwrap().get(0);
    assert_eq!(version, trunkline_router::records::pg::MIGRATIONS.len() as i64);

    let dir = tempfile::tempdir().unwrap();
    let retention = Retention { max_age: Duration::from_secs(86_400 * 36_500), max_count: 1_000_000 };
    let sink = RecordSink::start_on(Box::new(PgWriter::new(settings(&pg))), &dir.path().join("kv.db"), 100, retention)
        .unwrap();
    for i in 0..20 {
        let _ = sink.submit(draft(i, if i < 10 { "acme" } else { "globex" }));
    }
    sink.audit(trunkline_router::records::store::AuditRow {
        action: "config-reload".into(),
        subject: "config".into(),
        outcome: "ok".into(),
        by: Some("ops".into()),
        ..Default::default()
    });
    sink.flush();
    assert_eq!(sink.stats().written.load(Ordering::Relaxed), 20);
    let reader = PgReader::new(settings(&pg));
    let all = reader.list(&Filter { limit: 100, ..Filter::default() }).unwrap();
    assert_eq!(all.len(), 20);
    assert_eq!(all[0].call_id, "c19@test", "newest first");
    let failed = Filter::new(Some("acme".into()), None, None, Some("failed".into()), None, 0).unwrap();
    let rows = reader.list(&failed).unwrap();
    assert_eq!(rows.iter().map(|r| r.status).collect::<Vec<_>>(), [486; 5]);
    let one = reader.get("c3@test").unwrap().expect("found by Call-ID");
    assert_eq!((one.trunk.as_str(), one.status), ("acme", 486));
    assert!(one.trace[0].message.starts_with("INVITE sip:+12125550123@x"), "{:?}", one.trace);
    assert_eq!(reader.get(&one.id.to_string()).unwrap().unwrap().call_id, "c3@test", "found by its number");
    assert!(reader.get("nobody@test").unwrap().is_none());
    let audit = reader.audit_log(10).unwrap();
    assert_eq!((audit[0].action.as_str(), audit[0].by.as_deref()), ("config-reload", Some("ops")));
    sink.close();

    // A database a newer trunkline migrated is refused, not misread.
    pg.client().execute("UPDATE trunkline_schema SET version = 99", &[]).unwrap();
    let e = PgReader::new(settings(&pg)).list(&Filter::default()).unwrap_err().to_string();
    assert!(e.contains("schema version 99 is newer"), "{e}");
}

#[test]
fn records_wait_in_memory_while_postgres_is_down_and_are_written_when_it_is_back() {
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention { max_age: Duration::from_secs(86_400 * 36_500), max_count: 1_000_000 };
    let queue = 300;
    let sink =
        RecordSink::start_on(Box::new(PgWriter::new(settings(&pg))), &dir.path().join("kv.db"), queue, retention)
            .unwrap();
    for i in 0..10 {
        let _ = sink.submit(draft(i, "acme"));
    }
    sink.flush();
    assert_eq!(count(&pg), 10);

    // Down: every submit still returns at once; the writer holds what it
    // can (its bound and the queue's), the rest is dropped and counted.
    pg.stop();
    let total = 2_000;
    for i in 10..10 + total {
        let _ = sink.submit(draft(i, "acme"));
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    sink.flush();
    let stats = sink.stats();
    assert!(stats.failing.load(Ordering::Relaxed), "the writer knows the server is down");
    let (held, dropped) = (stats.held.load(Ordering::Relaxed), stats.dropped.load(Ordering::Relaxed));
    assert!(held > 0 && dropped > 0, "held {held}, dropped {dropped}");
    assert!(held as usize <= queue, "held {held}: more than the bound");

    // Back: what was held is written, with no restart of anything.
    pg.run();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.written.load(Ordering::Relaxed) + stats.dropped.load(Ordering::Relaxed) < 10 + total
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (written, dropped) = (stats.written.load(Ordering::Relaxed), stats.dropped.load(Ordering::Relaxed));
    assert_eq!(written + dropped, 10 + total, "every record is either stored or counted as dropped");
    assert_eq!(count(&pg) as u64, written, "what the writer counts as written is in the database");
    assert!(written >= 10 + held, "the held records were written: {written}");
    assert!(!stats.failing.load(Ordering::Relaxed));
    assert_eq!(stats.held.load(Ordering::Relaxed), 0);
    sink.close();
}

#[test]
fn postgres_over_tls_checks_the_servers_certificate_against_the_configured_ca() {
    let pki = super::tls::pki();
    let pg = Postgres::tls(&pki);
    let url = SecretUrl::new(format!("{}?sslmode=require", pg.url()));
    let ca = std::fs::read(pki.dir.path().join("ca.pem")).unwrap();
    let ours = PostgresSettings { url: url.clone(), timeout: Duration::from_millis(2000), ca_pem: Some(ca) };
    let mut client = trunkline_router::records::pg::connect(&ours).unwrap();
    let row = client.query_one("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap();
    let (ssl, version): (bool, Option<String>) = (row.get(0), row.get(1));
    assert!(ssl, "the session is encrypted");
    assert!(matches!(version.as_deref(), Some("TLSv1.2" | "TLSv1.3")), "{version:?}");
    assert!(PgReader::new(ours).list(&Filter::default()).unwrap().is_empty(), "records read over TLS");
    // Without the CA (the system's roots do not vouch for it): refused, and said why.
    let theirs = PostgresSettings { url, timeout: Duration::from_millis(2000), ca_pem: None };
    let e = trunkline_router::records::pg::connect(&theirs).err().expect("an unknown issuer is refused").to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}
