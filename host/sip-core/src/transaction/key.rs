//! Matching messages to transactions (RFC 3261 §17.1.3 and §17.2.3).

use crate::header::Via;
use crate::message::{Message, StartLine};

/// Identifies a transaction: the top Via branch, the sent-by (server side)
/// and the method, with ACK matching its INVITE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    /// Top Via branch.
    pub branch: String,
    /// Top Via sent-by, `host:port`.
    pub sent_by: String,
    /// Method, with ACK counted as INVITE.
    pub method: String,
}

impl TransactionKey {
    /// The key of a message, if its top Via has an RFC 3261 branch (older
    /// peers without one are matched by the dialog layer, not here).
    pub fn of(m: &Message) -> Option<TransactionKey> {
        Self::with_via(m, &Via::parse(m.header("Via")?.split(',').next()?)?)
    }

    /// The key of `m`, whose top Via (already parsed) is `via`.
    pub fn with_via(m: &Message, via: &Via) -> Option<TransactionKey> {
        if !via.has_rfc3261_branch() {
            return None;
        }
        let method = match &m.start {
            StartLine::Request { method, .. } => method.clone(),
            // A response matches by its CSeq method.
            StartLine::Response { .. } => crate::header::CSeq::parse(m.header("CSeq")?)?.method,
        };
        let method = if method == "ACK" { "INVITE".to_owned() } else { method };
        Some(TransactionKey { branch: via.branch()?.to_owned(), sent_by: via.sent_by(), method })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{request, response};

    #[test]
    fn ack_matches_invite_and_responses_match_requests() {
        let inv = request("INVITE");
        let mut ack = request("ACK");
        ack.headers.retain(|h| h.name != "CSeq");
        ack.headers.push(crate::message::Header { name: "CSeq".into(), value: "1 ACK".into() });
        assert_eq!(TransactionKey::of(&inv), TransactionKey::of(&ack));
        assert_eq!(TransactionKey::of(&response(&inv, 180)), TransactionKey::of(&inv));
        assert_ne!(TransactionKey::of(&request("CANCEL")), TransactionKey::of(&inv));
    }
}
