//! One-pass MIME structure scanner: header/body split, part offsets, octet and line counts,
//! nested message/rfc822. Its output is what FETCH (BODY[section], BODYSTRUCTURE, ENVELOPE)
//! and SEARCH need, and what the index engine will cache.
//!
//! * [`header`] — header blocks, fields, unfolding, structured-field tokens.
//! * [`mime`] — the [`Part`] tree ([`parse`]).
//! * [`section`] — FETCH body sections ([`section()`]).
//! * [`partmap`] — the part tree as compact byte offsets (the `mime.parts` cache value)
//!   and sections resolved to byte ranges with it ([`PartMap`]).
//! * [`address`] — address lists for ENVELOPE and FROM/TO search.
//! * [`encoded_word`] — RFC 2047 decoding; [`decode`] — transfer encodings and charsets.
//! * [`rfc5322date`] — Date: header parsing.
//!
//! Nothing here knows IMAP syntax; the encoders live in `crate::imap::syntax`.

pub mod address;
pub mod decode;
pub mod encoded_word;
pub mod header;
pub mod mime;
pub mod partmap;
pub mod rfc5322date;
pub mod section;

pub use mime::{parse, Body, ContentType, Disposition, Part, MAX_DEPTH};
pub use partmap::{Located, PartMap};
pub use section::{find_part, section};

/// A body section as named in FETCH (RFC 3501 §6.4.5 `section`), format-neutral.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Section {
    /// Part numbers, e.g. `[1, 2]` for `1.2`; empty for the whole message.
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

impl Section {
    /// The message's own header block or fields of it (`HEADER`, `HEADER.FIELDS`,
    /// `HEADER.FIELDS.NOT`): all of it lies in the header block.
    pub fn header_only(&self) -> bool {
        self.part.is_empty()
            && matches!(
                self.text,
                Some(
                    SectionText::Header
                        | SectionText::HeaderFields(_)
                        | SectionText::HeaderFieldsNot(_)
                )
            )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionText {
    Header,
    /// Field names as sent (matching is case-insensitive).
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    /// Only valid with a part number.
    Mime,
}
