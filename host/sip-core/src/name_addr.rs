//! Reading `name-addr` header values such as `"Alice" <sip:+14155550100@example.com>;reason=unconditional`.

/// The parts of a header value in `name-addr` or `addr-spec` form that
/// policies look at. Parsing is lenient and never panics.
///
/// ```no_run
/// use trunkline_sip_core::NameAddr;
/// let d = NameAddr::parse("<sip:+14155550100@trunkline.test>;reason=unconditional").unwrap();
/// assert_eq!(d.user, Some("+14155550100"));
/// assert_eq!(d.host, "trunkline.test");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name without quotes, if any.
    pub display: Option<&'a str>,
    /// The URI, without angle brackets or header parameters.
    pub uri: &'a str,
    /// User part of the URI, if any.
    pub user: Option<&'a str>,
    /// Host part of the URI (no port, no parameters).
    pub host: &'a str,
}

impl<'a> NameAddr<'a> {
    /// Parse a header value; `None` if it holds no `sip:`/`sips:`/`tel:` URI.
    ///
    /// ```
    /// use trunkline_sip_core::NameAddr;
    /// let a = NameAddr::parse("\"Support\" <sip:+14155550100@example.com>;tag=1").unwrap();
    /// assert_eq!((a.display, a.user), (Some("Support"), Some("+14155550100")));
    /// assert!(NameAddr::parse("not a uri").is_none());
    /// ```
    pub fn parse(value: &'a str) -> Option<NameAddr<'a>> {
        let value = value.trim();
        let (display, uri) = match value.find('<') {
            Some(open) => {
                let close = open + value[open..].find('>')?;
                let display = value[..open].trim().trim_matches('"').trim();
                ((!display.is_empty()).then_some(display), &value[open + 1..close])
            }
            // addr-spec form: header parameters follow the first ';'
            None => (None, value.split(';').next().unwrap_or(value)),
        };
        let (scheme, rest) = uri.split_once(':')?;
        if !["sip", "sips", "tel"].iter().any(|s| scheme.eq_ignore_ascii_case(s)) {
            return None;
        }
        if scheme.eq_ignore_ascii_case("tel") {
            let number = rest.split(';').next().unwrap_or(rest);
            return Some(NameAddr { display, uri, user: Some(number), host: "" });
        }
        let rest = rest.split(['?']).next().unwrap_or(rest);
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.split(';').next().unwrap_or(u)), h),
            None => (None, rest),
        };
        let hostport = hostport.split(';').next().unwrap_or(hostport);
        let host = if let Some(v6) = hostport.strip_prefix('[') {
            v6.split(']').next().unwrap_or(v6)
        } else {
            hostport.split(':').next().unwrap_or(hostport)
        };
        Some(NameAddr { display, uri, user, host })
    }
}

#[cfg(test)]
mod tests {
    use super::NameAddr;

    #[test]
    fn parses_common_forms() {
        let a = NameAddr::parse("\"Bob\" <sip:+1415@a.example:5060;transport=tcp>;tag=1").unwrap();
        assert_eq!((a.display, a.user, a.host), (Some("Bob"), Some("+1415"), "a.example"));
        let b = NameAddr::parse("sip:+1212@b.example;tag=9").unwrap();
        assert_eq!((b.user, b.host), (Some("+1212"), "b.example"));
        let c = NameAddr::parse("<sip:[2001:db8::1]:5060>").unwrap();
        assert_eq!((c.user, c.host), (None, "2001:db8::1"));
        let t = NameAddr::parse("<tel:+14155550100>").unwrap();
        assert_eq!(t.user, Some("+14155550100"));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for v in ["", "<", "<sip:", "http://x", "\"<\"", "<mailto:a@b>", ">sip:a@b<"] {
            let _ = NameAddr::parse(v);
        }
        assert!(NameAddr::parse("<http://x>").is_none());
    }
}
