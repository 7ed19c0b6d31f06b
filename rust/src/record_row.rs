//! Text columns of a stored memory record, written the way the Python twin writes them.
//!
//! The twin is `crewai_rust/memory/_records.py` `_row`: JSON through orjson (compact, UTF-8,
//! control characters escaped as `\uXXXX` in lowercase hex except the five short forms),
//! `datetime.isoformat()` of a naive datetime, and microseconds since 1970-01-01.

use std::fmt::Write as _;

use crate::message::calendar::days_from_civil;

/// A JSON string literal of `s`, as orjson writes it.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A naive date and time, the fields of Python's `datetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NaiveDateTime {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub microsecond: u32,
}

impl NaiveDateTime {
    /// `datetime.isoformat()`: the fraction only when it is not zero.
    pub fn isoformat(&self) -> String {
        let mut out = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.microsecond != 0 {
            let _ = write!(out, ".{:06}", self.microsecond);
        }
        out
    }

    /// `(dt - datetime(1970, 1, 1)) // timedelta(microseconds=1)` (proleptic Gregorian, exact).
    pub fn epoch_micros(&self) -> i64 {
        let days = days_from_civil(i64::from(self.year), i64::from(self.month), i64::from(self.day));
        let seconds =
            days * 86_400 + i64::from(self.hour) * 3_600 + i64::from(self.minute) * 60 + i64::from(self.second);
        seconds * 1_000_000 + i64::from(self.microsecond)
    }
}

/// True when `s` holds a letter or digit, so Python's `s.strip()` is certainly not empty.
/// (False does not mean blank: the caller then asks Python.)
pub fn has_alphanumeric(s: &str) -> bool {
    s.chars().any(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8, microsecond: u32) -> NaiveDateTime {
        NaiveDateTime { year, month, day, hour, minute, second, microsecond }
    }

    #[test]
    fn json_strings_are_orjsons() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c/\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1a}\u{1f}\u{7f}\u{2028}é😀");
        assert_eq!(out, "\"a\\\"b\\\\c/\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001a\\u001f\u{7f}\u{2028}é😀\"");
    }

    #[test]
    fn isoformat_and_micros_match_python() {
        assert_eq!(dt(2025, 1, 1, 0, 0, 0, 0).isoformat(), "2025-01-01T00:00:00");
        assert_eq!(dt(1, 2, 3, 4, 5, 6, 7).isoformat(), "0001-02-03T04:05:06.000007");
        assert_eq!(dt(1970, 1, 1, 0, 0, 0, 0).epoch_micros(), 0);
        assert_eq!(dt(2025, 1, 1, 0, 0, 0, 0).epoch_micros(), 1_735_689_600_000_000);
        assert_eq!(dt(1969, 12, 31, 23, 59, 59, 999_999).epoch_micros(), -1);
        // datetime(1, 1, 1) - datetime(1970, 1, 1) == timedelta(days=-719162)
        assert_eq!(dt(1, 1, 1, 0, 0, 0, 0).epoch_micros(), -719_162 * 86_400_000_000);
        assert_eq!(dt(2000, 2, 29, 12, 0, 0, 0).epoch_micros(), 951_825_600_000_000);
    }

    #[test]
    fn only_letters_or_digits_prove_non_blank() {
        assert!(has_alphanumeric("  x "));
        assert!(has_alphanumeric("記憶"));
        assert!(!has_alphanumeric(" \t\u{1c}"));
        assert!(!has_alphanumeric("!?"));
    }
}
