//! A write transaction: changes gathered in memory under the write lock and committed as
//! one log write (plus fsync per `[storage] fsync`). Flag changes are encoded compactly:
//! runs of adjacent records getting the same flags become one uid range.
//!
//! This module knows how to turn calls into log records, not files.

use std::collections::HashMap;
use std::sync::Arc;

use super::format::{FLAG_MASK, MAX_KEYWORDS};
use super::lock::WriteLock;
use super::op::{Op, Range};
use super::{log, Error, FsyncMode, Index, IndexSnapshot, Record};

/// Holds the write lock until committed or dropped (dropping writes nothing).
pub struct Transaction<'a> {
    index: &'a Index,
    _lock: WriteLock,
    base: Arc<IndexSnapshot>,
    reset: Option<u32>,
    uid_next: u32,
    keywords: Vec<String>,
    kw_base: usize,
    appends: Vec<Record>,
    flags: Vec<(u32, (u8, u64, bool))>,
    expunges: Vec<u32>,
    keys: Vec<(u32, Box<[u8]>)>,
    dates: Vec<(u32, i64)>,
    sizes: Vec<(u32, u64)>,
    dirty_clear: Vec<u32>,
    recent: Option<u32>,
    error: Option<String>,
}

type Value = (u8, u64, bool);

impl<'a> Transaction<'a> {
    pub(super) fn new(
        index: &'a Index,
        lock: WriteLock,
        base: Arc<IndexSnapshot>,
    ) -> Transaction<'a> {
        Transaction {
            index,
            _lock: lock,
            uid_next: base.header.uid_next,
            keywords: base.keywords.clone(),
            kw_base: base.keywords.len(),
            base,
            reset: None,
            appends: Vec::new(),
            flags: Vec::new(),
            expunges: Vec::new(),
            keys: Vec::new(),
            dates: Vec::new(),
            sizes: Vec::new(),
            dirty_clear: Vec::new(),
            recent: None,
            error: None,
        }
    }

    /// The state this transaction started from (up to date: taken under the lock).
    pub fn snapshot(&self) -> &Arc<IndexSnapshot> {
        &self.base
    }

    /// Adds a message; returns its new uid (0 when the UID space is exhausted, then
    /// `commit` fails with `Error::Invalid`).
    pub fn append(
        &mut self,
        key: &[u8],
        flags: u8,
        keywords: u64,
        size: u64,
        internal_date: i64,
    ) -> u32 {
        if self.uid_next >= u32::MAX - 1 {
            self.error = Some("UID space exhausted; a new UIDVALIDITY is needed".into());
            return 0;
        }
        let uid = self.uid_next;
        self.uid_next += 1;
        self.appends.push(Record {
            uid,
            flags: flags & FLAG_MASK,
            dirty: false,
            keywords,
            modseq: 0,
            size,
            internal_date,
            key: key.into(),
        });
        uid
    }

    /// Adds a message under a UID the storage chose (an mbox file's `X-UID`, kept from
    /// before this index), at or above UIDNEXT and above the records; UIDNEXT becomes
    /// `uid + 1`. A UID below makes `commit` fail with `Error::Invalid`. `dirty`: the
    /// storage does not have these flags (or this UID) yet.
    #[allow(clippy::too_many_arguments)]
    pub fn append_with_uid(
        &mut self,
        uid: u32,
        key: &[u8],
        flags: u8,
        keywords: u64,
        size: u64,
        internal_date: i64,
        dirty: bool,
    ) {
        if uid < self.uid_next || uid >= u32::MAX - 1 {
            self.error = Some(format!("UID {uid} is below UIDNEXT {}", self.uid_next));
            return;
        }
        self.uid_next = uid + 1;
        self.appends.push(Record {
            uid,
            flags: flags & FLAG_MASK,
            dirty,
            keywords,
            modseq: 0,
            size,
            internal_date,
            key: key.into(),
        });
    }

    /// UIDNEXT as it stands with this transaction's appends.
    pub fn uid_next(&self) -> u32 {
        self.uid_next
    }

    /// Sets the flags of `uid` (ignored when it does not exist). `dirty`: the storage
    /// does not have these flags yet.
    pub fn set_flags(&mut self, uid: u32, flags: u8, keywords: u64, dirty: bool) {
        self.flags.push((uid, (flags & FLAG_MASK, keywords, dirty)));
    }

    /// The storage now has the flags of `uid`: clears its dirty bit (no modseq change).
    pub fn clear_dirty(&mut self, uid: u32) {
        self.dirty_clear.push(uid);
    }

    pub fn expunge(&mut self, uid: u32) {
        self.expunges.push(uid);
    }

    /// The message's storage key changed (file renamed by someone else).
    pub fn set_key(&mut self, uid: u32, key: &[u8]) {
        self.keys.push((uid, key.into()));
    }

    /// The internal date of `uid` became known (see [`super::UNKNOWN_DATE`]).
    pub fn set_date(&mut self, uid: u32, date: i64) {
        self.dates.push((uid, date));
    }

    /// The size of `uid` became known (see [`super::UNKNOWN_SIZE`]).
    pub fn set_size(&mut self, uid: u32, size: u64) {
        self.sizes.push((uid, size));
    }

    /// The bit of keyword `name` (case-insensitive), adding it; `None` past 64 names.
    pub fn keyword_index(&mut self, name: &str) -> Option<u8> {
        if let Some(i) = self
            .keywords
            .iter()
            .position(|k| k.eq_ignore_ascii_case(name))
        {
            return Some(i as u8);
        }
        if self.keywords.len() >= MAX_KEYWORDS {
            return None;
        }
        self.keywords.push(name.to_string());
        Some(self.keywords.len() as u8 - 1)
    }

    pub fn set_recent_uid(&mut self, uid: u32) {
        self.recent = Some(uid);
    }

    /// New UIDVALIDITY: drops every record (and every change made before in this
    /// transaction); UIDNEXT restarts at 1.
    pub fn reset_uid_validity(&mut self, v: u32) {
        self.reset = Some(v.max(1));
        self.uid_next = 1;
        self.appends.clear();
        self.flags.clear();
        self.expunges.clear();
        self.keys.clear();
        self.dates.clear();
        self.sizes.clear();
        self.dirty_clear.clear();
        self.recent = None;
    }

    /// (uid, value) pairs of records that exist, ascending, the last value of a uid.
    fn existing<T: Copy>(&self, mut v: Vec<(u32, T)>) -> Vec<(u32, T)> {
        // Stable: of a uid given twice the later value stays (dedup keeps the first of
        // a run, so the run is reversed first).
        v.reverse();
        v.sort_by_key(|p| p.0);
        let mut seek = self.base.records.seeker();
        v.retain(|(uid, _)| self.pos(&mut seek, *uid).is_some());
        v.dedup_by_key(|p| p.0);
        v
    }

    /// Position of `uid` among the records as they are after the appends.
    fn pos(&self, seek: &mut super::Seeker<'_>, uid: u32) -> Option<usize> {
        let base = match self.reset.is_some() {
            true => 0,
            false => match seek.find(uid) {
                Ok(i) => return Some(i),
                Err(_) => self.base.records.len(),
            },
        };
        // Ascending, with gaps where the storage chose the UIDs (`append_with_uid`).
        let i = self.appends.binary_search_by_key(&uid, |r| r.uid).ok()?;
        Some(base + i)
    }

    /// Sorted, deduplicated (last wins) existing uids → ranges of adjacent records.
    fn runs<V: Copy + PartialEq>(&self, mut items: Vec<(u32, V)>) -> Vec<(V, Range)> {
        items.sort_by_key(|e| e.0);
        let mut out: Vec<(V, Range, usize)> = Vec::new();
        let mut seek = self.base.records.seeker();
        let mut i = 0;
        while i < items.len() {
            let (uid, mut v) = items[i];
            while i + 1 < items.len() && items[i + 1].0 == uid {
                i += 1;
                v = items[i].1;
            }
            i += 1;
            let Some(p) = self.pos(&mut seek, uid) else {
                continue;
            };
            match out.last_mut() {
                Some((lv, r, lp)) if *lv == v && *lp + 1 == p => {
                    r.1 = uid;
                    *lp = p;
                }
                _ => out.push((v, (uid, uid), p)),
            }
        }
        out.into_iter().map(|(v, r, _)| (v, r)).collect()
    }

    fn ops(&mut self, modseq: u64) -> Vec<Op> {
        let mut ops = Vec::new();
        if let Some(v) = self.reset {
            ops.push(Op::UidValidity {
                uid_validity: v,
                uid_next: 1,
            });
        }
        if self.keywords.len() > self.kw_base {
            let names = self.keywords[self.kw_base..].to_vec();
            ops.push(Op::KeywordNames {
                first: self.kw_base as u8,
                names,
            });
        }
        for r in &self.appends {
            ops.push(Op::Append(Record {
                modseq,
                ..r.clone()
            }));
        }
        let pending = std::mem::take(&mut self.flags);
        let flags = self.runs(pending);
        let mut by_value: Vec<(Value, Vec<Range>)> = Vec::new();
        let mut slot: HashMap<Value, usize> = HashMap::new();
        for (v, r) in flags {
            let i = *slot.entry(v).or_insert_with(|| {
                by_value.push((v, Vec::new()));
                by_value.len() - 1
            });
            by_value[i].1.push(r);
        }
        for ((flags, keywords, dirty), ranges) in by_value {
            ops.push(Op::Flags {
                modseq,
                flags,
                keywords,
                dirty,
                ranges,
            });
        }
        let mut seek = self.base.records.seeker();
        for (uid, key) in std::mem::take(&mut self.keys) {
            if self.pos(&mut seek, uid).is_some() {
                ops.push(Op::SetKey { uid, key });
            }
        }
        let dates = std::mem::take(&mut self.dates);
        for chunk in self.existing(dates).chunks(super::op::MAX_DATES_PER_OP) {
            ops.push(Op::SetDates {
                dates: chunk.to_vec(),
            });
        }
        let sizes = std::mem::take(&mut self.sizes);
        for chunk in self.existing(sizes).chunks(super::op::MAX_SIZES_PER_OP) {
            ops.push(Op::SetSizes {
                sizes: chunk.to_vec(),
            });
        }
        let plain = |v: &mut Vec<u32>| v.drain(..).map(|u| (u, ())).collect::<Vec<_>>();
        let dc = plain(&mut self.dirty_clear);
        let ex = plain(&mut self.expunges);
        let ranges: Vec<Range> = self.runs(dc).into_iter().map(|(_, r)| r).collect();
        if !ranges.is_empty() {
            ops.push(Op::DirtyClear { ranges });
        }
        let ranges: Vec<Range> = self.runs(ex).into_iter().map(|(_, r)| r).collect();
        if !ranges.is_empty() {
            ops.push(Op::Expunge { modseq, ranges });
        }
        if let Some(uid) = self.recent {
            ops.push(Op::Recent {
                uid: uid.min(self.uid_next),
            });
        }
        ops
    }

    /// Appends the changes to the log, fsyncs per the fsync mode, and returns the new
    /// state (compacting first when due). With no changes nothing is written.
    pub fn commit(mut self) -> Result<Arc<IndexSnapshot>, Error> {
        if let Some(what) = self.error.take() {
            return Err(Error::Invalid { what });
        }
        let modseq = self.base.header.highest_modseq + 1;
        let ops = self.ops(modseq);
        if ops.is_empty() {
            return Ok(self.base.clone());
        }
        let changes = |o: &Op| {
            matches!(
                o,
                Op::Append(_) | Op::Flags { .. } | Op::Expunge { .. } | Op::UidValidity { .. }
            )
        };
        let structural = |o: &Op| {
            matches!(
                o,
                Op::Append(_) | Op::Expunge { .. } | Op::UidValidity { .. }
            )
        };
        let commit_modseq = if ops.iter().any(changes) {
            modseq
        } else {
            self.base.header.highest_modseq
        };
        let sync = match self.index.opts.fsync {
            FsyncMode::Always => true,
            FsyncMode::Optimized => ops.iter().any(structural),
            FsyncMode::Never => false,
        };
        let bytes = log::encode_txn(&ops, commit_modseq);
        // Let go of our reference first so that applying our own records can update the
        // snapshot in place; keep the lock until the write is done.
        let Transaction {
            index,
            base,
            _lock: held,
            ..
        } = self;
        drop(base);
        let r = index.write_txn(&bytes, sync);
        drop(held);
        r
    }
}
