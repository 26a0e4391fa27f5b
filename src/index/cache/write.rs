//! Writing the cache file: appending pending values and the field table under the lock,
//! and rewriting the whole file (compaction, bigger header slots, new UIDVALIDITY).
//! Knows nothing of decisions beyond copying them.

use super::disk::{io, NewFile, Settings};
use super::format::{self, Entry};
use super::state::{Field, Inner, Loc, Window};
use super::Decision;
use crate::index::Dir;
use crate::index::Error;
use crate::index::FsyncMode;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

impl Inner {
    /// Writes dirty decisions and pending values. Call under `lock()`.
    pub fn write_locked(&mut self, set: &Settings) -> Result<(), Error> {
        let mut used: Vec<bool> = vec![false; usize::from(u16::MAX) + 1];
        let mut registered = 0;
        for f in &self.fields {
            if let Some(id) = f.id {
                used[usize::from(id)] = true;
                registered += 1;
            }
        }
        let mut wants_id = vec![false; self.fields.len()];
        for p in &self.pending {
            wants_id[p.field] = true;
        }
        let mut header = false;
        let mut next = 0usize;
        for (i, f) in self.fields.iter_mut().enumerate() {
            header |= f.dirty;
            if f.id.is_some() || !(f.dirty || wants_id[i]) || f.decision == Decision::No {
                continue;
            }
            while next < used.len() && used[next] {
                next += 1;
            }
            if registered >= format::MAX_FIELDS || next >= used.len() {
                continue;
            }
            used[next] = true;
            registered += 1;
            f.id = Some(next as u16);
            header = true;
        }
        if header {
            let entries = self.entries(|_| true);
            if !self.disk.write_header(&entries)? {
                // The field table outgrew its slot: write a new file with bigger slots.
                let uv = self.disk.pre.uid_validity;
                return self.rewrite(set, &|_| true, &|_| true, uv);
            }
        }
        let mut buf = Vec::with_capacity(self.pending_bytes + 14 * self.pending.len());
        let mut placed = Vec::with_capacity(self.pending.len());
        for (k, p) in self.pending.iter().enumerate() {
            let Some(f) = self.fields.get(p.field) else {
                continue;
            };
            let (Some(id), Some(Loc::Pending(cur))) = (f.id, f.locs.get(p.uid)) else {
                continue;
            };
            if cur == k {
                placed.push((p.field, p.uid, buf.len() as u64, p.value.len() as u32));
                format::encode_record(&mut buf, p.uid, id, &p.value);
            }
        }
        let base = self.disk.end;
        if !buf.is_empty() {
            self.disk
                .file
                .write_all_at(&buf, base)
                .map_err(io(&self.disk.path))?;
        }
        if set.fsync == FsyncMode::Always && (header || !buf.is_empty()) {
            self.disk.file.sync_data().map_err(io(&self.disk.path))?;
        }
        self.disk.end = base + buf.len() as u64;
        for (field, uid, at, len) in placed {
            if let Some(f) = self.fields.get_mut(field) {
                f.locs.insert(
                    uid,
                    Loc::File {
                        off: base + at,
                        len,
                    },
                );
            }
        }
        // Values of fields that could not get an id (table full) are simply not cached.
        let pending = &self.pending;
        for f in self.fields.iter_mut().filter(|f| f.id.is_none()) {
            let bytes = &mut f.bytes;
            f.locs.retain(|_, loc| match loc {
                Loc::Pending(k) => {
                    let len = pending.get(k).map_or(0, |p| p.value.len() as u64);
                    *bytes = bytes.saturating_sub(len);
                    false
                }
                Loc::File { .. } => true,
            });
        }
        self.pending.clear();
        self.pending_bytes = 0;
        for f in &mut self.fields {
            f.dirty = false;
        }
        Ok(())
    }

    /// The field table to write: every field with an id (records may refer to it).
    fn entries(&self, keep: impl Fn(&Field) -> bool) -> Vec<Entry> {
        (self.fields.iter())
            .filter(|f| keep(f))
            .filter_map(|f| {
                Some(Entry {
                    id: f.id?,
                    name: f.name.clone(),
                    decision: f.decision,
                    last_used_day: f.last_used_day,
                    temp_since_uid: f.temp_since_uid,
                })
            })
            .collect()
    }

    /// Writes a new file holding the fields passing `keep` (renumbered) and their values
    /// for uids passing `live`, replaces the file by rename and loads it. Call under
    /// `lock()`; pending values are included.
    pub fn rewrite(
        &mut self,
        set: &Settings,
        keep: &dyn Fn(&Field) -> bool,
        live: &dyn Fn(u32) -> bool,
        uid_validity: u32,
    ) -> Result<(), Error> {
        let kept: Vec<usize> = (0..self.fields.len())
            .filter(|&i| self.fields[i].decision != Decision::No && keep(&self.fields[i]))
            .take(format::MAX_FIELDS)
            .collect();
        let entries: Vec<Entry> = (kept.iter().enumerate())
            .map(|(new_id, &i)| {
                let f = &self.fields[i];
                Entry {
                    id: new_id as u16,
                    name: f.name.clone(),
                    decision: f.decision,
                    last_used_day: f.last_used_day,
                    temp_since_uid: f.temp_since_uid,
                }
            })
            .collect();
        let dir = self.disk.dir.clone();
        let mut out = NewFile::create(&dir, &entries, uid_validity)?;
        let mut items: Vec<(u32, u16, Loc)> = Vec::new();
        for (new_id, &i) in kept.iter().enumerate() {
            let f = &self.fields[i];
            // A `Temp` field keeps new mail only (values of old mail a request read once
            // go); `Yes` keeps all.
            let from = match f.decision {
                Decision::Temp => f.temp_since_uid,
                _ => 0,
            };
            for (uid, loc) in f.locs.iter() {
                if uid >= from && live(uid) {
                    items.push((uid, new_id as u16, loc));
                }
            }
        }
        // Ordered by uid so that a FETCH of several fields reads neighbouring bytes.
        items.sort_unstable_by_key(|&(uid, id, _)| (uid, id));
        let mut rec = Vec::new();
        let mut windows: Vec<Window> = kept.iter().map(|_| Window::default()).collect();
        for (uid, id, loc) in items {
            rec.clear();
            match loc {
                Loc::Pending(k) => match self.pending.get(k) {
                    Some(p) => format::encode_record(&mut rec, uid, id, &p.value),
                    None => continue,
                },
                Loc::File { off, len } => {
                    // One read-ahead window per field: each field's records lie in
                    // file order, the output goes by uid across fields.
                    let Some(win) = windows.get_mut(usize::from(id)) else {
                        continue;
                    };
                    let end = off + format::record_len(len);
                    let read = win.read(&self.disk, off, end);
                    match read.and_then(|b| format::record_checked(b, uid, len)) {
                        Some(v) => format::encode_record(&mut rec, uid, id, v),
                        None => continue,
                    }
                }
            }
            out.append(&rec)?;
        }
        out.finish(set.fsync, true)?;
        let day = self.day_override;
        *self = Inner::load(&dir)?;
        self.day_override = day;
        Ok(())
    }
}

/// Creates an empty cache file in `dir` holding `entries`, replacing what is there or
/// only when absent.
pub(super) fn create(
    dir: &Arc<Dir>,
    set: &Settings,
    entries: &[Entry],
    uid_validity: u32,
    replace: bool,
) -> Result<(), Error> {
    let out = NewFile::create(dir, entries, uid_validity)?;
    out.finish(set.fsync, replace).map(drop)
}
