//! Applying plugins' edits to the call and its messages, and describing
//! them (and target lists) in a call's hook trace.

use crate::types::{Call, Header, HeaderEdit, InviteEdits, Request, Target, Variable};
use crate::validate;

/// Apply header edits in order, names compared case-insensitively.
pub fn apply_header_edits(headers: &mut Vec<Header>, edits: &[HeaderEdit]) {
    for e in edits {
        match e {
            HeaderEdit::Add(h) => headers.push(h.clone()),
            HeaderEdit::Set(h) => match headers.iter().position(|x| x.name.eq_ignore_ascii_case(&h.name)) {
                Some(first) => {
                    headers[first] = h.clone();
                    let mut idx = 0;
                    headers.retain(|x| {
                        idx += 1;
                        idx - 1 == first || !x.name.eq_ignore_ascii_case(&h.name)
                    });
                }
                None => headers.push(h.clone()),
            },
            HeaderEdit::Remove(n) => headers.retain(|x| !x.name.eq_ignore_ascii_case(n)),
        }
    }
}

/// `uri` with its user part replaced: `sip:old@host;p` -> `sip:NEW@host;p`.
pub fn rewrite_uri_user(uri: &str, user: &str) -> String {
    let Some((scheme, rest)) = uri.split_once(':') else { return uri.to_owned() };
    let end = rest.find(['?']).unwrap_or(rest.len());
    let hostpart = match rest[..end].find('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}:{user}@{hostpart}")
}

/// A From/To value with its display name set: `"Name" <uri>;params`.
fn with_display(value: &str, display: &str) -> String {
    match value.find('<') {
        Some(open) => format!("\"{display}\" {}", &value[open..]),
        None => {
            let (uri, params) =
                value.split_once(';').map(|(u, p)| (u, format!(";{p}"))).unwrap_or((value, String::new()));
            format!("\"{display}\" <{}>{params}", uri.trim())
        }
    }
}

pub(crate) fn apply_invite_edits(call: &mut Call, request: &mut Request, e: InviteEdits) {
    apply_header_edits(&mut call.headers, &e.headers);
    apply_header_edits(&mut request.headers, &e.headers);
    if let Some(user) = e.request_uri_user {
        request.uri = rewrite_uri_user(&request.uri, &user);
        call.request_uri.user = Some(user);
    }
    if let Some(display) = e.caller_display {
        for headers in [&mut call.headers, &mut request.headers] {
            for h in headers.iter_mut().filter(|h| h.name.eq_ignore_ascii_case("from") || h.name == "f") {
                h.value = with_display(&h.value, &display);
            }
        }
        call.from.display = Some(display);
    }
    for v in e.variables {
        if let Some(x) = call.variables.iter_mut().find(|x| x.name == v.name) {
            x.value = v.value;
        } else if call.variables.len() < validate::MAX_VARIABLES {
            call.variables.push(Variable { ..v });
        } else {
            tracing::warn!(call_id = %call.call_id, "call variable {} dropped: call has 64 variables", v.name);
        }
    }
}

pub(crate) fn describe_header_edits(edits: &[HeaderEdit]) -> String {
    edits
        .iter()
        .map(|e| match e {
            HeaderEdit::Add(h) => format!("+{}: {}", h.name, h.value),
            HeaderEdit::Set(h) => format!("={}: {}", h.name, h.value),
            HeaderEdit::Remove(n) => format!("-{n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn describe_invite_edits(e: &InviteEdits) -> String {
    let mut parts = vec![];
    if !e.headers.is_empty() {
        parts.push(describe_header_edits(&e.headers));
    }
    if let Some(u) = &e.request_uri_user {
        parts.push(format!("user={u}"));
    }
    if let Some(d) = &e.caller_display {
        parts.push(format!("display={d:?}"));
    }
    parts.extend(e.variables.iter().map(|v| format!("var {}={}", v.name, v.value)));
    parts.join(", ")
}

pub(crate) fn describe_targets(list: &[Target]) -> String {
    let uris: Vec<String> = list
        .iter()
        .map(|t| match &t.group {
            Some(g) => format!("{} [{g}]", t.uri),
            None => t.uri.clone(),
        })
        .collect();
    format!("[{}]", uris.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: &str, v: &str) -> Header {
        Header { name: n.into(), value: v.into() }
    }

    #[test]
    fn header_edits_keep_order_and_case() {
        let mut hs = vec![h("Diversion", "a"), h("X-A", "1"), h("diversion", "b")];
        apply_header_edits(&mut hs, &[HeaderEdit::Set(h("DIVERSION", "c")), HeaderEdit::Add(h("X-B", "2"))]);
        assert_eq!(hs, vec![h("DIVERSION", "c"), h("X-A", "1"), h("X-B", "2")]);
        apply_header_edits(&mut hs, &[HeaderEdit::Remove("x-a".into())]);
        assert_eq!(hs, vec![h("DIVERSION", "c"), h("X-B", "2")]);
    }

    #[test]
    fn uri_user_and_display_rewrites() {
        assert_eq!(rewrite_uri_user("sip:+1415@h.example;transport=tcp", "+1212"), "sip:+1212@h.example;transport=tcp");
        assert_eq!(rewrite_uri_user("sip:h.example:5080", "+1"), "sip:+1@h.example:5080");
        assert_eq!(with_display("<sip:a@b>;tag=1", "Bob"), "\"Bob\" <sip:a@b>;tag=1");
        assert_eq!(with_display("\"Al\" <sip:a@b>", "Bob"), "\"Bob\" <sip:a@b>");
        assert_eq!(with_display("sip:a@b;tag=9", "Bob"), "\"Bob\" <sip:a@b>;tag=9");
    }
}
