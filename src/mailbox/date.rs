//! Calendar arithmetic without a date crate: civil dates, Unix days, and the IMAP/RFC 5322
//! month names. Algorithms from Howard Hinnant's public-domain "chrono-compatible low-level
//! date algorithms" description.

/// A calendar date (proleptic Gregorian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8, // 1..=12
    pub day: u8,   // 1..=31
}

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Month number (1..=12) from a three-letter English abbreviation, case-insensitive.
pub fn month_from_name(name: &str) -> Option<u8> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as u8 + 1)
}

pub fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// A validated date, or `None` for e.g. 31-Feb.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// Days since 1970-01-01.
    pub fn to_days(self) -> i64 {
        let y = self.year as i64 - if self.month <= 2 { 1 } else { 0 };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = self.month as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    }

    pub fn from_days(z: i64) -> Date {
        let z = z + 719468;
        let era = if z >= 0 { z } else { z - 146096 } / 146097;
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        Date {
            year: (y + if m <= 2 { 1 } else { 0 }) as i32,
            month: m,
            day: d,
        }
    }

    /// The date (UTC) of a Unix timestamp.
    pub fn from_unix(secs: i64) -> Date {
        Date::from_days(secs.div_euclid(86400))
    }
}

/// Seconds since the epoch for a civil date and time at a UTC offset in minutes
/// (east positive): `local - offset`.
pub fn to_unix(date: Date, hour: u32, min: u32, sec: u32, offset_minutes: i32) -> i64 {
    date.to_days() * 86400 + hour as i64 * 3600 + min as i64 * 60 + sec as i64
        - offset_minutes as i64 * 60
}

/// Formats an IMAP date-time (RFC 3501 §9 `date-time`) in UTC: `"02-Jan-2006 15:04:05 +0000"`
/// without the quotes.
pub fn imap_datetime(secs: i64) -> String {
    let mut out = Vec::with_capacity(26);
    push_imap_datetime(&mut out, secs);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`imap_datetime`] appended to `out` without allocating (FETCH INTERNALDATE of many
/// messages).
pub fn push_imap_datetime(out: &mut Vec<u8>, secs: i64) {
    let d = Date::from_unix(secs);
    let t = secs.rem_euclid(86400);
    let two = |out: &mut Vec<u8>, n: i64| {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8])
    };
    two(out, i64::from(d.day));
    out.push(b'-');
    out.extend_from_slice(MONTHS[usize::from(d.month.clamp(1, 12) - 1)].as_bytes());
    out.push(b'-');
    if (0..=9999).contains(&d.year) {
        let y = i64::from(d.year);
        two(out, y / 100);
        two(out, y % 100);
    } else {
        // Outside what `date-time` can say; written as `{:04}` would.
        out.extend_from_slice(format!("{:04}", d.year).as_bytes());
    }
    out.push(b' ');
    two(out, t / 3600);
    out.push(b':');
    two(out, (t / 60) % 60);
    out.push(b':');
    two(out, t % 60);
    out.extend_from_slice(b" +0000");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_writer_matches_the_formatted_form() {
        let old = |secs: i64| {
            let d = Date::from_unix(secs);
            let t = secs.rem_euclid(86400);
            format!(
                "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
                d.day,
                MONTHS[(d.month - 1) as usize],
                d.year,
                t / 3600,
                (t / 60) % 60,
                t % 60
            )
        };
        let mut secs = -70_000_000_000i64;
        while secs < 300_000_000_000 {
            assert_eq!(imap_datetime(secs), old(secs), "{secs}");
            secs += 7_777_777;
        }
        for s in [
            0,
            -1,
            1_136_214_245,
            253_402_300_799,
            253_402_300_800,
            -62_167_219_201,
        ] {
            assert_eq!(imap_datetime(s), old(s), "{s}");
        }
        assert_eq!(imap_datetime(1_136_214_245), "02-Jan-2006 15:04:05 +0000");
    }

    #[test]
    fn round_trip_days() {
        for z in [-800_000i64, -1, 0, 1, 10_957, 19_000, 2_932_896] {
            assert_eq!(Date::from_days(z).to_days(), z);
        }
        assert_eq!(Date::new(2000, 1, 1).unwrap().to_days(), 10957);
        assert_eq!(Date::new(2023, 2, 29), None);
        assert!(Date::new(2024, 2, 29).is_some());
    }

    #[test]
    fn formats_internaldate() {
        assert_eq!(imap_datetime(0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(imap_datetime(1_136_214_245), "02-Jan-2006 15:04:05 +0000");
        let d = Date::new(2006, 1, 2).unwrap();
        assert_eq!(to_unix(d, 8, 4, 5, -7 * 60), 1_136_214_245);
    }
}
