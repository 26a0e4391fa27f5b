//! The POP3 protocol on Loft's mail store: RFC 1939 (USER/PASS, APOP, STAT, LIST, RETR,
//! DELE, NOOP, RSET, QUIT, TOP, UIDL), RFC 2449 CAPA and response codes, RFC 2595 STLS,
//! RFC 5034 AUTH (PLAIN, LOGIN, initial responses) and RFC 3206 codes ([SYS/TEMP], [AUTH]).
//!
//! * [`command`] — the pure line parser.
//! * [`session`] — the state machine AUTHORIZATION → TRANSACTION → UPDATE.
//! * UIDL values come from the configured format, [`crate::config::uidl`].
//! * [`stuff`] — byte-stuffing and the TOP cut.
//! * [`registry`] — the in-process maildrop locks ([IN-USE]) and login delays.
//!
//! POP3 sees one mailbox, the user's INBOX, through [`crate::mailbox`]; it shares the
//! authenticator, TLS, connection limits and the connection I/O ([`crate::net`]) with
//! IMAP, and never names IMAP. It never touches files.

pub mod command;
pub mod registry;
pub mod session;
pub mod stuff;
