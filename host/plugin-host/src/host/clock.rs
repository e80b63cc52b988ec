//! `clock`: wall time and zone-aware local time.

use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};

use crate::bindings::trunkline::policy::clock::{CivilTime as LocalTime, Host};
use crate::services::now_unix_ms;
use crate::state::HostState;

/// Local time of `unix_ms` in IANA zone `zone`.
pub(crate) fn local_time_at(zone: &str, unix_ms: u64) -> Result<LocalTime, String> {
    let tz: chrono_tz::Tz = zone.parse().map_err(|_| format!("unknown time zone `{zone}`"))?;
    let utc = DateTime::<Utc>::from_timestamp_millis(unix_ms as i64).ok_or("clock out of range")?;
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

impl Host for HostState {
    fn now_unix_ms(&mut self) -> u64 {
        now_unix_ms()
    }

    fn local_time(&mut self, zone: String) -> Result<LocalTime, String> {
        local_time_at(&zone, now_unix_ms())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zones_and_dst() {
        // 2026-07-01T12:00Z is 08:00 EDT (UTC-4), a Wednesday.
        let t = super::local_time_at("America/New_York", 1_782_907_200_000).unwrap();
        assert_eq!((t.hour, t.weekday, t.utc_offset_seconds), (8, 2, -4 * 3600));
        assert!(super::local_time_at("Nowhere/Land", 0).unwrap_err().contains("Nowhere/Land"));
    }
}
