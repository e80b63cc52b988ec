//! Native test harness: run a plugin's hooks in a plain `cargo test`, with
//! the host capabilities backed by an in-memory fake you control.
//!
//! ```no_run
//! use trunkline_sdk::testing::{CallBuilder, Harness};
//! use trunkline_sdk::{InviteDecision, Policy};
//!
//! #[derive(Default)]
//! struct P;
//! impl Policy for P {}
//!
//! let h = Harness::new();
//! h.set_time("2026-11-23T14:00:00Z");
//! h.own_number("+14155550100");
//! h.set_config(r#"zone = "America/New_York""#);
//! let call = CallBuilder::termination().from("+14155550100").to("+12125550123").build();
//! let d = P.on_invite(&call, &CallBuilder::request_for(&call));
//! assert!(matches!(d, InviteDecision::Continue));
//! ```
//!
//! Each [`Harness`] owns the fake state of the current thread (tests run on
//! their own threads, so they do not see each other's state). Capabilities
//! called with no harness installed panic with a message saying so.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};

use crate::clock::LocalTime;
use crate::config::Value;
use crate::log::Level;
use crate::{kv, Call, CallData, Direction, Header, Headers, Party, Request, Transport, Variable};

thread_local! {
    static STATE: RefCell<Option<FakeHost>> = const { RefCell::new(None) };
}

/// Run `f` on the installed fake host.
pub(crate) fn with<R>(f: impl FnOnce(&mut FakeHost) -> R) -> R {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let host = s.as_mut().expect(
            "a trunkline-sdk capability was called outside a test harness: \
             create a trunkline_sdk::testing::Harness first",
        );
        f(host)
    })
}

/// The fake host capabilities of one test.
#[doc(hidden)]
#[derive(Default)]
pub struct FakeHost {
    now_ms: u64,
    config: Option<toml::Table>,
    kv: HashMap<String, (String, Option<u64>)>,
    kv_capacity: Option<usize>,
    kv_unavailable: bool,
    owned: HashSet<String>,
    verified: HashSet<String>,
    labels: HashMap<String, String>,
    logs: Vec<(Level, String)>,
    counters: HashMap<String, u64>,
    histograms: HashMap<String, Vec<f64>>,
}

impl FakeHost {
    pub(crate) fn now_unix_ms(&self) -> u64 {
        self.now_ms
    }

    pub(crate) fn local_time(&self, zone: &str) -> Result<LocalTime, String> {
        let tz: chrono_tz::Tz = zone.parse().map_err(|_| format!("unknown time zone `{zone}`"))?;
        let utc = DateTime::<Utc>::from_timestamp_millis(self.now_ms as i64)
            .ok_or_else(|| "clock out of range".to_string())?;
        let t = tz.from_utc_datetime(&utc.naive_utc());
        Ok(LocalTime {
            year: t.year(),
            month: t.month() as u8,
            day: t.day() as u8,
            hour: t.hour() as u8,
            minute: t.minute() as u8,
            second: t.second() as u8,
            weekday: t.weekday().num_days_from_monday() as u8,
            utc_offset_seconds: t.offset().fix().local_minus_utc(),
        })
    }

    pub(crate) fn config_get(&self, path: &str) -> Option<Value> {
        let mut cur = toml::Value::Table(self.config.clone()?);
        for part in path.split('.').filter(|p| !p.is_empty()) {
            cur = match &cur {
                toml::Value::Table(t) => t.get(part)?.clone(),
                toml::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?.clone(),
                _ => return None,
            };
        }
        Some(match cur {
            toml::Value::String(s) => Value::Text(s),
            toml::Value::Integer(i) => Value::Integer(i),
            toml::Value::Float(f) => Value::Float(f),
            toml::Value::Boolean(b) => Value::Boolean(b),
            toml::Value::Datetime(d) => Value::Text(d.to_string()),
            toml::Value::Array(a) => Value::Array(a.len() as u32),
            toml::Value::Table(t) => Value::Table(t.keys().cloned().collect()),
        })
    }

    fn live(&self, key: &str) -> Option<&String> {
        match self.kv.get(key) {
            Some((v, exp)) if exp.is_none_or(|e| e > self.now_ms) => Some(v),
            _ => None,
        }
    }

    fn reachable(&self) -> Result<(), kv::Error> {
        if self.kv_unavailable {
            return Err(kv::Error::Unavailable);
        }
        Ok(())
    }

    pub(crate) fn kv_get(&self, key: &str) -> Result<Option<String>, kv::Error> {
        if key.len() > 256 {
            return Err(kv::Error::TooLarge);
        }
        self.reachable()?;
        Ok(self.live(key).cloned())
    }

    pub(crate) fn kv_get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, kv::Error> {
        if keys.len() > 64 {
            return Err(kv::Error::TooLarge);
        }
        keys.iter().map(|k| self.kv_get(k)).collect()
    }

    fn check_room(&self, key: &str, value_len: usize) -> Result<(), kv::Error> {
        if key.len() > 256 || value_len > 4096 {
            return Err(kv::Error::TooLarge);
        }
        self.reachable()?;
        match self.kv_capacity {
            Some(cap) if self.live(key).is_none() && self.kv.len() >= cap => Err(kv::Error::QuotaExceeded),
            _ => Ok(()),
        }
    }

    pub(crate) fn kv_set(&mut self, key: &str, value: &str, ttl: Option<u32>) -> Result<(), kv::Error> {
        self.check_room(key, value.len())?;
        let exp = ttl.map(|t| self.now_ms + u64::from(t) * 1000);
        self.kv.insert(key.to_owned(), (value.to_owned(), exp));
        Ok(())
    }

    pub(crate) fn kv_incr(&mut self, key: &str, delta: i64, ttl: Option<u32>) -> Result<i64, kv::Error> {
        self.check_room(key, 20)?;
        let (current, exp) = match self.live(key) {
            Some(v) => (v.parse::<i64>().map_err(|_| kv::Error::NotANumber)?, self.kv[key].1),
            None => (0, ttl.map(|t| self.now_ms + u64::from(t) * 1000)),
        };
        let next = current.saturating_add(delta);
        self.kv.insert(key.to_owned(), (next.to_string(), exp));
        Ok(next)
    }

    pub(crate) fn is_owned(&self, n: &str) -> bool {
        self.owned.contains(n)
    }

    pub(crate) fn is_verified(&self, n: &str) -> bool {
        self.owned.contains(n) || self.verified.contains(n)
    }

    pub(crate) fn label(&self, n: &str) -> Option<String> {
        self.labels.get(n).cloned()
    }

    pub(crate) fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_owned()));
    }

    pub(crate) fn counter(&mut self, name: &str, delta: u64) {
        *self.counters.entry(name.to_owned()).or_default() += delta;
    }

    pub(crate) fn histogram(&mut self, name: &str, value: f64) {
        self.histograms.entry(name.to_owned()).or_default().push(value);
    }
}

/// Installs a fresh fake host on this thread; removes it when dropped.
///
/// ```no_run
/// let h = trunkline_sdk::testing::Harness::new();
/// h.own_number("+14155550100");
/// assert!(trunkline_sdk::numbers::is_owned("+14155550100"));
/// ```
pub struct Harness {
    _not_send: PhantomData<*const ()>,
}

impl Harness {
    /// A fake host with the clock at 2026-01-01T00:00:00Z, empty config and store.
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// assert_eq!(trunkline_sdk::clock::now_unix_ms(), 1_767_225_600_000);
    /// ```
    pub fn new() -> Self {
        let host = FakeHost { now_ms: 1_767_225_600_000, ..FakeHost::default() };
        STATE.with(|s| *s.borrow_mut() = Some(host));
        Harness { _not_send: PhantomData }
    }

    /// Set the clock to an RFC 3339 instant, e.g. `2026-11-23T14:00:00Z`.
    /// Panics on a malformed instant (it is a test bug).
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// h.set_time("2026-11-23T14:00:00Z");
    /// assert_eq!(trunkline_sdk::clock::now_unix_ms(), 1_795_442_400_000);
    /// ```
    pub fn set_time(&self, rfc3339: &str) {
        let t = DateTime::parse_from_rfc3339(rfc3339).expect("set_time takes RFC 3339, e.g. 2026-11-23T14:00:00Z");
        with(|s| s.now_ms = t.timestamp_millis() as u64);
    }

    /// Move the clock forward (TTLs expire accordingly).
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// let t0 = trunkline_sdk::clock::now_unix_ms();
    /// h.advance(std::time::Duration::from_secs(60));
    /// assert_eq!(trunkline_sdk::clock::now_unix_ms(), t0 + 60_000);
    /// ```
    pub fn advance(&self, by: std::time::Duration) {
        with(|s| s.now_ms += by.as_millis() as u64);
    }

    /// The plugin's config table, as TOML. Panics on invalid TOML (a test bug).
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// h.set_config("zone = \"Europe/Paris\"");
    /// assert_eq!(trunkline_sdk::config::text("zone").as_deref(), Some("Europe/Paris"));
    /// ```
    pub fn set_config(&self, toml_text: &str) {
        let table: toml::Table = toml_text.parse().expect("set_config takes a TOML table");
        with(|s| s.config = Some(table));
    }

    /// Make `number` one of the account's numbers.
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// h.own_number("+14155550100");
    /// assert!(trunkline_sdk::numbers::is_owned("+14155550100"));
    /// ```
    pub fn own_number(&self, number: &str) {
        with(|s| s.owned.insert(number.to_owned()));
    }

    /// Make `number` a verified caller ID of the account.
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// h.verify_caller_id("+14155550123");
    /// assert!(trunkline_sdk::numbers::is_verified_caller_id("+14155550123"));
    /// ```
    pub fn verify_caller_id(&self, number: &str) {
        with(|s| s.verified.insert(number.to_owned()));
    }

    /// Give one of the account's numbers a label.
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// h.label_number("+14155550100", "Support");
    /// assert_eq!(trunkline_sdk::numbers::label("+14155550100").as_deref(), Some("Support"));
    /// ```
    pub fn label_number(&self, number: &str, label: &str) {
        with(|s| s.labels.insert(number.to_owned(), label.to_owned()));
    }

    /// Limit the store to `keys` live keys (quota errors beyond).
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// h.set_kv_capacity(1);
    /// assert!(trunkline_sdk::kv::set("a", "1", None).is_ok());
    /// assert!(trunkline_sdk::kv::set("b", "1", None).is_err());
    /// ```
    pub fn set_kv_capacity(&self, keys: usize) {
        with(|s| s.kv_capacity = Some(keys));
    }

    /// Make the store answer every call with `Unavailable` (as a shared
    /// store that is down does), or answer again.
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// h.set_kv_unavailable(true);
    /// assert_eq!(trunkline_sdk::kv::incr("calls", 1, None), Err(trunkline_sdk::kv::Error::Unavailable));
    /// h.set_kv_unavailable(false);
    /// assert_eq!(trunkline_sdk::kv::incr("calls", 1, None), Ok(1));
    /// ```
    pub fn set_kv_unavailable(&self, down: bool) {
        with(|s| s.kv_unavailable = down);
    }

    /// What the store holds at `key` now.
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// trunkline_sdk::kv::incr("calls", 1, None).unwrap();
    /// assert_eq!(h.kv("calls").as_deref(), Some("1"));
    /// ```
    pub fn kv(&self, key: &str) -> Option<String> {
        with(|s| s.live(key).cloned())
    }

    /// Everything the plugin logged so far.
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// trunkline_sdk::log::info("hello");
    /// assert_eq!(h.logs().len(), 1);
    /// ```
    pub fn logs(&self) -> Vec<(Level, String)> {
        with(|s| s.logs.clone())
    }

    /// The value of counter `name` (0 if never incremented).
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// trunkline_sdk::metrics::counter("rejected", 1);
    /// assert_eq!(h.counter("rejected"), 1);
    /// ```
    pub fn counter(&self, name: &str) -> u64 {
        with(|s| s.counters.get(name).copied().unwrap_or(0))
    }

    /// Observations of histogram `name`.
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// trunkline_sdk::metrics::histogram("digits", 11.0);
    /// assert_eq!(h.histogram("digits"), [11.0]);
    /// ```
    pub fn histogram(&self, name: &str) -> Vec<f64> {
        with(|s| s.histograms.get(name).cloned().unwrap_or_default())
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        STATE.with(|s| *s.borrow_mut() = None);
    }
}

/// Builds a [`Call`] the way the router would, for tests.
///
/// ```no_run
/// use trunkline_sdk::testing::CallBuilder;
/// let call = CallBuilder::origination()
///     .from("+14155550123")
///     .to("+14155550100")
///     .header("Diversion", "<sip:+14155550100@trunkline.test>")
///     .build();
/// ```
#[derive(Clone)]
pub struct CallBuilder {
    call: CallData,
    headers: Headers,
}

fn party(user: &str, host: &str) -> Party {
    Party { display: None, user: Some(user.to_owned()), host: host.to_owned() }
}

impl CallBuilder {
    fn new(direction: Direction, domain: &str) -> Self {
        CallBuilder {
            headers: Headers::new(),
            call: CallData {
                call_id: "test-call-1@127.0.0.1".into(),
                direction,
                account_id: "AC00000000000000000000000000000001".into(),
                trunk_id: "TK00000000000000000000000000000001".into(),
                trunk_name: "acme-prod".into(),
                from: party("+14155550123", "carrier.example"),
                to: party("+14155550100", domain),
                request_uri: party("+14155550100", domain),
                source_address: "127.0.0.1:5070".into(),
                transport: Transport::Udp,
                variables: Vec::new(),
                media: crate::MediaFacts {
                    anchored: true,
                    secure: false,
                    codecs: vec!["PCMU/8000".into(), "PCMA/8000".into(), "telephone-event/8000".into()],
                    recording: false,
                },
            },
        }
    }

    /// A call from the carrier to one of the trunk's numbers.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().build();
    /// assert_eq!(call.direction(), trunkline_sdk::Direction::Origination);
    /// ```
    pub fn origination() -> Self {
        Self::new(Direction::Origination, "trunkline.test")
    }

    /// A call from the customer's PBX towards the PSTN.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::termination().build();
    /// assert_eq!(call.direction(), trunkline_sdk::Direction::Termination);
    /// ```
    pub fn termination() -> Self {
        Self::new(Direction::Termination, "acme-prod.trunkline.test")
    }

    /// The caller's number (From user part).
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::termination().from("+18005550100").build();
    /// assert!(call.from().number().unwrap().is_toll_free());
    /// ```
    pub fn from(mut self, user: &str) -> Self {
        self.call.from = party(user, &self.call.from.host);
        self
    }

    /// The called number (To and request-URI user part).
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::termination().to("+12125550100").build();
    /// assert_eq!(call.request_uri().user.as_deref(), Some("+12125550100"));
    /// ```
    pub fn to(mut self, user: &str) -> Self {
        self.call.to = party(user, &self.call.to.host);
        self.call.request_uri = party(user, &self.call.request_uri.host);
        self
    }

    /// Add an inbound header.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().header("X-Tier", "gold").build();
    /// assert_eq!(call.header("x-tier").as_deref(), Some("gold"));
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Set a call variable.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().variable("tier", "gold").build();
    /// assert_eq!(call.variable("tier"), Some("gold"));
    /// ```
    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.call.variables.push(Variable { name: name.into(), value: value.into() });
        self
    }

    /// The call.
    ///
    /// ```
    /// let call = trunkline_sdk::testing::CallBuilder::origination().build();
    /// ```
    pub fn build(self) -> Call {
        Call::from_data(self.call, self.headers)
    }

    /// The call's parts without its headers, to change before
    /// [`Call::from_data`].
    ///
    /// ```no_run
    /// use trunkline_sdk::testing::CallBuilder;
    /// let mut data = CallBuilder::origination().build_data();
    /// data.trunk_name = "acme-staging".into();
    /// ```
    pub fn build_data(self) -> CallData {
        self.call
    }

    /// The INVITE of `call`, as `on_invite` receives it.
    ///
    /// ```
    /// use trunkline_sdk::testing::CallBuilder;
    /// let call = CallBuilder::origination().to("+14155550100").build();
    /// let invite = CallBuilder::request_for(&call);
    /// assert_eq!(invite.uri(), "sip:+14155550100@trunkline.test");
    /// ```
    pub fn request_for(call: &Call) -> Request {
        let ruri = call.request_uri();
        let uri = format!("sip:{}@{}", ruri.user.as_deref().unwrap_or_default(), ruri.host);
        Request::new("INVITE", uri, call.headers.clone(), "")
    }
}
