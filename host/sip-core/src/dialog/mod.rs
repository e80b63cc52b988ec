//! Dialogs (RFC 3261 §12): the state two user agents share after a 2xx (or
//! a provisional with a To tag), and the requests sent within one.
//!
//! A B2BUA holds two dialogs per call: one with the caller (where we are
//! the UAS) and one with the callee (where we are the UAC). Route sets and
//! where a request inside a dialog goes are in [`route`].

pub mod route;

use crate::header::{param, CSeq, MAGIC_COOKIE};
use crate::message::{Header, Message, StartLine};
use crate::NameAddr;

/// Identifies a dialog: Call-ID and both tags, local first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// Why a dialog could not be created from a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is missing or unparsable.
    #[error("missing or invalid {0}")]
    Header(&'static str),
}

/// One side's view of a dialog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID and tags.
    pub id: DialogId,
    /// Our URI (From of our requests) with our tag.
    pub local_party: String,
    /// The peer's URI (To of our requests) with its tag.
    pub remote_party: String,
    /// The peer's Contact URI: the Request-URI of our requests (with a
    /// loose-routing route set) and where they go without a route set.
    /// Target refreshes (re-INVITE, UPDATE) change it.
    pub remote_target: String,
    /// Record-Route URIs in the order our requests must carry them as
    /// Route (RFC 3261 §12.1): fixed when the dialog is created (and, for
    /// an early dialog, when a 2xx confirms it); never changed by a target
    /// refresh.
    pub route_set: Vec<String>,
    /// Last CSeq number we used.
    pub local_seq: u32,
    /// Last CSeq number the peer used (requests with a lower one are rejected).
    pub remote_seq: Option<u32>,
}

fn tag_of(value: &str) -> Option<String> {
    // Parameters after the URI: after '>' for name-addr, after the first ';' otherwise.
    let params = match value.find('>') {
        Some(i) => &value[i + 1..],
        None => value.split_once(';').map(|(_, p)| p).unwrap_or(""),
    };
    param(params, "tag").filter(|t| !t.is_empty()).map(str::to_owned)
}

fn contact_uri(m: &Message) -> Option<String> {
    let c = m.header("Contact")?;
    NameAddr::parse(crate::header::list(c).next()?).map(|a| a.uri.to_owned())
}

fn header<'a>(m: &'a Message, name: &'static str) -> Result<&'a str, DialogError> {
    m.header(name).ok_or(DialogError::Header(name))
}

impl Dialog {
    /// The dialog we (the UAC) share with the peer after `response` (a 2xx,
    /// or a 1xx with a To tag: an early dialog) to our `request`. The route
    /// set is the response's Record-Route, reversed (RFC 3261 §12.1.2).
    pub fn as_uac(request: &Message, response: &Message) -> Result<Dialog, DialogError> {
        let to = header(response, "To")?;
        let from = header(request, "From")?;
        let id = DialogId {
            call_id: header(request, "Call-ID")?.to_owned(),
            local_tag: tag_of(from).ok_or(DialogError::Header("From tag"))?,
            remote_tag: tag_of(to).ok_or(DialogError::Header("To tag"))?,
        };
        let seq = CSeq::parse(header(request, "CSeq")?).ok_or(DialogError::Header("CSeq"))?.seq;
        let mut route_set = route::record_route(response);
        route_set.reverse();
        Ok(Dialog {
            id,
            local_party: from.to_owned(),
            remote_party: to.to_owned(),
            remote_target: contact_uri(response).ok_or(DialogError::Header("Contact"))?,
            route_set,
            local_seq: seq,
            remote_seq: None,
        })
    }

    /// The dialog we (the UAS) share with the peer after we answer
    /// `request` with a To tag `local_tag`. The route set is the request's
    /// Record-Route, in order (RFC 3261 §12.1.1); the responses that create
    /// the dialog must carry those Record-Route values back.
    pub fn as_uas(request: &Message, local_tag: &str) -> Result<Dialog, DialogError> {
        let from = header(request, "From")?;
        let to = header(request, "To")?;
        let id = DialogId {
            call_id: header(request, "Call-ID")?.to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: tag_of(from).ok_or(DialogError::Header("From tag"))?,
        };
        let seq = CSeq::parse(header(request, "CSeq")?).ok_or(DialogError::Header("CSeq"))?.seq;
        Ok(Dialog {
            id,
            local_party: format!("{};tag={local_tag}", to.trim()),
            remote_party: from.to_owned(),
            remote_target: contact_uri(request).ok_or(DialogError::Header("Contact"))?,
            route_set: route::record_route(request),
            local_seq: 0,
            remote_seq: Some(seq),
        })
    }

    /// An early dialog (ours as UAC) confirmed by `ok`, a 2xx with the same
    /// tags: the route set and remote target are taken again from the 2xx
    /// (RFC 3261 §13.2.2.4); our CSeq goes on from the early dialog's
    /// requests (PRACK).
    pub fn confirm(&mut self, ok: &Message) {
        let mut route_set = route::record_route(ok);
        route_set.reverse();
        self.route_set = route_set;
        if let Some(target) = contact_uri(ok) {
            self.remote_target = target;
        }
        if let Some(to) = ok.header("To") {
            self.remote_party = to.to_owned();
        }
    }

    /// The URI a request in this dialog is sent to (RFC 3261 §12.2.1.1,
    /// §8.1.2): the first route if there is a route set (a loose router
    /// receives it with the remote target as Request-URI, a strict router
    /// as the Request-URI itself), else the remote target.
    pub fn next_hop(&self) -> &str {
        self.route_set.first().unwrap_or(&self.remote_target)
    }

    /// Check an incoming in-dialog request's CSeq (RFC 3261 §12.2.2): false
    /// means it is out of order (answer 500).
    pub fn accept_remote_seq(&mut self, request: &Message) -> bool {
        let Some(seq) = request.header("CSeq").and_then(CSeq::parse).map(|c| c.seq) else { return false };
        if request.method() == Some("ACK") || request.method() == Some("CANCEL") {
            return true;
        }
        match self.remote_seq {
            Some(last) if seq <= last => false,
            _ => {
                self.remote_seq = Some(seq);
                true
            }
        }
    }

    /// A new request within the dialog (BYE, re-INVITE, INFO...) with a
    /// fresh branch and the next CSeq (ACK and CANCEL reuse theirs: use
    /// [`Dialog::ack`]). `via` is our Via value without the branch.
    pub fn request(&mut self, method: &str, via: &str, branch: &str) -> Message {
        self.local_seq += 1;
        self.build(method, via, branch, self.local_seq)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (a new
    /// transaction: fresh branch, same CSeq number).
    pub fn ack(&self, invite_seq: u32, via: &str, branch: &str) -> Message {
        self.build("ACK", via, branch, invite_seq)
    }

    fn build(&self, method: &str, via: &str, branch: &str, seq: u32) -> Message {
        let (uri, routes) = route::request_target(&self.route_set, &self.remote_target);
        let h = |n: &str, v: String| Header { name: n.into(), value: v };
        let mut headers = vec![
            h("Via", format!("{via};branch={MAGIC_COOKIE}{branch}")),
            h("Max-Forwards", "70".into()),
            h("From", self.local_party.clone()),
            h("To", self.remote_party.clone()),
            h("Call-ID", self.id.call_id.clone()),
            h("CSeq", format!("{seq} {method}")),
        ];
        headers.extend(routes.into_iter().map(|r| h("Route", format!("<{r}>"))));
        Message { start: StartLine::Request { method: method.into(), uri }, headers, body: vec![] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Message {
        Message::parse(text.replace('\n', "\r\n").as_bytes()).unwrap()
    }

    const INVITE: &str = "INVITE sip:+14155550100@pbx.example SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa
From: <sip:+12125550123@trunkline.test>;tag=ours
To: <sip:+14155550100@pbx.example>
Call-ID: d1@127.0.0.1
CSeq: 7 INVITE
Contact: <sip:trunkline@127.0.0.1:5060>
Record-Route: <sip:edge.example;lr>
Content-Length: 0

";

    const OK: &str = "SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa
From: <sip:+12125550123@trunkline.test>;tag=ours
To: <sip:+14155550100@pbx.example>;tag=theirs
Call-ID: d1@127.0.0.1
CSeq: 7 INVITE
Contact: <sip:pbx@10.0.0.5:5080;transport=udp>
Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>
Content-Length: 0

";

    #[test]
    fn uac_dialog_builds_bye_and_ack() {
        let mut d = Dialog::as_uac(&msg(INVITE), &msg(OK)).unwrap();
        assert_eq!(
            d.id,
            DialogId { call_id: "d1@127.0.0.1".into(), local_tag: "ours".into(), remote_tag: "theirs".into() }
        );
        assert_eq!(d.route_set, ["sip:p1.example;lr", "sip:p2.example;lr"]);
        let ack = d.ack(7, "SIP/2.0/UDP 127.0.0.1:5060", "ack1");
        assert_eq!(ack.header("CSeq"), Some("7 ACK"));
        let bye = d.request("BYE", "SIP/2.0/UDP 127.0.0.1:5060", "bye1");
        assert_eq!(
            bye.start,
            StartLine::Request { method: "BYE".into(), uri: "sip:pbx@10.0.0.5:5080;transport=udp".into() }
        );
        assert_eq!(bye.header("CSeq"), Some("8 BYE"));
        assert_eq!(bye.header("To"), Some("<sip:+14155550100@pbx.example>;tag=theirs"));
        assert_eq!(bye.headers_named("Route").collect::<Vec<_>>(), ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]);
        assert_eq!(bye.header("Via"), Some("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbye1"));
    }

    #[test]
    fn uas_dialog_tracks_the_remote_cseq() {
        let mut d = Dialog::as_uas(&msg(INVITE), "uas-tag").unwrap();
        assert_eq!(d.id.remote_tag, "ours");
        assert_eq!(d.local_party, "<sip:+14155550100@pbx.example>;tag=uas-tag");
        let bye = |seq: u32| msg(&INVITE.replace("INVITE sip", "BYE sip").replace("7 INVITE", &format!("{seq} BYE")));
        assert!(d.accept_remote_seq(&bye(8)));
        assert!(!d.accept_remote_seq(&bye(8)), "a repeated CSeq is out of order");
        assert!(!d.accept_remote_seq(&bye(3)));
    }

    #[test]
    fn strict_route_puts_the_first_route_in_the_request_uri() {
        let ok =
            OK.replace("Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>", "Record-Route: <sip:strict.example>");
        let mut d = Dialog::as_uac(&msg(INVITE), &msg(&ok)).unwrap();
        let bye = d.request("BYE", "SIP/2.0/UDP 127.0.0.1:5060", "b");
        assert_eq!(bye.start, StartLine::Request { method: "BYE".into(), uri: "sip:strict.example".into() });
        assert_eq!(bye.header("Route"), Some("<sip:pbx@10.0.0.5:5080;transport=udp>"));
    }

    #[test]
    fn requests_go_to_the_first_route_and_a_target_refresh_keeps_the_route_set() {
        let mut d = Dialog::as_uac(&msg(INVITE), &msg(OK)).unwrap();
        assert_eq!(d.next_hop(), "sip:p1.example;lr");
        d.remote_target = "sip:pbx@10.0.0.9:5090".into();
        assert_eq!(d.next_hop(), "sip:p1.example;lr", "a target refresh changes only the remote target");
        let bye = d.request("BYE", "SIP/2.0/UDP 127.0.0.1:5060", "b");
        assert_eq!(bye.start, StartLine::Request { method: "BYE".into(), uri: "sip:pbx@10.0.0.9:5090".into() });
        let uas = Dialog::as_uas(&msg(INVITE), "t").unwrap();
        assert_eq!(uas.route_set, ["sip:edge.example;lr"]);
        assert_eq!(uas.next_hop(), "sip:edge.example;lr");
        let no_route = Dialog::as_uas(&msg(&INVITE.replace("Record-Route: <sip:edge.example;lr>\n", "")), "t").unwrap();
        assert_eq!(no_route.next_hop(), "sip:trunkline@127.0.0.1:5060");
    }

    #[test]
    fn a_2xx_confirms_an_early_dialog_with_its_own_route_set_and_the_cseq_goes_on() {
        let early_resp = OK.replace("SIP/2.0 200 OK", "SIP/2.0 183 Session Progress");
        let mut d = Dialog::as_uac(&msg(INVITE), &msg(&early_resp)).unwrap();
        let prack = d.request("PRACK", "SIP/2.0/UDP 127.0.0.1:5060", "p");
        assert_eq!(prack.header("CSeq"), Some("8 PRACK"));
        let ok = OK
            .replace("Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>", "Record-Route: <sip:p9.example;lr>")
            .replace("pbx@10.0.0.5:5080", "pbx@10.0.0.6:5080");
        d.confirm(&msg(&ok));
        assert_eq!(d.route_set, ["sip:p9.example;lr"]);
        assert_eq!(d.remote_target, "sip:pbx@10.0.0.6:5080;transport=udp");
        assert_eq!(d.request("BYE", "SIP/2.0/UDP 127.0.0.1:5060", "b").header("CSeq"), Some("9 BYE"));
    }

    #[test]
    fn missing_pieces_are_named() {
        let no_tag = OK.replace(";tag=theirs", "");
        assert_eq!(Dialog::as_uac(&msg(INVITE), &msg(&no_tag)), Err(DialogError::Header("To tag")));
        let no_contact = OK.replace("Contact: <sip:pbx@10.0.0.5:5080;transport=udp>\n", "");
        assert_eq!(Dialog::as_uac(&msg(INVITE), &msg(&no_contact)), Err(DialogError::Header("Contact")));
    }
}
