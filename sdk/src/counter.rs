//! Frequency caps on top of [`kv::incr`]: how often something happened
//! today, this month, or in the last N days, per subject (e.g. calls to
//! one number), in calendar days of a time zone.
//!
//! A [`Counter`] keeps one kv key per day (`NAME:d:2026-12-02`) and per
//! month (`NAME:m:2026-12`), each expiring by itself once no window can
//! need it; a rolling window of N days adds N daily keys. `kv::incr` is
//! atomic in the host (and in a store shared by several routers), so two
//! calls counted at once get different counts: count first, then decide,
//! and [`Counter::remove`] what was refused.
//!
//! ```no_run
//! use trunkline_sdk::counter::{Counter, Window};
//!
//! let now = trunkline_sdk::clock::local_time("America/New_York").unwrap();
//! let calls = Counter::new("calls:+12125550123", now);
//! let counts = calls.add(&[Window::Day, Window::Month, Window::Days(7)]).unwrap_or_default();
//! if counts.first().is_some_and(|&today| today > 2) {
//!     calls.remove().ok(); // refused: it does not count
//! }
//! ```

use crate::clock::LocalTime;
use crate::kv;

/// A period to count in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Today (the calendar day of the counter's time).
    Day,
    /// This calendar month.
    Month,
    /// The last `n` calendar days, today included (1..=31; more count as 31).
    Days(u8),
}

/// Longest rolling window, in days (daily keys live this long).
const MAX_DAYS: u8 = 31;
const DAY_SECS: u32 = 86_400;

/// Counts of one subject at one moment.
#[derive(Clone, Debug)]
pub struct Counter {
    name: String,
    /// Days since 1970-01-01 of the counter's local date.
    day: i64,
}

impl Counter {
    /// The counter `name` (a kv key prefix: the subject, e.g.
    /// `calls:+12125550123`) at local time `now`.
    pub fn new(name: impl Into<String>, now: LocalTime) -> Self {
        Counter { name: name.into(), day: days_from_civil(now.year, u32::from(now.month), u32::from(now.day)) }
    }

    fn day_key(&self, day: i64) -> String {
        let (y, m, d) = civil_from_days(day);
        format!("{}:d:{y:04}-{m:02}-{d:02}", self.name)
    }

    fn month_key(&self) -> String {
        let (y, m, _) = civil_from_days(self.day);
        format!("{}:m:{y:04}-{m:02}", self.name)
    }

    /// Count one event now; the counts in `windows` with it, in order.
    /// Three kv calls whatever the windows (two `incr`, one `get-many`).
    pub fn add(&self, windows: &[Window]) -> Result<Vec<u64>, kv::Error> {
        let counted = self.step(1)?;
        self.tally(windows, Some(counted))
    }

    /// Take back one event counted now (e.g. a call refused after all).
    pub fn remove(&self) -> Result<(), kv::Error> {
        self.step(-1).map(|_| ())
    }

    /// Add `delta` today and this month: the new (day, month) counts.
    fn step(&self, delta: i64) -> Result<(i64, i64), kv::Error> {
        // A daily key outlives the longest rolling window; a monthly key the month.
        let day = kv::incr(&self.day_key(self.day), delta, Some((u32::from(MAX_DAYS) + 1) * DAY_SECS))?;
        let month = kv::incr(&self.month_key(), delta, Some(32 * DAY_SECS))?;
        Ok((day, month))
    }

    /// The counts in `windows`, counting nothing (one `get-many`).
    pub fn counts(&self, windows: &[Window]) -> Result<Vec<u64>, kv::Error> {
        self.tally(windows, None)
    }

    /// The counts in `windows`, given today's and this month's if known.
    fn tally(&self, windows: &[Window], known: Option<(i64, i64)>) -> Result<Vec<u64>, kv::Error> {
        let days_back = windows
            .iter()
            .map(|w| match *w {
                Window::Days(n) => i64::from(n.clamp(1, MAX_DAYS)),
                _ => 1,
            })
            .max()
            .unwrap_or(1);
        // Keys read: [today, this month] unless known, then earlier days.
        let mut keys = Vec::new();
        if known.is_none() {
            keys.push(self.day_key(self.day));
            keys.push(self.month_key());
        }
        keys.extend((1..days_back).map(|back| self.day_key(self.day - back)));
        let values = if keys.is_empty() { Vec::new() } else { kv::get_many(&keys)? };
        let number = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let (today, month, earlier) = match known {
            Some((d, m)) => (d, m, &values[..]),
            None => (number(&values[0]), number(&values[1]), &values[2..]),
        };
        let count = |n: i64| n.max(0) as u64;
        Ok(windows
            .iter()
            .map(|w| match *w {
                Window::Day => count(today),
                Window::Month => count(month),
                Window::Days(n) => {
                    let n = usize::from(n.clamp(1, MAX_DAYS));
                    count(today) + earlier[..n - 1].iter().map(|v| count(number(v))).sum::<u64>()
                }
            })
            .collect())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::testing::Harness;

    #[test]
    fn dates_convert_both_ways() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29) + 1), (2024, 3, 1));
        assert_eq!(civil_from_days(days_from_civil(2026, 1, 1) - 1), (2025, 12, 31));
        for day in -800..800 {
            let (y, m, d) = civil_from_days(day * 37);
            assert_eq!(days_from_civil(y as i32, m, d), day * 37);
        }
    }

    #[test]
    fn counts_by_day_month_and_rolling_window() {
        let h = Harness::new();
        let at = |t: &str| {
            h.set_time(t);
            Counter::new("calls:+12125550123", crate::clock::local_time("UTC").unwrap())
        };
        let windows = [Window::Day, Window::Month, Window::Days(7)];
        assert_eq!(at("2026-12-01T10:00:00Z").add(&windows).unwrap(), vec![1, 1, 1]);
        assert_eq!(at("2026-12-01T23:59:00Z").add(&windows).unwrap(), vec![2, 2, 2]);
        // The next day: a new day, the same month and week.
        assert_eq!(at("2026-12-02T00:01:00Z").add(&windows).unwrap(), vec![1, 3, 3]);
        let c = at("2026-12-02T08:00:00Z");
        assert_eq!(c.add(&windows).unwrap(), vec![2, 4, 4]);
        c.remove().unwrap();
        assert_eq!(c.counts(&windows).unwrap(), vec![1, 3, 3], "taken back");
        // Seven days after the first: the first day has left the window.
        assert_eq!(at("2026-12-08T12:00:00Z").counts(&windows).unwrap(), vec![0, 3, 1]);
        // A new month; its first week still sees the end of the last one.
        assert_eq!(at("2027-01-01T12:00:00Z").add(&windows).unwrap(), vec![1, 1, 1]);
        assert_eq!(at("2026-12-31T12:00:00Z").counts(&[Window::Days(31)]).unwrap(), vec![3]);
        // Another subject counts on its own.
        let other = Counter::new("calls:+13105550100", crate::clock::local_time("UTC").unwrap());
        assert_eq!(other.counts(&windows).unwrap(), vec![0, 0, 0]);
    }
}
