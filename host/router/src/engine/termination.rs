//! The termination path's admission: who may send a call to a trunk's
//! termination domain (IP access list and/or digest credentials), and the
//! host's number rules (E.164 destination, caller ID owned or verified).
//! A request refused here never reaches a plugin or a carrier.

use std::time::Instant;

use trunkline_plugin_host::types::Target;
use trunkline_sip_core::digest::{self, DigestResponse, NonceState};
use trunkline_sip_core::message::{Header as SipHeader, Message, StartLine};
use trunkline_sip_core::transaction::TransactionKey;
use trunkline_sip_core::{Peer, E164};

use super::Engine;
use crate::config::{Carrier, Termination};
use crate::routing;
use crate::sipcall::party;

/// How long a nonce we issue stays valid.
pub(crate) const NONCE_TTL_SECS: u64 = 300;

/// The outcome of the digest check.
enum Auth {
    Ok,
    /// 407 with a fresh nonce; `stale` tells the client its password was right.
    Challenge {
        stale: bool,
    },
    /// 403 with the reason.
    Forbidden(&'static str),
}

impl Engine {
    /// Admit a terminating INVITE to trunk `t`, or answer it (403, 407,
    /// 400) and return false.
    pub(super) fn admit_termination(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        from: Peer,
        m: &Message,
        t: usize,
    ) -> bool {
        let settings = self.settings.clone();
        let trunk = &settings.trunks[t];
        let Some(term) = trunk.termination.as_ref() else { return false };
        let call_id = m.header("Call-ID").unwrap_or_default();
        if self.auth_bans.banned(now, from.addr.ip()) {
            // Silence: no oracle for a guesser (see `auth_bans`).
            self.layer.abandon(key);
            return false;
        }
        if !term.acl.is_empty() && !term.acl.iter().any(|c| c.contains(from.addr.ip())) {
            tracing::info!(trunk = %trunk.name, %from, call_id, "termination refused: source address not in the trunk's ACL");
            self.respond(now, key, m, 403, "Forbidden (source address not allowed)");
            return false;
        }
        if !term.credentials.is_empty() {
            match self.check_digest(now, m, term) {
                Auth::Ok => {}
                Auth::Challenge { stale } => {
                    self.challenge(now, key, m, term, stale);
                    return false;
                }
                Auth::Forbidden(why) => {
                    tracing::info!(trunk = %trunk.name, %from, call_id, "termination refused: {why}");
                    self.respond(now, key, m, 403, &format!("Forbidden ({why})"));
                    if self.auth_bans.failed(now, from.addr.ip()) {
                        let rule = settings.limits.auth_bans;
                        tracing::warn!(
                            ip = %from.addr.ip(),
                            "digest brute force: {} failures within {} s: source banned for {} s (limits.auth_*)",
                            rule.failures,
                            rule.window.as_secs(),
                            rule.ban.as_secs()
                        );
                    }
                    return false;
                }
            }
        }
        if let Err(why) = number_rules(m, |n| settings.numbers.trunk_of(n) == Some(t), term) {
            let code = if why.starts_with("caller ID") { 403 } else { 400 };
            let reason = if code == 403 { format!("Forbidden ({why})") } else { format!("Bad Request ({why})") };
            tracing::info!(trunk = %trunk.name, %from, call_id, "termination refused: {why}");
            self.respond(now, key, m, code, &reason);
            return false;
        }
        true
    }

    fn challenge(&mut self, now: Instant, key: &TransactionKey, m: &Message, term: &Termination, stale: bool) {
        let secs = self.clock_secs(now);
        let nonce = self.nonces.mint(&term.domain, secs);
        let mut r = self.tagged_response(m, 407, "Proxy Authentication Required");
        // RFC 7616 §3.7: the preferred algorithm first.
        for &alg in &term.digest_algorithms {
            r.headers.push(SipHeader {
                name: "Proxy-Authenticate".into(),
                value: digest::challenge(&term.domain, &nonce, alg, stale),
            });
        }
        self.layer.send_response(now, key, r);
    }

    /// Seconds on the engine's clock (nonces are minted and checked on it).
    fn clock_secs(&mut self, now: Instant) -> u64 {
        now.saturating_duration_since(*self.started.get_or_insert(now)).as_secs()
    }

    fn check_digest(&mut self, now: Instant, m: &Message, term: &Termination) -> Auth {
        // A request may carry credentials for several realms: take ours.
        let ours = m
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("Proxy-Authorization"))
            .filter_map(|h| DigestResponse::parse(&h.value).ok())
            .find(|d| d.realm.eq_ignore_ascii_case(&term.domain));
        let Some(d) = ours else { return Auth::Challenge { stale: false } };
        let secs = self.clock_secs(now);
        match self.nonces.check(&d.nonce, &term.domain, secs, NONCE_TTL_SECS) {
            NonceState::Fresh => {}
            NonceState::Stale => return Auth::Challenge { stale: true },
            NonceState::Forged => return Auth::Challenge { stale: false },
        }
        let method = m.method().unwrap_or("INVITE");
        let Some(cred) = term.credentials.iter().find(|c| c.username == d.username) else {
            return Auth::Forbidden("unknown user");
        };
        if !d.verify(cred.password.expose(), method) {
            return Auth::Forbidden("wrong credentials");
        }
        // Checked last, so a wrong guess does not burn the count.
        if !self.replays.accept(&d.nonce, d.nc) {
            return Auth::Challenge { stale: true };
        }
        Auth::Ok
    }
}

/// The user part of a header's URI (`From`, `P-Asserted-Identity`...).
fn header_user(m: &Message, name: &str) -> Option<String> {
    m.header(name).and_then(party).and_then(|p| p.user)
}

/// The host's number rules for a terminating call (plugins may add more).
/// `owns` says whether a number is the trunk's own.
fn number_rules(m: &Message, owns: impl Fn(&str) -> bool, term: &Termination) -> Result<(), String> {
    let ruri_user = match &m.start {
        StartLine::Request { uri, .. } => party(uri).and_then(|p| p.user),
        StartLine::Response { .. } => None,
    };
    if ruri_user.as_deref().and_then(E164::parse).is_none() {
        return Err("the Request-URI user is not an E.164 number".into());
    }
    if header_user(m, "To").as_deref().and_then(E164::parse).is_none() {
        return Err("To is not an E.164 number".into());
    }
    // Caller ID: From, else Remote-Party-ID, else P-Asserted-Identity.
    let caller = ["From", "Remote-Party-ID", "P-Asserted-Identity"]
        .iter()
        .filter_map(|h| header_user(m, h))
        .find_map(|u| E164::parse(&u).map(|e| e.to_string()));
    let Some(caller) = caller else {
        return Err("caller ID: no E.164 number in From, Remote-Party-ID or P-Asserted-Identity".into());
    };
    let owned = owns(&caller) || term.caller_ids.contains(&caller);
    if !owned {
        return Err(format!("caller ID {caller} is not a number of this account or a verified caller ID"));
    }
    Ok(())
}

/// The carrier's gateways as targets: each gets its own priority so the
/// reference algorithm tries them in order (a name's addresses in turn).
pub(super) fn carrier_targets(carrier: &Carrier) -> Vec<Target> {
    carrier.gateways.iter().enumerate().map(|(i, uri)| routing::target(uri.clone(), i as u16)).collect()
}
