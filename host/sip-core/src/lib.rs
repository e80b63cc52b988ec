//! # trunkline-sip-core
//!
//! Sans-IO SIP (RFC 3261): parsing and printing messages, typed headers,
//! the four transaction state machines and the transaction layer (§17),
//! where responses go (§18.2.2, RFC 3581), dialogs and route sets (§12),
//! and reliable provisional responses (RFC 3262).
//!
//! It contains no networking code and no async runtime: bytes go in, values
//! come out, and time is always an argument. `cargo tree -p
//! trunkline-sip-core` must never show tokio, sockets or wasmtime.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod dialog;
pub mod digest;
mod e164;
pub mod header;
pub mod message;
mod name_addr;
pub mod reliable;
pub mod response_route;
pub mod transaction;
pub mod transport;

pub use e164::E164;
pub use message::{Header, Message, ParseError, StartLine};
pub use name_addr::NameAddr;
pub use transport::{Peer, Transport};
