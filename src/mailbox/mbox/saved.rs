//! A folder's last sync kept on disk (`loft.mbox-scan` in the mailbox's index directory),
//! so that the first sync after a restart, or after the last session of the process let
//! go of the file, reads the file only where it changed since ([`super::change`]) instead
//! of scanning all of it.
//!
//! It is a cache: written at the last close (temporary file, rename; not forced to disk —
//! a torn or stale one is detected and ignored), and used only for the same file (device
//! and inode) with the index's UIDVALIDITY and exactly the index's UIDs. Anything else:
//! the file is scanned as if there were none.
//!
//! Two steps, so that opening an unchanged file reads one 4 KiB piece (the header: a
//! few hundred bytes), not the whole save: [`peek`] reads the header alone (its own
//! CRC-32): the file's tail, what the folder knows besides its messages, the message
//! count, a CRC-32 of their UIDs (to compare with the index's) and whether any lacks its
//! `X-UID` in the file. [`load`]
//! reads everything, checked whole (CRC-32 over all, offsets inside the file's length
//! and ascending, UIDs ascending and as the header says).
//!
//! Format (little-endian): `LOFTMBS2`; the tail (device, inode, size, mtime as i128 ns,
//! last `From ` line's offset, length and CRC); UIDVALIDITY, UIDNEXT; `X-IMAPbase`
//! (flag, UIDVALIDITY, UIDNEXT, keywords); the pseudo message's range (flag, start, end);
//! the message count, the UIDs' CRC, the missing-`X-UID` flag; the CRC-32 of the header.
//! Then per message its UID, offsets (`From ` line, header, blank line, body, end, next
//! or none), date, fingerprint, hidden fields' values and ranges; the CRC-32 of all
//! before it. A save of another version (`LOFTMBS1`) is not used.
//!
//! This module knows the folder's shape and bytes, nothing of the index or sessions.

use std::io;
use std::ops::Range;
use std::path::Path;

use super::change::Tail;
use super::folder::{Folder, Msg};
use super::meta::{Base, Meta};
use super::number::Print;
use crate::mailbox::SysFlags;

pub const FILE: &str = "loft.mbox-scan";
const MAGIC: &[u8; 8] = b"LOFTMBS2";
/// The most header bytes read (a base with [`MAX_LIST`] keywords of any length fits).
const MAX_HEADER: usize = 1 << 20;
/// The largest save read (about 4 million messages).
const MAX_LEN: u64 = 512 << 20;
/// Most keywords or hidden ranges one message may have here (the scan keeps fewer).
const MAX_LIST: usize = 256;

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i128(&mut self, v: i128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        self.u8(u8::from(v.is_some()));
        self.u64(v.unwrap_or(0));
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn strs(&mut self, v: &[String]) {
        self.u32(v.len() as u32);
        v.iter().for_each(|s| self.str(s));
    }
    fn base(&mut self, b: Option<&Base>) {
        self.u8(u8::from(b.is_some()));
        if let Some(b) = b {
            self.u32(b.uid_validity);
            self.u32(b.uid_next);
            self.strs(&b.keywords);
        }
    }
    fn range(&mut self, r: &Range<u64>) {
        self.u64(r.start);
        self.u64(r.end);
    }
}

struct In<'a> {
    b: &'a [u8],
    at: usize,
}

impl In<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }
    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn opt_u64(&mut self) -> Option<Option<u64>> {
        let some = self.flag()?;
        let v = self.u64()?;
        Some(some.then_some(v))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn strs(&mut self) -> Option<Vec<String>> {
        let n = self.u32()? as usize;
        (n <= MAX_LIST).then_some(())?;
        (0..n).map(|_| self.str()).collect()
    }
    fn base(&mut self) -> Option<Option<Base>> {
        if !self.flag()? {
            return Some(None);
        }
        Some(Some(Base {
            uid_validity: self.u32()?,
            uid_next: self.u32()?,
            keywords: self.strs()?,
        }))
    }
    fn range(&mut self) -> Option<Range<u64>> {
        let (s, e) = (self.u64()?, self.u64()?);
        (s <= e).then_some(s..e)
    }
}

fn put_msg(o: &mut Out, m: &Msg) {
    o.u32(m.uid);
    for v in [m.from, m.header, m.blank, m.body, m.end] {
        o.u64(v);
    }
    o.opt_u64(m.next);
    o.u64(m.date as u64);
    o.u32(m.print.header_crc);
    o.u64(m.print.body_len);
    let meta = &m.meta;
    o.opt_u64(meta.uid.map(u64::from));
    o.u8(meta.flags.0);
    o.u8(u8::from(meta.old));
    o.u8(u8::from(meta.pseudo));
    o.opt_u64(meta.content_length);
    o.strs(&meta.keywords);
    o.base(meta.base.as_ref());
    o.u32(m.hidden.len() as u32);
    m.hidden.iter().for_each(|h| o.range(h));
}

fn get_msg(i: &mut In<'_>) -> Option<Msg> {
    let uid = i.u32()?;
    let (from, header, blank, body, end) = (i.u64()?, i.u64()?, i.u64()?, i.u64()?, i.u64()?);
    let next = i.opt_u64()?;
    let date = i.u64()? as i64;
    let print = Print {
        header_crc: i.u32()?,
        body_len: i.u64()?,
    };
    let meta_uid = match i.opt_u64()? {
        Some(u) => Some(u32::try_from(u).ok()?),
        None => None,
    };
    let flags = SysFlags(i.u8()?);
    let (old, pseudo) = (i.flag()?, i.flag()?);
    let content_length = i.opt_u64()?;
    let keywords = i.strs()?;
    let base = i.base()?;
    let n = i.u32()? as usize;
    (n <= MAX_LIST).then_some(())?;
    let hidden = (0..n).map(|_| i.range()).collect::<Option<Vec<_>>>()?;
    let ordered = from < header && header <= blank && blank <= body && body <= end;
    (ordered && next.is_none_or(|n| n >= end)).then_some(Msg {
        uid,
        from,
        header,
        blank,
        body,
        end,
        next,
        date,
        meta: Meta {
            uid: meta_uid,
            flags,
            old,
            keywords,
            base,
            pseudo,
            content_length,
        },
        hidden,
        print,
    })
}

/// What a save says besides its messages ([`peek`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peek {
    pub tail: Tail,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub base: Option<Base>,
    pub pseudo: Option<Range<u64>>,
    pub count: u32,
    /// [`uids_crc`] of the messages' UIDs.
    pub uids_crc: u32,
    /// Some message's `X-UID` in the file is missing or not its UID.
    pub uid_missing: bool,
}

/// The CRC-32 of `uids` as little-endian words (what a save keeps of its UIDs).
pub fn uids_crc(uids: impl Iterator<Item = u32>) -> u32 {
    let mut h = crc32fast::Hasher::new();
    let mut buf = [0u8; 1024];
    let mut n = 0;
    for u in uids {
        buf[n..n + 4].copy_from_slice(&u.to_le_bytes());
        n += 4;
        if n == buf.len() {
            h.update(&buf);
            n = 0;
        }
    }
    h.update(&buf[..n]);
    h.finalize()
}

fn peek_of(f: &Folder, t: &Tail) -> Peek {
    Peek {
        tail: *t,
        uid_validity: f.uid_validity,
        uid_next: f.uid_next,
        base: f.base.clone(),
        pseudo: f.pseudo.clone(),
        count: f.messages.len() as u32,
        uids_crc: uids_crc(f.messages.iter().map(|m| m.uid)),
        uid_missing: f.messages.iter().any(|m| m.meta.uid != Some(m.uid)),
    }
}

fn put_header(o: &mut Out, p: &Peek) {
    o.0.extend_from_slice(MAGIC);
    let t = &p.tail;
    for v in [t.dev, t.ino, t.size] {
        o.u64(v);
    }
    o.i128(t.mtime);
    o.u64(t.last_from);
    o.u32(t.from_len);
    o.u32(t.from_crc);
    o.u32(p.uid_validity);
    o.u32(p.uid_next);
    o.base(p.base.as_ref());
    o.u8(u8::from(p.pseudo.is_some()));
    o.range(&p.pseudo.clone().unwrap_or(0..0));
    o.u32(p.count);
    o.u32(p.uids_crc);
    o.u8(u8::from(p.uid_missing));
    let crc = crc32fast::hash(&o.0);
    o.u32(crc);
}

/// The header at the start of `b`, when whole and its CRC checks out.
fn get_header(i: &mut In<'_>) -> Option<Peek> {
    (i.take(8)? == MAGIC).then_some(())?;
    let tail = Tail {
        dev: i.u64()?,
        ino: i.u64()?,
        size: i.u64()?,
        mtime: i.i128()?,
        last_from: i.u64()?,
        from_len: i.u32()?,
        from_crc: i.u32()?,
    };
    let (uid_validity, uid_next) = (i.u32()?, i.u32()?);
    let base = i.base()?;
    let pseudo = i.flag()?.then_some(());
    let range = i.range()?;
    let (count, uids_crc, uid_missing) = (i.u32()?, i.u32()?, i.flag()?);
    let end = i.at;
    let crc = i.u32()?;
    (crc32fast::hash(&i.b[..end]) == crc).then_some(Peek {
        tail,
        uid_validity,
        uid_next,
        base,
        pseudo: pseudo.map(|_| range),
        count,
        uids_crc,
        uid_missing,
    })
}

/// The bytes of `f` (with its tail) as saved.
fn encode(f: &Folder, t: &Tail) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(128 + f.messages.len() * 112));
    put_header(&mut o, &peek_of(f, t));
    f.messages.iter().for_each(|m| put_msg(&mut o, m));
    let crc = crc32fast::hash(&o.0);
    o.u32(crc);
    o.0
}

/// The folder saved in `b`, when it is whole and consistent.
fn decode(b: &[u8]) -> Option<Folder> {
    let (body, crc) = b.split_at_checked(b.len().checked_sub(4)?)?;
    (crc32fast::hash(body) == u32::from_le_bytes(crc.try_into().ok()?)).then_some(())?;
    let mut i = In { b: body, at: 0 };
    let p = get_header(&mut i)?;
    let n = p.count as usize;
    // Each message takes more than 64 bytes: a count the bytes cannot hold is damage.
    (n <= body.len() / 64).then_some(())?;
    let mut messages = Vec::with_capacity(n);
    let mut last = (0u32, 0u64);
    for _ in 0..n {
        let m = get_msg(&mut i)?;
        let fits = m.uid > last.0 && m.from >= last.1 && m.end <= p.tail.size;
        fits.then_some(())?;
        last = (m.uid, m.next.unwrap_or(m.end));
        messages.push(m);
    }
    (i.at == body.len() && p.uid_next > last.0).then_some(())?;
    let f = Folder {
        uid_validity: p.uid_validity,
        uid_next: p.uid_next,
        messages,
        base: p.base.clone(),
        pseudo: p.pseudo.clone(),
        tail: Some(p.tail),
        seed: None,
    };
    // What the header says of the messages is what they are.
    (peek_of(&f, &p.tail) == p).then_some(f)
}

/// Saves `f` (synced: it has its tail) into the index directory `dir`.
pub fn save(dir: &Path, f: &Folder) -> io::Result<()> {
    let Some(t) = &f.tail else {
        return Ok(());
    };
    let bytes = encode(f, t);
    let tmp = dir.join(format!(".{FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut out = crate::beneath::open_nofollow(&tmp, crate::beneath::How::CreateNew(0o600))?;
    std::io::Write::write_all(&mut out, &bytes)?;
    std::fs::rename(&tmp, dir.join(FILE))
}

/// The folder saved in `dir` for the file `(dev, ino)`; `None` when there is none, or it
/// is damaged or another file's.
pub fn load(dir: &Path, dev: u64, ino: u64) -> Option<Folder> {
    let path = dir.join(FILE);
    // Never read more than a save of millions of messages takes (someone else's file).
    let len = std::fs::symlink_metadata(&path).ok()?.len();
    (len <= MAX_LEN).then_some(())?;
    let b = crate::mailbox::fsio::read(&path).ok()?;
    let f = decode(&b)?;
    let t = f.tail.as_ref()?;
    ((t.dev, t.ino) == (dev, ino)).then_some(f)
}

/// The header of the folder saved in `dir` for the file `(dev, ino)` (its first bytes
/// only); `None` as for [`load`]. The messages may still be damaged: [`load`] finds out.
pub fn peek(dir: &Path, dev: u64, ino: u64) -> Option<Peek> {
    let file = crate::beneath::open_nofollow(&dir.join(FILE), crate::beneath::How::Read).ok()?;
    let mut want = 4096;
    loop {
        let mut buf = vec![0u8; want];
        let got = crate::beneath::read_full_at(&file, &mut buf, 0).ok()?;
        if let Some(p) = get_header(&mut In {
            b: &buf[..got],
            at: 0,
        }) {
            return ((p.tail.dev, p.tail.ino) == (dev, ino)).then_some(p);
        }
        // Too short for its keywords, or not a header at all.
        if got < want || want >= MAX_HEADER {
            return None;
        }
        want *= 16;
    }
}

/// For the fuzz target: any bytes decode without panicking; what decodes encodes back the
/// same.
pub fn fuzz_check(b: &[u8]) {
    let _ = get_header(&mut In { b, at: 0 });
    if let Some(f) = decode(b) {
        let t = f.tail.expect("decoded with a tail");
        assert_eq!(encode(&f, &t), b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> Folder {
        let file = b"From a@b  Mon Dec  7 16:49:14 2026\nX-IMAPbase: 7 12 $Work\nSubject: a\nX-UID: 3\nX-Keywords: $Work\n\nbody a\n\nFrom a@b  Mon Dec  7 16:49:15 2026\nSubject: b\nStatus: RO\n\nbody b\n";
        let mut f = Folder::default();
        let st = super::super::change::Stamp {
            dev: 5,
            ino: 9,
            size: file.len() as u64,
            mtime: 77,
        };
        super::super::folder::sync(&file[..], st, &mut f, || 1).unwrap();
        f
    }

    #[test]
    fn saved_and_loaded_as_it_was() {
        let d = tempfile::tempdir().unwrap();
        let f = folder();
        assert_eq!(f.messages.len(), 2);
        save(d.path(), &f).unwrap();
        let g = load(d.path(), 5, 9).expect("loads");
        assert_eq!(g.messages, f.messages);
        assert_eq!(
            (g.uid_validity, g.uid_next, &g.base),
            (f.uid_validity, f.uid_next, &f.base)
        );
        assert_eq!(g.tail, f.tail);
        // Another file (inode) under the name: not used.
        assert!(load(d.path(), 5, 10).is_none());
        // The header alone says what the folder is besides its messages.
        let p = peek(d.path(), 5, 9).expect("peeks");
        assert_eq!(p, peek_of(&f, f.tail.as_ref().unwrap()));
        assert_eq!((p.count, p.uid_validity), (2, f.uid_validity));
        let uids: Vec<u32> = f.messages.iter().map(|m| m.uid).collect();
        assert_eq!(p.uids_crc, uids_crc(uids.iter().copied()));
        assert_ne!(p.uids_crc, uids_crc(uids.iter().map(|u| u + 1)));
        assert!(p.uid_missing, "the second message has no X-UID");
        assert!(peek(d.path(), 5, 10).is_none());
    }

    #[test]
    fn a_header_too_long_for_one_read_is_read_whole() {
        let d = tempfile::tempdir().unwrap();
        let mut f = folder();
        let long: Vec<String> = (0..200)
            .map(|i| format!("$keyword{i:04}{}", "x".repeat(60)))
            .collect();
        f.base.as_mut().unwrap().keywords = long;
        save(d.path(), &f).unwrap();
        let p = peek(d.path(), 5, 9).expect("peeks past 4 KiB");
        assert_eq!(p.base, f.base);
        assert_eq!(load(d.path(), 5, 9).unwrap().base, f.base);
    }

    #[test]
    fn a_damaged_header_is_never_used_and_damaged_messages_are_found_by_load() {
        let d = tempfile::tempdir().unwrap();
        let f = folder();
        save(d.path(), &f).unwrap();
        let b = std::fs::read(d.path().join(FILE)).unwrap();
        let mut c = b.clone();
        c[20] ^= 1; // the tail's inode
        std::fs::write(d.path().join(FILE), &c).unwrap();
        assert!(peek(d.path(), 5, 9).is_none());
        let mut c = b.clone();
        let at = c.len() - 10; // a message's bytes
        c[at] ^= 1;
        std::fs::write(d.path().join(FILE), &c).unwrap();
        assert!(peek(d.path(), 5, 9).is_some());
        assert!(load(d.path(), 5, 9).is_none());
    }

    #[test]
    fn damage_is_never_used() {
        let f = folder();
        let b = encode(&f, f.tail.as_ref().unwrap());
        assert!(decode(&b).is_some());
        for cut in [0, 1, 8, b.len() / 2, b.len() - 1] {
            assert!(decode(&b[..cut]).is_none(), "cut at {cut}");
        }
        for at in [0, 9, 40, b.len() / 2, b.len() - 5] {
            let mut c = b.clone();
            c[at] ^= 0x55;
            assert!(decode(&c).is_none(), "byte {at} flipped");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            fuzz_check(&b);
        }
    }
}
