//! `CSeq` (RFC 3261 §20.16).

use std::fmt;

/// `CSeq: 4711 INVITE`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, less than 2**31.
    pub seq: u32,
    /// Method, case-sensitive.
    pub method: String,
}

impl CSeq {
    /// Parse `NUMBER METHOD`.
    pub fn parse(value: &str) -> Option<CSeq> {
        let mut it = value.split_ascii_whitespace();
        let (n, m) = (it.next()?, it.next()?);
        if it.next().is_some() || n.len() > 10 {
            return None;
        }
        let seq: u32 = n.parse().ok()?;
        let token = m.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
        (seq < (1 << 31) && token).then(|| CSeq { seq, method: m.to_owned() })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::CSeq;

    #[test]
    fn parses_and_prints() {
        let c = CSeq::parse(" 4711   INVITE ").unwrap();
        assert_eq!(c, CSeq { seq: 4711, method: "INVITE".into() });
        assert_eq!(c.to_string(), "4711 INVITE");
    }

    #[test]
    fn rejects_out_of_range_and_garbage() {
        for bad in ["", "INVITE", "1", "-1 INVITE", "2147483648 INVITE", "1 INVITE extra", "99999999999 INVITE"] {
            assert!(CSeq::parse(bad).is_none(), "{bad}");
        }
    }
}
