//! E.164 telephone numbers (`+` and 7 to 15 digits).

use std::fmt;

/// A number in E.164 form: `+`, a country code that does not start with 0,
/// and 7 to 15 digits in all.
///
/// ```no_run
/// use trunkline_sip_core::E164;
/// let n = E164::parse("+18005550100").unwrap();
/// assert!(n.is_toll_free());
/// assert!(E164::parse("4155550100").is_none()); // no leading +
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct E164(String);

/// NANP toll-free area codes.
const NANP_TOLL_FREE: [&str; 7] = ["800", "833", "844", "855", "866", "877", "888"];

impl E164 {
    /// Parse `+` followed by 7..=15 digits, the first one not 0. Visual
    /// separators are not accepted: E.164 on a trunk is digits only.
    ///
    /// ```
    /// use trunkline_sip_core::E164;
    /// assert!(E164::parse("+442071838750").is_some());
    /// assert!(E164::parse("+1 415 555 0100").is_none()); // separators
    /// ```
    pub fn parse(s: &str) -> Option<E164> {
        let digits = s.strip_prefix('+')?;
        let ok =
            (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        ok.then(|| E164(s.to_owned()))
    }

    /// The number with its `+`.
    ///
    /// ```
    /// let n = trunkline_sip_core::E164::parse("+14155550100").unwrap();
    /// assert_eq!(n.as_str(), "+14155550100");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits, without `+`.
    ///
    /// ```
    /// let n = trunkline_sip_core::E164::parse("+14155550100").unwrap();
    /// assert_eq!(n.digits(), "14155550100");
    /// ```
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// A North American Numbering Plan number (`+1` and 10 digits).
    ///
    /// ```
    /// use trunkline_sip_core::E164;
    /// assert!(E164::parse("+14155550100").unwrap().is_nanp());
    /// assert!(!E164::parse("+442071838750").unwrap().is_nanp());
    /// ```
    pub fn is_nanp(&self) -> bool {
        self.digits().len() == 11 && self.digits().starts_with('1')
    }

    /// The NANP area code (`+1 415 ...` -> `415`), if this is a NANP number.
    ///
    /// ```
    /// let n = trunkline_sip_core::E164::parse("+14155550100").unwrap();
    /// assert_eq!(n.area_code(), Some("415"));
    /// ```
    pub fn area_code(&self) -> Option<&str> {
        self.is_nanp().then(|| &self.digits()[1..4])
    }

    /// A toll-free number (NANP 800, 833, 844, 855, 866, 877, 888), which is
    /// not valid as a caller ID on outbound calls.
    ///
    /// ```
    /// use trunkline_sip_core::E164;
    /// assert!(E164::parse("+18885550100").unwrap().is_toll_free());
    /// assert!(!E164::parse("+14155550100").unwrap().is_toll_free());
    /// ```
    pub fn is_toll_free(&self) -> bool {
        self.area_code().is_some_and(|a| NANP_TOLL_FREE.contains(&a))
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_plus_and_digits() {
        assert!(E164::parse("+14155550100").is_some());
        assert!(E164::parse("14155550100").is_none());
        assert!(E164::parse("+1415555010a").is_none());
        assert!(E164::parse("+0415555010").is_none());
        assert!(E164::parse("+123456").is_none());
        assert!(E164::parse("+1234567890123456").is_none());
        assert!(E164::parse("+").is_none());
        assert!(E164::parse("").is_none());
    }

    #[test]
    fn toll_free_is_nanp_only() {
        assert!(E164::parse("+18885550100").unwrap().is_toll_free());
        assert!(!E164::parse("+14155550100").unwrap().is_toll_free());
        assert!(!E164::parse("+448005550100").unwrap().is_toll_free());
        assert_eq!(E164::parse("+14155550100").unwrap().area_code(), Some("415"));
    }
}
