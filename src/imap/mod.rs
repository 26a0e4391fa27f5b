//! The IMAP4rev1 protocol (RFC 3501 and the extensions listed in CAPABILITY).
//!
//! * [`command`] — the parsed command tree and the parser (framed bytes -> [`command::Command`]).
//! * [`parse`] — the hand-written command parser behind [`command::parse`].
//! * [`syntax`] — shared grammar pieces: sequence sets, modified UTF-7, date-time, ENVELOPE and
//!   BODYSTRUCTURE encoding.
//! * [`response`] — string/literal encoding helpers and error-kind -> response-code mapping.
//! * [`session`] — the per-connection state machine, framing, IDLE and untagged updates.
//!
//! Nothing in here touches files: storage goes through [`crate::mailbox`].

pub mod command;
pub mod parse;
pub mod response;
pub mod session;
pub mod syntax;
