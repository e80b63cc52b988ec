//! Origination routing as the reference trunk does it: which targets, in
//! which order, and when to fail over. Pure functions; randomness is passed in.

use trunkline_plugin_host::types::{Health, Target, Transport};
use trunkline_sip_core::Transport as SipTransport;

use crate::config::Origination;

/// Final responses that end the call instead of failing over (reference:
/// 2xx, 400, 404, 405, 410, 416, 482, 484, 486, 6xx).
pub fn fails_over(status: u16) -> bool {
    let no_failover = (200..300).contains(&status)
        || matches!(status, 400 | 404 | 405 | 410 | 416 | 482 | 484 | 486)
        || (600..700).contains(&status);
    !no_failover && status >= 300
}

/// The trunk's origination URIs as candidate targets.
pub fn candidates(origination: &[Origination]) -> Vec<Target> {
    origination
        .iter()
        .map(|o| Target {
            uri: o.uri.clone(),
            priority: o.priority,
            weight: o.weight,
            enabled: o.enabled,
            transport: transport_of(&o.uri),
            health: Health::Unknown,
            group: None,
        })
        .collect()
}

/// The transport a URI asks for (`sips:` or `;transport=`), as plugins see
/// it; UDP when it names none (or one we do not know).
pub fn transport_of(uri: &str) -> Transport {
    plugin_transport(SipTransport::of_uri(uri).unwrap_or(SipTransport::Udp))
}

/// The plugin API's name for a transport.
pub fn plugin_transport(t: SipTransport) -> Transport {
    match t {
        SipTransport::Udp => Transport::Udp,
        SipTransport::Tcp => Transport::Tcp,
        SipTransport::Tls => Transport::Tls,
    }
}

/// A target with nothing but a URI and a priority: weight 1, enabled,
/// health unknown (redirects, TwiML `<Dial>` nouns, carrier gateways).
pub fn target(uri: String, priority: u16) -> Target {
    Target {
        transport: transport_of(&uri),
        uri,
        priority,
        weight: 1,
        enabled: true,
        health: Health::Unknown,
        group: None,
    }
}

/// The reference order: enabled targets by ascending priority; within one
/// priority, a weighted random order (each next pick proportional to weight
/// among those not yet picked). `rand01` yields uniform numbers in [0, 1).
pub fn order(targets: &[Target], mut rand01: impl FnMut() -> f64) -> Vec<Target> {
    let mut enabled: Vec<&Target> = targets.iter().filter(|t| t.enabled).collect();
    enabled.sort_by_key(|t| t.priority);
    let mut out = Vec::with_capacity(enabled.len());
    for group in enabled.chunk_by(|a, b| a.priority == b.priority) {
        let mut pool: Vec<&Target> = group.to_vec();
        while !pool.is_empty() {
            let total: u64 = pool.iter().map(|t| u64::from(t.weight.max(1))).sum();
            let mut pick = (rand01() * total as f64) as u64;
            let idx = pool
                .iter()
                .position(|t| {
                    let w = u64::from(t.weight.max(1));
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(pool.len() - 1);
            out.push(pool.remove(idx).clone());
        }
    }
    out
}

/// The request-URI for a target: its user part is the dialed number unless
/// the URI has one; URI headers (`?X-a=b`) are removed and returned as
/// headers to add (only `X-` ones, as the reference does).
pub fn request_uri(target_uri: &str, dialed: &str) -> (String, Vec<(String, String)>) {
    let (uri, query) = match target_uri.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (target_uri, None),
    };
    let headers = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.len() > 2 && k[..2].eq_ignore_ascii_case("x-"))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect();
    let (scheme, rest) = uri.split_once(':').unwrap_or(("sip", uri));
    let scheme = if scheme.eq_ignore_ascii_case("sips") { "sip" } else { scheme };
    let hostpart_has_user = rest.split(';').next().is_some_and(|h| h.contains('@'));
    let mut out = if hostpart_has_user { format!("{scheme}:{rest}") } else { format!("{scheme}:{dialed}@{rest}") };
    if uri.to_ascii_lowercase().starts_with("sips:") && !out.contains(";transport=") {
        out.push_str(";transport=tls");
    }
    (out, headers)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(uri: &str, priority: u16, weight: u16, enabled: bool) -> Target {
        Target {
            uri: uri.into(),
            priority,
            weight,
            enabled,
            transport: Transport::Udp,
            health: Health::Unknown,
            group: None,
        }
    }

    #[test]
    fn failover_set_matches_the_reference() {
        for s in [200, 202, 400, 404, 405, 410, 416, 482, 484, 486, 600, 603, 699] {
            assert!(!fails_over(s), "{s}");
        }
        for s in [408, 480, 500, 502, 503, 401, 403, 488, 302] {
            assert!(fails_over(s), "{s}");
        }
    }

    #[test]
    fn priority_first_then_weight_and_disabled_never() {
        let ts =
            [t("sip:c", 20, 1, true), t("sip:a", 10, 60, true), t("sip:off", 5, 100, false), t("sip:b", 10, 40, true)];
        let o = order(&ts, || 0.0);
        let uris: Vec<&str> = o.iter().map(|t| t.uri.as_str()).collect();
        assert_eq!(uris, ["sip:a", "sip:b", "sip:c"]);
        let o = order(&ts, || 0.99);
        assert_eq!(o[0].uri, "sip:b");
        assert_eq!(o[2].uri, "sip:c");
    }

    #[test]
    fn weights_share_the_load_60_20_20() {
        let ts = [t("sip:a", 10, 60, true), t("sip:b", 10, 20, true), t("sip:c", 10, 20, true)];
        let mut x: u64 = 0x2545F4914F6CDD1D;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut first = [0u32; 3];
        for _ in 0..10_000 {
            let o = order(&ts, &mut rnd);
            first[["sip:a", "sip:b", "sip:c"].iter().position(|u| *u == o[0].uri).unwrap()] += 1;
        }
        // 60/20/20 within ±3 points over 10,000 draws (about 6 sigma).
        assert!((5700..=6300).contains(&first[0]), "{first:?}");
        assert!((1700..=2300).contains(&first[1]) && (1700..=2300).contains(&first[2]), "{first:?}");
    }

    #[test]
    fn request_uri_fills_the_user_and_copies_x_headers() {
        assert_eq!(request_uri("sip:127.0.0.1:5080", "+14155550100").0, "sip:+14155550100@127.0.0.1:5080");
        assert_eq!(request_uri("sip:pbx@mysbc.com", "+1").0, "sip:pbx@mysbc.com");
        let (u, h) = request_uri("sip:mysbc.com;transport=tcp?X-myheader=foo&Subject=no&X-b=a%20b", "+1");
        assert_eq!(u, "sip:+1@mysbc.com;transport=tcp");
        assert_eq!(h, vec![("X-myheader".into(), "foo".into()), ("X-b".into(), "a b".into())]);
        assert_eq!(request_uri("sips:mysbc.com", "+1").0, "sip:+1@mysbc.com;transport=tls");
    }
}
