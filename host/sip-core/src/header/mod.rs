//! Typed headers, one per file, each with its parse/print tests.

mod cseq;
mod rack;
mod rseq;
mod via;

pub use cseq::CSeq;
pub use rack::RAck;
pub use rseq::RSeq;
pub use via::{Via, MAGIC_COOKIE};

use crate::message::Message;

/// The value of parameter `name` in `;a=b;c` parameter lists (case-insensitive
/// name). A flag parameter without `=` yields `Some("")`.
pub fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The elements of a comma-separated header value (RFC 3261 §7.3.1), trimmed
/// and non-empty. Commas inside `<...>` or a quoted string do not separate.
///
/// ```
/// use trunkline_sip_core::header::list;
/// let v: Vec<&str> = list("<sip:a;x=1,2>;lr, \"B, b\" <sip:b>").collect();
/// assert_eq!(v, ["<sip:a;x=1,2>;lr", "\"B, b\" <sip:b>"]);
/// ```
pub fn list(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (mut quoted, mut angle, mut escaped) = (false, false, false);
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '<' if !quoted => angle = true,
                '>' if !quoted => angle = false,
                ',' if !quoted && !angle => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let item = rest[..end].trim();
        rest = rest.get(end + 1..).unwrap_or("");
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// Whether option tag `tag` (e.g. `100rel`) is listed in any `name` header
/// (`Supported`, `Require`...) of `m`. Tags compare case-insensitively.
pub fn has_option_tag(m: &Message, name: &str, tag: &str) -> bool {
    m.headers_named(name).flat_map(list).any(|t| t.eq_ignore_ascii_case(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_outside_brackets_and_quotes() {
        assert_eq!(list(" a , ,b,").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(list("<sip:p1;lr>,<sip:p2;lr>").collect::<Vec<_>>(), ["<sip:p1;lr>", "<sip:p2;lr>"]);
        assert_eq!(list("\"a\\\",b\" <sip:x>, c").collect::<Vec<_>>(), ["\"a\\\",b\" <sip:x>", "c"]);
        assert_eq!(list("").count(), 0);
        // Unbalanced input never panics; it ends the element at the end.
        assert_eq!(list("<sip:a, b").collect::<Vec<_>>(), ["<sip:a, b"]);
    }

    #[test]
    fn option_tags_are_found_in_any_header_of_the_name() {
        let m = Message::parse(
            b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSupported: timer\r\nk: replaces, 100REL\r\n\r\n",
        )
        .unwrap();
        assert!(has_option_tag(&m, "Supported", "100rel"));
        assert!(has_option_tag(&m, "Supported", "timer"));
        assert!(!has_option_tag(&m, "Require", "100rel"));
    }
}
