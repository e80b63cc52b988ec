//! Turning a SIP message into the call and request records plugins see.

use trunkline_plugin_host::types::{
    Call, CallRecord, Direction, Header, HeaderList, MediaFacts, Party, Request, RequestRecord, Response,
    ResponseRecord, Transport,
};
use trunkline_sip_core::{Message, NameAddr, StartLine};

/// Why a message cannot become a call (answered 400 with this reason).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("not a request")]
    NotARequest,
    #[error("missing or unparsable {0} header")]
    Header(&'static str),
    #[error("request-URI {0:?} is not a sip:, sips: or tel: URI")]
    RequestUri(String),
}

/// Party from a URI or name-addr value.
pub fn party(value: &str) -> Option<Party> {
    let a = NameAddr::parse(value)?;
    Some(Party { display: a.display.map(str::to_owned), user: a.user.map(str::to_owned), host: a.host.to_owned() })
}

/// Everything the router knows about the trunk and where the message came from.
pub struct CallOrigin<'a> {
    pub direction: Direction,
    pub account_id: &'a str,
    pub trunk_id: &'a str,
    pub trunk_name: &'a str,
    pub source_address: String,
    pub transport: Transport,
    /// What plugins may know of the call's media.
    pub media: MediaFacts,
}

/// The media facts of a call on `trunk` whose INVITE carries `body`: the
/// caller's audio codecs and whether it offered SRTP (no address, no key).
pub fn media_facts(trunk: &crate::config::Trunk, body: &[u8]) -> MediaFacts {
    let (codecs, srtp) = trunkline_media_core::sdp::Sdp::parse(body).map(|s| s.audio_codecs()).unwrap_or_default();
    MediaFacts {
        anchored: trunk.media == crate::config::MediaMode::Relay,
        secure: srtp || trunk.secure,
        codecs,
        recording: trunk.recording != crate::config::RecordingMode::Off,
    }
}

/// The call and its INVITE as plugins see them.
pub fn call_from_invite(m: &Message, origin: &CallOrigin<'_>) -> Result<(Call, Request), CallError> {
    let StartLine::Request { method, uri } = &m.start else { return Err(CallError::NotARequest) };
    let from = m.header("From").and_then(party).ok_or(CallError::Header("From"))?;
    let to = m.header("To").and_then(party).ok_or(CallError::Header("To"))?;
    // RFC 3261 §25.1: a Call-ID is one or two non-empty words.
    let call_id = m
        .header("Call-ID")
        .filter(|c| !c.is_empty() && !c.contains(char::is_whitespace))
        .ok_or(CallError::Header("Call-ID"))?
        .to_owned();
    let request_uri = party(uri).ok_or_else(|| CallError::RequestUri(uri.clone()))?;
    let headers = plugin_headers(m);
    let record = CallRecord {
        call_id,
        direction: origin.direction,
        account_id: origin.account_id.into(),
        trunk_id: origin.trunk_id.into(),
        trunk_name: origin.trunk_name.into(),
        from,
        to,
        request_uri,
        source_address: origin.source_address.clone(),
        transport: origin.transport,
        variables: Vec::new(),
        media: origin.media.clone(),
    };
    let request =
        RequestRecord { method: method.clone(), uri: uri.clone(), body: String::from_utf8_lossy(&m.body).into_owned() };
    Ok((Call::new(record, headers.clone()), Request::new(request, headers)))
}

/// The headers of `m` as plugins read them.
fn plugin_headers(m: &Message) -> HeaderList {
    m.headers.iter().map(|h| Header { name: h.name.clone(), value: h.value.clone() }).collect()
}

/// A response as plugins see it, with its Contact URIs.
pub fn response_from(m: &Message) -> Option<Response> {
    let StartLine::Response { status, reason } = &m.start else { return None };
    let record = ResponseRecord {
        status: *status,
        reason: reason.clone(),
        contacts: m
            .headers_named("Contact")
            .flat_map(|v| v.split(','))
            .filter_map(|c| NameAddr::parse(c).map(|a| a.uri.to_owned()))
            .collect(),
    };
    Some(Response::new(record, plugin_headers(m)))
}
