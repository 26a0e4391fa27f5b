//! Byte layouts of `loft.index` and `loft.index.log` (see `docs/index-format.md`):
//! encoding, and decoding with every length and offset bounds-checked and every CRC32
//! verified. Decoders never panic on any input; a problem is a [`Bad`] with a human
//! description and the byte offset where it was found.
//!
//! This module knows bytes, not files, locks or the meaning of flags.

use super::{Header, Record};

pub const INDEX_MAGIC: &[u8; 8] = b"LOFTIDX\0";
pub const LOG_MAGIC: &[u8; 8] = b"LOFTLOG\0";
/// Format version written by this Loft; files with a higher version are unusable.
pub const VERSION: u32 = 1;
pub const INDEX_HEADER_LEN: usize = 128;
pub const RECORD_LEN: usize = 64;
pub const LOG_HEADER_LEN: usize = 40;
/// Largest keyword name table (bit i of a record's bitmap = name i).
pub const MAX_KEYWORDS: usize = 64;
/// Largest payload of one log record; anything bigger is garbage.
pub const MAX_LOG_PAYLOAD: u32 = 64 << 20;
/// The five IMAP system flags (`mailbox::SysFlags` bits); other bits are invalid.
pub const FLAG_MASK: u8 = 0x1f;
pub(super) const SEEN: u8 = 1;
pub(super) const DELETED: u8 = 8;

/// A problem found in file content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bad {
    pub what: String,
    pub offset: u64,
}

pub fn bad<T>(what: impl Into<String>, offset: usize) -> Result<T, Bad> {
    Err(Bad {
        what: what.into(),
        offset: offset as u64,
    })
}

/// Little-endian reads from a slice; `None` past its end.
pub struct Cur<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Cur<'a> {
    pub fn new(buf: &'a [u8], pos: usize) -> Cur<'a> {
        Cur { buf, pos }
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    pub fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| v as i64)
    }
}

pub fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Everything `loft.index` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexFile {
    pub header: Header,
    pub first_unseen: u32,
    pub generation: u64,
    /// Offset in the log of the same generation from which changes are not yet included.
    pub log_offset: u64,
    /// Random id shared by an index and its log (kept across compactions, new on
    /// rebuild): a file from another mailbox does not pair up.
    pub pair_id: u64,
    pub keywords: Vec<String>,
    pub records: super::Records,
}

/// What [`encode_index_to`] writes.
pub struct IndexParts<'a> {
    pub header: &'a Header,
    pub generation: u64,
    pub log_offset: u64,
    pub pair_id: u64,
    pub keywords: &'a [String],
    pub records: &'a super::Records,
}

/// Derived counts: (messages, unseen, deleted, first unseen seq or 0).
pub fn counts<'a>(records: impl IntoIterator<Item = &'a Record>) -> (u32, u32, u32, u32) {
    let (mut unseen, mut deleted, mut first, mut n) = (0u32, 0u32, 0u32, 0u32);
    for (i, r) in records.into_iter().enumerate() {
        n += 1;
        if r.flags & SEEN == 0 {
            unseen += 1;
            if first == 0 {
                first = i as u32 + 1;
            }
        }
        if r.flags & DELETED != 0 {
            deleted += 1;
        }
    }
    (n, unseen, deleted, first)
}

/// The bytes of `loft.index` for this state (counts are computed from `records`).
#[cfg(test)]
pub fn encode_index(f: &IndexParts) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a vector cannot fail.
    let _ = encode_index_to(f, &mut out);
    out
}

/// Writes the bytes of `loft.index` for this state to `w` in order, without holding the
/// file in memory (100,000 messages make 11 MB): the sizes in the header are computed
/// first, records and keys are written as they are encoded.
pub fn encode_index_to(f: &IndexParts, w: &mut impl std::io::Write) -> std::io::Result<()> {
    let n = f.records.len();
    let mut kw = Vec::new();
    kw.extend_from_slice(&(f.keywords.len() as u32).to_le_bytes());
    for k in f.keywords {
        let b = &k.as_bytes()[..k.len().min(u16::MAX as usize)];
        kw.extend_from_slice(&(b.len() as u16).to_le_bytes());
        kw.extend_from_slice(b);
    }
    let c = crc(&[&kw]);
    kw.extend_from_slice(&c.to_le_bytes());
    let keys_len = f.records.iter().map(|r| r.key.len()).sum::<usize>() + 4;
    let kw_off = INDEX_HEADER_LEN + n * RECORD_LEN;
    let keys_off = kw_off + kw.len();
    let total = keys_off + keys_len;
    let (messages, unseen, deleted, first) = counts(f.records);
    let h = f.header;
    let mut head = Vec::with_capacity(INDEX_HEADER_LEN);
    head.extend_from_slice(INDEX_MAGIC);
    for v in [VERSION, INDEX_HEADER_LEN as u32, h.uid_validity, h.uid_next] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    head.extend_from_slice(&h.highest_modseq.to_le_bytes());
    for v in [
        messages,
        unseen,
        deleted,
        h.recent_uid,
        first,
        RECORD_LEN as u32,
    ] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        f.generation,
        f.log_offset,
        kw_off as u64,
        kw.len() as u64,
        keys_off as u64,
        keys_len as u64,
        total as u64,
    ] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    head.extend_from_slice(&f.pair_id.to_le_bytes());
    head.resize(INDEX_HEADER_LEN - 4, 0);
    let c = crc(&[&head]);
    head.extend_from_slice(&c.to_le_bytes());
    w.write_all(&head)?;
    let mut off = 0u64;
    for r in f.records {
        let mut b = [0u8; RECORD_LEN];
        b[0..4].copy_from_slice(&r.uid.to_le_bytes());
        b[4] = r.flags & FLAG_MASK;
        b[5] = r.dirty as u8;
        b[8..16].copy_from_slice(&r.keywords.to_le_bytes());
        b[16..24].copy_from_slice(&r.modseq.to_le_bytes());
        b[24..32].copy_from_slice(&r.size.to_le_bytes());
        b[32..40].copy_from_slice(&r.internal_date.to_le_bytes());
        b[40..48].copy_from_slice(&off.to_le_bytes());
        b[48..52].copy_from_slice(&(r.key.len() as u32).to_le_bytes());
        let c = crc(&[&b[..60], &r.key]);
        b[60..64].copy_from_slice(&c.to_le_bytes());
        w.write_all(&b)?;
        off += r.key.len() as u64;
    }
    w.write_all(&kw)?;
    let mut key_crc = crc32fast::Hasher::new();
    for r in f.records {
        key_crc.update(&r.key);
        w.write_all(&r.key)?;
    }
    w.write_all(&key_crc.finalize().to_le_bytes())
}

/// The index header fields, CRC-checked but not cross-checked against the body.
pub struct RawIndexHeader {
    pub header: Header,
    pub first_unseen: u32,
    pub record_len: u32,
    pub generation: u64,
    pub log_offset: u64,
    pub kw_off: u64,
    pub kw_len: u64,
    pub keys_off: u64,
    pub keys_len: u64,
    pub total: u64,
    pub pair_id: u64,
}

pub fn check_version(version: u32, at: usize) -> Result<(), Bad> {
    if version > VERSION {
        return bad(
            format!("version {version} is newer than this Loft ({VERSION})"),
            at,
        );
    }
    if version == 0 {
        return bad("version 0 is not a valid version", at);
    }
    Ok(())
}

pub fn decode_index_header(buf: &[u8]) -> Result<RawIndexHeader, Bad> {
    if buf.len() < INDEX_HEADER_LEN {
        return bad(
            format!(
                "file holds {} bytes, less than the {INDEX_HEADER_LEN}-byte header",
                buf.len()
            ),
            0,
        );
    }
    if &buf[..8] != INDEX_MAGIC {
        return bad("bad magic (not a Loft index)", 0);
    }
    let mut c = Cur::new(buf, 8);
    let g = |o: Option<u32>| o.unwrap_or(0);
    let g8 = |o: Option<u64>| o.unwrap_or(0);
    check_version(g(c.u32()), 8)?;
    let stored = u32::from_le_bytes([buf[124], buf[125], buf[126], buf[127]]);
    if crc(&[&buf[..124]]) != stored {
        return bad("header checksum mismatch", 124);
    }
    if g(c.u32()) as usize != INDEX_HEADER_LEN {
        return bad("unexpected header length", 12);
    }
    let uid_validity = g(c.u32());
    let uid_next = g(c.u32());
    let highest_modseq = g8(c.u64());
    let (messages, unseen, deleted, recent_uid) = (g(c.u32()), g(c.u32()), g(c.u32()), g(c.u32()));
    let first_unseen = g(c.u32());
    let record_len = g(c.u32());
    let header = Header {
        uid_validity,
        uid_next,
        highest_modseq,
        recent_uid,
        messages,
        unseen,
        deleted,
    };
    Ok(RawIndexHeader {
        header,
        first_unseen,
        record_len,
        generation: g8(c.u64()),
        log_offset: g8(c.u64()),
        kw_off: g8(c.u64()),
        kw_len: g8(c.u64()),
        keys_off: g8(c.u64()),
        keys_len: g8(c.u64()),
        total: g8(c.u64()),
        pair_id: g8(c.u64()),
    })
}

/// Checks a CRC-trailed block `[off, off+len)`; returns its body (without the CRC).
pub fn block<'a>(buf: &'a [u8], off: u64, len: u64, name: &str) -> Result<&'a [u8], Bad> {
    let (o, l) = (off as usize, len as usize);
    let Some(b) = o.checked_add(l).and_then(|end| buf.get(o..end)) else {
        return bad(
            format!(
                "{name} block at {off}+{len} lies outside the file ({} bytes)",
                buf.len()
            ),
            o,
        );
    };
    if b.len() < 4 {
        return bad(format!("{name} block shorter than its checksum"), o);
    }
    let (body, c) = b.split_at(b.len() - 4);
    if crc(&[body]) != u32::from_le_bytes([c[0], c[1], c[2], c[3]]) {
        return bad(format!("{name} block checksum mismatch"), o);
    }
    Ok(body)
}

pub fn decode_keywords(body: &[u8], at: usize) -> Result<Vec<String>, Bad> {
    let mut c = Cur::new(body, 0);
    let Some(n) = c.u32() else {
        return bad("keyword table without a count", at);
    };
    if n as usize > MAX_KEYWORDS {
        return bad(
            format!("keyword table claims {n} names, more than {MAX_KEYWORDS}"),
            at,
        );
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let p = at + c.pos;
        let name = c.u16().and_then(|l| c.take(l as usize));
        match name.map(std::str::from_utf8) {
            Some(Ok(s)) => out.push(s.to_string()),
            Some(Err(_)) => return bad(format!("keyword {i} is not UTF-8"), p),
            None => return bad(format!("keyword {i} runs past the table"), p),
        }
    }
    Ok(out)
}

/// One record at `at` (absolute); `keys` = key region body. Checks the CRC (which covers
/// the key bytes too) but not the ordering.
pub fn decode_record(buf: &[u8], at: usize, keys: &[u8], idx: usize) -> Result<Record, Bad> {
    let Some(b) = buf.get(at..at + RECORD_LEN) else {
        return bad(format!("record {idx} runs past the end of the file"), at);
    };
    let mut c = Cur::new(b, 0);
    let uid = c.u32().unwrap_or(0);
    let flags = c.u8().unwrap_or(0);
    let dirty = c.u8().unwrap_or(0);
    c.pos = 8;
    let keywords = c.u64().unwrap_or(0);
    let modseq = c.u64().unwrap_or(0);
    let size = c.u64().unwrap_or(0);
    let internal_date = c.i64().unwrap_or(0);
    let key_off = c.u64().unwrap_or(0);
    let key_len = c.u32().unwrap_or(0) as u64;
    c.pos = 60;
    let stored = c.u32().unwrap_or(0);
    let key = key_off
        .checked_add(key_len)
        .and_then(|end| keys.get(key_off as usize..end as usize));
    let Some(key) = key else {
        return bad(
            format!("record {idx} key {key_off}+{key_len} lies outside the key region"),
            at + 40,
        );
    };
    if crc(&[&b[..60], key]) != stored {
        return bad(format!("record {idx} checksum mismatch"), at);
    }
    if flags & !FLAG_MASK != 0 || dirty > 1 {
        return bad(
            format!("record {idx} has invalid flag bits {flags:#x}/{dirty}"),
            at + 4,
        );
    }
    Ok(Record {
        uid,
        flags,
        dirty: dirty == 1,
        keywords,
        modseq,
        size,
        internal_date,
        key: key.into(),
    })
}

pub fn decode_index(buf: &[u8]) -> Result<IndexFile, Bad> {
    decode_index_in(buf.len() as u64, &|off, out| {
        let from = usize::try_from(off).unwrap_or(usize::MAX).min(buf.len());
        let n = out.len().min(buf.len() - from);
        out[..n].copy_from_slice(&buf[from..from + n]);
        Ok(n)
    })
}

/// Reads the file's bytes at an offset into a buffer: how many (fewer at its end).
pub type ReadAt<'a> = dyn Fn(u64, &mut [u8]) -> Result<usize, Bad> + Sync + 'a;

/// Bytes of records decoded at a time by [`decode_index_in`] (a multiple of
/// [`RECORD_LEN`]): the records of a large index never sit in memory as file bytes.
const RECORD_WINDOW: usize = 256 * 1024;

/// [`decode_index`] of a file of `len` bytes read through `read(offset, buffer)` (the
/// bytes read, fewer at the end): the header, then the keyword and key blocks at the
/// end, then the records in windows of [`RECORD_WINDOW`] bytes.
pub fn decode_index_in(len: u64, read: &ReadAt<'_>) -> Result<IndexFile, Bad> {
    let mut head = vec![0u8; INDEX_HEADER_LEN];
    let got = read(0, &mut head)?;
    let h = decode_index_header(&head[..got])?;
    let n = check_layout(&h, len)?;
    let mut tail = vec![0u8; (h.total - h.kw_off) as usize];
    if read(h.kw_off, &mut tail)? < tail.len() {
        return bad(
            "file ends inside its keyword and key blocks",
            h.kw_off as usize,
        );
    }
    let shift = |mut b: Bad| {
        b.offset += h.kw_off;
        b
    };
    let kw = block(&tail, 0, h.kw_len, "keyword").map_err(shift)?;
    let keywords = decode_keywords(kw, h.kw_off as usize)?;
    let keys = block(&tail, h.kw_len, h.keys_len, "key").map_err(shift)?;
    let records = decode_records(&h, n, keys, read)?;
    let hd = h.header;
    let (_, unseen, deleted, first) = counts(&records);
    if (unseen, deleted, first) != (hd.unseen, hd.deleted, h.first_unseen) {
        return bad(
            "header counts (unseen/deleted/first unseen) do not match the records",
            36,
        );
    }
    if hd.recent_uid > hd.uid_next {
        return bad("recent uid above UIDNEXT", 44);
    }
    Ok(IndexFile {
        header: hd,
        first_unseen: first,
        generation: h.generation,
        log_offset: h.log_offset,
        pair_id: h.pair_id,
        keywords,
        records,
    })
}

/// The header's layout checked against a file of `len` bytes; the record count.
fn check_layout(h: &RawIndexHeader, len: u64) -> Result<usize, Bad> {
    if h.record_len as usize != RECORD_LEN {
        return bad(
            format!("record size {} is not {RECORD_LEN}", h.record_len),
            52,
        );
    }
    let n = h.header.messages as usize;
    let room = (len.saturating_sub(INDEX_HEADER_LEN as u64) / RECORD_LEN as u64) as usize;
    if n > room {
        return bad(
            format!("header claims {n} records but file holds {room}"),
            32,
        );
    }
    if h.total != len {
        return bad(
            format!(
                "header says the file is {} bytes but it holds {len}",
                h.total
            ),
            104,
        );
    }
    let recs_end = (INDEX_HEADER_LEN + n * RECORD_LEN) as u64;
    if h.kw_off != recs_end || h.keys_off != h.kw_off.saturating_add(h.kw_len) {
        return bad("block offsets do not follow the records", 72);
    }
    if h.keys_off.saturating_add(h.keys_len) != h.total {
        return bad("key region does not end at the end of the file", 96);
    }
    Ok(n)
}

/// At least this many records are decoded in two parts at once (a second thread for
/// the second half): most of a large index's decode is the kernel handing out fresh
/// pages for the records, which two cores do side by side.
const PARALLEL_RECORDS: usize = 32_768;

/// The `n` records, read window by window, each checked (CRC, ascending UIDs below
/// UIDNEXT, modseq not above the header's).
fn decode_records(
    h: &RawIndexHeader,
    n: usize,
    keys: &[u8],
    read: &ReadAt<'_>,
) -> Result<super::Records, Bad> {
    let mid = if n >= PARALLEL_RECORDS { n / 2 } else { n };
    let (first, second) = std::thread::scope(|s| {
        let second = (mid < n)
            .then(|| {
                std::thread::Builder::new().spawn_scoped(s, || decode_part(h, mid..n, keys, read))
            })
            .and_then(Result::ok);
        let first = decode_part(h, 0..mid, keys, read);
        // No thread to be had: the second half here too.
        let second = match second {
            Some(t) => t.join().unwrap_or_else(|_| bad("record decode failed", 0)),
            None => decode_part(h, mid..n, keys, read),
        };
        (first, second)
    });
    let (mut chunks, last) = first?;
    let (more, _) = second?;
    // The halves in order: the second's first UID above the first's last.
    if let (Some(prev), Some(r)) = (last, more.first().and_then(|c| c.first())) {
        if r.uid <= prev {
            let at = INDEX_HEADER_LEN + mid * RECORD_LEN;
            return bad(
                format!("record {mid}: uid {} not above previous uid {prev}", r.uid),
                at,
            );
        }
    }
    chunks.extend(more);
    Ok(super::Records::from_chunks(chunks))
}

/// Records `range` decoded and checked, in chunks of [`super::records::CHUNK`], with the
/// last UID.
fn decode_part(
    h: &RawIndexHeader,
    range: std::ops::Range<usize>,
    keys: &[u8],
    read: &ReadAt<'_>,
) -> Result<(Vec<Vec<Record>>, Option<u32>), Bad> {
    let (hd, chunk) = (&h.header, super::records::CHUNK);
    let per = RECORD_WINDOW / RECORD_LEN;
    let mut win = vec![0u8; per.min(range.len()) * RECORD_LEN];
    let mut chunks: Vec<Vec<Record>> = Vec::with_capacity(range.len().div_ceil(chunk));
    let mut prev: Option<u32> = None;
    for first in range.clone().step_by(per.max(1)) {
        let count = per.min(range.end - first);
        let base = INDEX_HEADER_LEN + first * RECORD_LEN;
        let w = &mut win[..count * RECORD_LEN];
        if read(base as u64, w)? < w.len() {
            return bad("file ends inside its records", base);
        }
        for j in 0..count {
            let (i, at) = (first + j, base + j * RECORD_LEN);
            let r = decode_record(w, j * RECORD_LEN, keys, i).map_err(|mut b| {
                b.offset += base as u64;
                b
            })?;
            check_record(hd, &r, prev, i, at)?;
            prev = Some(r.uid);
            match chunks.last_mut() {
                Some(c) if c.len() < chunk => c.push(r),
                _ => {
                    let mut c = Vec::with_capacity(chunk);
                    c.push(r);
                    chunks.push(c);
                }
            }
        }
    }
    Ok((chunks, prev))
}

/// A decoded record against the header and the record before it (`i`, `at`: its number
/// and offset, for the error).
fn check_record(
    hd: &Header,
    r: &Record,
    prev: Option<u32>,
    i: usize,
    at: usize,
) -> Result<(), Bad> {
    let prev = prev.unwrap_or(0);
    if r.uid <= prev {
        return bad(
            format!("record {i}: uid {} not above previous uid {prev}", r.uid),
            at,
        );
    }
    if r.uid >= hd.uid_next {
        return bad(
            format!(
                "record {i}: uid {} not below UIDNEXT {}",
                r.uid, hd.uid_next
            ),
            at,
        );
    }
    if r.modseq > hd.highest_modseq {
        return bad(
            format!("record {i}: modseq {} above HIGHESTMODSEQ", r.modseq),
            at + 16,
        );
    }
    Ok(())
}

/// `loft.index.log` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogHeader {
    pub generation: u64,
    pub pair_id: u64,
    pub uid_validity: u32,
}

pub fn encode_log_header(h: &LogHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(LOG_HEADER_LEN);
    out.extend_from_slice(LOG_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(LOG_HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&h.generation.to_le_bytes());
    out.extend_from_slice(&h.pair_id.to_le_bytes());
    out.extend_from_slice(&h.uid_validity.to_le_bytes());
    let c = crc(&[&out]);
    out.extend_from_slice(&c.to_le_bytes());
    out
}

pub fn decode_log_header(buf: &[u8]) -> Result<LogHeader, Bad> {
    if buf.len() < LOG_HEADER_LEN {
        return bad(
            format!(
                "file holds {} bytes, less than the {LOG_HEADER_LEN}-byte header",
                buf.len()
            ),
            0,
        );
    }
    if &buf[..8] != LOG_MAGIC {
        return bad("bad magic (not a Loft index log)", 0);
    }
    let mut c = Cur::new(buf, 8);
    check_version(c.u32().unwrap_or(0), 8)?;
    if crc(&[&buf[..36]]) != u32::from_le_bytes([buf[36], buf[37], buf[38], buf[39]]) {
        return bad("header checksum mismatch", 36);
    }
    if c.u32() != Some(LOG_HEADER_LEN as u32) {
        return bad("unexpected header length", 12);
    }
    let generation = c.u64().unwrap_or(0);
    let pair_id = c.u64().unwrap_or(0);
    let uid_validity = c.u32().unwrap_or(0);
    Ok(LogHeader {
        generation,
        pair_id,
        uid_validity,
    })
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
