//! The in-memory side of one mailbox's cache: the field table with decisions, the
//! (uid, field) -> record location index, values offered but not yet written, and the
//! operations that keep them in step with the file: load, catch-up with other processes,
//! reads, locking (writing is in `write.rs`). Never interprets values.

use super::disk::{corrupted, io, Disk, LockGuard, Settings};
use super::format::{self, Entry};
use super::Decision;
use crate::index::Error;
use std::collections::hash_map::Entry as MapEntry;
use std::path::Path;

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
    pub locs: UidMap<Loc>,
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
            locs: UidMap::default(),
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
}

/// Outcome of catching up with the file at its path.
enum CatchUp {
    Done,
    /// The file shrank below what we had read: reload from scratch.
    Reload,
}

impl Inner {
    /// Opens the file at `path` and indexes every record (one sequential pass).
    pub fn load(path: &Path, set: &Settings) -> Result<Inner, Error> {
        let (disk, entries) = Disk::open(path, set.nfs)?;
        let mut inner = Inner {
            disk,
            fields: entries.iter().map(Field::from_entry).collect(),
            pending: Vec::new(),
            pending_bytes: 0,
            day_override: None,
        };
        let size = inner.disk.open_size;
        inner.scan_tail(false, size)?;
        Ok(inner)
    }

    /// Indexes records appended after `disk.end`. Under the lock a torn tail is cut off.
    /// `size` must have been measured before the header in use was read.
    fn scan_tail(&mut self, locked: bool, size: u64) -> Result<CatchUp, Error> {
        if size < self.disk.end {
            return Ok(CatchUp::Reload);
        }
        // Field id -> index in `fields`, as a table: one lookup per record.
        let top = self
            .fields
            .iter()
            .filter_map(|f| f.id)
            .max()
            .map_or(0, usize::from);
        let mut ids: Vec<Option<usize>> = vec![None; top + 1];
        for (i, f) in self.fields.iter().enumerate() {
            if let Some(id) = f.id {
                ids[usize::from(id)] = Some(i);
            }
        }
        let from = self.disk.end;
        let fields = &mut self.fields;
        let known = |id: u16| ids.get(usize::from(id)).is_some_and(Option::is_some);
        let end = self
            .disk
            .with_bytes(from, size, |b| {
                format::scan(b, from, &known, &mut |uid, id, off, len| {
                    let slot = ids.get(usize::from(id)).copied().flatten();
                    let Some(f) = slot.and_then(|i| fields.get_mut(i)) else {
                        return;
                    };
                    match f.locs.entry(uid) {
                        // A value still waiting to be written here is newer: keep it.
                        MapEntry::Occupied(e) if matches!(e.get(), Loc::Pending(_)) => {}
                        MapEntry::Occupied(mut e) => {
                            if let Loc::File { len: old, .. } = e.insert(Loc::File { off, len }) {
                                f.bytes = f.bytes.saturating_sub(u64::from(old));
                            }
                            f.bytes += u64::from(len);
                        }
                        MapEntry::Vacant(e) => {
                            e.insert(Loc::File { off, len });
                            f.bytes += u64::from(len);
                        }
                    }
                })
            })?
            .map_err(|d| corrupted(&self.disk.path, d))?;
        self.disk.end = end.valid_end;
        if end.torn && locked {
            self.disk
                .file
                .set_len(end.valid_end)
                .map_err(io(&self.disk.path))?;
        }
        Ok(CatchUp::Done)
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
        if !self.disk.path.exists() {
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
                &self.disk.path,
                set,
                &entries,
                self.disk.pre.uid_validity,
                false,
            )?;
        }
        let mut fresh = Inner::load(&self.disk.path, set)?;
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
            if let Some(Loc::Pending(old)) = f.locs.get(&uid).copied() {
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

    /// Calls `f` with the current value of `(uid, fields[field])`, borrowed from the map
    /// (no copy) or the pending list.
    pub fn read_with(&mut self, field: usize, uid: u32, f: &mut dyn FnMut(Option<&[u8]>)) {
        let Some(loc) = self
            .fields
            .get(field)
            .and_then(|x| x.locs.get(&uid))
            .copied()
        else {
            return f(None);
        };
        match loc {
            Loc::Pending(k) => f(self.pending.get(k).map(|p| &p.value[..])),
            Loc::File { off, len } => {
                // Checked by CRC when indexed; records never change in place, and the head
                // check catches a file rewritten behind our back.
                let found = self
                    .disk
                    .with_bytes(off, off + format::record_len(len), |b| {
                        let v = format::record_checked_head(b, uid, len);
                        f(v);
                        v.is_some()
                    });
                if found.is_err() {
                    f(None);
                }
                if found.ok() != Some(true) {
                    tracing::warn!(file = %self.disk.path.display(), offset = off,
                        "index cache: record changed on disk, ignoring it");
                    if let Some(x) = self.fields.get_mut(field) {
                        x.locs.remove(&uid);
                        x.bytes = x.bytes.saturating_sub(u64::from(len));
                    }
                }
            }
        }
    }
}
