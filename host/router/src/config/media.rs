//! `[media]`: where the router anchors the media of calls whose trunk
//! relays it (`media = "relay"`, the default). Every key is optional: a
//! file without `[media]` relays on the SIP listener's address, ports
//! 16384-32767, one relay thread per core.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, Listen};

/// How a trunk's calls carry media.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// The router anchors RTP/RTCP: each party sees only the router's
    /// media address (session descriptions rewritten, packets relayed).
    #[default]
    Relay,
    /// Session descriptions pass untouched: the parties exchange media
    /// directly.
    Passthrough,
}

/// Whether a trunk's calls are recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingMode {
    #[default]
    Off,
    /// One channel, both parties mixed.
    Single,
    /// Two channels: the caller left, the callee right.
    Dual,
}

/// `[media]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMedia {
    /// IP address the relay's sockets bind to.
    bind: Option<Spanned<String>>,
    /// IP address written in session descriptions (for a router behind NAT).
    advertise: Option<Spanned<String>>,
    /// First and last port of the relay's range.
    port_min: Spanned<u16>,
    port_max: Spanned<u16>,
    /// Relay worker threads; 0: one per core.
    threads: Spanned<u32>,
    /// How long a released port pair rests before another call gets it.
    port_rest_ms: Spanned<u64>,
    /// An answered call with no packet relayed for this long (and not on
    /// hold) is hung up; 0: never.
    rtp_timeout_secs: Spanned<u64>,
    /// Where recordings are written.
    recording_dir: Option<std::path::PathBuf>,
    /// Forward plain established streams in the kernel (a tc classifier).
    kernel_forwarding: Spanned<bool>,
}

impl Default for RawMedia {
    fn default() -> Self {
        let z = |v| Spanned::new(0..0, v);
        RawMedia {
            bind: None,
            advertise: None,
            port_min: z(16_384),
            port_max: z(32_767),
            threads: Spanned::new(0..0, 0),
            port_rest_ms: Spanned::new(0..0, 2_000),
            rtp_timeout_secs: Spanned::new(0..0, 60),
            recording_dir: None,
            kernel_forwarding: Spanned::new(0..0, false),
        }
    }
}

/// Validated `[media]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSettings {
    /// Where the relay's sockets bind.
    pub bind: IpAddr,
    /// The address parties are told to send media to.
    pub advertise: IpAddr,
    /// The relay's ports (RTP even, RTCP the next).
    pub port_min: u16,
    pub port_max: u16,
    /// Relay worker threads (at least 1).
    pub threads: usize,
    /// Rest of a released pair before reuse.
    pub port_rest: Duration,
    /// RTP inactivity timeout of answered calls; `None`: off.
    pub rtp_timeout: Option<Duration>,
    /// Where recordings are written (made when the router starts if a
    /// trunk records).
    pub recording_dir: std::path::PathBuf,
    /// Forward plain established streams in the kernel (see the relay's
    /// `kernel` module); off by default: it attaches a classifier to the
    /// interface of `bind` and needs CAP_BPF and CAP_NET_ADMIN.
    pub kernel_forwarding: bool,
}

fn ip(cx: &Ctx<'_>, v: &Spanned<String>, key: &str) -> Result<IpAddr, ConfigError> {
    v.get_ref().parse().map_err(|_| cx.err(v.span(), key, format!("`{}` is not an IP address", v.get_ref())))
}

/// Check `[media]`; `relaying`: whether a trunk relays media (then the
/// advertised address must be one a party can send to).
pub(super) fn media(
    cx: &Ctx<'_>,
    raw: RawMedia,
    listen: &[Listen],
    listen_span: std::ops::Range<usize>,
    relaying: bool,
    base: &std::path::Path,
) -> Result<MediaSettings, ConfigError> {
    let bind = match &raw.bind {
        Some(b) => ip(cx, b, "media.bind")?,
        None => listen.first().map(|l| l.addr.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1])),
    };
    let advertise = match &raw.advertise {
        Some(a) => {
            let addr = ip(cx, a, "media.advertise")?;
            if addr.is_unspecified() {
                return Err(cx.err(
                    a.span(),
                    "media.advertise",
                    "must be an address parties can send to, not 0.0.0.0 or ::",
                ));
            }
            addr
        }
        None => bind,
    };
    if relaying && advertise.is_unspecified() {
        let span = raw.bind.as_ref().map(|b| b.span()).unwrap_or(listen_span);
        return Err(cx.err(
            span,
            "media.advertise",
            "media is bound to every address (0.0.0.0 or ::): set media.advertise to the address parties send media to",
        ));
    }
    if raw.advertise.is_some() && advertise.is_ipv4() != bind.is_ipv4() && !bind.is_unspecified() {
        let span = raw.advertise.as_ref().map(|a| a.span()).unwrap_or(0..0);
        return Err(cx.err(span, "media.advertise", "must be of the same IP version as media.bind"));
    }
    let (min, max) = (*raw.port_min.get_ref(), *raw.port_max.get_ref());
    if min < 1024 {
        return Err(cx.err(raw.port_min.span(), "media.port_min", "must be 1024 or more"));
    }
    if max < min.saturating_add(3) {
        return Err(cx.err(
            raw.port_max.span(),
            "media.port_max",
            "must leave room for two RTP/RTCP pairs above media.port_min",
        ));
    }
    let threads = match *raw.threads.get_ref() {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n if n <= 256 => n as usize,
        _ => return Err(cx.err(raw.threads.span(), "media.threads", "must be 0 (one per core) ..= 256")),
    };
    if *raw.port_rest_ms.get_ref() > 600_000 {
        return Err(cx.err(raw.port_rest_ms.span(), "media.port_rest_ms", "must be 0..=600000"));
    }
    let rtp_timeout = match *raw.rtp_timeout_secs.get_ref() {
        0 => None,
        s if s <= 86_400 => Some(Duration::from_secs(s)),
        _ => return Err(cx.err(raw.rtp_timeout_secs.span(), "media.rtp_timeout_secs", "must be 0 (off) ..= 86400")),
    };
    let kernel_forwarding = *raw.kernel_forwarding.get_ref();
    if kernel_forwarding && (!bind.is_ipv4() || bind.is_unspecified()) {
        return Err(cx.err(
            raw.kernel_forwarding.span(),
            "media.kernel_forwarding",
            format!("needs media.bind to be one IPv4 address (it is {bind})"),
        ));
    }
    Ok(MediaSettings {
        kernel_forwarding,
        rtp_timeout,
        recording_dir: base.join(raw.recording_dir.as_deref().unwrap_or(std::path::Path::new("recordings"))),
        bind,
        advertise,
        port_min: min,
        port_max: max,
        threads,
        port_rest: Duration::from_millis(*raw.port_rest_ms.get_ref()),
    })
}
