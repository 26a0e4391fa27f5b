//! The plaintext SASL mechanisms as the auth socket runs them: PLAIN (RFC 4616) and LOGIN
//! (draft-murchison-sasl-login), each a small state machine over base64 messages that
//! ends in a user name and password to check; and the MECH lines of the handshake.
//! CRAM-MD5 and SCRAM-SHA-256 run through [`crate::auth::exchange`] (see `conn`).
//! Knows the mechanisms' message formats, nothing of sockets or password checking.

use base64::Engine;

use crate::auth::exchange::Mech;
use crate::auth::sasl;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The MECH lines for the mechanisms offered now (name, Dovecot's security flags):
/// PLAIN and LOGIN `plaintext`, CRAM-MD5 `dictionary active`, SCRAM-SHA-256
/// `mutual-auth`, as Dovecot announces them.
pub fn mech_lines(mechs: &[Mech]) -> Vec<(&'static str, &'static str)> {
    mechs.iter().map(|m| (m.name(), m.socket_flags())).collect()
}

/// Decodes a base64 CONT/`resp=` value; empty (or `=`) is the empty message.
pub fn decode_data(data: &str) -> Option<Vec<u8>> {
    decode(data)
}

/// Where a multi-step exchange stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// PLAIN without an initial response: the message comes in the first CONT.
    PlainMessage,
    LoginUser,
    LoginPassword {
        user: String,
    },
}

/// The next move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send `CONT id challenge` (base64) and wait in this state.
    Cont(String, State),
    /// Check these credentials.
    Check { user: String, password: String },
    /// Fail the request; the text goes in `reason=` (never says why a login failed).
    Fail(&'static str),
}

fn decode(data: &str) -> Option<Vec<u8>> {
    let d = data.trim();
    if d.is_empty() || d == "=" {
        return Some(Vec::new());
    }
    B64.decode(d).ok()
}

fn plain(data: &str) -> Step {
    let Some(raw) = decode(data) else {
        return Step::Fail("Invalid base64 data");
    };
    match sasl::decode_plain(&raw) {
        Some((_authz, user, password)) => Step::Check { user, password },
        None => Step::Fail("Invalid PLAIN message"),
    }
}

/// Starts `mech` (upper-case) with the optional initial response.
/// An empty `resp=` is taken as no initial response (Exim sends `resp=` with nothing
/// after it when the SMTP client gave none).
pub fn start(mech: &str, resp: Option<&str>) -> Step {
    let resp = resp.filter(|r| !r.trim().is_empty());
    match (mech, resp) {
        ("PLAIN", Some(r)) => plain(r),
        ("PLAIN", None) => Step::Cont(String::new(), State::PlainMessage),
        ("LOGIN", Some(r)) => next(State::LoginUser, r),
        ("LOGIN", None) => Step::Cont(B64.encode(sasl::LOGIN_USER_PROMPT), State::LoginUser),
        _ => Step::Fail("Unsupported authentication mechanism"),
    }
}

/// Advances an exchange with the client's CONT data.
pub fn next(state: State, data: &str) -> Step {
    match state {
        State::PlainMessage => plain(data),
        State::LoginUser => match decode(data).map(String::from_utf8) {
            Some(Ok(user)) if !user.is_empty() => Step::Cont(
                B64.encode(sasl::LOGIN_PASSWORD_PROMPT),
                State::LoginPassword { user },
            ),
            Some(Ok(_)) => Step::Fail("Empty user name"),
            _ => Step::Fail("Invalid base64 data"),
        },
        State::LoginPassword { user } => match decode(data).map(String::from_utf8) {
            Some(Ok(password)) => Step::Check { user, password },
            _ => Step::Fail("Invalid base64 data"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(u: &str, p: &str) -> Step {
        Step::Check {
            user: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn plain_with_and_without_initial_response() {
        let msg = B64.encode(b"\0alice\0pw");
        assert_eq!(start("PLAIN", Some(&msg)), check("alice", "pw"));
        let Step::Cont(ch, st) = start("PLAIN", None) else {
            panic!()
        };
        assert_eq!(ch, "");
        assert_eq!(next(st, &msg), check("alice", "pw"));
        assert_eq!(
            start("PLAIN", Some("!!!")),
            Step::Fail("Invalid base64 data")
        );
        assert_eq!(
            start("PLAIN", Some(&B64.encode(b"bob\0alice\0pw"))),
            Step::Fail("Invalid PLAIN message")
        );
    }

    #[test]
    fn login_steps() {
        let Step::Cont(ch, st) = start("LOGIN", None) else {
            panic!()
        };
        assert_eq!(B64.decode(ch).unwrap(), b"Username:");
        let Step::Cont(ch, st) = next(st, &B64.encode("alice")) else {
            panic!()
        };
        assert_eq!(B64.decode(ch).unwrap(), b"Password:");
        assert_eq!(next(st, &B64.encode("s3cret")), check("alice", "s3cret"));
        // Initial response = user name.
        let Step::Cont(_, st) = start("LOGIN", Some(&B64.encode("bob"))) else {
            panic!()
        };
        assert_eq!(st, State::LoginPassword { user: "bob".into() });
        assert_eq!(next(State::LoginUser, ""), Step::Fail("Empty user name"));
        assert!(matches!(
            start("LOGIN", Some("")),
            Step::Cont(_, State::LoginUser)
        ));
        assert!(matches!(
            start("PLAIN", Some("")),
            Step::Cont(_, State::PlainMessage)
        ));
        assert_eq!(
            start("CRAM-MD5", None),
            Step::Fail("Unsupported authentication mechanism")
        );
    }
}
