//! Wall-clock and zone-aware local time (settable in [`crate::testing::Harness`]).

#[doc(inline)]
pub use crate::wit::trunkline::policy::clock::CivilTime as LocalTime;

/// Milliseconds since the Unix epoch, UTC.
///
/// ```no_run
/// let ms = trunkline_sdk::clock::now_unix_ms();
/// ```
pub fn now_unix_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::clock::now_unix_ms();
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.now_unix_ms());
}

/// The current local time in an IANA zone (`America/New_York`); an error
/// names an unknown zone.
///
/// ```no_run
/// if let Ok(t) = trunkline_sdk::clock::local_time("Europe/Paris") {
///     let after_hours = t.hour < 8 || t.hour >= 21;
/// }
/// ```
pub fn local_time(zone: &str) -> Result<LocalTime, String> {
    #[cfg(target_arch = "wasm32")]
    return crate::wit::trunkline::policy::clock::local_time(zone);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::with(|s| s.local_time(zone));
}

impl LocalTime {
    /// Minutes since local midnight (0..1440).
    ///
    /// ```no_run
    /// # let t: trunkline_sdk::clock::LocalTime = unimplemented!();
    /// let open = (8 * 60..21 * 60).contains(&t.minutes_of_day());
    /// ```
    pub fn minutes_of_day(&self) -> u16 {
        u16::from(self.hour) * 60 + u16::from(self.minute)
    }
}
