//! Timestamps: microseconds since the Unix epoch, UTC, years 1..=9999; the proleptic
//! Gregorian calendar, `datetime.isoformat()` output and the strict ISO 8601 subset both
//! twins read. Errors are kinds here; `checks` words them like the Python twin.

pub const MIN_TIMESTAMP_US: i64 = -62_135_596_800_000_000; // 0001-01-01T00:00:00
pub const MAX_TIMESTAMP_US: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999

/// Why a timestamp text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsoError {
    /// Not `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|+hh:mm|-hh:mm]`.
    Shape,
    /// A UTC offset beyond 23:59.
    Offset,
    /// Well formed, but no such date and time in years 1-9999 UTC.
    Invalid,
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm, any year).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Broken-down UTC fields of a timestamp: (year, month, day, hour, minute, second, micros).
pub fn timestamp_fields(us: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    (year, month, day, sod / 3600, sod / 60 % 60, sod % 60, micros)
}

/// Microseconds since the epoch from UTC fields, or None outside years 1..=9999.
pub fn timestamp_from_fields(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micros: i64,
) -> Option<i64> {
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 || !(0..1_000_000).contains(&micros) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000) + micros)
}

/// Microseconds since the epoch now (the constructor's default timestamp).
pub fn now_us() -> i64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(elapsed.as_micros()).unwrap_or(0)
}

fn push_digits(out: &mut String, value: u32, width: usize) {
    let mut buf = [b'0'; 6];
    let mut v = value;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend(buf[..width].iter().map(|b| char::from(*b)));
}

/// `datetime.isoformat()` of an aware UTC datetime: fraction only when non-zero.
pub fn format_timestamp(us: i64) -> String {
    let (year, month, day, hour, minute, second, micros) = timestamp_fields(us);
    let mut text = String::with_capacity(32);
    push_digits(&mut text, year as u32, 4);
    for (sep, value) in [('-', month), ('-', day), ('T', hour), (':', minute), (':', second)] {
        text.push(sep);
        push_digits(&mut text, value, 2);
    }
    if micros != 0 {
        text.push('.');
        push_digits(&mut text, micros, 6);
    }
    text.push_str("+00:00");
    text
}

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |acc, b| acc * 10 + i64::from(b - b'0')))
}

/// Strict ISO 8601, the subset both twins parse:
/// `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|+hh:mm|-hh:mm]` (no zone = UTC; digits past
/// microseconds are dropped, as the Python twin does).
pub fn parse_iso(text: &str) -> Result<i64, IsoError> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(IsoError::Shape);
    }
    let field = |range: std::ops::Range<usize>| digits(&b[range]).ok_or(IsoError::Shape);
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if let Some(after) = rest.strip_prefix(b".") {
        let len = after.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return Err(IsoError::Shape);
        }
        let frac = &after[..len.min(6)];
        micros = digits(frac).ok_or(IsoError::Shape)? * 10i64.pow(6 - frac.len() as u32);
        rest = &after[len..];
    }
    let offset_minutes = match rest {
        [] | [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2]).ok_or(IsoError::Shape)?;
            let minutes = digits(&[*m1, *m2]).ok_or(IsoError::Shape)?;
            if hours > 23 || minutes > 59 {
                return Err(IsoError::Offset);
            }
            (hours * 60 + minutes) * if *sign == b'+' { 1 } else { -1 }
        }
        _ => return Err(IsoError::Shape),
    };
    let local = timestamp_from_fields(year, month, day, hour, minute, second, micros).ok_or(IsoError::Invalid)?;
    let utc = local - offset_minutes * 60_000_000;
    if !(MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(&utc) {
        return Err(IsoError::Invalid);
    }
    Ok(utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_match_isoformat() {
        let us = parse_iso("2024-02-29T23:59:59.1234567+01:30").unwrap();
        assert_eq!(format_timestamp(us), "2024-02-29T22:29:59.123456+00:00");
        assert_eq!(format_timestamp(parse_iso("1970-01-01T00:00:00Z").unwrap()), "1970-01-01T00:00:00+00:00");
        assert_eq!(parse_iso("0001-01-01 00:00:00").unwrap(), MIN_TIMESTAMP_US);
        assert_eq!(parse_iso("9999-12-31T23:59:59.999999").unwrap(), MAX_TIMESTAMP_US);
        let refused = [
            ("2023-02-29T00:00:00", IsoError::Invalid),
            ("2024-01-01", IsoError::Shape),
            ("2024-01-01T24:00:00", IsoError::Invalid),
            ("0001-01-01T00:00:00+00:01", IsoError::Invalid),
            ("2024-01-01T00:00:00+24:00", IsoError::Offset),
            ("2024-01-01T00:00:00.", IsoError::Shape),
            ("x", IsoError::Shape),
        ];
        for (bad, kind) in refused {
            assert_eq!(parse_iso(bad), Err(kind), "{bad}");
        }
    }

    #[test]
    fn fields_and_days_agree_across_the_range() {
        for us in [MIN_TIMESTAMP_US, -1, 0, 951_782_400_000_000, MAX_TIMESTAMP_US] {
            let (y, mo, d, h, mi, s, micros) = timestamp_fields(us);
            let back = timestamp_from_fields(y, mo.into(), d.into(), h.into(), mi.into(), s.into(), micros.into());
            assert_eq!(back, Some(us), "{us}");
        }
        assert_eq!(timestamp_from_fields(2023, 2, 29, 0, 0, 0, 0), None);
    }
}
