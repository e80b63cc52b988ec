//! Weekly time windows in local time, for schedule-based policies
//! (`days = ["mon", "fri"]`, `hours = "09:00-17:00"`).

use crate::clock::LocalTime;

/// Days of the week and a range of local time. A range whose end is before
/// its start spans midnight (`22:00-06:00`); the day is the day it starts.
///
/// ```no_run
/// use trunkline_sdk::schedule::Window;
/// let business = Window::parse(&["mon", "tue", "wed", "thu", "fri"], Some("09:00-17:00")).unwrap();
/// let t = trunkline_sdk::clock::local_time("America/New_York").unwrap();
/// let open = business.contains(&t);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Bit `d` set for weekday `d` (0 = Monday).
    days: u8,
    /// Minutes since midnight, `start..end`.
    start: u16,
    end: u16,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
}

impl Window {
    /// `days`: three-letter names (empty: every day). `hours`: `HH:MM-HH:MM`
    /// (none: all day). The error names what is wrong.
    ///
    /// ```
    /// use trunkline_sdk::schedule::Window;
    /// assert!(Window::parse(&["sat", "sun"], None).is_ok());
    /// assert!(Window::parse(&["someday"], None).is_err());
    /// ```
    pub fn parse<S: AsRef<str>>(days: &[S], hours: Option<&str>) -> Result<Window, String> {
        let mut mask = 0u8;
        for d in days {
            let d = d.as_ref();
            let i = DAY_NAMES
                .iter()
                .position(|n| n.eq_ignore_ascii_case(d))
                .ok_or_else(|| format!("unknown day `{d}` (use mon..sun)"))?;
            mask |= 1 << i;
        }
        if mask == 0 {
            mask = 0x7f;
        }
        let (start, end) = match hours {
            None => (0, 1440),
            Some(h) => {
                let (a, b) = h.split_once('-').ok_or_else(|| format!("hours `{h}` is not HH:MM-HH:MM"))?;
                let bad = || format!("hours `{h}` is not HH:MM-HH:MM");
                (parse_hhmm(a).ok_or_else(bad)?, parse_hhmm(b).ok_or_else(bad)?)
            }
        };
        Ok(Window { days: mask, start, end })
    }

    /// Whether local time `t` falls in the window.
    ///
    /// ```
    /// let h = trunkline_sdk::testing::Harness::new();
    /// h.set_time("2026-11-23T14:00:00Z"); // a Monday
    /// let t = trunkline_sdk::clock::local_time("America/New_York").unwrap(); // 09:00 there
    /// let business = trunkline_sdk::schedule::Window::parse(&["mon"], Some("09:00-17:00")).unwrap();
    /// assert!(business.contains(&t));
    /// ```
    pub fn contains(&self, t: &LocalTime) -> bool {
        let now = t.minutes_of_day();
        let day = t.weekday % 7;
        let yesterday = (day + 6) % 7;
        let on = |d: u8| self.days & (1 << d) != 0;
        if self.start <= self.end {
            on(day) && (self.start..self.end).contains(&now)
        } else {
            (on(day) && now >= self.start) || (on(yesterday) && now < self.end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(weekday: u8, hour: u8, minute: u8) -> LocalTime {
        LocalTime { year: 2026, month: 11, day: 23, hour, minute, second: 0, weekday, utc_offset_seconds: 0 }
    }

    #[test]
    fn business_hours() {
        let w = Window::parse(&["mon", "fri"], Some("09:00-17:00")).unwrap();
        assert!(w.contains(&at(0, 9, 0)));
        assert!(!w.contains(&at(0, 17, 0)));
        assert!(!w.contains(&at(1, 12, 0)));
        assert!(w.contains(&at(4, 16, 59)));
    }

    #[test]
    fn overnight_belongs_to_the_starting_day() {
        let w = Window::parse(&["fri"], Some("22:00-06:00")).unwrap();
        assert!(w.contains(&at(4, 23, 0)));
        assert!(w.contains(&at(5, 5, 59)));
        assert!(!w.contains(&at(4, 5, 0)));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(Window::parse(&["funday"], None).unwrap_err().contains("funday"));
        assert!(Window::parse::<&str>(&[], Some("9-5")).unwrap_err().contains("9-5"));
        assert!(Window::parse::<&str>(&[], Some("25:00-26:00")).is_err());
    }
}
