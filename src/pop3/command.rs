//! The POP3 command parser: one line (without its CRLF) in, a typed [`Command`] or a
//! [`ParseError`] out. A pure function over bytes — no I/O, no state — which is what the
//! fuzz target drives. Which commands are allowed in which state is the session's
//! business, not the parser's.
//!
//! RFC 1939 §3: a keyword of 3 or 4 characters, case-insensitive, arguments separated by
//! single spaces. We accept runs of spaces and a trailing space (clients send both), but
//! no control characters. RFC 2449 §4 caps a command line at 255 octets; SASL initial
//! responses (RFC 5034 §4) may be longer, so the caller passes its own limit.

/// A parsed command. Message numbers are 1-based as on the wire (RFC 1939 §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The whole rest of the line: RFC 1939 §7 lets a password contain spaces.
    Pass(String),
    Apop {
        user: String,
        digest: String,
    },
    /// `AUTH` alone lists the mechanisms (as Dovecot and RFC 1734-era clients expect).
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    Stls,
    Capa,
    Quit,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Top {
        msg: u32,
        lines: u64,
    },
    Uidl(Option<u32>),
}

/// Why a line was refused; `message` goes to the client after `-ERR `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub message: &'static str,
}

fn err<T>(message: &'static str) -> Result<T, ParseError> {
    Err(ParseError { message })
}

/// The default line limit (octets, without CRLF) when the caller has no other.
pub const DEFAULT_LINE_LIMIT: usize = 8192;
/// Longest argument other than PASS and SASL data; RFC 1939 §3 says 40, but user names
/// with domains and long APOP digests exceed that in practice.
const MAX_ARG: usize = 1024;

/// Parses one command line (without CRLF) of at most `limit` octets.
pub fn parse(line: &[u8], limit: usize) -> Result<Command, ParseError> {
    if line.len() > limit {
        return err("Command line too long.");
    }
    if line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return err("Control characters in command.");
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return err("Command is not valid UTF-8.");
    };
    let (keyword, rest) = match text.find(' ') {
        Some(sp) => (&text[..sp], &text[sp + 1..]),
        None => (text, ""),
    };
    if keyword.is_empty() {
        return err("Empty command.");
    }
    let kw = keyword.to_ascii_uppercase();
    if kw == "PASS" {
        // RFC 1939 §7: "the POP3 server may treat spaces in the argument as part of the
        // password". A trailing CR has already been removed by the framer.
        if rest.is_empty() {
            return err("PASS needs a password.");
        }
        return Ok(Command::Pass(rest.to_string()));
    }
    let args: Vec<&str> = rest.split([' ', '\t']).filter(|a| !a.is_empty()).collect();
    let long = |a: &&str| a.len() > MAX_ARG;
    let arg_count = |min: usize, max: usize| -> Result<(), ParseError> {
        if args.len() < min {
            err("Missing argument.")
        } else if args.len() > max {
            err("Too many arguments.")
        } else {
            Ok(())
        }
    };
    match kw.as_str() {
        "USER" => {
            arg_count(1, 1)?;
            if args.iter().any(long) {
                return err("User name too long.");
            }
            Ok(Command::User(args[0].to_string()))
        }
        "APOP" => {
            arg_count(2, 2)?;
            if args.iter().any(long) {
                return err("Argument too long.");
            }
            Ok(Command::Apop {
                user: args[0].to_string(),
                digest: args[1].to_string(),
            })
        }
        "AUTH" => {
            arg_count(0, 2)?;
            let mechanism = args.first().map(|m| m.to_ascii_uppercase());
            if mechanism.as_ref().is_some_and(|m| m.len() > 20) {
                return err("Mechanism name too long.");
            }
            Ok(Command::Auth {
                mechanism,
                initial: args.get(1).map(|s| s.to_string()),
            })
        }
        "STLS" => none(&args, Command::Stls),
        "CAPA" => none(&args, Command::Capa),
        "QUIT" => none(&args, Command::Quit),
        "STAT" => none(&args, Command::Stat),
        "NOOP" => none(&args, Command::Noop),
        "RSET" => none(&args, Command::Rset),
        "LIST" => {
            arg_count(0, 1)?;
            Ok(Command::List(opt_msg(&args)?))
        }
        "UIDL" => {
            arg_count(0, 1)?;
            Ok(Command::Uidl(opt_msg(&args)?))
        }
        "RETR" => {
            arg_count(1, 1)?;
            Ok(Command::Retr(msg_number(args[0])?))
        }
        "DELE" => {
            arg_count(1, 1)?;
            Ok(Command::Dele(msg_number(args[0])?))
        }
        "TOP" => {
            arg_count(2, 2)?;
            let msg = msg_number(args[0])?;
            let lines = number(args[1]).ok_or(ParseError {
                message: "Invalid number of lines.",
            })?;
            Ok(Command::Top { msg, lines })
        }
        _ => err("Unknown command."),
    }
}

fn none(args: &[&str], cmd: Command) -> Result<Command, ParseError> {
    if args.is_empty() {
        Ok(cmd)
    } else {
        err("Too many arguments.")
    }
}

/// A non-negative decimal number (no sign); `None` when malformed or above u64.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A message number: 1 or more (RFC 1939 §5: "message-number ... starting at 1").
fn msg_number(s: &str) -> Result<u32, ParseError> {
    match number(s) {
        Some(n) if n >= 1 => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        _ => err("Invalid message number."),
    }
}

fn opt_msg(args: &[&str]) -> Result<Option<u32>, ParseError> {
    args.first().map(|a| msg_number(a)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        parse(s.as_bytes(), DEFAULT_LINE_LIMIT)
    }

    #[test]
    fn rfc1939_commands() {
        assert_eq!(p("USER mrose"), Ok(Command::User("mrose".into())));
        assert_eq!(p("user mrose"), Ok(Command::User("mrose".into())));
        assert_eq!(
            p("PASS secret word "),
            Ok(Command::Pass("secret word ".into()))
        );
        assert_eq!(p("STAT"), Ok(Command::Stat));
        assert_eq!(p("LIST"), Ok(Command::List(None)));
        assert_eq!(p("LIST 2"), Ok(Command::List(Some(2))));
        assert_eq!(p("RETR 1"), Ok(Command::Retr(1)));
        assert_eq!(p("DELE 1"), Ok(Command::Dele(1)));
        assert_eq!(p("NOOP"), Ok(Command::Noop));
        assert_eq!(p("RSET"), Ok(Command::Rset));
        assert_eq!(p("QUIT"), Ok(Command::Quit));
        assert_eq!(p("TOP 1 10"), Ok(Command::Top { msg: 1, lines: 10 }));
        assert_eq!(p("TOP 1 0"), Ok(Command::Top { msg: 1, lines: 0 }));
        assert_eq!(p("UIDL"), Ok(Command::Uidl(None)));
        assert_eq!(p("uidl 3"), Ok(Command::Uidl(Some(3))));
        assert_eq!(
            p("APOP mrose c4c9334bac560ecc979e58001b3e22fb"),
            Ok(Command::Apop {
                user: "mrose".into(),
                digest: "c4c9334bac560ecc979e58001b3e22fb".into()
            })
        );
        assert_eq!(p("CAPA"), Ok(Command::Capa));
        assert_eq!(p("STLS"), Ok(Command::Stls));
        // Trailing space, as some clients send.
        assert_eq!(p("STAT "), Ok(Command::Stat));
        assert_eq!(p("LIST 2 "), Ok(Command::List(Some(2))));
    }

    #[test]
    fn auth_forms() {
        assert_eq!(
            p("AUTH"),
            Ok(Command::Auth {
                mechanism: None,
                initial: None
            })
        );
        assert_eq!(
            p("auth plain"),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: None
            })
        );
        assert_eq!(
            p("AUTH PLAIN AGFsaWNlAHNlY3JldA=="),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: Some("AGFsaWNlAHNlY3JldA==".into())
            })
        );
        assert!(p("AUTH PLAIN a b").is_err());
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            " ",
            "FROB",
            "RETR",
            "RETR 0",
            "RETR -1",
            "RETR +1",
            "RETR x",
            "LIST 1 2",
            "STAT x",
            "TOP 1",
            "TOP 1 -1",
            "TOP 0 1",
            "USER",
            "USER a b",
            "PASS",
            "APOP a",
            "RETR 99999999999999999999999",
            "NOOP\0",
            "US\x01ER a",
        ] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&[0xff, b' '], 100).is_err());
        let long = format!("USER {}", "a".repeat(300));
        assert_eq!(
            parse(long.as_bytes(), 255).unwrap_err().message,
            "Command line too long."
        );
    }

    #[test]
    fn huge_numbers_saturate_to_no_such_message() {
        // Above u32 but a valid number: the session answers "no such message".
        assert_eq!(p("RETR 99999999999"), Ok(Command::Retr(u32::MAX)));
        assert_eq!(
            p("TOP 1 99999999999"),
            Ok(Command::Top {
                msg: 1,
                lines: 99_999_999_999
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&data, 255);
        }

        #[test]
        fn numbers_round_trip(n in 1u32..) {
            proptest::prop_assert_eq!(p(&format!("RETR {n}")), Ok(Command::Retr(n)));
        }
    }
}
