//! Anchored media with real RTP: SIPp parties playing and echoing G.711
//! audio through the router's relay, and what the call report says of it.

use super::*;

/// The router's ports of a report's first stream: (facing the caller,
/// facing the callee), from `audio: caller A <-> router :P | :Q <-> callee B`.
pub(super) fn router_ports(report: &str) -> (u16, u16) {
    let line =
        report.lines().find(|l| l.contains("<-> router :")).unwrap_or_else(|| panic!("no media line:\n{report}"));
    let ports: Vec<u16> =
        line.split(':').filter_map(|p| p.split_whitespace().next().and_then(|n| n.parse().ok())).collect();
    // caller IP:port, :P, :Q, callee IP:port
    let n = ports.len();
    assert!(n >= 4, "{line}");
    (ports[n - 3], ports[n - 2])
}

/// Packets relayed (caller->callee, callee->caller) and dropped, from the
/// report's counters line.
pub(super) fn relayed(report: &str) -> (u64, u64, u64) {
    let line = report
        .lines()
        .find(|l| l.contains("packets relayed caller->callee"))
        .unwrap_or_else(|| panic!("no relay counters:\n{report}"));
    // After "caller latched to IP:PORT (symmetric RTP); " if any.
    let at = line.find(" packets relayed caller->callee").unwrap_or(0);
    let from = line[..at].rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    let n: Vec<u64> = line[from..].split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    assert!(n.len() >= 3, "{line}");
    (n[0], n[1], n[2])
}

/// Packets the kernel forwarded, from the report's counters line (kernel
/// forwarding must have been set up: root, clang at build time).
pub(super) fn kernel_forwarded(report: &str) -> u64 {
    report
        .lines()
        .flat_map(|l| l.split("; "))
        .find_map(|p| p.trim().strip_suffix(" of the relayed packets forwarded by the kernel")?.parse().ok())
        .unwrap_or_else(|| panic!("no kernel count (was kernel forwarding set up? needs root):\n{report}"))
}

/// A WAV file (16-bit mono PCM at `rate` Hz) of a 440 Hz tone lasting `secs`.
pub(super) fn tone_wav(rate: u32, secs: u32) -> Vec<u8> {
    let samples: Vec<i16> = (0..rate * secs)
        .map(|i| ((f64::from(i) * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 8000.0) as i16)
        .collect();
    let data = (samples.len() * 2) as u32;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// A folder where SIPp's `uac_pcap` scenario finds its audio
/// (`pcap/g711a.pcap`, `pcap/dtmf_2833_1.pcap`: Debian's sip-tester files).
fn pcap_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/usr/share/sip-tester", dir.path().join("pcap")).unwrap();
    dir
}

/// One call of SIPp's `uac_pcap` (9 s of G.711 and DTMF from its media
/// port) to a SIPp PBX echoing RTP, through a router whose trunk is
/// `extra` lines plus an origination URI to the PBX, and `rest` after it.
struct EchoCall {
    report: String,
    /// What the PBX received (its `-trace_msg` file).
    pbx_saw: String,
    /// The media ports of the carrier and the PBX.
    uac_media: u16,
    uas_media: u16,
}

fn echo_call(extra: &str, rest: &str) -> EchoCall {
    let (uas_port, uac_port, uas_media, uac_media) =
        (free_udp_port(), free_udp_port(), free_udp_port(), free_udp_port());
    // Trunk keys go before its origination tables.
    let config =
        trunk(&[(uas_port, 10)], "").replacen("[[trunk.origination]]", &format!("{extra}[[trunk.origination]]"), 1)
            + rest;
    let router = Router::launch(Setup { rest: &config, ..Setup::default() });
    let dir = tempfile::tempdir().unwrap();
    let msgs = dir.path().join("uas.msg");
    let (port, media, trace) = (uas_port.to_string(), uas_media.to_string(), msgs.to_str().unwrap());
    let mut uas =
        sipp(&["-sn", "uas", "-p", &port, "-mp", &media, "-rtp_echo", "-m", "1", "-trace_msg", "-message_file", trace])
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pcaps = pcap_dir();
    let (target, port, media) = (format!("127.0.0.1:{}", router.port), uac_port.to_string(), uac_media.to_string());
    let uac = sipp(&["-sn", "uac_pcap", &target, "-s", "+14155550100", "-p", &port, "-mp", &media, "-m", "1"])
        .current_dir(pcaps.path())
        .status()
        .unwrap();
    let report = router.outcomes(1);
    assert!(uac.success() && uas.wait().unwrap().success(), "{report}");
    EchoCall { report, pbx_saw: std::fs::read_to_string(&msgs).unwrap_or_default(), uac_media, uas_media }
}

#[test]
fn sipp_audio_and_dtmf_cross_the_relay_both_ways_and_each_side_sees_only_the_router() {
    let EchoCall { report, pbx_saw: seen, uac_media, uas_media } = echo_call("", "");
    // The pcap holds 236 audio packets and DTMF 10 more; the PBX echoes each.
    let (a, b, dropped) = relayed(&report);
    assert!(a >= 240 && b >= 240, "{report}");
    assert_eq!(dropped, 0, "{report}");
    assert!(
        report.contains(&format!("caller 127.0.0.1:{uac_media} <-> router"))
            && report.contains(&format!("callee 127.0.0.1:{uas_media}")),
        "{report}"
    );
    // The PBX was told the router's port facing it, not the carrier's.
    let (_, to_callee) = router_ports(&report);
    assert!(seen.contains(&format!("m=audio {to_callee} RTP/AVP")), "{seen}");
    assert!(!seen.contains(&format!("m=audio {uac_media} ")), "the carrier's media port never reached the PBX");
}

#[test]
fn with_kernel_forwarding_sipp_audio_crosses_the_kernel_and_the_report_counts_it() {
    let EchoCall { report, pbx_saw: seen, .. } = echo_call("", "[media]\nkernel_forwarding = true\n");
    let (a, b, dropped) = relayed(&report);
    assert!(a >= 240 && b >= 240 && dropped == 0, "{report}");
    // All but what arrived before both descriptions were known (none here:
    // SIPp sends after the ACK) went through the kernel.
    let kernel = kernel_forwarded(&report);
    assert_eq!(kernel, a + b, "{report}");
    let (_, to_callee) = router_ports(&report);
    assert!(seen.contains(&format!("m=audio {to_callee} RTP/AVP")), "{seen}");
}

#[test]
fn a_call_without_media_is_hung_up_after_the_rtp_timeout() {
    let (uas_port, uac_port) = (free_udp_port(), free_udp_port());
    let rest = format!("{}\n[media]\nrtp_timeout_secs = 2\n", trunk(&[(uas_port, 10)], ""));
    let router = Router::launch(Setup { rest: &rest, ..Setup::default() });
    let mut uas = sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", "1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SIPp talks for 20 s without sending a packet of media.
    let _ = call_in(&router, uac_port, &["-sn", "uac"], &["-m", "1", "-d", "20000"]);
    let report = router.outcomes(1);
    assert!(uas.wait().unwrap().success(), "the PBX got its BYE\n{report}");
    assert!(report.contains("no media for 2 s (media.rtp_timeout_secs): BYE to both parties"), "{report}");
    assert!(report.contains("hung up by the router"), "{report}");
    let talked: u64 = report
        .split("ms, hung up by the router")
        .next()
        .and_then(|s| s.rsplit(", ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(u64::MAX);
    // (The route line above proves the timeout ended it, not SIPp's BYE;
    // only the lower bound is checked: a loaded machine may be late.)
    assert!(talked >= 2000, "not before 2 s of silence: {report}");
}

#[test]
fn a_dual_recording_of_sipp_audio_has_the_callers_audio_left_and_its_echo_right() {
    let recordings = tempfile::tempdir().unwrap();
    let media = format!("[media]\nrecording_dir = \"{}\"\n", recordings.path().display());
    let report = echo_call("recording = \"dual\"\n", &media).report;
    let file = report
        .split("recorded to ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("the report names the recording:\n{report}"));
    assert!(file.starts_with(recordings.path()) && file.extension().is_some_and(|e| e == "wav"), "{report}");
    // The writer finishes the file off the call path: wait for it (bounded).
    let mut samples = Vec::new();
    for _ in 0..100 {
        if let Ok(mut wav) = hound::WavReader::open(&file) {
            assert_eq!((wav.spec().channels, wav.spec().sample_rate), (2, 8000));
            samples = wav.samples::<i16>().map(Result::unwrap).collect();
            if !samples.is_empty() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    // The pcap holds 236 packets of 20 ms of A-law: about 4.7 s of audio.
    assert!(left.len() >= 8000 * 4, "{} samples", left.len());
    let start = left.iter().position(|s| *s != 0).expect("the caller's audio");
    let piece = &left[start..start + 8000];
    let echo = (0..8000).find(|&o| right.get(start + o..start + o + 8000) == Some(piece));
    assert!(echo.is_some(), "the PBX's echo, a little later, on the right channel");
}
