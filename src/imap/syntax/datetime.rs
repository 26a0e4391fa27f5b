//! RFC 3501 §9 `date-time` (`"dd-Mon-yyyy hh:mm:ss +zzzz"`, APPEND) and `date`
//! (`d-Mon-yyyy`, SEARCH) parsing, on the text without its double quotes.
//!
//! Calendar arithmetic lives in [`crate::mailbox::date`]; this module only knows the IMAP
//! spelling.

use crate::mailbox::date::{month_from_name, to_unix, Date};

/// Reads exactly `n` ASCII digits as a number.
fn digits(s: &[u8], n: usize) -> Option<u32> {
    if s.len() != n || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        s.iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0')),
    )
}

/// `date-day "-" date-month "-" date-year` where `day` is the already-validated day text.
fn day_month_year(day: u32, month: &[u8], year: &[u8]) -> Option<Date> {
    let month = month_from_name(std::str::from_utf8(month).ok()?)?;
    let year = digits(year, 4)?;
    let day = u8::try_from(day).ok()?;
    Date::new(i32::try_from(year).ok()?, month, day)
}

/// RFC 3501 `date-text`: `date-day "-" date-month "-" date-year` with `date-day = 1*2DIGIT`.
/// Returns `None` for malformed or impossible dates (31-Feb).
pub fn parse_date(s: &[u8]) -> Option<Date> {
    let mut parts = s.split(|&c| c == b'-');
    let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || day.is_empty() || day.len() > 2 {
        return None;
    }
    day_month_year(digits(day, day.len())?, month, year)
}

/// RFC 3501 `date-time` contents: `date-day-fixed "-" date-month "-" date-year SP time SP
/// zone`, where `date-day-fixed = (SP DIGIT) / 2DIGIT`. A plain one-digit day is accepted
/// too (a common client slip). Returns Unix seconds (UTC).
pub fn parse_date_time(s: &[u8]) -> Option<i64> {
    // Day: " 2", "02" or (lenient) "2".
    let (day, rest) = match s {
        [b' ', d, rest @ ..] if d.is_ascii_digit() => (u32::from(d - b'0'), rest),
        [a, b, rest @ ..] if a.is_ascii_digit() && b.is_ascii_digit() => {
            (u32::from(a - b'0') * 10 + u32::from(b - b'0'), rest)
        }
        [a, rest @ ..] if a.is_ascii_digit() => (u32::from(a - b'0'), rest),
        _ => return None,
    };
    // "-Mon-yyyy hh:mm:ss +zzzz" is exactly 24 octets.
    if rest.len() != 24 || rest[0] != b'-' || rest[4] != b'-' || rest[9] != b' ' {
        return None;
    }
    let date = day_month_year(day, &rest[1..4], &rest[5..9])?;
    let time = &rest[10..18];
    if time[2] != b':' || time[5] != b':' || rest[18] != b' ' {
        return None;
    }
    let (h, m, sec) = (
        digits(&time[0..2], 2)?,
        digits(&time[3..5], 2)?,
        digits(&time[6..8], 2)?,
    );
    // Seconds may be 60 for a leap second.
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let zone = &rest[19..24];
    let sign = match zone[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (zh, zm) = (digits(&zone[1..3], 2)?, digits(&zone[3..5], 2)?);
    if zm > 59 {
        return None;
    }
    let offset = sign * (zh as i32 * 60 + zm as i32);
    Some(to_unix(date, h, m, sec, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates() {
        assert_eq!(parse_date(b"1-Feb-1994"), Date::new(1994, 2, 1));
        assert_eq!(parse_date(b"01-feb-1994"), Date::new(1994, 2, 1));
        assert_eq!(parse_date(b"29-Feb-2024"), Date::new(2024, 2, 29));
        for bad in [
            &b"31-Feb-2024"[..],
            b"29-Feb-2023",
            b"0-Jan-2000",
            b"1-Foo-2000",
            b"1-Jan-20",
            b"001-Jan-2000",
            b"1-Jan-2000-",
            b"1 Jan 2000",
            b"",
            b"-Jan-2000",
            b"1-Jan-2000x",
        ] {
            assert_eq!(parse_date(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn parses_date_times() {
        // RFC 3501 §6.3.11 example.
        let t = parse_date_time(b"17-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(t, 837_596_665);
        assert_eq!(
            parse_date_time(b"02-Jan-2006 15:04:05 +0000"),
            Some(1_136_214_245)
        );
        assert_eq!(
            parse_date_time(b" 2-Jan-2006 15:04:05 +0000"),
            Some(1_136_214_245)
        );
        assert_eq!(
            parse_date_time(b"2-Jan-2006 15:04:05 +0000"),
            Some(1_136_214_245)
        );
        assert_eq!(
            parse_date_time(b"02-Jan-2006 17:04:05 +0200"),
            Some(1_136_214_245)
        );
        assert_eq!(parse_date_time(b"01-Jan-1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_date_time(b"31-Dec-1969 23:59:60 +0000"), Some(0));
    }

    #[test]
    fn rejects_bad_date_times() {
        for bad in [
            &b"31-Feb-2006 15:04:05 +0000"[..],
            b"02-Jan-2006 15:04:05 0000",
            b"02-Jan-2006 15:04:05 +000",
            b"02-Jan-2006 15:04:05 +00000",
            b"02-Jan-2006 15:04:05 +01x0",
            b"02-Jan-2006 15:04:05 +0160",
            b"02-Jan-2006 15:04:05 UTC",
            b"02-Jan-2006 24:00:00 +0000",
            b"02-Jan-2006 15:60:00 +0000",
            b"02-Jan-2006 15:04:61 +0000",
            b"02-Jan-2006 15:04 +0000",
            b"02-Jan-06 15:04:05 +0000",
            b"02-Jnu-2006 15:04:05 +0000",
            b"02-Jan-2006  15:04:05 +0000",
            b"02-Jan-2006T15:04:05 +0000",
            b"  -Jan-2006 15:04:05 +0000",
            b"",
            b"02",
        ] {
            assert_eq!(
                parse_date_time(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
