//! SEARCH criteria (RFC 3501 §6.4.4) as a format-neutral tree, and their evaluation over a
//! message's metadata and (only when a key needs it) its content.
//!
//! The IMAP parser builds [`SearchKey`]s; strings in it are already UTF-8 (the parser
//! converted from the command's CHARSET).

use super::date::Date;
use super::MessageMeta;

/// A set of numbers (message sequence numbers or UIDs), as sent: ranges may be reversed and
/// `*` is [`NumSet::STAR`] until resolved against the mailbox (RFC 3501 §9 `sequence-set`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumSet {
    /// Inclusive ranges exactly as sent (`a:b` with a > b allowed, `*` = `STAR`).
    pub ranges: Vec<(u32, u32)>,
}

impl NumSet {
    /// Stands for `*`: the largest number in use.
    pub const STAR: u32 = u32::MAX;

    /// Does the set contain `n`, with `*` meaning `max`? RFC 3501 §6.4.8: `*` is the
    /// largest number in use; for `n:*` with n > max it still matches max.
    pub fn contains(&self, n: u32, max: u32) -> bool {
        self.ranges.iter().any(|&(a, b)| {
            let a = if a == Self::STAR { max } else { a };
            let b = if b == Self::STAR { max } else { b };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            lo <= n && n <= hi
        })
    }
}

/// One search key. `And` is the implicit conjunction of a parenthesized list or of the
/// top-level keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    All,
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    /// Message sequence numbers.
    SeqSet(NumSet),
    Uid(NumSet),
    Answered,
    Deleted,
    Draft,
    Flagged,
    Seen,
    Recent,
    New,
    Old,
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unseen,
    Keyword(String),
    Unkeyword(String),
    /// Internal date (date only, timezone ignored: RFC 3501 §6.4.4).
    Before(Date),
    On(Date),
    Since(Date),
    /// The Date: header.
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Larger(u64),
    Smaller(u64),
    /// `HEADER name value`; also FROM/TO/CC/BCC/SUBJECT, which the parser turns into this.
    Header(String, String),
    Body(String),
    Text(String),
}

/// What evaluation needs to know about one message besides its content.
pub struct MessageContext<'a> {
    pub seq: u32,
    pub max_seq: u32,
    pub max_uid: u32,
    pub meta: &'a MessageMeta,
    pub recent: bool,
}
pub fn needs_content(_k: &SearchKey) -> bool {
    false
}
pub fn matches(_k: &SearchKey, _c: &MessageContext, _d: Option<&[u8]>) -> bool {
    false
}
