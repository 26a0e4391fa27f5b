//! Finding the messages of an mbox file: where each starts (its `From ` line), where its
//! header and body are, where it ends, and what its hidden fields say.
//!
//! A message starts at a line beginning with `From ` whose date parses
//! ([`super::from_line`]); a body line that merely starts with "From " does not split a
//! message (as with mutt and Dovecot; writers quote such lines as `>From `, mboxo). The
//! blank line that writers put before each `From ` line is not part of the message before
//! it; a message whose last line has no line end keeps it so. `Content-Length` (mboxcl2,
//! and what Dovecot writes beside unquoted body lines) is used when it checks out: the
//! body of that length is followed by the end of the file, or by a line end (and at most
//! one blank line) and a `From ` line. Bodies are never unquoted: Loft serves what mutt
//! and Python's `mailbox` read from the same file.
//!
//! The file is read through [`Source::read_full_at`] in windows of [`CHUNK`] bytes; a
//! body is searched for its end with a substring search from its start (never line by
//! line, and only as far as that end). Memory is bounded
//! by the window and, per message, by [`MAX_HIDDEN`] fields of [`MAX_VALUE`] bytes.
//!
//! This module knows bytes and offsets, nothing of UIDs, locks or the index.

use std::io;
use std::ops::Range;

use memchr::{memchr, memmem};

use super::from_line::{self, FromLine};
use super::meta::{self, Field, Meta};

/// Bytes read at a time.
pub const CHUNK: usize = 1 << 20;
/// Hidden fields taken per message; more are left visible (a hostile message).
pub const MAX_HIDDEN: usize = 16;
/// A hidden field's value longer than this is ignored (still hidden).
pub const MAX_VALUE: usize = 4096;

/// Where the bytes come from (a file, or memory in tests).
pub trait Source {
    /// Fills `buf` from `off` on as far as the source goes; fewer bytes only at its end.
    fn read_full_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
}

impl Source for [u8] {
    fn read_full_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl Source for std::fs::File {
    fn read_full_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        crate::beneath::read_full_at(self, buf, off)
    }
}

/// One message of the file (offsets into it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    /// Its `From ` line.
    pub from: u64,
    /// The first header byte (after the `From ` line).
    pub header: u64,
    /// Where the blank line that ends the header starts (`body` when there is none).
    pub blank: u64,
    /// The first body byte (after the blank line that ends the header); `end` when the
    /// message has no body.
    pub body: u64,
    /// The end of the message's bytes (exclusive).
    pub end: u64,
    /// Where the next message's `From ` line is; `None` for the last message.
    pub next: Option<u64>,
    pub sender: String,
    /// The `From ` line's date (the internal date), seconds since the epoch.
    pub date: i64,
    pub meta: Meta,
    /// The header fields that are Loft's (and Dovecot's) own, to hide from clients.
    pub hidden: Vec<Range<u64>>,
    /// The end was found by `Content-Length`.
    pub by_length: bool,
    /// CRC-32 of the header lines clients see (not the hidden fields, line ends left
    /// out): with the body's length, what tells a message again after another program
    /// rewrote the file and changed only its hidden fields.
    pub header_crc: u32,
    /// The message's last byte is a line end (a writer appending after a message that
    /// had none gives it one: the fingerprint leaves it out).
    pub ends_in_lf: bool,
}

#[derive(Debug)]
pub enum ScanError {
    Io(io::Error),
    /// No `From ` line where a message must start.
    NotMbox {
        offset: u64,
    },
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> ScanError {
        ScanError::Io(e)
    }
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Io(e) => write!(f, "{e}"),
            ScanError::NotMbox { offset } => {
                write!(
                    f,
                    "no \"From \" line at byte {offset}: not an mbox file there"
                )
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Use `Content-Length` where it checks out.
    pub content_length: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            content_length: true,
        }
    }
}

/// Scans the messages of the first `size` bytes of `src` from `start` (0, or where a
/// known message's `next` said), calling `each` with every message in file order until
/// it returns `false`. `start == size`: none.
pub fn scan<S: Source + ?Sized>(
    src: &S,
    size: u64,
    start: u64,
    opts: Options,
    mut each: impl FnMut(Mail) -> bool,
) -> Result<(), ScanError> {
    let mut w = Window::new(src, size);
    let mut pos = start;
    while pos < size {
        let Some((line, header)) = w.separator_at(pos)? else {
            return Err(ScanError::NotMbox { offset: pos });
        };
        let h = w.header(header)?;
        let (end, next, by_length) = w.boundary(pos, &h, opts)?;
        let ends_in_lf = end > header && w.at(end - 1, 1)?.first() == Some(&b'\n');
        let mail = Mail {
            from: pos,
            header,
            blank: h.blank.min(end),
            body: h.body.min(end),
            end,
            next,
            sender: line.sender,
            date: line.date,
            meta: h.meta,
            hidden: h.hidden,
            by_length,
            header_crc: h.crc.finalize(),
            ends_in_lf,
        };
        if !each(mail) {
            return Ok(());
        }
        match next {
            Some(n) if n > pos => pos = n,
            _ => break,
        }
    }
    Ok(())
}

/// All messages of `src` (tests and tools; the store streams with [`scan`]).
pub fn scan_all<S: Source + ?Sized>(src: &S, size: u64) -> Result<Vec<Mail>, ScanError> {
    let mut out = Vec::new();
    scan(src, size, 0, Options::default(), |m| {
        out.push(m);
        true
    })?;
    Ok(out)
}

/// What a header block holds.
struct Header {
    /// Where the blank line ending the header starts (`body` when there is none).
    blank: u64,
    /// The first body byte, or where a `From ` line ended a header with no blank line.
    body: u64,
    /// The header ended at a `From ` line (no blank line, no body).
    cut: bool,
    meta: Meta,
    hidden: Vec<Range<u64>>,
    crc: crc32fast::Hasher,
}

/// A hidden field being read: which, where it starts, its value so far (`None` once
/// longer than [`MAX_VALUE`]).
struct Open {
    field: Field,
    start: u64,
    value: Option<Vec<u8>>,
}

/// A window of the file held in memory.
struct Window<'a, S: ?Sized> {
    src: &'a S,
    size: u64,
    off: u64,
    buf: Vec<u8>,
}

impl<'a, S: Source + ?Sized> Window<'a, S> {
    fn new(src: &'a S, size: u64) -> Self {
        Window {
            src,
            size,
            off: 0,
            buf: Vec::new(),
        }
    }

    /// The bytes from `pos` on: at least `need` of them unless the file ends first (or
    /// shrank while read: then fewer, as if it ended there).
    fn at(&mut self, pos: u64, need: usize) -> io::Result<&[u8]> {
        let want_end = pos.saturating_add(need as u64).min(self.size);
        let held = self.off + self.buf.len() as u64;
        if pos < self.off || want_end > held {
            let len = (self.size.saturating_sub(pos)).min(need.max(CHUNK) as u64) as usize;
            self.buf.resize(len, 0);
            let got = self.src.read_full_at(&mut self.buf, pos)?;
            self.buf.truncate(got);
            self.off = pos;
        }
        let from = usize::try_from(pos - self.off).unwrap_or(usize::MAX);
        Ok(self.buf.get(from..).unwrap_or_default())
    }

    /// The separator line at `pos` and where the line after it starts.
    fn separator_at(&mut self, pos: u64) -> io::Result<Option<(FromLine, u64)>> {
        let size = self.size;
        let w = self.at(pos, from_line::MAX_LEN + 2)?;
        let window = &w[..w.len().min(from_line::MAX_LEN + 2)];
        let (line, after) = match memchr(b'\n', window) {
            Some(i) => (&window[..i], pos + i as u64 + 1),
            None if pos + (w.len() as u64) >= size => (w, size),
            None => return Ok(None),
        };
        Ok(from_line::parse(line).map(|l| (l, after)))
    }

    /// Whether a separator line starts at `pos`.
    fn is_from_line(&mut self, pos: u64) -> io::Result<bool> {
        Ok(self.separator_at(pos)?.is_some())
    }

    /// Reads the header block from `pos`: up to a blank line, a `From ` line, or the end.
    fn header(&mut self, mut pos: u64) -> io::Result<Header> {
        let mut h = Header {
            blank: self.size,
            body: self.size,
            cut: false,
            meta: Meta::default(),
            hidden: Vec::new(),
            crc: crc32fast::Hasher::new(),
        };
        let mut open: Option<Open> = None;
        // In a `Lines:` field: shown to clients but not in the fingerprint.
        let mut unprinted = false;
        while pos < self.size {
            let (line, next, whole) = self.line_at(pos)?;
            if line.is_empty() || line == b"\r" {
                h.blank = pos;
                h.body = next;
                break;
            }
            if line.starts_with(b"From ") && whole && from_line::parse(&line).is_some() {
                h.blank = pos;
                h.body = pos;
                h.cut = true;
                break;
            }
            if matches!(line.first(), Some(b' ' | b'\t')) {
                match open.as_mut() {
                    Some(o) => {
                        o.value = o.value.take().and_then(|mut v| {
                            v.extend_from_slice(&line);
                            (whole && v.len() <= MAX_VALUE).then_some(v)
                        })
                    }
                    None if unprinted => {}
                    None => visible_line(&mut h.crc, &line),
                }
            } else {
                close(&mut open, pos, &mut h);
                unprinted = is_lines_field(&line);
                if let Some(field) = meta::field_of(&line).filter(|_| h.hidden.len() < MAX_HIDDEN) {
                    let colon = line.iter().position(|&c| c == b':').unwrap_or(0);
                    open = Some(Open {
                        field,
                        start: pos,
                        value: whole.then(|| line[colon + 1..].to_vec()),
                    });
                }
                if open.is_none() && !unprinted {
                    visible_line(&mut h.crc, &line);
                }
            }
            pos = next;
        }
        close(&mut open, pos.min(h.body), &mut h);
        Ok(h)
    }

    /// The line at `pos` (without its line end, at most [`MAX_VALUE`] + 2 bytes of it),
    /// where the next line starts, and whether the line was held whole.
    fn line_at(&mut self, pos: u64) -> io::Result<(Vec<u8>, u64, bool)> {
        let cap = MAX_VALUE + 2;
        let size = self.size;
        let w = self.at(pos, cap)?;
        if let Some(i) = memchr(b'\n', w) {
            return Ok((w[..i].to_vec(), pos + i as u64 + 1, true));
        }
        if pos + w.len() as u64 >= size {
            return Ok((w.to_vec(), size, true));
        }
        // A line longer than the window: its head, then its end by searching on.
        let head = w[..w.len().min(cap)].to_vec();
        let mut p = pos + w.len() as u64;
        loop {
            let w = self.at(p, CHUNK)?;
            if w.is_empty() {
                return Ok((head, size, false));
            }
            if let Some(i) = memchr(b'\n', w) {
                return Ok((head, p + i as u64 + 1, false));
            }
            p += w.len() as u64;
        }
    }

    /// Where the message starting at `from` whose header is `h` ends and the next one
    /// starts.
    fn boundary(
        &mut self,
        from: u64,
        h: &Header,
        opts: Options,
    ) -> io::Result<(u64, Option<u64>, bool)> {
        if h.cut {
            return Ok((h.body, Some(h.body), false));
        }
        if opts.content_length {
            if let Some(found) = self.by_length(h)? {
                return Ok(found);
            }
        }
        let next = self.find_from(h.body)?;
        let region = next.unwrap_or(self.size);
        let end = self.without_separator(from, region)?;
        Ok((end, next, false))
    }

    /// The end by `Content-Length`, when it checks out.
    fn by_length(&mut self, h: &Header) -> io::Result<Option<(u64, Option<u64>, bool)>> {
        let Some(q) = (h.meta.content_length).and_then(|cl| h.body.checked_add(cl)) else {
            return Ok(None);
        };
        if q > self.size {
            return Ok(None);
        }
        let size = self.size;
        let w: Vec<u8> = self.at(q, 2)?.iter().take(2).copied().collect();
        let found = match w[..] {
            [] => Some(None),
            [b'\n'] if q + 1 == size => Some(None),
            [b'\n', b'\n'] if q + 2 == size => Some(None),
            [b'\n', b'\n', ..] if self.is_from_line(q + 2)? => Some(Some(q + 2)),
            [b'\n', ..] if self.is_from_line(q + 1)? => Some(Some(q + 1)),
            _ => None,
        };
        Ok(found.map(|next| (q, next, true)))
    }

    /// The first separator line at or after `from` (a line start).
    fn find_from(&mut self, from: u64) -> io::Result<Option<u64>> {
        if from >= self.size {
            return Ok(None);
        }
        if self.is_from_line(from)? {
            return Ok(Some(from));
        }
        let finder = memmem::Finder::new(b"\nFrom ");
        let mut pos = from;
        loop {
            // Whatever the window holds from `pos` on (a new window only when under 64
            // bytes are left in it): asking a whole window's worth would read one per
            // message.
            let w = self.at(pos, 64)?;
            if w.len() < 6 {
                return Ok(None);
            }
            // One hit at a time: the first separator ends the search (collecting every
            // hit of the window read on through the messages after it).
            match finder.find(w) {
                Some(i) => {
                    let p = pos + i as u64 + 1;
                    if self.is_from_line(p)? {
                        return Ok(Some(p));
                    }
                    pos = p;
                }
                // The last 5 bytes again: a "\nFrom " across the window's end.
                None => pos += (w.len() - 5) as u64,
            }
        }
    }

    /// The end of a message whose bytes run from its `From ` line at `from` to `region`
    /// (the next `From ` line or the end of the file): without the blank line a writer put
    /// before the separator (as Python's `mailbox` reads it).
    fn without_separator(&mut self, from: u64, region: u64) -> io::Result<u64> {
        let start = region.saturating_sub(4).max(from);
        let want = (region - start) as usize;
        let tail = self.at(start, want)?;
        let tail = &tail[..tail.len().min(want)];
        Ok(if tail.ends_with(b"\r\n\r\n") {
            region - 2
        } else if tail.ends_with(b"\n\n") {
            region - 1
        } else {
            region
        })
    }
}

/// `Lines:`, which mutt (and elm) add when they rewrite a message's header: a message
/// rewritten so keeps its fingerprint (and its UID).
fn is_lines_field(line: &[u8]) -> bool {
    line.get(..6)
        .is_some_and(|n| n.eq_ignore_ascii_case(b"Lines:"))
}

/// Takes a header line clients see into the header's fingerprint (line ends left out:
/// the same with LF or CRLF).
fn visible_line(crc: &mut crc32fast::Hasher, line: &[u8]) {
    crc.update(line.strip_suffix(b"\r").unwrap_or(line));
    crc.update(b"\n");
}

/// Ends the hidden field being read at `end` and takes its value in.
fn close(open: &mut Option<Open>, end: u64, h: &mut Header) {
    if let Some(o) = open.take() {
        if let Some(v) = o.value {
            h.meta.take(o.field, &v);
        }
        h.hidden.push(o.start..end.max(o.start));
    }
}
