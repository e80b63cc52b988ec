//! `RSeq` (RFC 3262 §7.1): the number of a reliable provisional response.

/// `RSeq: 988789`, from 1 to 2**32-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RSeq(pub u32);

impl RSeq {
    /// Parse the header value.
    pub fn parse(value: &str) -> Option<RSeq> {
        let v = value.trim();
        if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse::<u32>().ok().filter(|n| *n > 0).map(RSeq)
    }
}

#[cfg(test)]
mod tests {
    use super::RSeq;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(RSeq::parse(" 988789 "), Some(RSeq(988789)));
        for bad in ["", "0", "-1", "4294967296", "1 2", "x"] {
            assert_eq!(RSeq::parse(bad), None, "{bad}");
        }
    }
}
