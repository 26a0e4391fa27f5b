//! The `From ` line that starts every message of an mbox file: `From <sender> <date>`,
//! the date as C's `asctime` writes it (`Mon Dec  7 16:49:14 2026`), sometimes with a
//! time zone before or after the year, sometimes without seconds, sometimes followed by
//! UUCP's `remote from <host>`.
//!
//! A line is taken as a separator only when the date parses (as mutt does): a body line
//! that merely starts with "From " does not end a message. The date is the message's
//! internal date; a time zone given as `+hhmm`/`-hhmm` is applied, a named one or none is
//! taken as UTC.
//!
//! This module knows bytes and dates, nothing of files.

use crate::mailbox::date::{self, Date};

/// A `From ` line longer than this is not a separator (real ones are under 200 bytes).
pub const MAX_LEN: usize = 1024;

/// What a separator line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FromLine {
    /// The envelope sender as written (empty when the line has none).
    pub sender: String,
    /// Seconds since the epoch.
    pub date: i64,
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Parses `line` (without its line end; `\r` at the end is ignored). `None` when it is not
/// a separator line.
pub fn parse(line: &[u8]) -> Option<FromLine> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LEN {
        return None;
    }
    let rest = std::str::from_utf8(line.strip_prefix(b"From ")?).ok()?;
    // Tokens with their start offsets: the sender is everything before the weekday that
    // starts a valid date (a sender may hold spaces inside quotes).
    let tokens: Vec<(usize, &str)> = rest
        .split(' ')
        .scan(0usize, |at, t| {
            let start = *at;
            *at += t.len() + 1;
            Some((start, t))
        })
        .filter(|(_, t)| !t.is_empty())
        .collect();
    (0..tokens.len()).find_map(|i| {
        let words: Vec<&str> = tokens[i..].iter().map(|(_, t)| *t).collect();
        let when = parse_date(&words)?;
        let sender = rest[..tokens[i].0].trim().to_string();
        Some(FromLine { sender, date: when })
    })
}

/// `Www Mmm dd hh:mm[:ss] [zone] yyyy [zone] [anything]`.
fn parse_date(w: &[&str]) -> Option<i64> {
    let wday = w.first()?.trim_end_matches(',');
    if !WEEKDAYS.iter().any(|d| d.eq_ignore_ascii_case(wday)) {
        return None;
    }
    let month = date::month_from_name(w.get(1)?)?;
    let day: u8 = small_number(w.get(2)?, 2)? as u8;
    let (h, m, s) = clock(w.get(3)?)?;
    // Before the year: a time zone, named or numeric; after it: a numeric one, then
    // anything (UUCP's `remote from <host>`).
    let mut offset = 0i32;
    let mut year = None;
    let mut rest = w.iter().skip(4);
    for t in rest.by_ref().take(3) {
        if t.len() == 4 {
            if let Some(y) = small_number(t, 4) {
                year = Some(y as i32);
                break;
            }
        }
        match zone(t) {
            Some(o) => offset = o,
            None if t.len() <= 5 && t.bytes().all(|c| c.is_ascii_alphabetic()) => {}
            None => return None,
        }
    }
    if let Some(o) = rest.next().and_then(|t| zone(t)) {
        offset = o;
    }
    let d = Date::new(year?, month, day)?;
    Some(date::to_unix(d, h, m, s, offset))
}

/// `hh:mm` or `hh:mm:ss` within a day.
fn clock(t: &str) -> Option<(u32, u32, u32)> {
    let mut parts = t.split(':');
    let h = small_number(parts.next()?, 2)?;
    let m = small_number(parts.next()?, 2)?;
    let s = match parts.next() {
        Some(s) => small_number(s, 2)?,
        None => 0,
    };
    (parts.next().is_none() && h < 24 && m < 60 && s < 61).then_some((h, m, s.min(59)))
}

/// `+hhmm` or `-hhmm` in minutes east.
fn zone(t: &str) -> Option<i32> {
    let (sign, digits) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    if digits.len() != 4 {
        return None;
    }
    let n = small_number(digits, 4)? as i32;
    (n % 100 < 60 && n / 100 < 24).then_some(sign * (n / 100 * 60 + n % 100))
}

/// A decimal number of 1 to `max` ASCII digits.
fn small_number(t: &str, max: usize) -> Option<u32> {
    (!t.is_empty() && t.len() <= max && t.bytes().all(|c| c.is_ascii_digit()))
        .then(|| t.parse().ok())
        .flatten()
}

/// The separator line for a message from `sender` received at `date` (UTC), with its
/// line end: `From <sender> Www Mmm dd hh:mm:ss yyyy\n`. A sender that is empty or holds
/// anything but printable ASCII without spaces is written as `MAILER-DAEMON`.
pub fn format(sender: &str, date: i64) -> Vec<u8> {
    let ok =
        !sender.is_empty() && sender.len() <= 256 && sender.bytes().all(|c| c.is_ascii_graphic());
    let sender = if ok { sender } else { "MAILER-DAEMON" };
    let d = Date::from_unix(date);
    let secs = date.rem_euclid(86400);
    // 1970-01-01 was a Thursday.
    let wday = WEEKDAYS[(date.div_euclid(86400) + 3).rem_euclid(7) as usize];
    let month = date::MONTHS[usize::from(d.month) - 1];
    format!(
        "From {sender} {wday} {month} {:>2} {:02}:{:02}:{:02} {}\n",
        d.day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.year
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u8, d: u8, h: u32, mi: u32, s: u32) -> i64 {
        date::to_unix(Date::new(y, mo, d).unwrap(), h, mi, s, 0)
    }

    #[test]
    fn separator_lines_as_delivery_agents_write_them() {
        let t = at(2026, 12, 7, 16, 49, 14);
        for (line, sender, when) in [
            (
                "From MAILER-DAEMON Mon Dec  7 16:49:14 2026",
                "MAILER-DAEMON",
                t,
            ),
            (
                "From bob@example.org Mon Dec 7 16:49:14 2026",
                "bob@example.org",
                t,
            ),
            (
                "From bob@example.org  Mon Dec 07 16:49:14 2026\r",
                "bob@example.org",
                t,
            ),
            ("From bob Mon Dec  7 16:49 2026", "bob", t - 14),
            ("From bob Mon Dec  7 16:49:14 2026 +0100", "bob", t - 3600),
            (
                "From bob Mon Dec  7 16:49:14 -0800 2026",
                "bob",
                t + 8 * 3600,
            ),
            ("From bob Mon Dec  7 16:49:14 PST 2026", "bob", t),
            ("From bob Mon Dec  7 16:49:14 2026 remote from gw", "bob", t),
            (
                "From \"John Doe\"@example.org Mon Dec  7 16:49:14 2026",
                "\"John Doe\"@example.org",
                t,
            ),
            ("From  Mon Dec  7 16:49:14 2026", "", t),
        ] {
            let got = parse(line.as_bytes()).unwrap_or_else(|| panic!("{line}"));
            assert_eq!((got.sender.as_str(), got.date), (sender, when), "{line}");
        }
    }

    #[test]
    fn body_lines_starting_with_from_are_not_separators() {
        for line in [
            "From here on, we go by train.",
            "From: bob@example.org",
            "From bob Mon Dec 32 16:49:14 2026",
            "From bob Mon Dec  7 25:49:14 2026",
            "From bob Mon Foo  7 16:49:14 2026",
            "From bob Mon Dec  7 16:49:14",
            "From bob Mon Dec  7 16:49:14 (and then) 2026",
            ">From bob Mon Dec  7 16:49:14 2026",
            "from bob Mon Dec  7 16:49:14 2026",
        ] {
            assert_eq!(parse(line.as_bytes()), None, "{line}");
        }
        let long = format!("From {} Mon Dec  7 16:49:14 2026", "x".repeat(MAX_LEN));
        assert_eq!(parse(long.as_bytes()), None);
    }

    #[test]
    fn written_lines_parse_back() {
        for t in [
            0,
            86_399,
            1_733_590_154,
            at(2026, 2, 28, 23, 59, 59),
            at(1969, 7, 20, 20, 17, 40),
        ] {
            let line = format("bob@example.org", t);
            assert!(line.ends_with(b"\n"));
            let got = parse(&line[..line.len() - 1]).unwrap();
            assert_eq!((got.sender.as_str(), got.date), ("bob@example.org", t));
        }
        let line = format("two words", 0);
        assert_eq!(&line[..], b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n");
        assert!(format("", 0).starts_with(b"From MAILER-DAEMON "));
        assert!(format("a\nb", 0).starts_with(b"From MAILER-DAEMON "));
    }
}
