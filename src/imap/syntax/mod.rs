//! Grammar pieces shared by the parser and the response encoder.
//!
//! * [`seqset`] — RFC 3501 §9 `sequence-set` parsing and compact formatting (COPYUID).
//! * [`datetime`] — RFC 3501 §9 `date-time` and `date` parsing.
//!
//! These functions work on bytes already cut out of a command; they know nothing about
//! sessions, storage or the wire framing.

pub mod bodystructure;
pub mod datetime;
pub mod envelope;
pub mod seqset;
