//! Symmetric RTP for real: a carrier behind NAT, in a network namespace
//! the test makes (veth to the router's namespace, an iptables SNAT rule
//! that rewrites the source of its media to another address and port).
//! Its session description names its private address; its packets come
//! from the NAT's. Strict, they are dropped; with `symmetric_rtp`, the
//! relay latches to them and the PBX's echo goes back through the NAT.

use std::process::{Command, Stdio};

use super::media::relayed;
use super::*;

/// A network namespace holding the NATed carrier, deleted when dropped
/// (its veth pair goes with it).
struct NatHost {
    ns: String,
    /// The router's side of the veth.
    outside: String,
    /// The carrier's own (private) address.
    inside: String,
    /// The address its media is rewritten to.
    public: String,
}

/// Run `ip ARGS` (iproute2), which must succeed.
pub(super) fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2's ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl NatHost {
    /// Subnet 10.201.`net`.0/24: .1 the router's side, .2 the carrier,
    /// .3 the address its media is rewritten to (ports 40000-40100).
    fn new(net: u8) -> NatHost {
        let tag = format!("{}{net}", std::process::id() % 100_000);
        let (ns, host_if, ns_if) = (format!("tlnat{tag}"), format!("tlh{tag}"), format!("tln{tag}"));
        let (outside, inside, nat) = (format!("10.201.{net}.1"), format!("10.201.{net}.2"), format!("10.201.{net}.3"));
        ip(&["netns", "add", &ns]);
        let host = NatHost { ns: ns.clone(), outside: outside.clone(), inside: inside.clone(), public: nat.clone() };
        ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]);
        ip(&["link", "set", &ns_if, "netns", &ns]);
        ip(&["addr", "add", &format!("{outside}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        for a in [&inside, &nat] {
            ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{a}/24"), "dev", &ns_if]);
        }
        ip(&["netns", "exec", &ns, "ip", "link", "set", &ns_if, "up"]);
        ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        let snat = format!("{nat}:40000-40100");
        let rule =
            ["-t", "nat", "-A", "POSTROUTING", "-p", "udp", "--sport", "6000:6001", "-j", "SNAT", "--to-source", &snat];
        let out = Command::new("ip").args(["netns", "exec", &ns, "iptables"]).args(rule).output().expect("iptables");
        assert!(out.status.success(), "iptables SNAT: {}", String::from_utf8_lossy(&out.stderr));
        host
    }
}

impl Drop for NatHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.ns]).status();
    }
}

/// One call from the NATed carrier (SIPp uac_pcap: 9 s of G.711 and DTMF
/// from media port 6000) to a PBX echoing RTP, through a router whose trunk
/// has `symmetric_rtp = symmetric`. The router's report.
fn call_from_behind_nat(nat: &NatHost, symmetric: bool) -> String {
    let uas_port = free_udp_port();
    let trunk = format!(
        "[[trunk]]\nname = \"nat\"\nnumbers = [\"+14155550100\"]\nsymmetric_rtp = {symmetric}\n\
         [[trunk.origination]]\nuri = \"sip:{}:{uas_port}\"\n",
        nat.outside
    );
    let listen = format!("udp://{}:0", nat.outside);
    let router = Router::launch(Setup { listen: &[listen.as_str()], rest: &trunk, ..Setup::default() });
    let quiet = |c: &mut Command| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    };
    let mut uas = Command::new("sipp");
    uas.args(["-sn", "uas", "-i", &nat.outside, "-p", &uas_port.to_string(), "-mp", &free_udp_port().to_string()]);
    uas.args(["-rtp_echo", "-m", "1", "-nostdin", "-timeout", "30s"]);
    quiet(&mut uas);
    let mut uas = uas.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pcaps = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/usr/share/sip-tester", pcaps.path().join("pcap")).unwrap();
    let target = format!("{}:{}", nat.outside, router.port);
    let mut uac = Command::new("ip");
    uac.args(["netns", "exec", &nat.ns, "sipp", "-sn", "uac_pcap", &target, "-s", "+14155550100"]);
    uac.args(["-i", &nat.inside, "-p", "5070", "-mp", "6000", "-m", "1", "-nostdin", "-timeout", "30s"]);
    uac.current_dir(pcaps.path());
    quiet(&mut uac);
    let ok = uac.status().unwrap().success();
    let report = router.outcomes(1);
    assert!(ok && uas.wait().unwrap().success(), "{report}");
    report
}

#[test]
fn a_carrier_behind_nat_gets_audio_only_with_symmetric_rtp() {
    let nat = NatHost::new(u8::try_from(std::process::id() % 200).unwrap() + 20);
    let strict = call_from_behind_nat(&nat, false);
    assert!(strict.contains(&format!("caller {}:6000 <-> router", nat.inside)), "{strict}");
    let (a, b, dropped) = relayed(&strict);
    assert_eq!((a, b), (0, 0), "strict: nothing from the NAT's address is relayed\n{strict}");
    assert!(dropped >= 240, "{strict}");

    let latched = call_from_behind_nat(&nat, true);
    let (a, b, _) = relayed(&latched);
    assert!(a >= 240 && b >= 240, "symmetric: audio both ways through the NAT\n{latched}");
    assert!(latched.contains(&format!("caller latched to {}:400", nat.public)), "{latched}");
}
