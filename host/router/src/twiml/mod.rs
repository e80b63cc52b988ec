//! TwiML for the disaster-recovery fallback: the document a trunk's
//! `disaster_recovery_url` (or a plugin's `on-failure`) returns when no
//! origination URI took the call, parsed into verbs the engine executes.
//!
//! Executed: `<Dial>` with `<Sip>` and `<Number>` nouns (or a bare number)
//! and `timeout`, `<Reject reason="busy|rejected">` (486/603), `<Hangup/>`,
//! `<Redirect>` (fetch again), `<Pause length>` and `<Play loop>` of a WAV
//! file (on a trunk that relays media: the router answers the caller and
//! streams the file through its relay). Verbs that need speech or input
//! (`<Say>`, `<Gather>`, `<Record>`...) are logged and skipped, as the
//! reference platform skips verbs it does not know.

pub mod fetch;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Largest TwiML document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Most verbs one document may hold.
pub const MAX_VERBS: usize = 100;
/// Most nouns one `<Dial>` may hold (as on the reference platform).
pub const MAX_DIAL_NOUNS: usize = 10;

/// One TwiML verb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Call these targets in turn until one answers.
    Dial(Dial),
    /// Refuse the call: 486 Busy Here if `busy`, else 603 Decline.
    Reject { busy: bool },
    /// End the call.
    Hangup,
    /// Fetch TwiML from `url` and go on with it.
    Redirect { url: String },
    /// Wait this many seconds.
    Pause { secs: u32 },
    /// Answer the call (if not yet) and play the WAV file at `url`,
    /// `loops` times (`None`: `loop="0"`, until the call ends).
    Play { url: String, loops: Option<u32> },
    /// A verb this router does not execute (logged and skipped).
    Unsupported(String),
}

/// A `<Dial>` verb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    /// Seconds a target may ring before the next one is tried (5..=600, default 30).
    pub timeout_secs: u32,
    /// In order.
    pub targets: Vec<DialTarget>,
}

/// What `<Dial>` calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialTarget {
    /// `<Sip>sip:...</Sip>`: a SIP URI.
    Sip(String),
    /// `<Number>+1...</Number>`: a phone number, via the PSTN gateway.
    Number(String),
}

/// Why a document cannot be executed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TwimlError {
    #[error("document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("not XML: {0}")]
    Xml(String),
    #[error("the root element must be <Response>, found <{0}>")]
    Root(String),
    #[error("more than {MAX_VERBS} verbs")]
    TooManyVerbs,
    #[error("<{verb}>: {why}")]
    Verb { verb: String, why: String },
}

fn verb_err(verb: &str, why: impl Into<String>) -> TwimlError {
    TwimlError::Verb { verb: verb.into(), why: why.into() }
}

/// Parse a TwiML document into its verbs.
pub fn parse(doc: &str) -> Result<Vec<Verb>, TwimlError> {
    if doc.len() > MAX_DOCUMENT_BYTES {
        return Err(TwimlError::TooLarge);
    }
    let mut reader = Reader::from_str(doc);
    reader.config_mut().trim_text(true);
    let xml = |e: quick_xml::Error| TwimlError::Xml(e.to_string());
    // The root element.
    loop {
        match reader.read_event().map_err(xml)? {
            Event::Start(e) if e.local_name().as_ref() == b"Response" => break,
            Event::Empty(e) if e.local_name().as_ref() == b"Response" => return Ok(Vec::new()),
            Event::Start(e) | Event::Empty(e) => return Err(TwimlError::Root(name(&e))),
            Event::Eof => return Err(TwimlError::Xml("no <Response> element".into())),
            _ => {}
        }
    }
    let mut verbs = Vec::new();
    loop {
        let (start, empty) = match reader.read_event().map_err(xml)? {
            Event::Start(e) => (e.into_owned(), false),
            Event::Empty(e) => (e.into_owned(), true),
            Event::End(_) => break, // </Response>
            Event::Eof => return Err(TwimlError::Xml("<Response> is not closed".into())),
            _ => continue,
        };
        if verbs.len() == MAX_VERBS {
            return Err(TwimlError::TooManyVerbs);
        }
        let verb = name(&start);
        let (text, children) = if empty { (String::new(), Vec::new()) } else { read_body(&mut reader, &verb)? };
        verbs.push(build(&verb, &start, text, children)?);
    }
    Ok(verbs)
}

/// The text and child elements (name, text) of an element, to its end.
fn read_body(reader: &mut Reader<&[u8]>, verb: &str) -> Result<(String, Vec<(String, String)>), TwimlError> {
    let xml = |e: quick_xml::Error| TwimlError::Xml(e.to_string());
    let mut text = String::new();
    let mut children = Vec::new();
    loop {
        match reader.read_event().map_err(xml)? {
            Event::Text(t) => text.push_str(&t.unescape().map_err(xml)?),
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::Empty(e) => children.push((name(&e), String::new())),
            Event::Start(e) => {
                let child = name(&e);
                let mut inner = String::new();
                loop {
                    match reader.read_event().map_err(xml)? {
                        Event::Text(t) => inner.push_str(&t.unescape().map_err(xml)?),
                        Event::CData(t) => inner.push_str(&String::from_utf8_lossy(&t)),
                        Event::End(_) => break,
                        Event::Start(_) => return Err(verb_err(verb, format!("<{child}> must not contain elements"))),
                        Event::Eof => return Err(TwimlError::Xml(format!("<{child}> is not closed"))),
                        _ => {}
                    }
                }
                children.push((child, inner.trim().to_owned()));
            }
            Event::End(_) => return Ok((text.trim().to_owned(), children)),
            Event::Eof => return Err(TwimlError::Xml(format!("<{verb}> is not closed"))),
            _ => {}
        }
    }
}

fn name(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

fn attr(e: &BytesStart<'_>, key: &str) -> Result<Option<String>, TwimlError> {
    for a in e.attributes() {
        let a = a.map_err(|err| TwimlError::Xml(err.to_string()))?;
        if a.key.local_name().as_ref() == key.as_bytes() {
            return Ok(Some(a.unescape_value().map_err(|err| TwimlError::Xml(err.to_string()))?.into_owned()));
        }
    }
    Ok(None)
}

fn number_attr(
    e: &BytesStart<'_>,
    verb: &str,
    key: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, TwimlError> {
    match attr(e, key)? {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(verb_err(verb, format!("{key}=\"{v}\" must be {}..={}", range.start(), range.end()))),
        },
    }
}

fn build(verb: &str, e: &BytesStart<'_>, text: String, children: Vec<(String, String)>) -> Result<Verb, TwimlError> {
    Ok(match verb {
        "Dial" => {
            let timeout_secs = number_attr(e, verb, "timeout", 30, 5..=600)?;
            let mut targets = Vec::new();
            if !text.is_empty() {
                targets.push(DialTarget::Number(text));
            }
            for (child, value) in children {
                match child.as_str() {
                    "Sip"
                        if value.to_ascii_lowercase().starts_with("sip:")
                            || value.to_ascii_lowercase().starts_with("sips:") =>
                    {
                        targets.push(DialTarget::Sip(value))
                    }
                    "Sip" => return Err(verb_err(verb, format!("<Sip>{value}</Sip> is not a sip: URI"))),
                    "Number" if !value.is_empty() => targets.push(DialTarget::Number(value)),
                    "Number" => return Err(verb_err(verb, "<Number> is empty")),
                    other => tracing::info!("TwiML <Dial><{other}> is not supported: skipped"),
                }
            }
            if targets.len() > MAX_DIAL_NOUNS {
                return Err(verb_err(verb, format!("more than {MAX_DIAL_NOUNS} nouns")));
            }
            Verb::Dial(Dial { timeout_secs, targets })
        }
        "Reject" => match attr(e, "reason")?.as_deref() {
            None | Some("rejected") => Verb::Reject { busy: false },
            Some("busy") => Verb::Reject { busy: true },
            Some(other) => return Err(verb_err(verb, format!("reason=\"{other}\" must be busy or rejected"))),
        },
        "Hangup" => Verb::Hangup,
        "Redirect" if !text.is_empty() => Verb::Redirect { url: text },
        "Redirect" => return Err(verb_err(verb, "no URL")),
        "Pause" => Verb::Pause { secs: number_attr(e, verb, "length", 1, 1..=600)? },
        "Play" if !text.is_empty() => {
            let loops = number_attr(e, verb, "loop", 1, 0..=1000)?;
            Verb::Play { url: text, loops: (loops > 0).then_some(loops) }
        }
        "Play" => return Err(verb_err(verb, "no URL")),
        other => Verb::Unsupported(other.to_owned()),
    })
}

/// A seeded pseudo-random sequence for the mutation tests (xorshift64).
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_executed_verbs() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
            <Response>
              <Pause length="2"/>
              <Say>Please hold</Say>
              <Play loop="3">https://example.com/closed.wav</Play>
              <Play loop="0">/hold.wav</Play>
              <Dial timeout="10"><Sip>sip:pbx2@127.0.0.1:5090</Sip><Number>+14155550111</Number></Dial>
              <Dial>+14155550112</Dial>
              <Redirect method="POST">http://127.0.0.1:8080/next</Redirect>
              <Reject reason="busy"/>
              <Hangup/>
            </Response>"#;
        assert_eq!(
            parse(doc).unwrap(),
            vec![
                Verb::Pause { secs: 2 },
                Verb::Unsupported("Say".into()),
                Verb::Play { url: "https://example.com/closed.wav".into(), loops: Some(3) },
                Verb::Play { url: "/hold.wav".into(), loops: None },
                Verb::Dial(Dial {
                    timeout_secs: 10,
                    targets: vec![
                        DialTarget::Sip("sip:pbx2@127.0.0.1:5090".into()),
                        DialTarget::Number("+14155550111".into())
                    ]
                }),
                Verb::Dial(Dial { timeout_secs: 30, targets: vec![DialTarget::Number("+14155550112".into())] }),
                Verb::Redirect { url: "http://127.0.0.1:8080/next".into() },
                Verb::Reject { busy: true },
                Verb::Hangup,
            ]
        );
        assert_eq!(parse("<Response/>").unwrap(), vec![]);
        assert_eq!(parse("<Response><Reject/></Response>").unwrap(), vec![Verb::Reject { busy: false }]);
    }

    #[test]
    fn bad_documents_are_refused_with_a_reason() {
        assert_eq!(parse("<Html></Html>"), Err(TwimlError::Root("Html".into())));
        assert!(matches!(parse("<Response><Dial>"), Err(TwimlError::Xml(_))));
        assert!(matches!(parse("not xml at all"), Err(TwimlError::Xml(_))));
        let e = parse(r#"<Response><Reject reason="maybe"/></Response>"#).unwrap_err();
        assert_eq!(e.to_string(), "<Reject>: reason=\"maybe\" must be busy or rejected");
        assert!(parse(r#"<Response><Dial timeout="9999"><Sip>sip:a@b</Sip></Dial></Response>"#).is_err());
        assert!(parse("<Response><Dial><Sip>http://x</Sip></Dial></Response>").is_err());
        assert_eq!(parse("<Response><Play/></Response>"), Err(verb_err("Play", "no URL")));
        assert!(parse(r#"<Response><Play loop="-1">/a.wav</Play></Response>"#).is_err());
        let many = format!("<Response>{}</Response>", "<Hangup/>".repeat(MAX_VERBS + 1));
        assert_eq!(parse(&many), Err(TwimlError::TooManyVerbs));
        assert_eq!(parse(&"x".repeat(MAX_DOCUMENT_BYTES + 1)), Err(TwimlError::TooLarge));
    }

    /// A document comes from the customer's server: whatever it holds, the
    /// parser (and the URL joining a `<Redirect>` does) answers, never panics.
    #[test]
    fn mutated_documents_do_not_panic() {
        let valid = r#"<?xml version="1.0"?><Response><Pause length="2"/><Dial timeout="10"><Sip>sip:a@127.0.0.1:5090</Sip><Number>+14155550111</Number></Dial><Redirect>/next?x=1</Redirect><Reject reason="busy"/><Hangup/></Response>"#;
        let base = crate::twiml::fetch::HttpUrl::parse("https://[::1]:8443/dr/twiml?call=1").unwrap();
        let alphabet = "<>/=\"' &;#x0123456789:?[]@\u{e9}\u{1F600}ResponseDialSipNumber";
        let pieces: Vec<char> = alphabet.chars().collect();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut doc: Vec<char> = valid.chars().collect();
            for _ in 0..1 + next() % 6 {
                let i = (next() % doc.len() as u64) as usize;
                let c = pieces[(next() % pieces.len() as u64) as usize];
                match next() % 3 {
                    0 => doc[i] = c,
                    1 => doc.insert(i, c),
                    _ => {
                        doc.remove(i);
                    }
                }
            }
            let doc: String = doc.into_iter().collect();
            if let Ok(verbs) = parse(&doc) {
                for v in verbs {
                    if let Verb::Redirect { url } = v {
                        let _ = base.join(&url);
                    }
                }
            }
            let _ = base.join(&doc);
            let _ = crate::twiml::fetch::HttpUrl::parse(&doc);
        }
    }
}
