//! The generic mailbox index engine: per-folder files `loft.index` (main index, read
//! whole with `read`, never memory-mapped: see `docs/index-format.md`), `loft.index.log` (append-only transaction log), `loft.index.lock` (write
//! lock) and `loft.index.cache` (see [`cache`]). Layout: `docs/index-format.md`.
//!
//! An [`Index`] is shared by every user of one folder in a process ([`Index::open`] keeps
//! a registry of weak references keyed by the canonical folder path); processes
//! coordinate through the write lock and learn of each other's changes by reading the log
//! tail ([`Index::refresh`]). Every byte read from disk is bounds- and CRC-checked: damage
//! is [`Error::Corrupted`], never a panic and never half-valid state.
//!
//! The folder directory is opened once per instance and held ([`Dir`]); every file above
//! is reached relative to that descriptor by its single name, never through a link, so a
//! folder renamed away and replaced by a link meanwhile cannot redirect the index.
//!
//! It knows UIDs, system-flag bits, a keyword bitmap, modseqs, sizes, dates and an opaque
//! storage key per message. It must NOT know Maildir, mbox, IMAP or MIME.

pub mod cache;

mod apply;
mod create;
mod dir;
mod fileio;
mod format;
mod key;
mod lock;
mod log;
mod op;
mod records;
pub use key::Key;
pub use records::{Records, Seeker};
mod salvage;
mod state;
mod txn;
mod uidhash;
pub use uidhash::{UidHashMap, UidHashSet, UidHasher};
mod verify;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use crate::durability::{FsyncMode, LockMethod};
pub use salvage::Salvage;
pub use txn::Transaction;

pub(crate) use dir::Dir;
use state::Inner;

pub const INDEX_FILE: &str = "loft.index";
pub const LOG_FILE: &str = "loft.index.log";
pub const CACHE_FILE: &str = "loft.index.cache";
pub const LOCK_FILE: &str = lock::LOCK_FILE;
/// Compaction is due when the log holds more committed records than this.
pub const LOG_COMPACT_RECORDS: u64 = 10_000;
/// Longest wait for the write lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the indexes opened with one [`Options`] share in this process (created once per
/// storage context and passed in the options, never process-wide): one [`Index`]
/// instance per folder directory, and the gate of the write lock that makes threads of
/// this process exclude each other (fcntl locks are per process).
#[derive(Default)]
pub struct Shared {
    indexes: Mutex<HashMap<PathBuf, Weak<Index>>>,
    gate: Arc<lock::Gate>,
    /// The last UIDVALIDITY handed out ([`Shared::fresh_uid_validity`]).
    last_validity: std::sync::atomic::AtomicU32,
}

impl Shared {
    /// A UIDVALIDITY for a new or rebuilt index: the current time, but always above every
    /// value handed out before through these options. An index rebuilt (deleted,
    /// garbled) in the same second its folder was created must not get the old value
    /// back: RFC 3501 §2.3.1.1 requires a greater UIDVALIDITY when UIDs do not persist,
    /// and two folders created in the same second must not share one (a swapped index
    /// would then look valid).
    pub fn fresh_uid_validity(&self) -> u32 {
        use std::sync::atomic::Ordering::SeqCst;
        let now = (state::now_secs() as u32).max(1);
        let mut last = self.last_validity.load(SeqCst);
        loop {
            let v = now.max(last.saturating_add(1)).max(1);
            match self.last_validity.compare_exchange(last, v, SeqCst, SeqCst) {
                Ok(_) => return v,
                Err(seen) => last = seen,
            }
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    /// The in-process state shared with every index opened with a clone of these options.
    pub shared: Arc<Shared>,
    pub fsync: FsyncMode,
    pub lock_method: LockMethod,
    /// Shared storage: dotlocks, re-open files to get fresh attributes.
    pub nfs: bool,
    /// Compaction is due when the log grows past this many bytes (default 1 MiB).
    pub log_compact_bytes: u64,
    /// Cache fields unused for this many days are dropped (default 30).
    pub cache_drop_days: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            shared: Arc::new(Shared::default()),
            fsync: FsyncMode::Always,
            lock_method: LockMethod::Fcntl,
            nfs: false,
            log_compact_bytes: 1 << 20,
            cache_drop_days: 30,
        }
    }
}

#[derive(Debug)]
pub enum Error {
    /// File content is inconsistent; the caller rebuilds (`Index::rebuild`).
    Corrupted {
        file: PathBuf,
        what: String,
        offset: u64,
    },
    Io {
        file: PathBuf,
        err: std::io::Error,
    },
    /// The write lock was not free within [`LOCK_TIMEOUT`].
    Locked {
        file: PathBuf,
    },
    /// The caller asked for something impossible (UID space exhausted, records out of
    /// order given to `rebuild`, more than 64 keywords).
    Invalid {
        what: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Corrupted { file, what, offset } => {
                write!(f, "{}: {what} at offset {offset}", file.display())
            }
            Error::Io { file, err } => write!(f, "{}: {err}", file.display()),
            Error::Locked { file } => write!(
                f,
                "{}: lock not free after {:?}",
                file.display(),
                LOCK_TIMEOUT
            ),
            Error::Invalid { what } => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    fn corrupted(file: PathBuf, b: format::Bad) -> Error {
        Error::Corrupted {
            file,
            what: b.what,
            offset: b.offset,
        }
    }
    fn io(file: PathBuf) -> impl FnOnce(std::io::Error) -> Error {
        move |err| Error::Io { file, err }
    }
}

/// `Record::internal_date` not known yet (filled in later by a `SetDates` log record).
pub const UNKNOWN_DATE: i64 = i64::MIN;

/// `Record::size` not known yet: the storage computes it on first need and records it
/// with a `SetSizes` log record (a Maildir file name without `W=`).
pub const UNKNOWN_SIZE: u64 = u64::MAX;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub uid: u32,
    /// System flag bits as in `mailbox::SysFlags`.
    pub flags: u8,
    /// Flags changed in the index but not yet written to the storage.
    pub dirty: bool,
    /// Bit i = keyword i of the snapshot's `keywords`.
    pub keywords: u64,
    pub modseq: u64,
    /// RFC822.SIZE; [`UNKNOWN_SIZE`] until the storage has computed it.
    pub size: u64,
    /// Seconds since the epoch; [`UNKNOWN_DATE`] until the storage has been asked (a
    /// Maildir's first scan of many new files leaves dates to be filled in afterwards).
    pub internal_date: i64,
    /// Opaque storage key (for Maildir the base file name); short ones inside the
    /// record (see [`Key`]).
    pub key: Key,
}

/// `lstat`s of [`INDEX_FILE`] and [`LOG_FILE`] (never through a link) taken by a caller,
/// for [`Index::refresh_seen`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub index: crate::beneath::Stat,
    pub log: crate::beneath::Stat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    /// Messages with uid >= this are \Recent for the next claimer.
    pub recent_uid: u32,
    pub messages: u32,
    pub unseen: u32,
    pub deleted: u32,
}

/// One consistent view of the index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IndexSnapshot {
    pub header: Header,
    pub keywords: Vec<String>,
    /// Ascending uid, in shared chunks (see [`Records`]).
    pub records: Records,
}

impl IndexSnapshot {
    pub fn get(&self, uid: u32) -> Option<&Record> {
        self.records.by_uid(uid)
    }
    /// Sequence number of the first message without \Seen; 0 when none (one pass).
    pub fn first_unseen(&self) -> u32 {
        format::counts(&self.records).3
    }
    /// 1-based sequence number of `uid`.
    pub fn seq(&self, uid: u32) -> Option<u32> {
        self.records.find(uid).ok().map(|i| i as u32 + 1)
    }
}

/// One mailbox's index. Methods take `&self`; state sits behind an internal mutex.
pub struct Index {
    /// Held open for the index's life: every file of it is reached through this.
    dir: Arc<Dir>,
    opts: Options,
    created: bool,
    inner: Mutex<Inner>,
    cache: cache::Cache,
    /// The write lock's file, kept open between holders ([`lock::KeptLock`]).
    kept_lock: lock::KeptLock,
}

/// With `nfs = true` every commit and rename is fsynced, whatever `fsync` says.
fn effective(opts: &Options) -> Options {
    let mut o = opts.clone();
    if o.nfs {
        o.fsync = FsyncMode::Always;
        o.lock_method = LockMethod::Dotlock;
    }
    o
}

/// Opens the folder directory (see [`dir::Dir::open`]: not a link, bound to its
/// canonical path by device and inode).
fn open_dir(dir: &Path) -> Result<Dir, Error> {
    Dir::open(dir).map_err(Error::io(dir.to_path_buf()))
}

impl Index {
    /// Opens (creating when absent: then [`Index::created`] is true) the index files in
    /// `dir`, sharing one instance per folder in this process. Corruption is
    /// `Err(Corrupted)`; the caller then rebuilds with [`Index::rebuild`].
    pub fn open(dir: &Path, opts: &Options) -> Result<Arc<Index>, Error> {
        if let Some(ix) = Self::registered(dir, opts) {
            ix.refresh()?;
            return Ok(ix);
        }
        let dir = open_dir(dir)?;
        let mut reg = opts
            .shared
            .indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let shared = reg.get(dir.path()).and_then(Weak::upgrade);
        // The instance of a directory since renamed away (another one at its path now)
        // is not this folder's.
        if let Some(ix) = shared.filter(|ix| ix.dir.id() == dir.id()) {
            // Shared instance: catch up, so that damage found since is reported here too.
            ix.refresh()?;
            return Ok(ix);
        }
        reg.retain(|_, w| w.strong_count() > 0);
        let key = dir.path().to_path_buf();
        let ix = Index::open_in(Arc::new(dir), opts)?;
        reg.insert(key, Arc::downgrade(&ix));
        Ok(ix)
    }

    /// The shared instance of `dir` when `dir` is the canonical path it was opened by
    /// and still names that very directory (one `lstat` instead of opening and
    /// resolving the path: folders are opened again for every STATUS and APPEND).
    fn registered(dir: &Path, opts: &Options) -> Option<Arc<Index>> {
        let ix = {
            let reg = opts
                .shared
                .indexes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            reg.get(dir).and_then(Weak::upgrade)?
        };
        ix.dir.is_at(dir).then_some(ix)
    }

    /// Device and inode of the folder directory this index was opened in.
    pub fn dir_id(&self) -> (u64, u64) {
        self.dir.id()
    }

    /// Like [`Index::open`] but a private instance outside the registry (tests, tools,
    /// fuzzing): it coordinates with other instances through the lock and the log only.
    pub fn open_unshared(dir: &Path, opts: &Options) -> Result<Arc<Index>, Error> {
        Index::open_in(Arc::new(open_dir(dir)?), opts)
    }

    fn open_in(dir: Arc<Dir>, opts: &Options) -> Result<Arc<Index>, Error> {
        let opts = effective(opts);
        let (inner, created) = create::open_or_create(&dir, &opts)?;
        let cache = cache::Cache::open_or_rebuild_in(&dir, &opts)?;
        Ok(Arc::new(Index {
            kept_lock: lock::KeptLock::default(),
            dir,
            opts,
            created,
            inner: Mutex::new(inner),
            cache,
        }))
    }

    /// Builds fresh files from records the caller gathered (scan of the storage plus
    /// salvage), replacing whatever is there; unreadable old files are renamed aside to
    /// `<name>.broken-<unix time>`. Counts in `header` are recomputed; UIDNEXT and
    /// HIGHESTMODSEQ are raised above the records when needed.
    pub fn rebuild(
        dir: &Path,
        opts: &Options,
        header: Header,
        keywords: Vec<String>,
        records: Vec<Record>,
    ) -> Result<Arc<Index>, Error> {
        Self::rebuild_from(dir, opts, header, keywords, records.into())
    }

    /// [`Index::rebuild`] from records already in chunks (a first scan builds them so,
    /// without a second copy of every record).
    pub fn rebuild_from(
        dir: &Path,
        opts: &Options,
        header: Header,
        keywords: Vec<String>,
        records: Records,
    ) -> Result<Arc<Index>, Error> {
        let dir = open_dir(dir)?;
        let opts = effective(opts);
        let inner = create::rebuild(&dir, &opts, header, keywords, records)?;
        let shared = opts.shared.clone();
        let mut reg = shared.indexes.lock().unwrap_or_else(|e| e.into_inner());
        let shared = reg.get(dir.path()).and_then(Weak::upgrade);
        if let Some(ix) = shared.filter(|ix| ix.dir.id() == dir.id()) {
            *ix.inner.lock().unwrap_or_else(|e| e.into_inner()) = inner;
            return Ok(ix);
        }
        reg.retain(|_, w| w.strong_count() > 0);
        let dir = Arc::new(dir);
        let cache = cache::Cache::open_or_rebuild_in(&dir, &opts)?;
        let key = dir.path().to_path_buf();
        let ix = Arc::new(Index {
            kept_lock: lock::KeptLock::default(),
            dir,
            opts,
            created: false,
            inner: Mutex::new(inner),
            cache,
        });
        reg.insert(key, Arc::downgrade(&ix));
        Ok(ix)
    }

    /// Best-effort salvage of key -> (uid, flags, keywords) from damaged files, plus
    /// UIDVALIDITY/UIDNEXT when readable. Never fails.
    pub fn salvage(dir: &Path) -> Salvage {
        match Dir::open(dir) {
            Ok(d) => salvage::salvage(&d),
            Err(_) => Salvage::default(),
        }
    }

    /// Every inconsistency found in the files of `dir`; empty when all is well.
    pub fn verify(dir: &Path) -> Vec<String> {
        verify::verify(dir)
    }

    /// Catches up with changes by other instances and processes. When nothing changed
    /// (same inodes, same log size) it returns the previous snapshot (`Arc::ptr_eq`).
    ///
    /// Damage done in place to files this instance had read (another program truncating
    /// or rewriting `loft.index` or `loft.index.log`) is healed here: the pair is
    /// rewritten from the state held in memory under the write lock, with one log line.
    /// Other damage is `Err(Corrupted)` for the caller to rebuild from the storage.
    pub fn refresh(&self) -> Result<Arc<IndexSnapshot>, Error> {
        self.refresh_seen(None)
    }

    /// [`Index::refresh`] given the `lstat`s of both files a caller took just before
    /// (its own change detection looks at them anyway). They are used only when they
    /// show the files exactly as this instance last read them; anything else is looked
    /// at again, as [`Index::refresh`] does.
    pub fn refresh_seen(&self, seen: Option<&Seen>) -> Result<Arc<IndexSnapshot>, Error> {
        let (r, healable) = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let r = state::refresh_seen(&self.dir, &self.opts, &mut inner, seen);
            (r, inner.healable())
        };
        match r {
            // The write lock only for damage to heal: a caller may hold it already.
            Err(e @ Error::Corrupted { .. }) if healable => {
                let _held = self.write_lock()?;
                let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                state::heal(&self.dir, &self.opts, &mut inner, e)
            }
            r => r,
        }
    }

    /// The index's write lock (at most [`LOCK_TIMEOUT`], then `Error::Locked`).
    fn write_lock(&self) -> Result<lock::WriteLock, Error> {
        lock::of_index(&self.dir, &self.opts, &self.kept_lock)
    }

    /// Starts a write transaction: takes the write lock (at most [`LOCK_TIMEOUT`], then
    /// `Error::Locked`) and catches up with the log.
    pub fn begin(&self) -> Result<Transaction<'_>, Error> {
        let held = self.write_lock()?;
        let base = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            match state::prepare_write(&self.dir, &self.opts, &mut inner) {
                Err(e @ Error::Corrupted { .. }) => {
                    state::heal(&self.dir, &self.opts, &mut inner, e)?;
                    state::prepare_write(&self.dir, &self.opts, &mut inner)?
                }
                r => r?,
            }
        };
        Ok(Transaction::new(self, held, base))
    }

    /// Writes the log bytes of a transaction, then catches up and compacts when due.
    /// Damage found while catching up after the write is healed at once (the caller's
    /// transaction holds the write lock); the transaction itself is then lost with the
    /// damaged log and reported as an error, never silently.
    fn write_txn(&self, bytes: &[u8], sync: bool) -> Result<Arc<IndexSnapshot>, Error> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match state::append(&self.dir, &self.opts, &mut inner, bytes, sync) {
            Err(e @ Error::Corrupted { .. }) if inner.healable() => {
                state::heal(&self.dir, &self.opts, &mut inner, e)?;
                // Not `Corrupted`: the damage is repaired and logged already.
                Err(Error::Io {
                    file: self.dir.file(LOG_FILE),
                    err: std::io::Error::other(
                        "transaction lost with a log damaged by another program (rewritten); try again",
                    ),
                })
            }
            r => r,
        }
    }

    /// Rewrites the main index from the current state now (normally automatic).
    pub fn compact(&self) -> Result<(), Error> {
        let _held = self.write_lock()?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state::prepare_write(&self.dir, &self.opts, &mut inner)?;
        state::compact(&self.dir, &self.opts, &mut inner)
    }

    /// True when this instance created the files (the caller fills it from the storage).
    pub fn created(&self) -> bool {
        self.created
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache(&self) -> &cache::Cache {
        &self.cache
    }
}
