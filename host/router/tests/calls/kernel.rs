//! Kernel forwarding over real Ethernet: the carrier and the PBX each in a
//! network namespace of their own, joined by veth pairs to a bridge that
//! holds the router's address. Their media reaches the router's
//! classifier at the bridge's ingress and leaves through the bridge with
//! MAC addresses the kernel's neighbour table gives (on loopback, where
//! the other tests run, there are none to get wrong).

use std::process::{Command, Stdio};

use super::media::{kernel_forwarded, relayed};
use super::nat::ip;
use super::*;

/// A bridge with the router's address 10.203.`net`.1, and two namespaces
/// on it: .2 (the carrier) and .3 (the PBX). Deleted when dropped.
struct Lan {
    bridge: String,
    namespaces: [String; 2],
    router: String,
    hosts: [String; 2],
}

impl Lan {
    fn new(net: u8) -> Lan {
        let tag = format!("{}{net}", std::process::id() % 100_000);
        let bridge = format!("tlbr{tag}");
        let namespaces = [format!("tlka{tag}"), format!("tlkb{tag}")];
        let (router, hosts) = (format!("10.203.{net}.1"), [format!("10.203.{net}.2"), format!("10.203.{net}.3")]);
        ip(&["link", "add", &bridge, "type", "bridge"]);
        let lan = Lan { bridge: bridge.clone(), namespaces: namespaces.clone(), router: router.clone(), hosts };
        ip(&["addr", "add", &format!("{router}/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for (i, ns) in namespaces.iter().enumerate() {
            let (outer, inner) = (format!("tlk{i}o{tag}"), format!("tlk{i}i{tag}"));
            ip(&["netns", "add", ns]);
            ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner]);
            ip(&["link", "set", &inner, "netns", ns]);
            ip(&["link", "set", &outer, "master", &bridge]);
            ip(&["link", "set", &outer, "up"]);
            ip(&["netns", "exec", ns, "ip", "addr", "add", &format!("{}/24", lan.hosts[i]), "dev", &inner]);
            ip(&["netns", "exec", ns, "ip", "link", "set", &inner, "up"]);
            ip(&["netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
        }
        lan
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
        let _ = Command::new("ip").args(["link", "delete", &self.bridge]).status();
    }
}

#[test]
fn across_a_bridge_every_packet_of_a_call_is_forwarded_by_the_kernel_both_ways() {
    let lan = Lan::new(u8::try_from(std::process::id() % 200).unwrap() + 20);
    let uas_port = free_udp_port();
    let trunk = format!(
        "[[trunk]]\nname = \"lan\"\nnumbers = [\"+14155550100\"]\n\
         [[trunk.origination]]\nuri = \"sip:{}:{uas_port}\"\n\n[media]\nkernel_forwarding = true\n",
        lan.hosts[1]
    );
    let listen = format!("udp://{}:0", lan.router);
    let router = Router::launch(Setup { listen: &[listen.as_str()], rest: &trunk, ..Setup::default() });
    let quiet = |c: &mut Command| {
        c.stdout(Stdio::null()).stderr(Stdio::null());
    };
    let mut uas = Command::new("ip");
    uas.args(["netns", "exec", &lan.namespaces[1], "sipp", "-sn", "uas", "-i", &lan.hosts[1]]);
    uas.args(["-p", &uas_port.to_string(), "-mp", "6200", "-rtp_echo", "-m", "1", "-nostdin", "-timeout", "30s"]);
    quiet(&mut uas);
    let mut uas = uas.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pcaps = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/usr/share/sip-tester", pcaps.path().join("pcap")).unwrap();
    let target = format!("{}:{}", lan.router, router.port);
    let mut uac = Command::new("ip");
    uac.args(["netns", "exec", &lan.namespaces[0], "sipp", "-sn", "uac_pcap", &target, "-s", "+14155550100"]);
    uac.args(["-i", &lan.hosts[0], "-p", "5070", "-mp", "6000", "-m", "1", "-nostdin", "-timeout", "30s"]);
    uac.current_dir(pcaps.path());
    quiet(&mut uac);
    let ok = uac.status().unwrap().success();
    let report = router.outcomes(1);
    assert!(ok && uas.wait().unwrap().success(), "{report}");
    assert!(report.contains(&format!("caller {}:6000 <-> router", lan.hosts[0])), "{report}");
    let (a, b, dropped) = relayed(&report);
    assert!(a >= 240 && b >= 240 && dropped == 0, "audio both ways\n{report}");
    let kernel = kernel_forwarded(&report);
    assert_eq!(kernel, a + b, "every packet, both ways, through the bridge by the kernel\n{report}");
}
