//! The in-memory side of one mailbox's cache: the field table with decisions, the
//! (uid, field) -> record location index, values offered but not yet written, and the
//! operations that keep them in step with the file: load, catch-up with other processes,
//! reads, locking (writing is in `write.rs`). Never interprets values.

use super::disk::{corrupted, io, Disk, LockGuard, Settings};
use super::format::{self, Entry};
use super::Decision;
use crate::beneath::read_full_at;
use crate::index::Dir;
use crate::index::Error;
use std::sync::Arc;

pub(super) type UidMap<V> = crate::index::UidHashMap<V>;

/// Where the current value of one (uid, field) lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Loc {
    /// A record at `off` (its start) with `len` value bytes.
    File { off: u64, len: u32 },
    /// `Inner::pending[i]`, not yet written.
    Pending(usize),
}

pub(super) struct Field {
    pub name: String,
    /// Id in the file's field table; `None` until registered there by a flush.
    pub id: Option<u16>,
    pub decision: Decision,
    pub last_used_day: u32,
    pub temp_since_uid: u32,
    /// Changed here since the last header write (uses to merge into the file).
    pub dirty: bool,
    pub locs: super::locmap::LocMap,
    /// Value bytes of the current values.
    pub bytes: u64,
}

impl Field {
    pub fn new(name: &str, id: Option<u16>) -> Field {
        Field {
            name: name.to_string(),
            id,
            decision: Decision::No,
            last_used_day: 0,
            temp_since_uid: 0,
            dirty: false,
            locs: Default::default(),
            bytes: 0,
        }
    }

    fn from_entry(e: &Entry) -> Field {
        let mut f = Field::new(&e.name, Some(e.id));
        f.take(e);
        f
    }

    fn take(&mut self, e: &Entry) {
        self.decision = e.decision;
        self.last_used_day = e.last_used_day;
        self.temp_since_uid = e.temp_since_uid;
    }

    /// Folds another holder's view of this field into ours: the stronger decision, the
    /// earlier temp window, the later use.
    pub fn combine(&mut self, decision: Decision, last_used_day: u32, temp_since_uid: u32) {
        self.temp_since_uid = match (self.decision, decision) {
            (Decision::Temp, Decision::Temp) => self.temp_since_uid.min(temp_since_uid),
            (_, Decision::Temp) => temp_since_uid,
            _ => self.temp_since_uid,
        };
        self.decision = self.decision.max(decision);
        self.last_used_day = self.last_used_day.max(last_used_day);
    }

    /// Records the current value's location, keeping the byte count right.
    pub fn put(&mut self, uid: u32, loc: Loc, len: u32) {
        self.bytes += u64::from(len);
        if let Some(Loc::File { len: old, .. }) = self.locs.insert(uid, loc) {
            self.bytes = self.bytes.saturating_sub(u64::from(old));
        }
    }
}

pub(super) struct Pending {
    pub uid: u32,
    pub field: usize,
    pub value: Vec<u8>,
}

pub(super) struct Inner {
    pub disk: Disk,
    pub fields: Vec<Field>,
    pub pending: Vec<Pending>,
    pub pending_bytes: usize,
    pub day_override: Option<u32>,
    /// A record indexed earlier no longer reads back as it was: the file was changed
    /// in place behind our back. Set by reads, healed (and logged) by the caller.
    pub damage: Option<Error>,
    /// Opened without indexing its records ([`Inner::open_unscanned`]): the file size to
    /// index up to at the first use ([`Inner::scan_deferred`]).
    pub unscanned: Option<u64>,
}

/// Bytes read at a time when indexing records: more than twice the largest record
/// (`MAX_VALUE` + 14), so every record fits in the window that starts at it.
const SCAN_WINDOW: u64 = 4 << 20;

/// Bytes read at a time by [`Inner::read_many_with`] while the records it reads lie
/// next to each other (the usual case: values are appended, and compaction sorts them,
/// in uid order).
const READ_WINDOW: u64 = 128 * 1024;

fn lookup(ids: &[Option<usize>], id: u16) -> Option<usize> {
    ids.get(usize::from(id)).copied().flatten()
}

/// Records a scanned record as the current value of `(uid, f)`.
fn index_record(f: &mut Field, uid: u32, off: u64, len: u32) {
    match f.locs.get(uid) {
        // A value still waiting to be written here is newer: keep it.
        Some(Loc::Pending(_)) => {}
        _ => {
            if let Some(Loc::File { len: old, .. }) = f.locs.insert(uid, Loc::File { off, len }) {
                f.bytes = f.bytes.saturating_sub(u64::from(old));
            }
            f.bytes += u64::from(len);
        }
    }
}

/// Outcome of catching up with the file at its path.
enum CatchUp {
    Done,
    /// The file shrank below what we had read: reload from scratch.
    Reload,
}

impl Inner {
    /// Opens the cache file of `dir` and indexes every record (one sequential pass).
    pub fn load(dir: &Arc<Dir>) -> Result<Inner, Error> {
        let mut inner = Inner::open_unscanned(dir)?;
        inner.scan_deferred()?;
        Ok(inner)
    }

    /// Opens the cache file of `dir` (header and field table checked) without indexing
    /// its records yet: a mailbox opened only for its flags (SELECT after a restart,
    /// STATUS) never reads the values. [`Inner::scan_deferred`] must run before any use
    /// of the locations.
    pub fn open_unscanned(dir: &Arc<Dir>) -> Result<Inner, Error> {
        let (disk, entries) = Disk::open(dir)?;
        let size = disk.open_size;
        Ok(Inner {
            disk,
            fields: entries.iter().map(Field::from_entry).collect(),
            pending: Vec::new(),
            pending_bytes: 0,
            day_override: None,
            damage: None,
            unscanned: Some(size),
        })
    }

    /// Indexes the records an [`Inner::open_unscanned`] left, up to the size measured at
    /// open (later appends are caught up with by `refresh` as usual).
    pub fn scan_deferred(&mut self) -> Result<(), Error> {
        match self.unscanned.take() {
            // Loft only appends and cuts torn bytes after the last good record, so the
            // size measured at open is never below `disk.end` (the start of the records)
            // here; `Reload` cannot come back.
            Some(size) => self.scan_tail(false, size).map(drop),
            None => Ok(()),
        }
    }

    /// Indexes records appended after `disk.end`. Under the lock a torn tail is cut off.
    /// `size` must have been measured before the header in use was read. Reads the file
    /// in windows of [`SCAN_WINDOW`] bytes, so a cache of hundreds of megabytes never
    /// sits in memory whole.
    fn scan_tail(&mut self, locked: bool, size: u64) -> Result<CatchUp, Error> {
        if size < self.disk.end {
            // Loft only appends and cuts torn bytes *after* the last good record: this
            // file was truncated behind our back (same inode, see `replaced`).
            tracing::warn!(file = %self.disk.path.display(), was = self.disk.end, now = size,
                "index cache: file shrank below its last good record (truncated by another program); reloading it");
            return Ok(CatchUp::Reload);
        }
        let ids = self.field_ids();
        let mut pos = self.disk.end;
        let end = loop {
            let to = size.min(pos.saturating_add(SCAN_WINDOW));
            let fields = &mut self.fields;
            let (r, short) = self.disk.with_bytes(pos, to, |b| {
                let r = format::scan(
                    b,
                    pos,
                    &|id| lookup(&ids, id).is_some(),
                    &mut |uid, id, off, len| {
                        if let Some(f) = lookup(&ids, id).and_then(|i| fields.get_mut(i)) {
                            index_record(f, uid, off, len);
                        }
                    },
                );
                (r, (b.len() as u64) < to - pos)
            })?;
            let r = r.map_err(|d| corrupted(&self.disk.path, d))?;
            // The end of the file (as measured, or sooner when it shrank meanwhile).
            if to >= size || short {
                break r;
            }
            if r.valid_end > pos {
                pos = r.valid_end;
                continue;
            }
            // No record fits at `pos` although a whole window follows: zeros up to the
            // end are a crash artefact, anything else is damage.
            if self.disk.zeros(pos, size)? {
                break r;
            }
            return Err(corrupted(
                &self.disk.path,
                ("unreadable record followed by more data".into(), pos),
            ));
        };
        self.disk.end = end.valid_end;
        if end.torn && locked {
            self.disk
                .file
                .set_len(end.valid_end)
                .map_err(io(&self.disk.path))?;
        }
        Ok(CatchUp::Done)
    }

    /// Field id -> index in `fields`, as a table: one lookup per record.
    fn field_ids(&self) -> Vec<Option<usize>> {
        let top = (self.fields.iter())
            .filter_map(|f| f.id)
            .max()
            .map_or(0, usize::from);
        let mut ids: Vec<Option<usize>> = vec![None; top + 1];
        for (i, f) in self.fields.iter().enumerate() {
            if let Some(id) = f.id {
                ids[usize::from(id)] = Some(i);
            }
        }
        ids
    }

    /// Merges a header read from the file. `newer`: it is at least as new as the last one
    /// read, so its values replace ours for fields we have not changed.
    fn merge_entries(&mut self, entries: &[Entry], newer: bool) -> Result<(), Error> {
        let path = self.disk.path.clone();
        let clash = |what: &str| corrupted(&path, (format!("field table changed: {what}"), 0));
        for e in entries {
            match self.fields.iter().position(|f| f.name == e.name) {
                Some(i) => {
                    if self.fields[i].id.is_none() {
                        if self.fields.iter().any(|f| f.id == Some(e.id)) {
                            return Err(clash("id reused"));
                        }
                        self.fields[i].id = Some(e.id);
                    } else if self.fields[i].id != Some(e.id) {
                        return Err(clash("id of a field changed"));
                    }
                    let f = &mut self.fields[i];
                    if f.dirty {
                        f.combine(e.decision, e.last_used_day, e.temp_since_uid);
                    } else if newer {
                        f.take(e);
                    }
                }
                None => {
                    if self.fields.iter().any(|f| f.id == Some(e.id)) {
                        return Err(clash("id reused"));
                    }
                    self.fields.push(Field::from_entry(e));
                }
            }
        }
        Ok(())
    }

    /// Catches up with the same file: header, then appended records.
    fn catch_up(&mut self, locked: bool) -> Result<CatchUp, Error> {
        // Size first, header second: every record below the size we scan to was appended
        // after its field was registered in a header we are about to read.
        let size = self.disk.len()?;
        let (seq, active, entries) = self.disk.read_header()?;
        let newer = seq >= self.disk.seq;
        self.merge_entries(&entries, newer)?;
        if newer || locked {
            self.disk.seq = seq;
            self.disk.active = active;
        }
        self.scan_tail(locked, size)
    }

    /// Replaces our view by the file now at the path, keeping local uses and unwritten
    /// values (another process compacted or rebuilt it).
    pub fn reload(&mut self, set: &Settings) -> Result<(), Error> {
        if self.disk.dir.metadata(super::FILE_NAME).is_err() {
            // Deleted behind our back: start a new file from what we know (values are
            // gone with it; decisions are ours to keep).
            let mut entries: Vec<Entry> = Vec::new();
            for f in self
                .fields
                .iter_mut()
                .filter(|f| f.decision != Decision::No)
            {
                f.dirty = true;
                entries.push(Entry {
                    id: entries.len() as u16,
                    name: f.name.clone(),
                    decision: f.decision,
                    last_used_day: f.last_used_day,
                    temp_since_uid: f.temp_since_uid,
                });
            }
            entries.truncate(format::MAX_FIELDS);
            tracing::warn!(file = %self.disk.path.display(), "index cache: file vanished, starting a new one");
            super::write::create(
                &self.disk.dir,
                set,
                &entries,
                self.disk.pre.uid_validity,
                false,
            )?;
        }
        let mut fresh = Inner::load(&self.disk.dir.clone())?;
        fresh.day_override = self.day_override;
        let has_pending: Vec<bool> = {
            let mut v = vec![false; self.fields.len()];
            for p in &self.pending {
                if let Some(x) = v.get_mut(p.field) {
                    *x = true;
                }
            }
            v
        };
        let mut to_new = vec![None; self.fields.len()];
        for (i, old) in self.fields.iter().enumerate() {
            if !old.dirty && !has_pending[i] {
                continue;
            }
            let j = match fresh.fields.iter().position(|f| f.name == old.name) {
                Some(j) => j,
                None => {
                    let mut f = Field::new(&old.name, None);
                    f.dirty = true;
                    fresh.fields.push(f);
                    fresh.fields.len() - 1
                }
            };
            let f = &mut fresh.fields[j];
            if old.dirty {
                f.combine(old.decision, old.last_used_day, old.temp_since_uid);
                f.dirty = true;
            }
            to_new[i] = Some(j);
        }
        for p in std::mem::take(&mut self.pending) {
            if let Some(j) = to_new.get(p.field).copied().flatten() {
                fresh.store_pending(j, p.uid, p.value);
            }
        }
        *self = fresh;
        Ok(())
    }

    /// Adds a value to be written at the next flush.
    pub fn store_pending(&mut self, field: usize, uid: u32, value: Vec<u8>) {
        let len = value.len() as u32;
        self.pending_bytes += value.len();
        self.pending.push(Pending { uid, field, value });
        let k = self.pending.len() - 1;
        if let Some(f) = self.fields.get_mut(field) {
            if let Some(Loc::Pending(old)) = f.locs.get(uid) {
                f.bytes = f
                    .bytes
                    .saturating_sub(self.pending.get(old).map_or(0, |p| p.value.len() as u64));
            }
            f.put(uid, Loc::Pending(k), len);
        }
    }

    /// Takes the file lock on the file currently at the path and catches up with it
    /// (cutting off a torn tail). Reloads when the file was replaced.
    pub fn lock(&mut self, set: &Settings) -> Result<LockGuard, Error> {
        for _ in 0..8 {
            let guard = self.disk.lock()?;
            if self.disk.replaced()? {
                drop(guard);
                self.reload(set)?;
                continue;
            }
            match self.catch_up(true)? {
                CatchUp::Done => return Ok(guard),
                CatchUp::Reload => {
                    drop(guard);
                    self.reload(set)?;
                }
            }
        }
        Err(Error::Locked {
            file: self.disk.path.clone(),
        })
    }

    /// Picks up other processes' work without the lock; on damage, retries under the lock
    /// (a concurrent writer may have been mid-append) before reporting it.
    pub fn refresh(&mut self, set: &Settings) -> Result<(), Error> {
        if self.disk.replaced()? {
            return self.reload(set);
        }
        match self.catch_up(false) {
            Ok(CatchUp::Done) => Ok(()),
            Ok(CatchUp::Reload) => self.reload(set),
            Err(Error::Corrupted { .. }) => self.lock(set).map(drop),
            Err(e) => Err(e),
        }
    }

    /// The current value of `(uid, fields[field])`.
    pub fn read(&mut self, field: usize, uid: u32) -> Option<Vec<u8>> {
        let mut out = None;
        self.read_with(field, uid, &mut |v| out = v.map(<[u8]>::to_vec));
        out
    }

    /// Calls `f` with the current value of `(uid, fields[field])`, borrowed from the
    /// read buffer (no copy) or the pending list.
    pub fn read_with(&mut self, field: usize, uid: u32, f: &mut dyn FnMut(Option<&[u8]>)) {
        let loc = self.loc(field, uid);
        let Some(Loc::File { off, len }) = loc else {
            return f(loc.and_then(|l| self.pending_value(l)));
        };
        // Loft never changes a record in place: a failed check is another program's
        // doing (file truncated or rewritten).
        let found = self
            .disk
            .with_bytes(off, off + format::record_len(len), |b| {
                let v = format::record_checked(b, uid, len);
                f(v);
                v.is_some()
            });
        if found.is_err() {
            f(None);
        }
        if found.ok() != Some(true) {
            self.damaged(off);
        }
    }

    /// [`Inner::read_with`] for many uids: `f(i, value)` for each `uids[i]`. Records
    /// lying next to each other in the file are read together, a window at a time.
    pub fn read_many_with(
        &mut self,
        field: usize,
        uids: &[u32],
        f: &mut dyn FnMut(usize, Option<&[u8]>),
    ) {
        let mut win = Window::default();
        for (i, &uid) in uids.iter().enumerate() {
            let loc = self.loc(field, uid);
            let Some(Loc::File { off, len }) = loc else {
                f(i, loc.and_then(|l| self.pending_value(l)));
                continue;
            };
            let end = off + format::record_len(len);
            match win
                .read(&self.disk, off, end)
                .and_then(|b| format::record_checked(b, uid, len))
            {
                Some(v) => f(i, Some(v)),
                None => {
                    f(i, None);
                    self.damaged(off);
                }
            }
        }
    }

    fn loc(&self, field: usize, uid: u32) -> Option<Loc> {
        self.fields.get(field)?.locs.get(uid)
    }

    fn pending_value(&self, loc: Loc) -> Option<&[u8]> {
        match loc {
            Loc::Pending(k) => self.pending.get(k).map(|p| &p.value[..]),
            Loc::File { .. } => None,
        }
    }

    /// A record indexed earlier does not read back: the file was changed in place. No
    /// value of it is trusted any more (so nothing more is read, or logged, from it);
    /// the caller heals the file (one log line) through [`Inner::damage`].
    fn damaged(&mut self, off: u64) {
        if self.damage.is_none() {
            self.damage = Some(corrupted(
                &self.disk.path,
                (
                    "a record read earlier changed on disk (file truncated or rewritten by another program)".into(),
                    off,
                ),
            ));
        }
        for f in &mut self.fields {
            f.locs.retain(|_, l| matches!(l, Loc::Pending(_)));
            f.bytes = 0;
        }
    }
}

/// Bytes of the cache file read ahead by [`Inner::read_many_with`] and compaction.
#[derive(Default)]
pub(super) struct Window {
    start: u64,
    bytes: Vec<u8>,
    /// Records served from the current window.
    hits: u32,
    /// The previous window served a single record: read only what is asked next.
    scattered: bool,
}

impl Window {
    /// Bytes `[from, to)`, from the window or after reading a new one there. `None`
    /// when the file ends sooner (truncated by another program) or cannot be read.
    pub fn read(&mut self, disk: &Disk, from: u64, to: u64) -> Option<&[u8]> {
        if !self.covers(from, to) {
            self.fill(disk, from, to);
        }
        self.get(from, to)
    }

    fn covers(&self, from: u64, to: u64) -> bool {
        from >= self.start && to <= self.start + self.bytes.len() as u64
    }

    fn get(&mut self, from: u64, to: u64) -> Option<&[u8]> {
        if !self.covers(from, to) {
            return None;
        }
        self.hits += 1;
        let at = (from - self.start) as usize;
        self.bytes.get(at..at + (to - from) as usize)
    }

    /// Reads from `from`: at least up to `to`, more (up to [`READ_WINDOW`], not past the
    /// last good record) while records come in file order. A failed or short read leaves
    /// fewer bytes, and `get` then finds the record missing.
    fn fill(&mut self, disk: &Disk, from: u64, to: u64) {
        if !self.bytes.is_empty() {
            self.scattered = self.hits <= 1;
        }
        let ahead = if self.scattered {
            to
        } else {
            from + READ_WINDOW
        };
        let end = ahead.min(disk.end).max(to);
        self.start = from;
        self.hits = 0;
        self.bytes.clear();
        self.bytes.resize((end - from) as usize, 0);
        let n = read_full_at(&disk.file, &mut self.bytes, from).unwrap_or(0);
        self.bytes.truncate(n);
    }
}
