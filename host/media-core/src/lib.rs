//! # trunkline-media-core
//!
//! Sans-IO media anchoring for the B2BUA: what the router needs to put
//! itself in the media path of a call without owning a socket here.
//!
//! - [`sdp`]: a line-preserving SDP reader and rewriter (RFC 4566). Every
//!   line the router does not change is kept byte for byte, in its order,
//!   with its line ending: unknown attributes, odd line order and all.
//! - [`ports`]: RTP/RTCP port pairs from a configured range (RTP even,
//!   RTCP the next port), a released pair resting before reuse.
//! - [`session`]: one call's offer/answer exchanges as the B2BUA in the
//!   middle sees them: the ports it relays on, where each side wants
//!   media, the descriptions each side gets (naming only the router).
//!
//! - [`crypto`]: SDES `a=crypto` lines (RFC 4568): the SRTP suites and
//!   keys each leg agrees with the router (SRTP is terminated per leg).
//! - [`rtp`], [`latch`]: the header checks the relay makes on a packet,
//!   and where one party's media comes from (its description's address,
//!   or, with symmetric RTP, the source its packets are latched to).
//!
//! - [`g711`], [`wav`]: the audio the router itself plays (a DR
//!   `<Play>`): WAV files read, G.711 coded.
//!
//! It contains no networking code and no async runtime: bytes go in,
//! values come out, and time is always an argument. `cargo tree -p
//! trunkline-media-core` must never show tokio, sockets or wasmtime.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod crypto;
pub mod g711;
pub mod latch;
pub mod ports;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod wav;
