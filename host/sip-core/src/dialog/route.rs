//! Route sets (RFC 3261 §12.1, §12.2.1.1, §16.12): which proxies a dialog's
//! requests pass through, and what the Request-URI and Route headers of
//! such a request are.
//!
//! A proxy that puts itself in a dialog's path adds a Record-Route value to
//! the request that creates it; the UAS copies those values into its
//! responses. Each side then sends every request of the dialog to the first
//! hop of the route set, not straight to the remote target. With a loose
//! router first (`;lr`), the Request-URI is the remote target and the route
//! set goes in Route headers; with a strict router (RFC 2543), the first
//! route becomes the Request-URI and the remote target the last Route.

use crate::header::{list, param};
use crate::message::Message;

/// The URIs of every Record-Route value of `m`, in order.
pub fn record_route(m: &Message) -> Vec<String> {
    m.headers_named("Record-Route").flat_map(list).filter_map(uri_in_brackets).collect()
}

/// The URI inside `<...>` of a name-addr (Record-Route and Route values
/// always use that form, RFC 3261 §20.30).
fn uri_in_brackets(value: &str) -> Option<String> {
    let open = value.find('<')?;
    let close = open + value[open..].find('>')?;
    let uri = value[open + 1..close].trim();
    (!uri.is_empty()).then(|| uri.to_owned())
}

/// Whether `uri` routes loosely (has the `lr` parameter).
pub fn is_loose(uri: &str) -> bool {
    let params = uri.split('?').next().unwrap_or(uri);
    params.split_once(';').is_some_and(|(_, p)| param(p, "lr").is_some())
}

/// The Request-URI and Route values of a request with `route_set` to
/// `remote_target` (RFC 3261 §12.2.1.1).
pub fn request_target(route_set: &[String], remote_target: &str) -> (String, Vec<String>) {
    match route_set.first() {
        None => (remote_target.to_owned(), Vec::new()),
        Some(first) if is_loose(first) => (remote_target.to_owned(), route_set.to_vec()),
        Some(first) => {
            // Strict routing: the first route is the Request-URI (without
            // the headers a URI may not carry there), the remote target the last Route.
            let mut routes = route_set[1..].to_vec();
            routes.push(remote_target.to_owned());
            (first.split('?').next().unwrap_or(first).to_owned(), routes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &str) -> Message {
        let text = format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n{headers}\r\n");
        Message::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn record_route_values_in_order_across_headers_and_lists() {
        let m = msg(
            "Record-Route: <sip:p3.example;lr;ftag=a,b>;x=1, <sip:p2.example;lr>\r\nRecord-Route: <sip:10.0.0.1:5070;transport=tcp;lr>\r\n",
        );
        assert_eq!(
            record_route(&m),
            ["sip:p3.example;lr;ftag=a,b", "sip:p2.example;lr", "sip:10.0.0.1:5070;transport=tcp;lr"]
        );
        assert!(record_route(&msg("Record-Route: garbage, <>\r\n")).is_empty());
    }

    #[test]
    fn loose_and_strict_routing() {
        assert!(is_loose("sip:p.example;lr"));
        assert!(is_loose("sip:p.example;transport=tcp;LR=on"));
        assert!(!is_loose("sip:p.example"));
        assert!(!is_loose("sip:p.example?x=lr;lr"));
        let target = "sip:ua@10.0.0.5:5080";
        assert_eq!(request_target(&[], target), (target.into(), vec![]));
        let loose = vec!["sip:p1;lr".to_owned(), "sip:p2;lr".to_owned()];
        assert_eq!(request_target(&loose, target), (target.into(), loose.clone()));
        let strict = vec!["sip:p1".to_owned(), "sip:p2;lr".to_owned()];
        assert_eq!(request_target(&strict, target), ("sip:p1".into(), vec!["sip:p2;lr".into(), target.into()]));
    }
}
