//! `RAck` (RFC 3262 §7.2): which reliable provisional response a PRACK
//! acknowledges.

use std::fmt;

use super::CSeq;

/// `RAck: 776656 1 INVITE`: the response's RSeq, then its request's CSeq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RAck {
    /// The RSeq of the response acknowledged.
    pub rseq: u32,
    /// The CSeq number of the request it answered.
    pub cseq: u32,
    /// The method of that request (INVITE).
    pub method: String,
}

impl RAck {
    /// Parse `RSEQ CSEQ METHOD`.
    pub fn parse(value: &str) -> Option<RAck> {
        let value = value.trim();
        let (rseq, cseq) = value.split_once(|c: char| c.is_ascii_whitespace())?;
        let rseq = super::RSeq::parse(rseq)?.0;
        let cseq = CSeq::parse(cseq)?;
        Some(RAck { rseq, cseq: cseq.seq, method: cseq.method })
    }
}

impl fmt::Display for RAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.rseq, self.cseq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::RAck;

    #[test]
    fn parses_and_prints() {
        let r = RAck::parse(" 776656  1 INVITE").unwrap();
        assert_eq!(r, RAck { rseq: 776656, cseq: 1, method: "INVITE".into() });
        assert_eq!(r.to_string(), "776656 1 INVITE");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "1", "1 2", "0 1 INVITE", "x 1 INVITE", "1 x INVITE", "1 2 INVITE extra"] {
            assert!(RAck::parse(bad).is_none(), "{bad}");
        }
    }
}
