//! Typed headers, one per file, each with its parse/print tests.

mod cseq;
mod via;

pub use cseq::CSeq;
pub use via::{Via, MAGIC_COOKIE};

/// The value of parameter `name` in `;a=b;c` parameter lists (case-insensitive
/// name). A flag parameter without `=` yields `Some("")`.
pub fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
