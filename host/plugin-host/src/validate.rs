//! Checks every decision a plugin returns before the host acts on it. A
//! plugin cannot inject CR/LF into a SIP message, touch headers the
//! transaction layer owns, or send a status code that does not exist.

use crate::types::{HeaderEdit, InviteEdits, Reject, Target, Variable};

type Check = Result<(), String>;

/// Headers the SIP layers own; plugins may not edit them (compact forms too).
const MANAGED: [&str; 19] = [
    "via",
    "v",
    "call-id",
    "i",
    "cseq",
    "content-length",
    "l",
    "max-forwards",
    "from",
    "f",
    "to",
    "t",
    "contact",
    "m",
    "route",
    "record-route",
    "content-type",
    "c",
    "content-encoding",
];

pub(crate) const MAX_TARGETS: usize = 32;
pub(crate) const MAX_VARIABLES: usize = 64;

fn no_controls(what: &str, s: &str, max: usize) -> Check {
    if s.len() > max {
        return Err(format!("{what} longer than {max} bytes"));
    }
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("{what} contains a control character (CR/LF/NUL)"));
    }
    Ok(())
}

pub(crate) fn reject(r: &Reject) -> Check {
    if !(400..=699).contains(&r.code) {
        return Err(format!("reject code {} is not 400..=699", r.code));
    }
    no_controls("reason phrase", &r.reason, 256)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

pub(crate) fn header_name(name: &str) -> Check {
    if !is_token(name) {
        return Err(format!("header name {name:?} is not a SIP token"));
    }
    if MANAGED.iter().any(|m| m.eq_ignore_ascii_case(name)) {
        return Err(format!("header {name} is managed by the host"));
    }
    Ok(())
}

pub(crate) fn header_edits(edits: &[HeaderEdit]) -> Check {
    if edits.len() > 64 {
        return Err("more than 64 header edits".into());
    }
    for e in edits {
        match e {
            HeaderEdit::Add(h) | HeaderEdit::Set(h) => {
                header_name(&h.name)?;
                no_controls("header value", &h.value, 4096)?;
            }
            HeaderEdit::Remove(n) => header_name(n)?,
        }
    }
    Ok(())
}

pub(crate) fn uri(what: &str, u: &str) -> Check {
    no_controls(what, u, 1024)?;
    let lower = u.to_ascii_lowercase();
    if !["sip:", "sips:", "tel:"].iter().any(|s| lower.starts_with(s)) || u.len() < 5 {
        return Err(format!("{what} {u:?} is not a sip:, sips: or tel: URI"));
    }
    if u.contains([' ', '<', '>', '"']) {
        return Err(format!("{what} {u:?} contains a space, quote or angle bracket"));
    }
    Ok(())
}

pub(crate) fn contacts(list: &[String]) -> Check {
    if list.is_empty() || list.len() > 10 {
        return Err(format!("redirect needs 1..=10 contacts, got {}", list.len()));
    }
    list.iter().try_for_each(|c| uri("redirect contact", c))
}

pub(crate) fn targets(list: &[Target]) -> Check {
    if list.len() > MAX_TARGETS {
        return Err(format!("{} targets, at most {MAX_TARGETS}", list.len()));
    }
    for t in list {
        uri("target", &t.uri)?;
        if t.weight == 0 {
            return Err(format!("target {} has weight 0 (1..=65535)", t.uri));
        }
        if let Some(g) = &t.group {
            no_controls("target group", g, 64)?;
        }
    }
    Ok(())
}

fn variables(vars: &[Variable]) -> Check {
    if vars.len() > MAX_VARIABLES {
        return Err(format!("more than {MAX_VARIABLES} variables"));
    }
    for v in vars {
        let ok_name = !v.name.is_empty()
            && v.name.len() <= 64
            && v.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok_name {
            return Err(format!("variable name {:?} is not [A-Za-z0-9_.-]{{1,64}}", v.name));
        }
        no_controls("variable value", &v.value, 1024)?;
    }
    Ok(())
}

pub(crate) fn invite_edits(e: &InviteEdits) -> Check {
    header_edits(&e.headers)?;
    variables(&e.variables)?;
    if let Some(user) = &e.request_uri_user {
        let ok = !user.is_empty()
            && user.len() <= 64
            && user.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,/%".contains(&b));
        if !ok {
            return Err(format!("request-URI user {user:?} is not a valid SIP user part"));
        }
    }
    if let Some(d) = &e.caller_display {
        no_controls("caller display name", d, 128)?;
        if d.contains(['"', '\\']) {
            return Err("caller display name contains a quote or backslash".into());
        }
    }
    Ok(())
}

pub(crate) fn twiml_url(u: &str) -> Check {
    no_controls("TwiML URL", u, 2048)?;
    if !(u.starts_with("http://") || u.starts_with("https://")) || u.contains(' ') {
        return Err(format!("TwiML URL {u:?} is not an http(s) URL"));
    }
    Ok(())
}

pub(crate) fn twiml_document(d: &str) -> Check {
    if d.len() > 64 * 1024 || d.trim().is_empty() {
        return Err("TwiML document is empty or larger than 64 KiB".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Header;

    #[test]
    fn rejects_injection_and_bad_codes() {
        assert!(reject(&Reject { code: 99, reason: String::new() }).is_err());
        assert!(reject(&Reject { code: 302, reason: String::new() }).is_err());
        assert!(reject(&Reject { code: 403, reason: "x\r\nVia: evil".into() }).is_err());
        assert!(reject(&Reject { code: 403, reason: "Forbidden".into() }).is_ok());
        let add = |n: &str, v: &str| HeaderEdit::Add(Header { name: n.into(), value: v.into() });
        assert!(header_edits(&[add("X-Ok", "fine")]).is_ok());
        assert!(header_edits(&[add("X-Bad", "a\r\nb")]).is_err());
        assert!(header_edits(&[add("Bad Name", "a")]).is_err());
        assert!(header_edits(&[add("Via", "SIP/2.0/UDP evil")]).is_err());
        assert!(header_edits(&[HeaderEdit::Remove("CSeq".into())]).is_err());
        assert!(contacts(&[]).is_err());
        assert!(contacts(&["http://x".into()]).is_err());
        assert!(contacts(&["sip:+1415@pbx.example".into()]).is_ok());
    }
}
