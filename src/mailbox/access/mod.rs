//! Message access: the format-neutral layer between the protocols and a mail backend.
//!
//! The protocols (IMAP FETCH and SEARCH, POP3 RETR and TOP) never decide how to get at a
//! message; they ask a [`Message`] for what they need, and this layer decides whether the
//! answer comes from the index cache, from a byte range of the message file, from the
//! header block alone or from the whole message, parses it at most once, and offers what
//! it computed back to the cache. [`search()`] does the same for SEARCH and owns its
//! chunking and its threads.
//!
//! # The backend boundary
//!
//! A mail format (Maildir today, mbox next) implements [`Store`](super::Store) and
//! [`Mailbox`] and provides only what depends on its on-disk format:
//!
//! * list/scan: [`Mailbox::sync`] (the messages, their UIDs,
//!   flags, sizes and dates as far as known without opening them);
//! * open a message's bytes: [`Mailbox::fetch_message`]
//!   (CRLF), `fetch_header`, `fetch_range` (`Ok(None)` when it cannot),
//!   `fetch_for_search` (as stored), and `internal_date` for a date not known yet;
//! * save: [`Store::append`](super::Store::append), `copy_to`;
//! * flags on disk: `store`; expunge: `expunge`;
//! * the cache of the folder's index, as opaque named values: `cache_lookup`,
//!   `cache_offer`.
//!
//! Everything above that — which fields to look up, checking a cached part map against
//! the message's size, reading sections by range, what to offer to the cache, header-only
//! reads, the SEARCH engine — lives here, once, for every backend.
//!
//! # Derived fields
//!
//! A protocol's encoded forms of a message (IMAP's ENVELOPE or BODYSTRUCTURE) are worth
//! caching, but their syntax is the protocol's business. The protocol describes each as a
//! [`Derived`]: an opaque cache field name, whether the header suffices, and the function
//! that computes it from a parsed message. This layer caches it without knowing its syntax.
//!
//! All of it does blocking file I/O: a protocol session runs one [`Batch`] (a bounded
//! number of messages) per trip to the blocking pool.

mod cache;
mod message;
mod ranges;
pub mod search;
#[cfg(test)]
pub(crate) mod tests;

pub use message::Message;
pub use search::{search, EnvelopeCodec, SearchScope};

use super::message::Part;
use super::{Mailbox, MessageMeta, Uid};
use cache::ChunkCache;

/// The cache field of a message's part map ([`PartMap`](super::message::PartMap)): lets
/// sections inside the message be read by byte range.
pub const PARTS_FIELD: &str = "mime.parts";

/// The cache field of a message's header block (CRLF, through the empty line, as
/// [`Mailbox::fetch_header`](super::Mailbox::fetch_header) reads it): header sections of
/// FETCH and header keys of SEARCH share it. Named `hdr2` since header blocks longer
/// than 8 KiB could be cut short at a read boundary before; values cached under the old
/// name are never read again and age out of the cache.
pub const HEADER_FIELD: &str = "hdr2";

/// Most messages in one [`Batch`] (bounds the memory of a command over `1:*`).
pub const BATCH: usize = 512;

/// How much of the message a [`Derived`] field is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// The header block (e.g. IMAP ENVELOPE).
    Header,
    /// The whole message (e.g. IMAP BODYSTRUCTURE).
    Whole,
}

/// A value computed from a message and cached under an opaque field name.
pub struct Derived {
    /// The cache field (e.g. `imap.envelope`).
    pub field: &'static str,
    pub needs: Needs,
    /// Appends the value for the message `data` parsed as `root`; `data` is the header
    /// block only when `needs` is [`Needs::Header`] and the whole message was not read.
    pub compute: fn(data: &[u8], root: &Part, out: &mut Vec<u8>),
}

/// What a command will ask of the messages of a [`Batch`], so that one lookup per field
/// answers a whole batch and a message needed whole is read once.
#[derive(Default)]
pub struct Plan<'p> {
    /// Fields the command may ask through [`Message::derived_into`]; indexes into this slice
    /// name them there.
    pub derived: Vec<&'p Derived>,
    /// The command asks sections inside the message (`1.2`, `2.MIME`): part maps are
    /// looked up (and that use drives their caching decision).
    pub part_sections: bool,
    /// The command needs the whole message whatever the cache holds (`BODY[]`, `TEXT`).
    pub whole: bool,
    /// The command asks sections of the header block alone (`HEADER`,
    /// `HEADER.FIELDS (…)`, `RFC822.HEADER`): the cached header block is looked up, and a
    /// header read after a miss offered to the cache (clients fetch header fields of
    /// every new message, the most common FETCH there is).
    pub header_sections: bool,
}

/// The memory of a command's batches (the cached values of one batch), reused from one
/// batch to the next.
#[derive(Default)]
pub struct BatchBuffer(ChunkCache);

/// The messages of one command handled in one trip to the blocking pool: the cached
/// values of the plan's fields looked up for all of them at once.
pub struct Batch<'m> {
    mailbox: &'m dyn Mailbox,
    plan: &'m Plan<'m>,
    cache: &'m mut ChunkCache,
    fields: Vec<&'static str>,
}

impl<'m> Batch<'m> {
    pub fn new(
        mailbox: &'m dyn Mailbox,
        plan: &'m Plan<'m>,
        buf: &'m mut BatchBuffer,
    ) -> Batch<'m> {
        let mut fields: Vec<&'static str> = plan.derived.iter().map(|d| d.field).collect();
        // Then the part map and the header block, each only when the plan asks.
        if plan.part_sections {
            fields.push(PARTS_FIELD);
        }
        if plan.header_sections {
            fields.push(HEADER_FIELD);
        }
        Batch {
            mailbox,
            plan,
            cache: &mut buf.0,
            fields,
        }
    }

    /// Looks up the cached fields of `uids` (one lookup per field); the messages of this
    /// batch are then `message(k, …)` for `uids[k]`.
    pub fn prefetch(&mut self, uids: &[Uid]) {
        if self.fields.is_empty() {
            self.cache.clear(uids.len());
        } else {
            self.cache.fill(self.mailbox, uids, &self.fields);
        }
    }

    /// The message `k` of the last [`Batch::prefetch`], described by `meta`.
    pub fn message<'b>(&'b self, k: usize, meta: &'b MessageMeta) -> Message<'b> {
        let n = self.plan.derived.len();
        let cached = |f: usize| self.cache.get(f, k);
        let parts = self.plan.part_sections.then(|| cached(n)).flatten();
        let header_at = n + usize::from(self.plan.part_sections);
        let header = self
            .plan
            .header_sections
            .then(|| cached(header_at))
            .flatten();
        // Read whole at once when something will need it anyway (one read, not a header
        // read and then the whole message): a section that needs it, a field computed
        // from it, or sections inside the message without a part map to read them by.
        let whole = self.plan.whole
            || (self.plan.part_sections && parts.is_none())
            || (self.plan.derived.iter().enumerate())
                .any(|(f, d)| d.needs == Needs::Whole && cached(f).is_none());
        Message::new(self.mailbox, meta)
            .with_derived(&self.plan.derived, self.cache, k)
            .with_part_map(self.plan.part_sections, parts)
            .with_cached_header(self.plan.header_sections, header)
            .prefer_whole(whole)
    }
}

/// The message is gone (expunged by someone else meanwhile).
pub fn vanished(e: &super::Error) -> bool {
    e.kind == super::ErrorKind::Expunged || e.kind == super::ErrorKind::NonExistent
}
