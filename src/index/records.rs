//! The records of a snapshot, in ascending UID order, held in shared chunks.
//!
//! A snapshot is cloned whenever a change is applied while sessions still hold the
//! previous one. With one vector that clone copied every record (100,000 of them for a
//! one-message STORE), and every session then compared the whole list to find what
//! changed. Here a clone copies only the chunk pointers, a change copies the chunks it
//! touches ([`Arc::make_mut`]), and two snapshots are compared chunk by chunk: chunks
//! that are the same allocation are equal without looking inside ([`Records::diff`]).
//!
//! This module knows records and UIDs, nothing of files or mail formats.

use std::sync::Arc;

use super::Record;

/// Records per chunk when chunks are (re)built; appends fill the last chunk up to it.
/// Small, so that a change spread over the mailbox (a STORE of every hundredth message)
/// copies little while sessions still hold the chunks: 1.7 MB of 100,000 records against
/// 10 MB with chunks of 256, and no slower to decode or walk (measured, docs/performance.md).
pub(crate) const CHUNK: usize = 16;

/// Ascending-UID records in shared, copy-on-write chunks (never an empty chunk).
#[derive(Clone, Default)]
pub struct Records {
    chunks: Vec<Arc<Vec<Record>>>,
    /// Index of the first record of each chunk.
    starts: Vec<usize>,
    /// UID of the first record of each chunk: a lookup by UID searches this flat list
    /// instead of touching every chunk on its way.
    firsts: Vec<u32>,
    len: usize,
}

impl Records {
    pub fn new() -> Records {
        Records::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk holding record `i` and the position in it.
    fn locate(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.len {
            return None;
        }
        let c = self.starts.partition_point(|&s| s <= i) - 1;
        Some((c, i - self.starts[c]))
    }

    pub fn get(&self, i: usize) -> Option<&Record> {
        self.locate(i).map(|(c, k)| &self.chunks[c][k])
    }

    /// Record `i` to change (its chunk is copied first when shared).
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Record> {
        let (c, k) = self.locate(i)?;
        Some(&mut Arc::make_mut(&mut self.chunks[c])[k])
    }

    pub fn first(&self) -> Option<&Record> {
        self.chunks.first().and_then(|c| c.first())
    }

    pub fn last(&self) -> Option<&Record> {
        self.chunks.last().and_then(|c| c.last())
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            chunks: &self.chunks,
            front: (0, 0),
            back: (self.chunks.len(), 0),
            left: self.len,
        }
    }

    /// The number of records for which `pred` holds, `pred` being true for a prefix
    /// (as [`slice::partition_point`]).
    pub fn partition_point(&self, mut pred: impl FnMut(&Record) -> bool) -> usize {
        // The first chunk whose last record fails; the point is inside it.
        let c = self
            .chunks
            .partition_point(|ch| ch.last().is_some_and(&mut pred));
        match self.chunks.get(c) {
            Some(ch) => self.starts[c] + ch.partition_point(pred),
            None => self.len,
        }
    }

    /// The chunk and place in it of `uid` (`Ok`), or the position where it would be
    /// inserted (`Err`): one search over the chunks' last UIDs, one inside a chunk.
    fn find_in(&self, uid: u32) -> Result<(usize, usize), usize> {
        // The last chunk that starts at or below `uid` holds it if anything does.
        let c = self.firsts.partition_point(|&f| f <= uid);
        let Some(c) = c.checked_sub(1) else {
            return Err(0);
        };
        let ch = &self.chunks[c];
        match ch.binary_search_by_key(&uid, |r| r.uid) {
            Ok(k) => Ok((c, k)),
            Err(k) => Err(self.starts[c] + k),
        }
    }

    /// Position of `uid` (`Ok`), or where it would be inserted (`Err`).
    pub fn find(&self, uid: u32) -> Result<usize, usize> {
        self.find_in(uid).map(|(c, k)| self.starts[c] + k)
    }

    /// A [`Seeker`] from the start: for many lookups in ascending UID order.
    pub fn seeker(&self) -> Seeker<'_> {
        Seeker {
            r: self,
            c: 0,
            k: 0,
        }
    }

    /// The record of `uid`.
    pub fn by_uid(&self, uid: u32) -> Option<&Record> {
        self.find_in(uid).ok().map(|(c, k)| &self.chunks[c][k])
    }

    /// Appends a record (above every UID held: the caller checks).
    pub fn push(&mut self, r: Record) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(r),
            _ => {
                self.starts.push(self.len);
                self.firsts.push(r.uid);
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(r);
                self.chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    /// Calls `f` on the record of each `(uid, value)` held (UIDs in any order; ascending
    /// ones, as a transaction's, are found in one walk), never changing a UID.
    pub fn update_uids<T>(&mut self, items: &[(u32, T)], mut f: impl FnMut(&mut Record, &T)) {
        let at: Vec<Option<usize>> = {
            let mut seek = self.seeker();
            items.iter().map(|(u, _)| seek.find(*u).ok()).collect()
        };
        for (i, (_, v)) in at.into_iter().zip(items) {
            if let Some(r) = i.and_then(|i| self.get_mut(i)) {
                let uid = r.uid;
                f(r, v);
                debug_assert_eq!(r.uid, uid, "update_uids changed a UID");
            }
        }
    }

    /// Records made of `chunks` as they are (ascending UIDs across them: the caller
    /// checked); empty ones are left out.
    pub fn from_chunks(chunks: impl IntoIterator<Item = Vec<Record>>) -> Records {
        let mut r = Records::default();
        for c in chunks.into_iter().filter(|c| !c.is_empty()) {
            r.starts.push(r.len);
            r.firsts.push(c[0].uid);
            r.len += c.len();
            r.chunks.push(Arc::new(c));
        }
        r
    }

    pub fn clear(&mut self) {
        *self = Records::default();
    }

    /// Calls `f` on every record at positions `range` (chunks copied when shared). `f`
    /// changes what a record says, never its UID.
    pub fn update_range(&mut self, range: std::ops::Range<usize>, mut f: impl FnMut(&mut Record)) {
        let mut i = range.start;
        while i < range.end {
            let Some((c, k)) = self.locate(i) else { return };
            let chunk = Arc::make_mut(&mut self.chunks[c]);
            let n = (chunk.len() - k).min(range.end - i);
            chunk[k..k + n].iter_mut().for_each(|r| {
                let uid = r.uid;
                f(r);
                debug_assert_eq!(r.uid, uid, "update_range changed a UID");
            });
            i += n;
        }
    }

    /// Keeps the records for which `keep` holds; chunks without a removal stay shared.
    pub fn retain(&mut self, mut keep: impl FnMut(&Record) -> bool) {
        let mut changed = false;
        for ch in &mut self.chunks {
            // Decide per record once (the predicate may be stateful): a removal found
            // means the chunk is rebuilt from the decisions.
            let verdicts: Vec<bool> = ch.iter().map(&mut keep).collect();
            if verdicts.iter().all(|k| *k) {
                continue;
            }
            changed = true;
            let mut v = verdicts.into_iter();
            Arc::make_mut(ch).retain(|_| v.next().unwrap_or(true));
        }
        if changed {
            self.chunks.retain(|c| !c.is_empty());
            self.reindex();
        }
    }

    /// Recomputes `starts` and `len`; merges neighbours when expunges left many small
    /// chunks (more than twice as many as full ones would make).
    fn reindex(&mut self) {
        let len: usize = self.chunks.iter().map(|c| c.len()).sum();
        if self.chunks.len() > 2 * len.div_ceil(CHUNK) + 4 {
            // From the chunks: `len` and `starts` are not recomputed yet (an iterator
            // over `self` would walk past the records `retain` just removed).
            let all: Vec<Record> = self.chunks.iter().flat_map(|c| c.iter().cloned()).collect();
            *self = Records::from(all);
            return;
        }
        self.starts.clear();
        self.firsts.clear();
        let mut at = 0;
        for c in &self.chunks {
            self.starts.push(at);
            self.firsts.push(c[0].uid);
            at += c.len();
        }
        self.len = at;
    }

    /// UIDs present in only one of `self` and `other`, or in both with different
    /// records; ascending. Chunks both share are skipped unread.
    pub fn diff(
        &self,
        other: &Records,
        mut differs: impl FnMut(&Record, &Record) -> bool,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        let (mut a, mut b) = (Cursor::new(self), Cursor::new(other));
        loop {
            if a.k == 0 && b.k == 0 {
                if let (Some(x), Some(y)) = (a.chunk(), b.chunk()) {
                    if Arc::ptr_eq(x, y) {
                        a.next_chunk();
                        b.next_chunk();
                        continue;
                    }
                }
            }
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.uid == y.uid => {
                    if differs(x, y) {
                        out.push(x.uid);
                    }
                    a.advance();
                    b.advance();
                }
                (Some(x), Some(y)) if x.uid < y.uid => {
                    out.push(x.uid);
                    a.advance();
                }
                (Some(_), Some(y)) => {
                    out.push(y.uid);
                    b.advance();
                }
                (Some(x), None) => {
                    out.push(x.uid);
                    a.advance();
                }
                (None, Some(y)) => {
                    out.push(y.uid);
                    b.advance();
                }
                (None, None) => return out,
            }
        }
    }

    /// Whether both hold the same chunk allocations (then they are equal).
    pub fn shares_all(&self, other: &Records) -> bool {
        self.chunks.len() == other.chunks.len()
            && self
                .chunks
                .iter()
                .zip(&other.chunks)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// Lookups by UID that start where the last one ended: in ascending order (a STORE over
/// every message, a snapshot's changes) each costs a look at the next record, not a
/// search. Any order gives the right answer; a UID below the last one searches anew.
pub struct Seeker<'a> {
    r: &'a Records,
    c: usize,
    k: usize,
}

impl<'a> Seeker<'a> {
    /// The record of `uid`, as [`Records::by_uid`].
    pub fn record(&mut self, uid: u32) -> Option<&'a Record> {
        self.find(uid).ok()?;
        let r: &'a Records = self.r;
        Some(&r.chunks[self.c][self.k])
    }

    /// As [`Records::find`].
    pub fn find(&mut self, uid: u32) -> Result<usize, usize> {
        let chunks = &self.r.chunks;
        // The record after this one: the next of ascending neighbours.
        let (nc, nk) = match chunks.get(self.c) {
            Some(ch) if self.k + 1 < ch.len() => (self.c, self.k + 1),
            _ => (self.c + 1, 0),
        };
        if chunks
            .get(nc)
            .and_then(|ch| ch.get(nk))
            .is_some_and(|r| r.uid == uid)
        {
            (self.c, self.k) = (nc, nk);
            return Ok(self.r.starts[nc] + nk);
        }
        let Some(c) = self.chunk_of(uid) else {
            return Err(0);
        };
        let found = chunks[c].binary_search_by_key(&uid, |r| r.uid);
        // Stand on the record found, or on the one before where it would be (the next
        // ascending lookup starts there either way).
        self.c = c;
        self.k = match found {
            Ok(k) => k,
            Err(k) => k.saturating_sub(1),
        };
        let start = self.r.starts[c];
        found.map(|k| start + k).map_err(|k| start + k)
    }

    /// The last chunk whose first UID is at most `uid`: galloping forward over the
    /// chunks' first UIDs from the current chunk (ascending lookups, as a transaction's
    /// ranges, cost the log of the distance), searched whole when `uid` lies behind.
    fn chunk_of(&self, uid: u32) -> Option<usize> {
        let f = &self.r.firsts;
        let from = self.c.min(f.len().checked_sub(1)?);
        if f[from] > uid {
            return f.partition_point(|&x| x <= uid).checked_sub(1);
        }
        let (mut lo, mut step) = (from, 1);
        loop {
            let next = lo + step;
            if next >= f.len() || f[next] > uid {
                let hi = next.min(f.len());
                return Some(lo + f[lo..hi].partition_point(|&x| x <= uid) - 1);
            }
            lo = next;
            step *= 2;
        }
    }
}

/// A position in a [`Records`] walked by [`Records::diff`].
struct Cursor<'a> {
    chunks: &'a [Arc<Vec<Record>>],
    c: usize,
    k: usize,
}

impl<'a> Cursor<'a> {
    fn new(r: &'a Records) -> Self {
        Cursor {
            chunks: &r.chunks,
            c: 0,
            k: 0,
        }
    }
    fn chunk(&self) -> Option<&'a Arc<Vec<Record>>> {
        self.chunks.get(self.c)
    }
    fn peek(&self) -> Option<&'a Record> {
        self.chunks.get(self.c).map(|ch| &ch[self.k])
    }
    fn advance(&mut self) {
        self.k += 1;
        if self.chunks.get(self.c).is_some_and(|ch| self.k >= ch.len()) {
            self.next_chunk();
        }
    }
    fn next_chunk(&mut self) {
        self.c += 1;
        self.k = 0;
    }
}

impl From<Vec<Record>> for Records {
    fn from(v: Vec<Record>) -> Records {
        v.into_iter().collect()
    }
}

impl FromIterator<Record> for Records {
    fn from_iter<I: IntoIterator<Item = Record>>(it: I) -> Records {
        let mut r = Records::default();
        it.into_iter().for_each(|x| r.push(x));
        r
    }
}

impl PartialEq for Records {
    fn eq(&self, other: &Records) -> bool {
        self.len == other.len && (self.shares_all(other) || self.iter().eq(other.iter()))
    }
}

impl Eq for Records {}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl std::ops::Index<usize> for Records {
    type Output = Record;
    fn index(&self, i: usize) -> &Record {
        match self.get(i) {
            Some(r) => r,
            None => panic!("record {i} of {}", self.len),
        }
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = &'a Record;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over [`Records`] (both ends).
#[derive(Clone)]
pub struct Iter<'a> {
    chunks: &'a [Arc<Vec<Record>>],
    /// (chunk, position) of the next record from the front.
    front: (usize, usize),
    /// (chunk, position) one past the next record from the back (chunk = len: the end).
    back: (usize, usize),
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Record;
    fn next(&mut self) -> Option<&'a Record> {
        if self.left == 0 {
            return None;
        }
        let (c, k) = self.front;
        let ch = &self.chunks[c];
        self.front = if k + 1 < ch.len() {
            (c, k + 1)
        } else {
            (c + 1, 0)
        };
        self.left -= 1;
        Some(&ch[k])
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let (mut c, mut k) = self.back;
        if k == 0 {
            c -= 1;
            k = self.chunks[c].len();
        }
        k -= 1;
        self.back = (c, k);
        self.left -= 1;
        Some(&self.chunks[c][k])
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(uid: u32) -> Record {
        Record {
            uid,
            flags: 0,
            dirty: false,
            keywords: 0,
            modseq: 1,
            size: 10,
            internal_date: 0,
            key: format!("k{uid}").into_bytes().into(),
        }
    }

    /// A retain that leaves most chunks nearly empty merges them (the rebuild takes the
    /// records from the chunks as `retain` left them, not through the stale positions).
    #[test]
    fn a_sparse_retain_merges_the_chunks() {
        for keep_every in [2u32, 7, 10, 33, 1000] {
            let mut v: Vec<Record> = (1..=500).map(rec).collect();
            let mut r = Records::from(v.clone());
            v.retain(|x| x.uid % keep_every == 0);
            r.retain(|x| x.uid % keep_every == 0);
            assert_eq!(r.len(), v.len(), "every {keep_every}");
            assert!(r.iter().eq(v.iter()));
            assert!(r.chunks.len() <= 2 * v.len().div_ceil(CHUNK) + 4);
            for (i, x) in v.iter().enumerate() {
                assert_eq!(r.get(i), Some(x));
                assert_eq!(r.find(x.uid), Ok(i));
            }
        }
    }

    proptest::proptest! {
        /// Every operation gives what the same operation on a plain vector gives, and a
        /// diff names exactly the UIDs that differ.
        #[test]
        fn behaves_as_a_vector(
            n in 0usize..1200,
            gone in proptest::collection::vec(0u32..1300, 0..300),
            flip in proptest::collection::vec(0usize..1300, 0..50),
            more in 0u32..600,
        ) {
            let mut v: Vec<Record> = (1..=n as u32).map(|u| rec(u * 2)).collect();
            let mut r = Records::from(v.clone());
            let before = r.clone();
            v.retain(|x| !gone.contains(&(x.uid / 2)));
            r.retain(|x| !gone.contains(&(x.uid / 2)));
            for &i in &flip {
                if i < v.len() {
                    v[i].flags ^= 1;
                    r.update_range(i..i + 1, |x| x.flags ^= 1);
                }
            }
            let top = v.last().map_or(0, |x| x.uid);
            for u in 1..=more {
                v.push(rec(top + 2 * u));
                r.push(rec(top + 2 * u));
            }
            proptest::prop_assert_eq!(r.len(), v.len());
            proptest::prop_assert!(r.iter().eq(v.iter()));
            proptest::prop_assert!(r.iter().rev().eq(v.iter().rev()));
            for (i, x) in v.iter().enumerate() {
                proptest::prop_assert_eq!(r.get(i), Some(x));
                proptest::prop_assert_eq!(r.find(x.uid), Ok(i));
                proptest::prop_assert_eq!(r.by_uid(x.uid), Some(x));
            }
            // Absent UIDs (odd ones, 0, past the end): where a vector would insert them.
            for u in (0..=top + 2 * more + 3).filter(|u| u % 2 == 1 || *u == 0) {
                let want = v.binary_search_by_key(&u, |x| x.uid);
                proptest::prop_assert_eq!(r.find(u), want);
                proptest::prop_assert_eq!(r.by_uid(u), None);
            }
            // A seeker answers as find, in ascending order and in the order given.
            let mut s = r.seeker();
            for u in 0..=top + 2 * more + 3 {
                proptest::prop_assert_eq!(s.find(u), r.find(u));
            }
            let mut s = r.seeker();
            for &g in &gone {
                proptest::prop_assert_eq!(s.find(g * 2), r.find(g * 2));
            }
            proptest::prop_assert_eq!(r.get(v.len()), None);
            let cut = v.len() / 2;
            let uid = v.get(cut).map_or(0, |x| x.uid);
            proptest::prop_assert_eq!(r.partition_point(|x| x.uid < uid), v.partition_point(|x| x.uid < uid));
            // The diff against the state before: by a plain merge of the two vectors.
            let old: Vec<Record> = before.iter().cloned().collect();
            let mut want: Vec<u32> = old.iter().filter(|x| !v.contains(x)).map(|x| x.uid).collect();
            want.extend(v.iter().filter(|x| !old.contains(x)).map(|x| x.uid));
            want.sort_unstable();
            want.dedup();
            proptest::prop_assert_eq!(before.diff(&r, |a, b| a != b), want);
            proptest::prop_assert!(r == Records::from(v.clone()));
        }
    }

    #[test]
    fn a_change_copies_one_chunk_and_the_diff_skips_the_rest() {
        let a: Records = (1..=100_000).map(rec).collect();
        let mut b = a.clone();
        let i = b.find(50_000).unwrap();
        b.get_mut(i).unwrap().flags = 2;
        let shared = a
            .chunks
            .iter()
            .zip(&b.chunks)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert_eq!(shared, a.chunks.len() - 1);
        assert_eq!(a.diff(&b, |x, y| x != y), vec![50_000]);
    }
}
