//! The file of every UID of one folder: the UIDs in ascending order (binary search), and
//! for each the position of its file in a vector kept in any order.
//!
//! A folder's first scan lists 100,000 files into one vector in directory order and
//! numbers them in delivery order: sorting (UID, position) pairs builds this map without
//! moving a file. (A `BTreeMap` needed every file moved into 9,000 fresh nodes; a vector
//! in UID order needed every file moved once more, through a cache miss each.) UIDs only
//! grow, so new files go at the ends.
//!
//! A scan's map holds whole [`FileInfo`]s (its files have no index record yet). The map a
//! folder keeps holds [`Kept`] entries, 24 bytes each: the file name is not kept, since
//! nearly every name is its base — the index record's key — alone or followed by the
//! info part its flags make (`:2,FS`); only other names are kept whole. (An entry with
//! its name was 88 bytes, the base held a second time beside the record's key.)
//!
//! This module must not know about IMAP or the index's files.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use super::filename::{self, MailName, Name};
use super::folder::{FileInfo, Sub, NO_MTIME};
use crate::mailbox::{SysFlags, Uid};

#[derive(Clone, Debug)]
pub struct FileMap<F = Kept> {
    /// Ascending.
    uids: Vec<Uid>,
    /// `files[slot[k]]` is the file of `uids[k]`.
    slot: Vec<u32>,
    files: Vec<F>,
}

impl<F> Default for FileMap<F> {
    fn default() -> Self {
        FileMap {
            uids: Vec::new(),
            slot: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// What a folder keeps of one message file; its name is made again from the index
/// record's key when asked ([`Kept::file`]).
#[derive(Clone, Debug)]
pub struct Kept {
    /// As [`FileInfo`]'s ([`NO_MTIME`]: not known).
    mtime: i64,
    /// A name that is not its base with its flags' info part, whole.
    odd: Option<Box<Odd>>,
    keywords: u32,
    sys: SysFlags,
    /// [`CUR`], [`INFO`].
    bits: u8,
}

#[derive(Clone, Debug)]
struct Odd {
    name: Name,
    parsed: MailName,
}

/// [`Kept::bits`]: the file is in `cur/` (else `new/`).
const CUR: u8 = 1;
/// [`Kept::bits`]: the name has the info part `:2,<letters>` (else it is the base alone).
const INFO: u8 = 2;

impl Kept {
    /// What is kept of `f` (its base is its record's key: a scan numbers files by base).
    pub fn of(f: &FileInfo) -> Kept {
        let info = filename::canonical_info(&f.name, &f.parsed);
        let sub = if f.sub == Sub::Cur { CUR } else { 0 };
        Kept {
            mtime: f.mtime().unwrap_or(NO_MTIME),
            odd: match info {
                Some(_) => None,
                None => Some(Box::new(Odd {
                    name: f.name.clone(),
                    parsed: f.parsed,
                })),
            },
            keywords: f.parsed.keywords,
            sys: f.parsed.sys,
            bits: sub | if info == Some(true) { INFO } else { 0 },
        }
    }

    pub fn sub(&self) -> Sub {
        if self.bits & CUR != 0 {
            Sub::Cur
        } else {
            Sub::New
        }
    }

    /// The keyword letters of the name (bit `i` is letter `a + i`).
    pub fn keyword_bits(&self) -> u32 {
        self.keywords
    }

    /// The whole file, its name made from `key` (its index record's key). `None` when
    /// the key is not a name (not UTF-8: a damaged index).
    pub fn file(&self, key: &[u8]) -> Option<FileInfo> {
        let mtime = (self.mtime != NO_MTIME).then_some(self.mtime);
        if let Some(o) = &self.odd {
            return Some(FileInfo::new(self.sub(), &o.name, o.parsed, mtime));
        }
        let key = std::str::from_utf8(key).ok()?;
        let info = self.bits & INFO != 0;
        let name = filename::canonical_name(key, info, self.sys, self.keywords);
        let parsed = MailName::of_key(key.len(), self.sys, self.keywords);
        Some(FileInfo::new(self.sub(), &name, parsed, mtime))
    }
}

impl Kept {
    /// Whether this is the file `name` in `sub`, its record's key being `key` (no
    /// allocation: the name is compared, not made).
    pub fn is(&self, key: &[u8], sub: Sub, name: &[u8]) -> bool {
        if self.sub() != sub {
            return false;
        }
        match &self.odd {
            Some(o) => o.name.as_bytes() == name,
            None => {
                let info = self.bits & INFO != 0;
                filename::is_canonical_name(key, info, self.sys, self.keywords, name)
            }
        }
    }
}

impl From<&FileInfo> for Kept {
    fn from(f: &FileInfo) -> Kept {
        Kept::of(f)
    }
}

impl FileMap<FileInfo> {
    /// The map a folder keeps of this scan's map, once its files have index records.
    pub fn kept(self) -> FileMap<Kept> {
        FileMap {
            files: self.files.iter().map(Kept::of).collect(),
            uids: self.uids,
            slot: self.slot,
        }
    }

    /// Like [`FileMap::iter`], for a pass over every file that reads their names: the
    /// files (and their names) lie in memory in listing order, not UID order, so a file
    /// and a name some places ahead are asked for early and the cache misses overlap.
    pub fn iter_prefetched(&self) -> impl Iterator<Item = (Uid, &FileInfo)> {
        self.iter().enumerate().map(|(k, item)| {
            if let Some(f) = k.checked_add(8).and_then(|a| self.at(a)) {
                prefetch(f.name.as_ptr());
            }
            if let Some(f) = k.checked_add(16).and_then(|a| self.at(a)) {
                prefetch((f as *const FileInfo).cast());
            }
            item
        })
    }
}

impl FileMap<Kept> {
    /// The file of `uid`, its name made from `key` (its record's key).
    pub fn file(&self, uid: Uid, key: &[u8]) -> Option<FileInfo> {
        self.get(uid)?.file(key)
    }
}

impl<F> FileMap<F> {
    /// A map of `files` numbered by `uids` (same length, any order). Of a UID given
    /// twice the file given last stays.
    pub fn from_parts(mut uids: Vec<Uid>, mut files: Vec<F>) -> FileMap<F> {
        let n = uids.len().min(files.len()).min(u32::MAX as usize);
        uids.truncate(n);
        files.truncate(n);
        if uids.windows(2).all(|w| w[0] < w[1]) {
            return FileMap {
                slot: (0..n as u32).collect(),
                uids,
                files,
            };
        }
        let mut order: Vec<(Uid, u32)> = uids.iter().copied().zip(0..n as u32).collect();
        order.sort_unstable();
        // Equal UIDs are adjacent, by position: keep the last of each run.
        let mut m = FileMap {
            uids: Vec::with_capacity(n),
            slot: Vec::with_capacity(n),
            files,
        };
        let mut dropped = false;
        for (k, &(u, i)) in order.iter().enumerate() {
            if order.get(k + 1).is_some_and(|next| next.0 == u) {
                dropped = true;
                continue;
            }
            m.uids.push(u);
            m.slot.push(i);
        }
        if dropped {
            m.compact();
        }
        m
    }

    pub fn len(&self) -> usize {
        self.uids.len()
    }

    fn find(&self, uid: Uid) -> Result<usize, usize> {
        // New mail is at the end: look there first.
        match self.uids.last() {
            Some(&last) if uid > last => Err(self.uids.len()),
            Some(&last) if uid == last => Ok(self.uids.len() - 1),
            _ => self.uids.binary_search(&uid),
        }
    }

    fn at(&self, k: usize) -> Option<&F> {
        self.files.get(*self.slot.get(k)? as usize)
    }

    pub fn get(&self, uid: Uid) -> Option<&F> {
        self.find(uid).ok().and_then(|k| self.at(k))
    }

    #[cfg(test)]
    pub fn contains(&self, uid: Uid) -> bool {
        self.find(uid).is_ok()
    }

    /// Sets the file of `uid`; returns the one it replaces.
    pub fn insert(&mut self, uid: Uid, f: F) -> Option<F> {
        match self.find(uid) {
            Ok(k) => {
                let i = self.slot[k] as usize;
                Some(std::mem::replace(&mut self.files[i], f))
            }
            Err(k) => {
                self.uids.insert(k, uid);
                self.slot.insert(k, self.files.len() as u32);
                self.files.push(f);
                None
            }
        }
    }

    /// Keeps the files for which `keep(uid, file)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(Uid, &F) -> bool) {
        let before = self.uids.len();
        let mut w = 0;
        for r in 0..before {
            let i = self.slot[r] as usize;
            if keep(self.uids[r], &self.files[i]) {
                self.uids[w] = self.uids[r];
                self.slot[w] = self.slot[r];
                w += 1;
            }
        }
        if w < before {
            self.uids.truncate(w);
            self.slot.truncate(w);
            self.compact();
        }
    }

    /// Drops the files no UID points at and renumbers the slots.
    fn compact(&mut self) {
        const FREE: u32 = u32::MAX;
        let mut new_pos = vec![FREE; self.files.len()];
        for &i in &self.slot {
            new_pos[i as usize] = 0;
        }
        let mut next = 0u32;
        for p in new_pos.iter_mut() {
            if *p != FREE {
                *p = next;
                next += 1;
            }
        }
        let mut i = 0;
        self.files.retain(|_| {
            i += 1;
            new_pos[i - 1] != FREE
        });
        for s in &mut self.slot {
            *s = new_pos[*s as usize];
        }
    }

    /// `(uid, file)` in ascending UID order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (Uid, &F)> + ExactSizeIterator {
        self.uids
            .iter()
            .zip(&self.slot)
            .map(|(&u, &i)| (u, &self.files[i as usize]))
    }

    /// Calls `f` on every file with its UID, mutably (in no particular order).
    pub fn for_each_mut(&mut self, mut f: impl FnMut(Uid, &mut F)) {
        for (&u, &i) in self.uids.iter().zip(&self.slot) {
            f(u, &mut self.files[i as usize]);
        }
    }

    /// The files in no particular order.
    pub fn values(&self) -> std::slice::Iter<'_, F> {
        self.files.iter()
    }

    /// The UIDs, ascending.
    pub fn uids(&self) -> &[Uid] {
        &self.uids
    }
}

/// A hint that the bytes at `p` are read soon. Never faults, whatever `p` is; no-op
/// where the CPU has no such instruction here.
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache; it does not access memory architecturally,
    // so any address (even an invalid one) is fine.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::maildir::filename;
    use crate::mailbox::maildir::folder::Sub;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn file(n: u32) -> FileInfo {
        let name = format!("{n}.x");
        FileInfo::new(Sub::Cur, &name, filename::parse(&name).unwrap(), None)
    }

    #[test]
    fn a_kept_file_is_24_bytes() {
        // The figures docs/performance.md counts per message.
        assert_eq!(std::mem::size_of::<Kept>(), 24);
        assert_eq!(std::mem::size_of::<FileInfo>(), 88);
    }

    #[test]
    fn kept_files_give_back_their_names() {
        for (sub, name, odd) in [
            (Sub::New, "1700000000.M1P2Q3.host,S=1200", false),
            (Sub::Cur, "1700000000.M1P2Q3.host,S=1200:2,", false),
            (
                Sub::Cur,
                "1700000000.M1P2Q3.host,S=1200,W=1230:2,FSac",
                false,
            ),
            (Sub::Cur, "x:2,PS", true),
            (Sub::New, "x:2,SF", true),
            (Sub::Cur, "x:1,whatever", true),
        ] {
            let parsed = filename::parse(name).unwrap();
            let f = FileInfo::new(sub, name, parsed, Some(1_700_000_000));
            let k = Kept::of(&f);
            assert_eq!(k.odd.is_some(), odd, "{name}");
            let key = f.base().as_bytes();
            let back = k.file(key).unwrap();
            assert_eq!(
                (&*back.name, back.sub, back.parsed, back.mtime()),
                (name, sub, parsed, Some(1_700_000_000))
            );
            assert_eq!(back.vsize(), f.vsize());
            assert!(k.is(key, sub, name.as_bytes()));
            let other = if sub == Sub::Cur { Sub::New } else { Sub::Cur };
            assert!(!k.is(key, other, name.as_bytes()));
            assert!(!k.is(key, sub, format!("{name}T").as_bytes()));
        }
        let f = FileInfo::new(Sub::Cur, "a:2,S", filename::parse("a:2,S").unwrap(), None);
        assert_eq!(Kept::of(&f).file(b"a").unwrap().mtime(), None);
        // A key that is not a name (a damaged index) gives no file.
        assert!(Kept::of(&f).file(b"\xff").is_none());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
        Retain(u32),
    }

    proptest! {
        /// Built from pairs in any order (UIDs repeated too), the map holds the last file
        /// given for each UID, in UID order.
        #[test]
        fn from_parts_orders(uids in proptest::collection::vec(1u32..40, 0..60)) {
            let files: Vec<FileInfo> = uids.iter().enumerate().map(|(i, &u)| {
                let mut f = file(u);
                f.name = format!("{u}.{i}").into();
                f
            }).collect();
            let mut model: BTreeMap<u32, String> = BTreeMap::new();
            for f in &files {
                model.insert(f.name.split('.').next().unwrap().parse().unwrap(), f.name.to_string());
            }
            let m = FileMap::from_parts(uids, files);
            let got: Vec<(u32, String)> = m.iter().map(|(u, f)| (u, f.name.to_string())).collect();
            prop_assert_eq!(got, model.into_iter().collect::<Vec<_>>());
        }

        /// Whatever is done to it, the map answers like a BTreeMap of the same pairs.
        #[test]
        fn same_as_btreemap(
            start in proptest::collection::vec(1u32..200, 0..60),
            ops in proptest::collection::vec(prop_oneof![
                (1u32..220).prop_map(Op::Insert),
                (1u32..220).prop_map(Op::Remove),
                (2u32..5).prop_map(Op::Retain),
            ], 0..40),
        ) {
            let mut model: BTreeMap<u32, String> = BTreeMap::new();
            for &u in &start {
                model.insert(u, file(u).name.to_string());
            }
            let mut m = FileMap::from_parts(start.clone(), start.iter().map(|&u| file(u)).collect());
            for op in ops {
                match op {
                    Op::Insert(u) => {
                        let mut f = file(u);
                        f.name = format!("{}y", f.name).into();
                        let had = model.insert(u, f.name.to_string());
                        prop_assert_eq!(m.insert(u, f).map(|f| f.name.to_string()), had);
                    }
                    Op::Remove(u) => {
                        model.remove(&u);
                        m.retain(|x, _| x != u);
                    }
                    Op::Retain(k) => {
                        model.retain(|x, _| x % k != 0);
                        m.retain(|x, _| x % k != 0);
                    }
                }
                let got: Vec<(u32, String)> = m.iter().map(|(u, f)| (u, f.name.to_string())).collect();
                let want: Vec<(u32, String)> = model.iter().map(|(u, n)| (*u, n.clone())).collect();
                prop_assert_eq!(got, want);
                for u in 0..222 {
                    prop_assert_eq!(m.get(u).map(|f| f.name.to_string()), model.get(&u).cloned());
                    prop_assert_eq!(m.contains(u), model.contains_key(&u));
                }
                prop_assert_eq!(m.len(), model.len());
            }
        }
    }
}
