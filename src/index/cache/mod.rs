//! The index cache, `loft.index.cache`: opaque named fields per message (a field name such
//! as `imap.envelope` and its value are bytes chosen by the caller; this module never
//! interprets them), with self-optimizing caching decisions per mailbox and field.
//!
//! # Decisions
//! * A field never asked for is [`Decision::No`]: offered values are not stored.
//! * The first [`Cache::get`] of a field makes it [`Decision::Temp`] with
//!   `temp_since_uid` = the mailbox's newest uid at that moment. Values offered from
//!   then on are stored, but [`Cache::compact`] keeps only those of uids >=
//!   `temp_since_uid`: new mail stays cached, what one request read of old mail does not
//!   (as Dovecot's "temp").
//! * A later `get` (not the same call that made it `Temp`) for a uid < `temp_since_uid`
//!   makes it [`Decision::Yes`]: the client reads old mail again, so every value is kept,
//!   and values still missing are stored as they are computed (lazy back-fill). A
//!   `FETCH 1:*` looks values up in chunks, so it makes a new field `Yes` by itself.
//! * Every `get` sets `last_used_day` (unix day). [`Cache::compact`] drops fields unused
//!   for more than `cache_drop_days` (0 = never): decision back to `No`, values gone.
//!
//! Decisions live in the file header, so they survive restarts and are shared by every
//! process opening the mailbox; concurrent changes merge (stronger decision, earlier
//! temp window, later use).
//!
//! # Files and processes
//! Values are appended as CRC-checked records (`docs/index-cache-format.md`) under an
//! exclusive `flock` on the cache file (the configured lock method guards the main index;
//! the cache, holding only derivable data, always uses `flock`, which Linux maps onto NFS
//! byte-range locks). Readers read it with `pread` (never a memory map: a file truncated
//! by another program would kill the process with SIGBUS) and see a prefix of the appends; a torn tail is ignored and cut off by the next writer;
//! compaction writes a new file and renames it over the old one. Damage found at open
//! is `Error::Corrupted` (the caller logs it and calls [`Cache::rebuild_empty`], or uses
//! [`Cache::open_or_rebuild`]); damage found later is logged once and healed in place.
//! The index opens its cache lazily: header and field table at open, the records
//! indexed at the first use, where damage among them is healed as any found later.
//!
//! This module must not know IMAP, MIME or any storage format.

mod disk;
mod format;
mod locmap;
mod state;
#[cfg(test)]
mod tests;
mod write;

use crate::index::{Dir, Error, Options};
use disk::Settings;
pub use format::MAX_VALUE;
use state::{Field, Inner};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// File name of the cache inside the mailbox directory.
pub const FILE_NAME: &str = "loft.index.cache";

/// Pending values are written once they pass this many bytes, even without `flush`.
const PENDING_LIMIT: usize = 4 << 20;

/// Whether offered values of a field are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Decision {
    No = 0,
    Temp = 1,
    Yes = 2,
}

impl Decision {
    fn from_u8(b: u8) -> Option<Decision> {
        match b {
            0 => Some(Decision::No),
            1 => Some(Decision::Temp),
            2 => Some(Decision::Yes),
            _ => None,
        }
    }
}

/// One field's decision and usage, for `loft index show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldInfo {
    pub name: String,
    pub decision: Decision,
    /// Unix day (seconds / 86400) of the last `get`.
    pub last_used_day: u32,
    pub temp_since_uid: u32,
    /// Value bytes and count of the current values.
    pub bytes: u64,
    pub records: u64,
}

/// The cache of one mailbox; shared by the sessions of a process (methods take `&self`).
pub struct Cache {
    /// The folder directory, held open: the cache file is reached through it by name.
    dir: Arc<Dir>,
    /// For errors and log lines only.
    path: PathBuf,
    set: Settings,
    inner: Mutex<Inner>,
}

fn open_dir(dir: &Path) -> Result<Dir, Error> {
    Dir::open(dir).map_err(Error::io(dir.to_path_buf()))
}

fn settings(opts: &Options) -> Settings {
    Settings {
        fsync: opts.fsync,
        drop_days: opts.cache_drop_days,
    }
}

fn unix_day() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs / 86_400).unwrap_or(u32::MAX)
}

impl Cache {
    /// Opens `dir/loft.index.cache`, creating an empty one when absent. Damage of any
    /// kind is `Err(Corrupted)`; never half-valid state.
    pub fn open(dir: &Path, opts: &Options) -> Result<Cache, Error> {
        Cache::open_in(&Arc::new(open_dir(dir)?), opts, false)
    }

    /// [`Cache::open`] in a folder directory held open ([`Dir`]). `lazy`: the records
    /// are indexed at the first use instead of now, and damage among them is then healed
    /// as damage found later is (see the module doc).
    pub(crate) fn open_in(dir: &Arc<Dir>, opts: &Options, lazy: bool) -> Result<Cache, Error> {
        let dir = dir.clone();
        let path = dir.file(FILE_NAME);
        let set = settings(opts);
        if dir.metadata(FILE_NAME).is_err() {
            write::create(&dir, &set, &[], 0, false)?;
        }
        let inner = match lazy {
            true => Inner::open_unscanned(&dir)?,
            false => Inner::load(&dir)?,
        };
        Ok(Cache {
            dir,
            path,
            set,
            inner: Mutex::new(inner),
        })
    }

    /// Replaces the cache file by an empty one, keeping the decisions (and UIDVALIDITY)
    /// when the old header is readable. A file of a newer version is renamed aside to
    /// `loft.index.cache.broken-<unix time>` instead of being overwritten.
    pub fn rebuild_empty(dir: &Path, opts: &Options) -> Result<Cache, Error> {
        Cache::rebuild_empty_in(&Arc::new(open_dir(dir)?), opts)
    }

    fn rebuild_empty_in(dir: &Arc<Dir>, opts: &Options) -> Result<Cache, Error> {
        let dir = dir.clone();
        let path = dir.file(FILE_NAME);
        let set = settings(opts);
        let (mut entries, uid_validity) = match disk::Disk::open(&dir) {
            Ok((d, entries)) => (entries, d.pre.uid_validity),
            Err(Error::Corrupted { what, .. }) => {
                if what.contains("newer") {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let aside = format!("{FILE_NAME}.broken-{secs}");
                    dir.rename(FILE_NAME, &aside).map_err(disk::io(&path))?;
                }
                (Vec::new(), 0)
            }
            Err(_) => (Vec::new(), 0),
        };
        entries.retain(|e| e.decision != Decision::No);
        for (i, e) in entries.iter_mut().enumerate() {
            e.id = i as u16;
        }
        write::create(&dir, &set, &entries, uid_validity, true)?;
        let inner = Inner::load(&dir)?;
        Ok(Cache {
            dir,
            path,
            set,
            inner: Mutex::new(inner),
        })
    }

    /// `open`, and on damage the one log line and `rebuild_empty`: what a mailbox does.
    pub fn open_or_rebuild(dir: &Path, opts: &Options) -> Result<Cache, Error> {
        Cache::open_or_rebuild_in(&Arc::new(open_dir(dir)?), opts)
    }

    /// [`Cache::open_or_rebuild`] in a folder directory held open (shared with the index);
    /// the records are indexed at the first use (an index opened for flags only, as a
    /// SELECT after a restart, never reads the cache's values).
    pub(crate) fn open_or_rebuild_in(dir: &Arc<Dir>, opts: &Options) -> Result<Cache, Error> {
        match Cache::open_in(dir, opts, true) {
            Err(e @ Error::Corrupted { .. }) => {
                tracing::warn!("{}; starting an empty cache", describe(&e));
                Cache::rebuild_empty_in(dir, opts)
            }
            other => other,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state with every record indexed (the deferred scan of a lazy open runs here,
    /// its damage healed as any found later).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut g = self.lock_unscanned();
        if g.unscanned.is_some() {
            let r = g.scan_deferred();
            if let Err(e) = self.heal(&mut g, r) {
                tracing::warn!(file = %self.path.display(), "index cache: {}", describe(&e));
            }
        }
        g
    }

    /// The state as it is: only for what needs the header alone.
    fn lock_unscanned(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fixes "today" (unix day) for decisions instead of the clock; for tests and tools.
    pub fn set_day(&self, day: Option<u32>) {
        self.lock_unscanned().day_override = day;
    }

    /// The value of `field` for `uid`, if cached. Records the use: see the module doc.
    /// `newest_uid` is the mailbox's highest uid now (starts a `Temp` window).
    pub fn get(&self, uid: u32, field: &str, newest_uid: u32) -> Option<Vec<u8>> {
        let mut g = self.lock();
        let i = note_use(&mut g, field, uid, newest_uid)?;
        let v = g.read(i, uid);
        self.heal_damage(&mut g);
        v
    }

    /// `get` for many uids under one lock (FETCH 1:*); counts as one use.
    pub fn get_many(&self, uids: &[u32], field: &str, newest_uid: u32) -> Vec<Option<Vec<u8>>> {
        let mut g = self.lock();
        let min = uids.iter().copied().min().unwrap_or(u32::MAX);
        let mut v = vec![None; uids.len()];
        if let Some(i) = note_use(&mut g, field, min, newest_uid) {
            g.read_many_with(i, uids, &mut |k, x| v[k] = x.map(<[u8]>::to_vec));
        }
        self.heal_damage(&mut g);
        v
    }

    /// `get_many` without copies: calls `f(i, value)` for each `uids[i]` in order, with
    /// the value borrowed from the cache (for writing FETCH responses directly).
    pub fn get_many_with(
        &self,
        uids: &[u32],
        field: &str,
        newest_uid: u32,
        f: &mut dyn FnMut(usize, Option<&[u8]>),
    ) {
        let mut g = self.lock();
        let min = uids.iter().copied().min().unwrap_or(u32::MAX);
        match note_use(&mut g, field, min, newest_uid) {
            Some(fi) => g.read_many_with(fi, uids, f),
            None => (0..uids.len()).for_each(|i| f(i, None)),
        }
        self.heal_damage(&mut g);
    }

    /// Offers a value computed on a miss; stored when the field's decision wants it (and
    /// the value is at most [`MAX_VALUE`] bytes). Written at the next `flush`.
    pub fn offer(&self, uid: u32, field: &str, value: &[u8], newest_uid: u32) {
        if uid == 0 || value.len() > MAX_VALUE {
            return;
        }
        let mut g = self.lock();
        let Some(i) = g.fields.iter().position(|f| f.name == field) else {
            return;
        };
        clamp_temp(&mut g.fields[i], newest_uid);
        if !wanted(&g.fields[i]) {
            return;
        }
        if g.fields[i].locs.contains_key(uid) && g.read(i, uid).as_deref() == Some(value) {
            return;
        }
        self.heal_damage(&mut g);
        g.store_pending(i, uid, value.to_vec());
        if g.pending_bytes > PENDING_LIMIT {
            if let Err(e) = self.write(&mut g) {
                tracing::warn!(file = %self.path.display(), "index cache: write failed: {}", describe(&e));
            }
        }
    }

    /// Whether `offer(uid, field, ..)` would store a value now (decision says so and none
    /// is cached): lets the caller skip computing values nobody keeps.
    pub fn wants(&self, uid: u32, field: &str, newest_uid: u32) -> bool {
        let mut g = self.lock();
        let Some(i) = g.fields.iter().position(|f| f.name == field) else {
            return false;
        };
        clamp_temp(&mut g.fields[i], newest_uid);
        uid != 0 && wanted(&g.fields[i]) && !g.fields[i].locs.contains_key(uid)
    }

    /// Every field with its decision, last use and size.
    pub fn decisions(&self) -> Vec<FieldInfo> {
        let g = self.lock();
        let mut v: Vec<FieldInfo> = (g.fields.iter())
            .map(|f| FieldInfo {
                name: f.name.clone(),
                decision: f.decision,
                last_used_day: f.last_used_day,
                temp_since_uid: f.temp_since_uid,
                bytes: f.bytes,
                records: f.locs.len() as u64,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Rewrites the file with only live values: uids for which `live` is true, of fields
    /// used within `cache_drop_days` before `today` (unix day); older fields go back to
    /// `No`. Temp file + fsync + rename.
    pub fn compact(&self, live: &dyn Fn(u32) -> bool, today: u32) -> Result<(), Error> {
        let mut g = self.lock();
        let _file_lock = match g.lock(&self.set) {
            Ok(l) => l,
            Err(e) => return self.heal(&mut g, Err(e)),
        };
        let days = self.set.drop_days;
        let keep = |f: &Field| {
            days == 0 || u64::from(f.last_used_day) + u64::from(days) >= u64::from(today)
        };
        let uv = g.disk.pre.uid_validity;
        let r = g.rewrite(&self.set, &keep, live, uv);
        drop(_file_lock);
        self.heal(&mut g, r)
    }

    /// True when most of the file is superseded or dropped values (worth a `compact`).
    pub fn needs_compaction(&self) -> bool {
        let g = self.lock();
        let live: u64 = (g.fields.iter())
            .map(|f| f.bytes + 14 * f.locs.len() as u64)
            .sum();
        let size = g.disk.end.saturating_sub(g.disk.pre.records_start());
        size > (1 << 20) && live < size / 2
    }

    /// The UIDVALIDITY the cached values belong to (0 = not bound yet).
    pub fn uid_validity(&self) -> u32 {
        self.lock_unscanned().disk.pre.uid_validity
    }

    /// Binds the cache to the mailbox's UIDVALIDITY: when it differs from the stored one,
    /// every value is dropped (uids are about to mean other messages; RFC 3501 section
    /// 2.3.1.1), decisions are kept.
    pub fn bind_uid_validity(&self, uid_validity: u32) -> Result<(), Error> {
        if self.lock_unscanned().disk.pre.uid_validity == uid_validity {
            return Ok(());
        }
        let mut g = self.lock();
        let _file_lock = g.lock(&self.set)?;
        if g.disk.pre.uid_validity == uid_validity {
            return Ok(());
        }
        g.pending.clear();
        g.pending_bytes = 0;
        for f in &mut g.fields {
            f.locs.clear();
            f.bytes = 0;
        }
        g.rewrite(&self.set, &|_| true, &|_| false, uid_validity)
    }

    /// Writes values offered since the last flush and changed decisions (fsynced with
    /// `fsync = "always"`; the cache holds only derivable data, so never otherwise).
    pub fn flush(&self) -> Result<(), Error> {
        // Nothing is offered or used before the records are indexed: a cache not yet
        // scanned has nothing to write.
        let mut g = self.lock_unscanned();
        let r = self.write(&mut g);
        self.heal(&mut g, r)
    }

    fn write(&self, g: &mut Inner) -> Result<(), Error> {
        if g.pending.is_empty() && !g.fields.iter().any(|f| f.dirty) {
            return Ok(());
        }
        let _file_lock = g.lock(&self.set)?;
        g.write_locked(&self.set)
    }

    /// Picks up values and decisions written by other processes, and a file replaced by
    /// their compaction. Cheap when nothing changed (a stat, an fstat, a header read).
    /// Damage found here or in `flush`/`compact` is logged once and healed in place (an
    /// empty file keeping the decisions); only I/O and lock errors are returned.
    pub fn refresh(&self) -> Result<(), Error> {
        let mut g = self.lock_unscanned();
        if g.unscanned.is_some() {
            // Its first use indexes the records there were at open; the refresh after
            // that catches up with what was appended since.
            return Ok(());
        }
        let r = g.refresh(&self.set);
        self.heal(&mut g, r)
    }

    /// Heals damage that reads ran into (see [`Inner::damage`]): logged once, the file
    /// replaced by an empty one. Reads of it already stopped, so a failure to write the
    /// new file costs only cached values, and is logged too.
    fn heal_damage(&self, g: &mut Inner) {
        if let Some(e) = g.damage.take() {
            if let Err(e) = self.heal(g, Err(e)) {
                tracing::warn!(file = %self.path.display(), "index cache: cannot replace the damaged file: {}", describe(&e));
            }
        }
    }

    /// Replaces a damaged file by an empty one holding our decisions.
    fn heal(&self, g: &mut Inner, r: Result<(), Error>) -> Result<(), Error> {
        let Err(e @ Error::Corrupted { .. }) = r else {
            return r;
        };
        tracing::warn!("{}; starting an empty cache", describe(&e));
        let mut entries = Vec::new();
        for f in g.fields.iter().filter(|f| f.decision != Decision::No) {
            entries.push(format::Entry {
                id: entries.len() as u16,
                name: f.name.clone(),
                decision: f.decision,
                last_used_day: f.last_used_day,
                temp_since_uid: f.temp_since_uid,
            });
        }
        entries.truncate(format::MAX_FIELDS);
        write::create(
            &self.dir,
            &self.set,
            &entries,
            g.disk.pre.uid_validity,
            true,
        )?;
        let day = g.day_override;
        *g = Inner::load(&self.dir)?;
        g.day_override = day;
        Ok(())
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        let g = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if !g.pending.is_empty() || g.fields.iter().any(|f| f.dirty) {
            let set = self.set;
            let r = match g.lock(&set) {
                Ok(_file_lock) => g.write_locked(&set),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                tracing::warn!(file = %self.path.display(), "index cache: final write failed: {}", describe(&e));
            }
        }
    }
}

/// Today's unix day, or the fixed one.
fn today(g: &Inner) -> u32 {
    g.day_override.unwrap_or_else(unix_day)
}

/// A `Temp` window starting past the newest uid means the mailbox's uids were reset:
/// restart the window at the newest uid.
fn clamp_temp(f: &mut Field, newest_uid: u32) {
    if f.decision == Decision::Temp && f.temp_since_uid > newest_uid.saturating_add(1) {
        f.temp_since_uid = newest_uid;
        f.dirty = true;
    }
}

/// Whether an offered value is stored now (a `Temp` field's values of old mail are
/// stored too, and dropped at compaction: see the module doc).
fn wanted(f: &Field) -> bool {
    f.decision != Decision::No
}

/// Records a use of `name` for uids down to `min_uid`; returns the field's index (None
/// for an unusable name or a full field table).
fn note_use(g: &mut Inner, name: &str, min_uid: u32, newest_uid: u32) -> Option<usize> {
    if name.is_empty() || name.len() > format::MAX_NAME {
        return None;
    }
    let day = today(g);
    let i = match g.fields.iter().position(|f| f.name == name) {
        Some(i) => i,
        None if g.fields.len() < format::MAX_FIELDS => {
            g.fields.push(Field::new(name, None));
            g.fields.len() - 1
        }
        None => return None,
    };
    let f = &mut g.fields[i];
    match f.decision {
        Decision::No => {
            f.decision = Decision::Temp;
            f.temp_since_uid = newest_uid;
            f.dirty = true;
        }
        Decision::Temp => {
            clamp_temp(f, newest_uid);
            if min_uid < f.temp_since_uid {
                f.decision = Decision::Yes;
                f.dirty = true;
            }
        }
        Decision::Yes => {}
    }
    if f.last_used_day != day {
        f.last_used_day = day;
        f.dirty = true;
    }
    Some(i)
}

/// One line for an error, for logs.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Corrupted { file, what, offset } => {
            format!(
                "index corrupted: {}: {what} at offset {offset}",
                file.display()
            )
        }
        Error::Io { file, err } => format!("{}: {err}", file.display()),
        Error::Locked { file } => format!("{}: locked by another process", file.display()),
        Error::Invalid { what } => what.clone(),
    }
}
