//! The `[pop3] uidl_format` value: UIDL values (RFC 1939 §7) from a format string, so that an admin migrating from
//! Dovecot or Courier keeps the identifiers clients already know and nothing is
//! downloaded twice. A UIDL is built only from the message's UID and the mailbox's
//! UIDVALIDITY, both stable for the life of the message, so the value never changes.
//!
//! Syntax (a subset of Dovecot's `pop3_uidl_format`):
//!
//! * `%u` the UID, `%v` the UIDVALIDITY, in decimal; `%{uid}`, `%{uidvalidity}` the same.
//! * `%X` before the letter: hexadecimal (lowercase digits, like Dovecot's `X`).
//! * `%0N` before that: zero-padded to at least N digits (`%08Xu`).
//! * `%%` a percent sign. Any other character is copied.
//!
//! The default `%08Xu%08Xv` is Dovecot's default. Courier's formats are `%u` (version 1)
//! and `%v-%u` (version 2). Pure: no I/O.

/// The default, Dovecot's.
pub const DEFAULT_FORMAT: &str = "%08Xu%08Xv";
/// RFC 1939 §7: a unique-id is 1 to 70 characters.
const MAX_UIDL: usize = 70;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Uid,
    UidValidity,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Var { var: Var, hex: bool, width: usize },
}

/// Why a format string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UidlFormatError {
    #[error("{0:?} is not allowed: a UIDL is printable ASCII without spaces (RFC 1939 section 7)")]
    NotPrintable(char),
    #[error("unknown variable %{{{0}}} (use %u, %v, %{{uid}}, %{{uidvalidity}})")]
    UnknownNamedVariable(String),
    #[error(
        "unknown variable %{0} (supported: %u, %v, %%, with %X for hex and %0N for zero padding; \
         Dovecot's %m, %f and %g need the message file and are not supported)"
    )]
    UnknownVariable(char),
    #[error("ends with a lone %")]
    LonePercent,
    #[error("%{0}: a width without a leading 0 truncates in Dovecot and would make UIDLs collide; write %0{0}")]
    WidthWithoutZero(String),
    #[error("width {0} is too large")]
    WidthTooLarge(String),
    #[error("must contain %u: without the UID two messages would share a UIDL")]
    NoUid,
    #[error("renders up to {0} characters; RFC 1939 section 7 allows 70")]
    TooLong(usize),
}

/// A checked format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidlFormat {
    pieces: Vec<Piece>,
}

impl Default for UidlFormat {
    fn default() -> UidlFormat {
        UidlFormat::parse(DEFAULT_FORMAT).unwrap_or(UidlFormat {
            pieces: vec![Piece::Var {
                var: Var::Uid,
                hex: false,
                width: 0,
            }],
        })
    }
}

impl UidlFormat {
    /// Checks a format: known variables only, `%u` present (otherwise two messages could
    /// share a UIDL), printable ASCII without spaces, at most 70 characters rendered.
    pub fn parse(fmt: &str) -> Result<UidlFormat, UidlFormatError> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                if !c.is_ascii_graphic() {
                    return Err(UidlFormatError::NotPrintable(c));
                }
                lit.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                lit.push('%');
                continue;
            }
            let mut width_text = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                width_text.push(d);
                chars.next();
            }
            let hex = chars.next_if(|&c| c == 'X' || c == 'x').is_some();
            let var = match chars.next() {
                Some('u') => Var::Uid,
                Some('v') => Var::UidValidity,
                Some('{') => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    match name.as_str() {
                        "uid" => Var::Uid,
                        "uidvalidity" => Var::UidValidity,
                        _ => return Err(UidlFormatError::UnknownNamedVariable(name)),
                    }
                }
                Some(o) => return Err(UidlFormatError::UnknownVariable(o)),
                None => return Err(UidlFormatError::LonePercent),
            };
            let width = if width_text.is_empty() {
                0
            } else if !width_text.starts_with('0') {
                return Err(UidlFormatError::WidthWithoutZero(width_text));
            } else {
                width_text
                    .parse::<usize>()
                    .ok()
                    .filter(|w| *w <= MAX_UIDL)
                    .ok_or(UidlFormatError::WidthTooLarge(width_text))?
            };
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Var { var, hex, width });
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        if !pieces
            .iter()
            .any(|p| matches!(p, Piece::Var { var: Var::Uid, .. }))
        {
            return Err(UidlFormatError::NoUid);
        }
        let f = UidlFormat { pieces };
        let longest = f.render(u32::MAX, u32::MAX).len();
        if longest > MAX_UIDL {
            return Err(UidlFormatError::TooLong(longest));
        }
        Ok(f)
    }

    /// The UIDL of message `uid` in a mailbox with `uid_validity`.
    pub fn render(&self, uid: u32, uid_validity: u32) -> String {
        let mut out = String::with_capacity(16);
        for p in &self.pieces {
            match p {
                Piece::Literal(s) => out.push_str(s),
                Piece::Var { var, hex, width } => {
                    let n = match var {
                        Var::Uid => uid,
                        Var::UidValidity => uid_validity,
                    };
                    let digits = if *hex {
                        format!("{n:x}")
                    } else {
                        n.to_string()
                    };
                    for _ in digits.len()..*width {
                        out.push('0');
                    }
                    out.push_str(&digits);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_default() {
        let f = UidlFormat::default();
        assert_eq!(f.render(1, 0x5a6f_d8e1), "000000015a6fd8e1");
        assert_eq!(f.render(0xabcdef12, 7), "abcdef1200000007");
        assert_eq!(f, UidlFormat::parse("%08Xu%08Xv").unwrap());
    }

    #[test]
    fn courier_and_long_names() {
        assert_eq!(
            UidlFormat::parse("%v-%u").unwrap().render(42, 1700),
            "1700-42"
        );
        assert_eq!(UidlFormat::parse("%u").unwrap().render(42, 1700), "42");
        assert_eq!(
            UidlFormat::parse("%{uidvalidity}.%{uid}")
                .unwrap()
                .render(3, 9),
            "9.3"
        );
        assert_eq!(UidlFormat::parse("x%%%04u").unwrap().render(5, 9), "x%0005");
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "%v",
            "abc",
            "%m",
            "%f",
            "%g%u",
            "%8u",
            "%u%",
            "%{md5}%u",
            "a b%u",
            "%u\t",
            "%070u%070v",
        ] {
            assert!(UidlFormat::parse(bad).is_err(), "{bad:?} accepted");
        }
        // The texts check-config shows.
        let text = |f: &str| UidlFormat::parse(f).unwrap_err().to_string();
        assert_eq!(
            text("%{md5}%u"),
            "unknown variable %{md5} (use %u, %v, %{uid}, %{uidvalidity})"
        );
        assert_eq!(
            text("%8u"),
            "%8: a width without a leading 0 truncates in Dovecot and would make UIDLs collide; write %08"
        );
        assert!(text("%m").starts_with("unknown variable %m (supported: %u, %v, %%, with %X"));
        assert!(text("%m")
            .ends_with("Dovecot's %m, %f and %g need the message file and are not supported)"));
        assert_eq!(
            text("%070u%070v"),
            "renders up to 140 characters; RFC 1939 section 7 allows 70"
        );
    }

    proptest::proptest! {
        #[test]
        fn default_is_valid_and_injective(a in proptest::num::u32::ANY, b in proptest::num::u32::ANY, v in proptest::num::u32::ANY) {
            let f = UidlFormat::default();
            let (ra, rb) = (f.render(a, v), f.render(b, v));
            proptest::prop_assert!(ra.len() <= 70 && ra.bytes().all(|c| (0x21..=0x7e).contains(&c)));
            proptest::prop_assert_eq!(a == b, ra == rb);
        }
    }
}
