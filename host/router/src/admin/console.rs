//! The operator console: one page served by the admin listener (`GET /`),
//! plain HTML and JavaScript with no build step. It reads everything
//! through the admin API with the operator's token (typed into the page,
//! kept in the browser tab's session storage): live calls and calls per
//! second, trunks with the health of each target, plugins with their state
//! and hook latency, recent calls with filters, and one call's ladder,
//! route and hook decisions.

/// The page.
pub(super) const PAGE: &str = include_str!("console.html");
