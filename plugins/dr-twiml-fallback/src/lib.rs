//! `dr-twiml-fallback`: when every target failed, fall back to the
//! account's disaster-recovery TwiML, chosen by time of day. See README.md.

use trunkline_sdk::schedule::Window;
use trunkline_sdk::{clock, config, log, metrics, policy, Call, Fallback, Policy, Response};

/// See the crate docs and README.md.
#[derive(Default)]
pub struct DrTwimlFallback;

/// The first `[[documents]]` entry whose window contains the current local time.
fn scheduled_document() -> Option<String> {
    let count = config::len("documents");
    if count == 0 {
        return None;
    }
    let zone = config::text("zone").unwrap_or_else(|| "UTC".into());
    let now = clock::local_time(&zone).map_err(|e| log::warn(&e)).ok()?;
    (0..count).find_map(|i| {
        let at = |k: &str| format!("documents.{i}.{k}");
        let window = Window::parse(&config::texts(&at("days")), config::text(&at("hours")).as_deref())
            .map_err(|e| log::warn(&format!("documents[{i}]: {e}")))
            .ok()?;
        window.contains(&now).then(|| config::text(&at("twiml"))).flatten()
    })
}

#[policy]
impl Policy for DrTwimlFallback {
    fn on_failure(&self, _call: &Call, _last: Option<&Response>) -> Fallback {
        if let Some(doc) = scheduled_document() {
            metrics::counter("fallback_document", 1);
            return Fallback::TwimlDocument(doc);
        }
        if let Some(url) = config::text("url") {
            metrics::counter("fallback_url", 1);
            return Fallback::TwimlUrl(url);
        }
        Fallback::Default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_sdk::testing::{CallBuilder, Harness};

    const CONFIG: &str = r#"
        url = "http://127.0.0.1:18080/dr"
        zone = "Europe/Paris"
        [[documents]]
        hours = "19:00-08:00"
        twiml = "<Response><Reject reason=\"busy\"/></Response>"
    "#;

    fn fallback() -> Fallback {
        DrTwimlFallback.on_failure(&CallBuilder::origination().build(), None)
    }

    #[test]
    fn after_hours_document_else_url() {
        let h = Harness::new();
        h.set_config(CONFIG);
        h.set_time("2026-11-23T20:30:00Z"); // 21:30 in Paris
        assert!(matches!(fallback(), Fallback::TwimlDocument(d) if d.contains("busy")));
        h.set_time("2026-11-23T10:00:00Z"); // 11:00 in Paris
        assert_eq!(fallback(), Fallback::TwimlUrl("http://127.0.0.1:18080/dr".into()));
        assert_eq!((h.counter("fallback_document"), h.counter("fallback_url")), (1, 1));
    }

    #[test]
    fn nothing_configured_is_default() {
        let _h = Harness::new();
        assert_eq!(fallback(), Fallback::Default);
    }
}
