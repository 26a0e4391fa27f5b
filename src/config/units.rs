//! Parsing of human-friendly durations ("2s", "30m", "500ms", "1h30m") and sizes
//! ("64KiB", "50M"). Pure string functions; the TOML walk decides what to call.

use std::time::Duration;

/// Why a duration or size string was refused; `input` is the string as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("empty duration")]
    EmptyDuration,
    #[error("bad duration {input:?}: expected a number at {at:?}")]
    DurationNumberExpected { input: String, at: String },
    #[error("bad duration {0:?}: number too large")]
    DurationNumberTooLarge(String),
    #[error("bad duration {input:?}: missing unit after {n}")]
    DurationUnitMissing { input: String, n: u64 },
    #[error("bad duration {input:?}: unknown unit {unit:?} (use ms, s, m, h or d)")]
    DurationUnitUnknown { input: String, unit: String },
    #[error("bad size {0:?}: expected a number")]
    SizeNumberExpected(String),
    #[error("bad size {0:?}: number too large")]
    SizeNumberTooLarge(String),
    #[error("bad size {input:?}: unknown unit {unit:?} (use K, M or G)")]
    SizeUnitUnknown { input: String, unit: String },
    #[error("bad size {0:?}: too large")]
    SizeTooLarge(String),
}

/// Parses a duration string: one or more `NUMBER UNIT` groups, units `ms`, `s`, `m`,
/// `h`, `d`. A bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(UnitError::EmptyDuration);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(UnitError::DurationNumberExpected {
                input: s.into(),
                at: rest.into(),
            });
        }
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num
            .parse()
            .map_err(|_| UnitError::DurationNumberTooLarge(s.into()))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "s" | "sec" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            "" => return Err(UnitError::DurationUnitMissing { input: s.into(), n }),
            u => {
                return Err(UnitError::DurationUnitUnknown {
                    input: s.into(),
                    unit: u.into(),
                })
            }
        };
        total = total.saturating_add(part);
        rest = tail.trim_start();
    }
    Ok(total)
}

/// Parses a size string: a number with an optional `K`/`M`/`G` suffix (binary
/// multiples; `KB`, `KiB`, `k` accepted alike) and an optional `B`.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(UnitError::SizeNumberExpected(s.into()));
    }
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| UnitError::SizeNumberTooLarge(s.into()))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => {
            return Err(UnitError::SizeUnitUnknown {
                input: s.into(),
                unit: u.into(),
            })
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| UnitError::SizeTooLarge(s.into()))
}

/// Formats a duration the way the parser reads it back ("30m", "2s", "500ms").
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_ok());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1h30").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        // The texts an admin reads in check-config output.
        let e = parse_duration("5x").unwrap_err().to_string();
        assert_eq!(
            e,
            "bad duration \"5x\": unknown unit \"x\" (use ms, s, m, h or d)"
        );
        let e = parse_duration("1h30").unwrap_err().to_string();
        assert_eq!(e, "bad duration \"1h30\": missing unit after 30");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("50M"), Ok(50 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("10T").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(
            parse_size("10T").unwrap_err().to_string(),
            "bad size \"10T\": unknown unit \"t\" (use K, M or G)"
        );
    }

    #[test]
    fn duration_round_trip() {
        for d in [
            Duration::from_secs(1800),
            Duration::from_millis(500),
            Duration::from_secs(2),
            Duration::from_secs(7200),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
