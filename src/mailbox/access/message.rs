//! [`Message`]: one message as a command sees it, every field computed on first use.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};

use super::cache::ChunkCache;
use super::{ranges, Derived, Needs, HEADER_FIELD, PARTS_FIELD};
use crate::mailbox::message::{self, header, Part, PartMap, Section};
use crate::mailbox::{Flags, Mailbox, MessageData, MessageMeta, Result, Uid, UNKNOWN_DATE};

/// One message of a mailbox. Nothing is read until asked; then the cheapest source
/// answers (the index cache, a byte range, the header block, the whole message), the
/// message is read and parsed at most once, and what was computed after a cache miss is
/// offered back to the cache.
pub struct Message<'a> {
    mailbox: &'a dyn Mailbox,
    meta: &'a MessageMeta,
    derived: &'a [&'a Derived],
    /// The batch's cached values and this message's row in them.
    cache: Option<(&'a ChunkCache, usize)>,
    /// Sections inside the message are asked: part maps matter (see [`PARTS_FIELD`]).
    part_sections: bool,
    cached_parts: Option<&'a [u8]>,
    /// Header sections are asked: a header block read from the message is offered to
    /// the cache (see [`HEADER_FIELD`]).
    header_sections: bool,
    cached_header: Option<&'a [u8]>,
    prefer_whole: bool,
    header: OnceCell<MessageData>,
    header_root: OnceCell<Part>,
    whole: OnceCell<MessageData>,
    root: OnceCell<Part>,
    part_map: OnceCell<Option<PartMap>>,
    date: Cell<Option<i64>>,
}

impl<'a> Message<'a> {
    /// The message `meta` describes, with nothing looked up yet.
    pub fn new(mailbox: &'a dyn Mailbox, meta: &'a MessageMeta) -> Message<'a> {
        Message {
            mailbox,
            meta,
            derived: &[],
            cache: None,
            part_sections: false,
            cached_parts: None,
            header_sections: false,
            cached_header: None,
            prefer_whole: false,
            header: OnceCell::new(),
            header_root: OnceCell::new(),
            whole: OnceCell::new(),
            root: OnceCell::new(),
            part_map: OnceCell::new(),
            date: Cell::new(None),
        }
    }

    pub(super) fn with_derived(
        mut self,
        derived: &'a [&'a Derived],
        cache: &'a ChunkCache,
        k: usize,
    ) -> Self {
        self.derived = derived;
        self.cache = Some((cache, k));
        self
    }

    pub(super) fn with_part_map(mut self, asked: bool, cached: Option<&'a [u8]>) -> Self {
        self.part_sections = asked;
        self.cached_parts = cached;
        self
    }

    pub(super) fn with_cached_header(mut self, asked: bool, cached: Option<&'a [u8]>) -> Self {
        self.header_sections = asked;
        self.cached_header = cached;
        self
    }

    /// Reads the whole message even when only its header is asked first (something
    /// else will need all of it).
    pub fn prefer_whole(mut self, whole: bool) -> Self {
        self.prefer_whole = whole;
        self
    }

    pub fn uid(&self) -> Uid {
        self.meta.uid
    }

    pub fn meta(&self) -> &MessageMeta {
        self.meta
    }

    pub fn flags(&self) -> &Flags {
        &self.meta.flags
    }

    /// RFC822.SIZE: the octets of [`Message::whole`].
    pub fn size(&self) -> u64 {
        self.meta.size
    }

    /// INTERNALDATE (seconds since the epoch), asked of the store when the listing did
    /// not know it yet; 0 when the message is gone.
    pub fn internal_date(&self) -> i64 {
        if self.meta.internal_date != UNKNOWN_DATE {
            return self.meta.internal_date;
        }
        if let Some(d) = self.date.get() {
            return d;
        }
        let d = self.mailbox.internal_date(self.meta.uid).unwrap_or(0);
        self.date.set(Some(d));
        d
    }

    /// The whole message, CRLF line ends (read once).
    pub fn whole(&self) -> Result<&[u8]> {
        if let Some(d) = self.whole.get() {
            return Ok(d);
        }
        let d = self.mailbox.fetch_message(self.meta.uid)?;
        Ok(self.whole.get_or_init(|| d))
    }

    /// The whole message, handed over without a copy.
    pub fn into_whole(self) -> Result<MessageData> {
        match self.whole.into_inner() {
            Some(d) => Ok(d),
            None => self.mailbox.fetch_message(self.meta.uid),
        }
    }

    /// The whole message and its MIME tree (parsed once). A message read whole while
    /// sections inside it are asked and no usable part map was cached has its part map
    /// offered to the cache.
    pub fn parsed(&self) -> Result<(&[u8], &Part)> {
        let data = self.whole()?;
        if let Some(root) = self.root.get() {
            return Ok((data, root));
        }
        let root = self.root.get_or_init(|| message::parse(data));
        if self.part_sections && self.part_map().is_none() && data.len() as u64 == self.size() {
            if let Some(enc) = PartMap::encode(root, self.size()) {
                self.mailbox.cache_offer(self.meta.uid, PARTS_FIELD, &enc);
            }
        }
        Ok((data, root))
    }

    /// The header block through the empty line that ends it, CRLF line ends.
    pub fn header(&self) -> Result<&[u8]> {
        if self.prefer_whole || self.whole.get().is_some() {
            let data = self.whole()?;
            return Ok(data.get(..header::body_start(data)).unwrap_or(data));
        }
        if let Some(h) = self.header.get() {
            return Ok(h);
        }
        if let Some(h) = self
            .cached_header
            .filter(|h| cached_header_fits(h, self.size()))
        {
            return Ok(self.header.get_or_init(|| MessageData::Owned(h.to_vec())));
        }
        let h = self.mailbox.fetch_header(self.meta.uid)?;
        if self.header_sections {
            self.mailbox.cache_offer(self.meta.uid, HEADER_FIELD, &h);
        }
        Ok(self.header.get_or_init(|| h))
    }

    /// The header block parsed (the whole message when it was read anyway): all that
    /// header sections and header-only fields need.
    fn header_parsed(&self) -> Result<(&[u8], &Part)> {
        if self.prefer_whole || self.whole.get().is_some() {
            return self.parsed();
        }
        let h = self.header()?;
        Ok((h, self.header_root.get_or_init(|| message::parse(h))))
    }

    /// The cached part map, when it describes a message of today's size.
    fn part_map(&self) -> Option<&PartMap> {
        self.part_map
            .get_or_init(|| {
                self.cached_parts
                    .and_then(PartMap::decode)
                    .filter(|m| m.size() == self.size())
            })
            .as_ref()
    }

    /// Appends derived field `i` of the plan: the cached value, or computed now (and
    /// offered to the cache).
    pub fn derived_into(&self, i: usize, out: &mut Vec<u8>) -> Result<()> {
        if let Some(v) = self.cache.and_then(|(c, k)| c.get(i, k)) {
            out.extend_from_slice(v);
            return Ok(());
        }
        let Some(d) = self.derived.get(i) else {
            return Ok(());
        };
        let (data, root) = match d.needs {
            Needs::Header => self.header_parsed()?,
            Needs::Whole => self.parsed()?,
        };
        let start = out.len();
        (d.compute)(data, root, out);
        let value = out.get(start..).unwrap_or_default();
        self.mailbox.cache_offer(self.meta.uid, d.field, value);
        Ok(())
    }

    /// The octets of body section `s` cut to `partial` (RFC 3501 §6.4.5); empty when the
    /// message has no such section. Sections inside the message are read by byte range
    /// when a part map allows; header sections need only the header block.
    pub fn section(&self, s: &Section, partial: Option<(u32, u32)>) -> Result<Cow<'_, [u8]>> {
        if !s.part.is_empty() && self.whole.get().is_none() {
            if let Some(map) = self.part_map() {
                if let Some(v) = ranges::read(self.mailbox, self.meta.uid, map, s, partial)? {
                    return Ok(Cow::Owned(v));
                }
            }
        }
        let header_only = s.header_only();
        let (data, root) = if header_only {
            self.header_parsed()?
        } else if *s == Section::default() {
            // The whole message: no need to parse it.
            let d = self.whole()?;
            let r = ranges::cut(d.len(), partial);
            return Ok(Cow::Borrowed(d.get(r).unwrap_or_default()));
        } else {
            self.parsed()?
        };
        Ok(match message::section(data, root, s) {
            None => Cow::Borrowed(&[]),
            Some(Cow::Borrowed(b)) => {
                Cow::Borrowed(b.get(ranges::cut(b.len(), partial)).unwrap_or_default())
            }
            Some(Cow::Owned(mut v)) => {
                let r = ranges::cut(v.len(), partial);
                v.truncate(r.end);
                v.drain(..r.start);
                Cow::Owned(v)
            }
        })
    }
}

/// A cached header block is used when it could be the start of the message: it ends
/// with the empty line (or is the whole message, which has no body) and is not longer
/// than the message. Anything else in the cache file is damage, not a header: the
/// message is read instead.
fn cached_header_fits(h: &[u8], size: u64) -> bool {
    (h.len() as u64 <= size || size == crate::mailbox::UNKNOWN_SIZE)
        && (h.ends_with(b"\r\n\r\n") || h.len() as u64 == size)
}
