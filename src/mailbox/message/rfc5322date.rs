//! RFC 5322 §3.3 date-time parsing, including the obsolete forms of §4.3 (two- and
//! three-digit years, alphabetic zones, missing seconds, comments anywhere), for SEARCH
//! SENT* and sorting. Unknown zones count as +0000.

use crate::mailbox::date::{self, Date};

/// A parsed Date: header: the date and time as written and the zone offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub date: Date,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    /// Minutes east of UTC.
    pub offset_minutes: i32,
}

impl DateTime {
    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> i64 {
        date::to_unix(
            self.date,
            self.hour,
            self.min,
            self.sec,
            self.offset_minutes,
        )
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn zone(t: &str) -> Option<i32> {
    let b = t.as_bytes();
    if (b.first() == Some(&b'+') || b.first() == Some(&b'-'))
        && b.len() == 5
        && b[1..].iter().all(u8::is_ascii_digit)
    {
        let n: i32 = t[1..].parse().ok()?;
        let (h, m) = (n / 100, n % 100);
        if m > 59 {
            return None;
        }
        let off = h * 60 + m;
        return Some(if b[0] == b'-' { -off } else { off });
    }
    let hours = match t.to_ascii_uppercase().as_str() {
        "UT" | "UTC" | "GMT" | "Z" => 0,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        // RFC 5322 §4.3: military zones are unreliable and SHOULD be taken as -0000.
        m if m.len() == 1 && m.as_bytes()[0].is_ascii_alphabetic() => 0,
        _ => return None,
    };
    Some(hours * 60)
}

fn number(t: &str, max_len: usize) -> Option<u32> {
    if t.is_empty() || t.len() > max_len || !t.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Parses a Date: header value. `None` when no date can be recognised.
pub fn parse(value: &[u8]) -> Option<DateTime> {
    // Strip comments, then split on whitespace and commas.
    let mut clean = String::with_capacity(value.len());
    let mut depth = 0usize;
    for &c in value {
        match c {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            b',' => clean.push(' '),
            c if c.is_ascii() => clean.push(c as char),
            _ => clean.push(' '),
        }
    }
    let mut toks = clean.split_ascii_whitespace().peekable();
    if let Some(t) = toks.peek() {
        if t.get(..3)
            .is_some_and(|p| DAYS.iter().any(|d| p.eq_ignore_ascii_case(d)))
        {
            toks.next();
        }
    }
    let day = number(toks.next()?, 2)?;
    let month = date::month_from_name(toks.next()?.get(..3)?)?;
    let ytok = toks.next()?;
    let mut year = number(ytok, 4)? as i32;
    year = match ytok.len() {
        1 | 2 if year < 50 => year + 2000,
        1 | 2 => year + 1900,
        3 => year + 1900,
        _ => year,
    };
    let date = Date::new(year, month, u8::try_from(day).ok()?)?;
    let (mut hour, mut min, mut sec) = (0, 0, 0);
    let mut offset = 0;
    if let Some(t) = toks.next() {
        let mut hms = t.split(':');
        hour = number(hms.next()?, 2)?;
        min = number(hms.next()?, 2)?;
        sec = match hms.next() {
            Some(s) => number(s, 2)?,
            None => 0,
        };
        if hour > 23 || min > 59 || sec > 60 {
            return None;
        }
        if let Some(z) = toks.next() {
            offset = zone(z).unwrap_or(0);
        }
    }
    Some(DateTime {
        date,
        hour,
        min,
        sec,
        offset_minutes: offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates() {
        let d = parse(b"Mon, 2 Jan 2006 15:04:05 -0700").unwrap();
        assert_eq!(d.unix(), 1_136_239_445);
        assert_eq!(d.date, Date::new(2006, 1, 2).unwrap());
        let d = parse(b" 2 Jan 06 15:04 MST (Mountain)").unwrap();
        assert_eq!(d.unix(), 1_136_239_440);
        let d = parse(b"Thursday, 01 Jan 70 00:00:00 GMT").unwrap();
        assert_eq!(d.unix(), 0);
        assert_eq!(parse(b"1 Jan 101 00:00 +0000").unwrap().date.year, 2001);
        assert_eq!(parse(b"1 Jan 99 00:00 Q").unwrap().date.year, 1999);
        assert_eq!(
            parse(b"(c) 31 Dec 1999\r\n 23:59:60 +0100").unwrap().sec,
            60
        );
        assert_eq!(parse(b"31 Feb 2000 00:00 +0000"), None);
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"1 Jan 2000 25:00"), None);
        assert_eq!(parse(b"1 Jan 2000").unwrap().hour, 0);
    }
}
