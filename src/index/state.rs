//! The in-memory state of an open index and the file protocol around it: loading the
//! index + log pair (with the generation rules of `docs/index-format.md`), cheap refresh
//! by comparing inodes and the log size, appending transactions, compaction, creation
//! and rebuild.
//!
//! This module knows files and generations, not what callers store in records.

use std::collections::hash_map::RandomState;
use std::fs::{File, Metadata};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::apply::apply_txn;
use super::create::write_index;
use super::format::{
    decode_index_in, decode_log_header, Bad, IndexFile, LogHeader, LOG_HEADER_LEN,
};
use super::{log, Dir, Error, FsyncMode, IndexSnapshot, LockMethod, Options};
use super::{INDEX_FILE, LOG_COMPACT_RECORDS, LOG_FILE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    /// Main index only: length and ctime. Loft never writes `loft.index` in place (temp
    /// file + rename), so a change of either on the same inode is a foreign write
    /// (garbled, zeroed, truncated by someone) and the file is read again and checked.
    len: u64,
    ctime: (i64, i64),
}

/// What the index asks of a file's status, from `std` metadata or a bare `lstat`.
trait FileMeta {
    fn dev(&self) -> u64;
    fn ino(&self) -> u64;
    fn len(&self) -> u64;
    fn ctime(&self) -> (i64, i64);
}

impl FileMeta for Metadata {
    fn dev(&self) -> u64 {
        MetadataExt::dev(self)
    }
    fn ino(&self) -> u64 {
        MetadataExt::ino(self)
    }
    fn len(&self) -> u64 {
        Metadata::len(self)
    }
    fn ctime(&self) -> (i64, i64) {
        (MetadataExt::ctime(self), MetadataExt::ctime_nsec(self))
    }
}

impl FileMeta for crate::beneath::Stat {
    fn dev(&self) -> u64 {
        self.dev
    }
    fn ino(&self) -> u64 {
        self.ino
    }
    fn len(&self) -> u64 {
        self.size
    }
    fn ctime(&self) -> (i64, i64) {
        (self.ctime, self.ctime_nsec)
    }
}

fn id(m: &impl FileMeta) -> FileId {
    FileId {
        dev: m.dev(),
        ino: m.ino(),
        len: 0,
        ctime: (0, 0),
    }
}

fn index_id(m: &impl FileMeta) -> FileId {
    FileId {
        len: m.len(),
        ctime: m.ctime(),
        ..id(m)
    }
}

pub struct LogState {
    /// Kept open so that its inode number cannot be reused by a later file while we
    /// compare ids; catch-ups and racy checks read through it (no open per refresh).
    file: File,
    /// The same file opened for writing by the first commit through this state and kept
    /// for the next ones (an open, an fstat and a close less per commit): every commit
    /// first checks under the write lock that the log's path still names `id`.
    writer: Option<File>,
    id: FileId,
    /// Offset after the last transaction applied.
    end: u64,
    /// File size when last looked at.
    seen_len: u64,
    /// Committed records since the generation started (compaction trigger).
    records: u64,
    /// The log is of an older generation than the index: all of it is in the index.
    stale: bool,
    /// ctime when last looked at: Loft changes the log only by appending (or cutting a
    /// torn tail after the last commit), so a new ctime at the same size is a foreign
    /// write in place.
    ctime: (i64, i64),
    /// What the log held when read: its header and the last bytes before `end`. A
    /// catch-up checks them again, so committed bytes rewritten or cut off by another
    /// program are noticed even when the log grew meanwhile.
    marks: Marks,
    /// CRC32 of the bytes `[0, end)` as they were read.
    crc: crc32fast::Hasher,
    /// `ctime` may not yet show a write made in the same clock tick as the last change
    /// we saw (file systems stamp from a coarse clock): until a read at a moment
    /// [`RACY_NS`] past that ctime matches what we read, an unchanged stat proves nothing.
    racy: bool,
}

/// How long after a file's ctime a stat showing that ctime proves no later write: more
/// than two ticks of the coarsest kernel clock used for file times (10 ms at HZ=100).
const RACY_NS: i128 = 50_000_000;

fn crc_of(b: &[u8]) -> crc32fast::Hasher {
    let mut h = crc32fast::Hasher::new();
    h.update(b);
    h
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Checks the log against what was read when its ctime is still racy (see
/// [`LogState::racy`]); settles it once the ctime is old enough.
///
/// A refresh checks the marks (the header and the last bytes of the last commit: two
/// small reads through the open log); a folder changed all the time stays racy, and
/// reading the whole log at every refresh cost more than the rest of the refresh. Before
/// a write (`whole`) every committed byte is compared: a same-size rewrite in the middle
/// of the log would make the transaction appended after it unreadable to the next
/// reader, so it must be found and healed first. What this process holds was read and
/// checked before, so a refresh that misses such a rewrite serves nothing wrong.
fn verify_racy_log(dir: &Dir, inner: &mut Inner, whole: bool) -> Result<(), Error> {
    let before = now_ns();
    let end = inner.log.end;
    let f = &inner.log.file;
    let io = Error::io(dir.file(LOG_FILE));
    let changed = if whole {
        let mut bytes = vec![0u8; end as usize];
        let n = crate::beneath::read_full_at(f, &mut bytes, 0).map_err(io)?;
        n as u64 != end || crc32fast::hash(&bytes) != inner.log.crc.clone().finalize()
    } else {
        Marks::read(f, end).map_err(io)? != inner.log.marks
    };
    if changed {
        let what = "committed bytes changed (rewritten by another program)";
        return Err(corrupt(dir.file(LOG_FILE), what, 0));
    }
    if whole {
        let (s, ns) = inner.log.ctime;
        inner.log.racy = before - (i128::from(s) * 1_000_000_000 + i128::from(ns)) < RACY_NS;
    }
    Ok(())
}

/// The log header and up to [`TAIL_MARK`] bytes before the end of the last commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Marks {
    head: Vec<u8>,
    tail: Vec<u8>,
}

const TAIL_MARK: u64 = 32;

impl Marks {
    /// From the log's bytes `buf` (read from offset 0) with its last commit ending at `end`.
    fn of(buf: &[u8], end: u64) -> Marks {
        let end = (end as usize).min(buf.len());
        let from = end
            .saturating_sub(TAIL_MARK as usize)
            .max(LOG_HEADER_LEN.min(end));
        Marks {
            head: buf[..LOG_HEADER_LEN.min(buf.len())].to_vec(),
            tail: buf[from..end].to_vec(),
        }
    }

    /// Read from the file, the last commit ending at `end`.
    fn read(f: &File, end: u64) -> io::Result<Marks> {
        let from = end.saturating_sub(TAIL_MARK).max(LOG_HEADER_LEN as u64);
        let mut head = vec![0u8; LOG_HEADER_LEN];
        let n = crate::beneath::read_full_at(f, &mut head, 0)?;
        head.truncate(n);
        let mut tail = vec![0u8; end.saturating_sub(from) as usize];
        let n = crate::beneath::read_full_at(f, &mut tail, from)?;
        tail.truncate(n);
        Ok(Marks { head, tail })
    }
}

fn ctime(m: &impl FileMeta) -> (i64, i64) {
    m.ctime()
}

pub struct Inner {
    snap: Arc<IndexSnapshot>,
    generation: u64,
    pair_id: u64,
    index_id: FileId,
    /// Kept open for the same reason as `LogState::_file`.
    _index_file: File,
    log: LogState,
    /// The last refresh failed: the next one reloads everything.
    broken: bool,
    /// `snap` is a complete state read from the files (false after a transaction
    /// failed half-way through being applied to it).
    trusted: bool,
    /// The last error was damage done in place to files this state was read from, and
    /// `snap` is trusted: [`heal`] can rewrite the pair from it. Stays set until the heal
    /// (or a reload of files replaced meanwhile): a refresh by another user of this
    /// instance in between must not take the damaged files for the truth.
    healable: bool,
    /// What that damage was (given again to every refresh until it is healed).
    found: Option<(PathBuf, String, u64)>,
}

pub(super) fn corrupt(file: PathBuf, what: impl Into<String>, offset: u64) -> Error {
    Error::Corrupted {
        file,
        what: what.into(),
        offset,
    }
}

pub fn lock_method(opts: &Options) -> LockMethod {
    if opts.nfs {
        LockMethod::Dotlock
    } else {
        opts.lock_method
    }
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs())
}

/// A random non-zero id for a new index/log pair.
pub fn new_pair_id() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

/// True when `name` no longer names the inode `was` (replaced by another process).
fn replaced(dir: &Dir, name: &str, was: FileId) -> bool {
    dir.metadata(name)
        .map(|m| index_id(&m) != was)
        .unwrap_or(true)
}

/// Loads the pair; `Ok(None)` when there is no index yet.
pub(super) fn load(dir: &Dir, _opts: &Options) -> Result<Option<Inner>, Error> {
    let ipath = dir.file(INDEX_FILE);
    let lpath = dir.file(LOG_FILE);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match load_once(dir, &ipath, &lpath) {
            // The pair did not match, but the index was replaced meanwhile (compaction or
            // rebuild by another process): look again.
            Err(Retry(e, was))
                if attempt < 5 && (replaced(dir, INDEX_FILE, was) || attempt < 3) =>
            {
                let _ = e;
                std::thread::sleep(Duration::from_millis(10 * attempt));
            }
            Err(Retry(e, _)) | Err(Fatal(e)) => return Err(e),
            Ok(v) => return Ok(v),
        }
    }
}

enum LoadErr {
    Retry(Error, FileId),
    Fatal(Error),
}
use LoadErr::{Fatal, Retry};

/// `loft.index` decoded from the open file, read piece by piece (never whole: the
/// records are decoded from a window of the file's bytes).
fn read_index(f: &std::fs::File, ipath: &Path) -> Result<IndexFile, LoadErr> {
    let io_err = |err| {
        Fatal(Error::Io {
            file: ipath.into(),
            err,
        })
    };
    let len = f.metadata().map_err(io_err)?.len();
    let failed = std::sync::Mutex::new(None);
    let decoded = decode_index_in(len, &|off, buf| {
        crate::beneath::read_full_at(f, buf, off).map_err(|e| {
            let b = Bad {
                what: format!("read error: {e}"),
                offset: off,
            };
            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            b
        })
    });
    let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    match (decoded, failed) {
        (_, Some(e)) => Err(io_err(e)),
        (Ok(x), None) => Ok(x),
        (Err(b), None) => Err(Fatal(Error::corrupted(ipath.into(), b))),
    }
}

/// `ipath` and `lpath` name the files of `dir` in errors.
fn load_once(dir: &Dir, ipath: &Path, lpath: &Path) -> Result<Option<Inner>, LoadErr> {
    let f = match dir.open_ro(INDEX_FILE) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Creation writes the log first: a log holding no changes alone is an
            // unfinished creation; one with changes means the index was lost.
            return match dir.metadata(LOG_FILE) {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Fatal(Error::Io {
                    file: lpath.into(),
                    err: e,
                })),
                Ok(m) if m.len() <= LOG_HEADER_LEN as u64 => Ok(None),
                Ok(_) => Err(Fatal(corrupt(
                    ipath.into(),
                    "index file missing while the log holds changes",
                    0,
                ))),
            };
        }
        // A link in the index's place is not followed: damaged, rebuilt beside it.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Fatal(corrupt(
                ipath.into(),
                "symbolic link (not followed)",
                0,
            )))
        }
        Err(e) => {
            return Err(Fatal(Error::Io {
                file: ipath.into(),
                err: e,
            }))
        }
    };
    let ioerr = |p: &Path| {
        let p = p.to_path_buf();
        move |err| Fatal(Error::Io { file: p, err })
    };
    let iid = index_id(&f.metadata().map_err(ioerr(ipath))?);
    let idx = read_index(&f, ipath)?;
    let lf = match dir.open_ro(LOG_FILE) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Retry(corrupt(lpath.into(), "log file missing", 0), iid))
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Fatal(corrupt(
                lpath.into(),
                "symbolic link (not followed)",
                0,
            )))
        }
        Err(e) => {
            return Err(Fatal(Error::Io {
                file: lpath.into(),
                err: e,
            }))
        }
    };
    let lmeta = lf.metadata().map_err(ioerr(lpath))?;
    let lid = id(&lmeta);
    let lbytes = log::read_from(&lf, 0).map_err(ioerr(lpath))?;
    let lh = decode_log_header(&lbytes).map_err(|b| Fatal(Error::corrupted(lpath.into(), b)))?;
    if lh.pair_id != idx.pair_id {
        let what = format!(
            "log pair id {:#x} does not match the index's {:#x} (file of another index?)",
            lh.pair_id, idx.pair_id
        );
        return Err(Retry(corrupt(lpath.into(), what, 24), iid));
    }
    if lh.generation > idx.generation {
        let what = format!(
            "log generation {} is newer than index generation {}",
            lh.generation, idx.generation
        );
        return Err(Retry(corrupt(lpath.into(), what, 16), iid));
    }
    let mut snap = IndexSnapshot {
        header: idx.header,
        keywords: idx.keywords,
        records: idx.records,
    };
    let len = lbytes.len() as u64;
    let stale = lh.generation < idx.generation;
    let (end, records) = if stale {
        if idx.log_offset != LOG_HEADER_LEN as u64 {
            return Err(Fatal(corrupt(
                ipath.into(),
                "index of a newer generation than its log starts mid-log",
                64,
            )));
        }
        (len, 0)
    } else {
        let off = idx.log_offset;
        if off < LOG_HEADER_LEN as u64 || off > len {
            let what =
                format!("index includes the log up to offset {off} but the log holds {len} bytes");
            return Err(Fatal(corrupt(ipath.into(), what, 64)));
        }
        let sc = log::scan(&lbytes[off as usize..], off)
            .map_err(|b| Fatal(Error::corrupted(lpath.into(), b)))?;
        for (at, txn) in &sc.txns {
            apply_txn(&mut snap, txn, *at).map_err(|b| Fatal(Error::corrupted(lpath.into(), b)))?;
        }
        (sc.end, sc.records)
    };
    Ok(Some(Inner {
        snap: Arc::new(snap),
        generation: idx.generation,
        pair_id: idx.pair_id,
        index_id: iid,
        _index_file: f,
        log: LogState {
            file: lf,
            writer: None,
            id: lid,
            end,
            seen_len: len,
            records,
            stale,
            ctime: ctime(&lmeta),
            marks: Marks::of(&lbytes, end),
            crc: crc_of(&lbytes[..(end as usize).min(lbytes.len())]),
            racy: true,
        },
        broken: false,
        trusted: true,
        healable: false,
        found: None,
    }))
}

/// The state of a pair this process has just written under the write lock (rebuild):
/// `snap` is what the index holds and the log is empty, so nothing is read back. The
/// files are opened for their identities; the lock keeps anyone from replacing them
/// before that.
pub(super) fn written(
    dir: &Dir,
    snap: IndexSnapshot,
    generation: u64,
    pair_id: u64,
) -> Result<Inner, Error> {
    let lpath = dir.file(LOG_FILE);
    let open = |name: &str| {
        dir.open_ro(name)
            .and_then(|f| f.metadata().map(|m| (f, m)))
            .map_err(|err| Error::Io {
                file: dir.file(name),
                err,
            })
    };
    let (f, im) = open(INDEX_FILE)?;
    let (lf, lm) = open(LOG_FILE)?;
    let lbytes = log::read_from(&lf, 0).map_err(Error::io(lpath.clone()))?;
    Ok(Inner {
        snap: Arc::new(snap),
        generation,
        pair_id,
        index_id: index_id(&im),
        _index_file: f,
        log: LogState {
            file: lf,
            writer: None,
            id: id(&lm),
            end: lm.len(),
            seen_len: lm.len(),
            records: 0,
            stale: false,
            ctime: ctime(&lm),
            marks: Marks::of(&lbytes, lm.len()),
            crc: crc_of(&lbytes),
            racy: true,
        },
        broken: false,
        trusted: true,
        healable: false,
        found: None,
    })
}

pub(super) fn sync_dir(dir: &Dir, opts: &Options) -> Result<(), Error> {
    if opts.fsync == FsyncMode::Never {
        return Ok(());
    }
    dir.sync().map_err(Error::io(dir.path().to_path_buf()))
}

fn reload(dir: &Dir, opts: &Options, inner: &mut Inner) -> Result<Arc<IndexSnapshot>, Error> {
    inner.broken = true;
    match load(dir, opts)? {
        Some(new) => {
            *inner = new;
            Ok(inner.snap.clone())
        }
        None => Err(corrupt(
            dir.file(INDEX_FILE),
            "index file missing (deleted while in use)",
            0,
        )),
    }
}

fn stat(dir: &Dir, name: &str, nfs: bool) -> Result<crate::beneath::Stat, Error> {
    // On NFS, opening the file revalidates its attributes (close-to-open consistency);
    // a plain stat could be answered from the attribute cache.
    let r = if nfs {
        dir.open_ro(name).and_then(|f| crate::beneath::fstat(&f))
    } else {
        dir.lstat(name)
    };
    let path = &dir.file(name);
    r.map_err(|err| match err.kind() {
        ErrorKind::NotFound => corrupt(path.into(), "file missing (deleted while in use)", 0),
        _ => Error::Io {
            file: path.into(),
            err,
        },
    })
}

pub fn refresh(dir: &Dir, opts: &Options, inner: &mut Inner) -> Result<Arc<IndexSnapshot>, Error> {
    refresh_checked(dir, opts, inner, false, None)
}

/// [`refresh`] with the caller's `lstat`s of both files ([`super::Seen`]), used when they
/// show the files exactly as `inner` read them (then nothing changed at the time they
/// were taken, and a later change is the caller's next look's to find).
pub fn refresh_seen(
    dir: &Dir,
    opts: &Options,
    inner: &mut Inner,
    seen: Option<&super::Seen>,
) -> Result<Arc<IndexSnapshot>, Error> {
    let seen = seen.filter(|s| !opts.nfs && as_read(inner, s));
    refresh_checked(dir, opts, inner, false, seen)
}

/// The files are those `inner` read, as it read them: same inodes, the index's length
/// and ctime, the log's length (nothing appended) and ctime, the log not replaced.
fn as_read(inner: &Inner, s: &super::Seen) -> bool {
    index_id(&s.index) == inner.index_id
        && id(&s.log) == inner.log.id
        && !inner.log.stale
        && s.log.len() == inner.log.seen_len
        && ctime(&s.log) == inner.log.ctime
}

/// [`refresh`]; `whole`: a racy log is checked byte for byte (before a write).
fn refresh_checked(
    dir: &Dir,
    opts: &Options,
    inner: &mut Inner,
    whole: bool,
    seen: Option<&super::Seen>,
) -> Result<Arc<IndexSnapshot>, Error> {
    if inner.broken {
        // Damage found and not healed yet: the files may read cleanly but shorter (a log
        // truncated in place looks like a torn tail), which would drop committed changes.
        if let (true, Some((file, what, offset))) = (inner.healable(), &inner.found) {
            return Err(corrupt(file.clone(), what.clone(), *offset));
        }
        return reload(dir, opts, inner);
    }
    let lpath = dir.file(LOG_FILE);
    let (im, lm) = match seen {
        Some(s) => (s.index, s.log),
        None => match (
            stat(dir, INDEX_FILE, opts.nfs),
            stat(dir, LOG_FILE, opts.nfs),
        ) {
            (Ok(i), Ok(l)) => (i, l),
            (Err(e), _) | (_, Err(e)) => {
                inner.broken = true;
                return Err(e);
            }
        },
    };
    let len = lm.len();
    let iid = index_id(&im);
    if iid != inner.index_id {
        // Loft replaces the index by rename: the same inode changed is a foreign write.
        return match same_inode(iid, inner.index_id) {
            true => reload_in_place(dir, opts, inner),
            false => reload(dir, opts, inner),
        };
    }
    if id(&lm) != inner.log.id || inner.log.stale && len != inner.log.seen_len {
        return reload(dir, opts, inner);
    }
    if len < inner.log.end {
        // Loft cuts only torn bytes after the last commit.
        let what = format!(
            "log shrank to {len} bytes, below the end of its last commit at {} (truncated by another program)",
            inner.log.end
        );
        return Err(damaged(inner, corrupt(lpath, what, len)));
    }
    if len == inner.log.seen_len && ctime(&lm) != inner.log.ctime {
        return reload_in_place(dir, opts, inner);
    }
    if len == inner.log.seen_len && inner.log.end == len {
        if inner.log.racy {
            if let Err(e) = verify_racy_log(dir, inner, whole) {
                return Err(damaged(inner, e));
            }
        }
        return Ok(inner.snap.clone());
    }
    match catch_up(dir, inner, ctime(&lm)) {
        Ok(s) => Ok(s),
        Err(e) => Err(damaged(inner, e)),
    }
}

fn same_inode(a: FileId, b: FileId) -> bool {
    (a.dev, a.ino) == (b.dev, b.ino)
}

/// Marks the state broken after damage found in files it was read from; healable when
/// the snapshot is whole.
fn damaged(inner: &mut Inner, e: Error) -> Error {
    inner.broken = true;
    inner.healable = false;
    inner.found = None;
    if let (true, Error::Corrupted { file, what, offset }) = (inner.trusted, &e) {
        inner.healable = true;
        inner.found = Some((file.clone(), what.clone(), *offset));
    }
    e
}

/// A file of the pair changed without being replaced (same inode). A valid result is
/// taken (a `chmod`, a copy of the same bytes); damage, or committed transactions gone
/// from the log we read, is healable damage.
fn reload_in_place(
    dir: &Dir,
    opts: &Options,
    inner: &mut Inner,
) -> Result<Arc<IndexSnapshot>, Error> {
    let (was_log, was_end) = (inner.log.id, inner.log.end);
    match load(dir, opts) {
        Ok(Some(new)) if new.log.id == was_log && new.log.end < was_end && !new.log.stale => {
            let what = format!(
                "committed transactions after offset {} are gone (rewritten by another program)",
                new.log.end
            );
            Err(damaged(
                inner,
                corrupt(dir.file(LOG_FILE), what, new.log.end),
            ))
        }
        Ok(Some(new)) => {
            *inner = new;
            Ok(inner.snap.clone())
        }
        Ok(None) => Err(damaged(
            inner,
            corrupt(dir.file(INDEX_FILE), "index file missing", 0),
        )),
        Err(e) => Err(damaged(inner, e)),
    }
}

/// Under the write lock, after a refresh found healable damage ([`Inner::healable`]):
/// writes a new pair (index of the next generation with a new pair id, then an empty
/// log) from the state this process holds, which loses nothing it had read, and logs
/// the one line. Files another process replaced meanwhile are read instead.
pub fn heal(
    dir: &Dir,
    opts: &Options,
    inner: &mut Inner,
    e: Error,
) -> Result<Arc<IndexSnapshot>, Error> {
    if !inner.healable() {
        // Healed (or reloaded) by another user of this instance while we waited for the
        // write lock.
        return match inner.broken {
            false => Ok(inner.snap.clone()),
            true => Err(e),
        };
    }
    let replaced = |name: &str, was: FileId| {
        dir.metadata(name)
            .map_or(true, |m| !same_inode(id(&m), was))
    };
    if replaced(INDEX_FILE, inner.index_id) || replaced(LOG_FILE, inner.log.id) {
        if let Ok(Some(new)) = load(dir, opts) {
            *inner = new;
            return Ok(inner.snap.clone());
        }
    }
    let gen = inner.generation + 1;
    let pair_id = new_pair_id();
    let snap = (*inner.snap).clone();
    write_index(dir, opts, gen, pair_id, &snap)?;
    let lh = LogHeader {
        generation: gen,
        pair_id,
        uid_validity: snap.header.uid_validity,
    };
    let lpath = dir.file(LOG_FILE);
    log::create(dir, &lh, opts.fsync != FsyncMode::Never).map_err(Error::io(lpath))?;
    sync_dir(dir, opts)?;
    *inner = written(dir, snap, gen, pair_id)?;
    if let Error::Corrupted { file, what, offset } = &e {
        tracing::warn!(
            "index corrupted: {}: {what} at offset {offset}; index files rewritten from this process's state ({} messages, nothing it had read is lost)",
            file.display(),
            inner.snap.records.len()
        );
    }
    Ok(inner.snap.clone())
}

fn catch_up(
    dir: &Dir,
    inner: &mut Inner,
    seen_ctime: (i64, i64),
) -> Result<Arc<IndexSnapshot>, Error> {
    let lpath = &dir.file(LOG_FILE);
    // The log we read before (the caller found its inode under the name).
    let f = &inner.log.file;
    // What we read before must still be there: the header, and the bytes before `end`
    // (read along with the new ones).
    let end = inner.log.end;
    let back = inner.log.marks.tail.len() as u64;
    let head = Marks::read(f, LOG_HEADER_LEN as u64).map_err(Error::io(lpath.into()))?;
    let bytes = log::read_from(f, end - back).map_err(Error::io(lpath.into()))?;
    if head.head != inner.log.marks.head || !bytes.starts_with(&inner.log.marks.tail) {
        let what = "committed bytes changed (rewritten by another program)";
        return Err(corrupt(lpath.into(), what, end - back));
    }
    take_bytes(lpath, inner, &bytes[back as usize..], seen_ctime)
}

/// Applies the log bytes found after `inner.log.end` (read back, or just written under
/// the write lock) to the snapshot, and moves the log state past them: the end of the
/// last whole transaction, the marks and the CRC of the committed bytes.
fn take_bytes(
    lpath: &Path,
    inner: &mut Inner,
    bytes: &[u8],
    seen_ctime: (i64, i64),
) -> Result<Arc<IndexSnapshot>, Error> {
    let end = inner.log.end;
    let sc = log::scan(bytes, end).map_err(|b| Error::corrupted(lpath.into(), b))?;
    inner.log.seen_len = end + bytes.len() as u64;
    inner.log.ctime = seen_ctime;
    inner.log.racy = true;
    if sc.txns.is_empty() {
        return Ok(inner.snap.clone());
    }
    // In place when no one else holds the snapshot (no copy of 100,000 records for one
    // append); a failure leaves it half-applied: no longer trusted, and the next
    // refresh reloads from the files.
    inner.trusted = false;
    let snap = Arc::make_mut(&mut inner.snap);
    for (at, txn) in &sc.txns {
        apply_txn(snap, txn, *at).map_err(|b| Error::corrupted(lpath.into(), b))?;
    }
    inner.trusted = true;
    let new_end = (sc.end - end) as usize;
    let mut tail = match new_end >= TAIL_MARK as usize {
        true => Vec::new(),
        false => std::mem::take(&mut inner.log.marks.tail),
    };
    tail.extend_from_slice(&bytes[new_end.saturating_sub(TAIL_MARK as usize)..new_end]);
    let cut = tail.len().saturating_sub(TAIL_MARK as usize);
    tail.drain(..cut);
    inner.log.marks.tail = tail;
    inner.log.crc.update(&bytes[..new_end]);
    inner.log.racy = true;
    inner.log.end = sc.end;
    inner.log.records += sc.records;
    Ok(inner.snap.clone())
}

fn open_log_state(dir: &Dir) -> Result<LogState, Error> {
    let lpath = &dir.file(LOG_FILE);
    let f = dir.open_ro(LOG_FILE).map_err(Error::io(lpath.into()))?;
    let m = f.metadata().map_err(Error::io(lpath.into()))?;
    let end = LOG_HEADER_LEN as u64;
    let head = log::read_from(&f, 0).map_err(Error::io(lpath.into()))?;
    let head = &head[..head.len().min(LOG_HEADER_LEN)];
    Ok(LogState {
        file: f,
        writer: None,
        id: id(&m),
        end,
        seen_len: m.len(),
        records: 0,
        stale: false,
        ctime: ctime(&m),
        marks: Marks::of(head, end),
        crc: crc_of(head),
        racy: true,
    })
}

/// Under the write lock: catch up, replace a stale log, cut off a torn tail.
pub fn prepare_write(
    dir: &Dir,
    opts: &Options,
    inner: &mut Inner,
) -> Result<Arc<IndexSnapshot>, Error> {
    let snap = refresh_checked(dir, opts, inner, true, None)?;
    let lpath = dir.file(LOG_FILE);
    if inner.log.stale {
        let lh = LogHeader {
            generation: inner.generation,
            pair_id: inner.pair_id,
            uid_validity: snap.header.uid_validity,
        };
        log::create(dir, &lh, opts.fsync != FsyncMode::Never).map_err(Error::io(lpath.clone()))?;
        sync_dir(dir, opts)?;
        inner.log = open_log_state(dir)?;
    }
    if inner.log.seen_len > inner.log.end {
        let f = dir.open_rw(LOG_FILE).map_err(Error::io(lpath.clone()))?;
        f.set_len(inner.log.end).map_err(Error::io(lpath.clone()))?;
        if opts.fsync != FsyncMode::Never {
            f.sync_data().map_err(Error::io(lpath.clone()))?;
        }
        inner.log.seen_len = inner.log.end;
        // Our own change: not a foreign write to look into at the next refresh.
        inner.log.ctime = ctime(&f.metadata().map_err(Error::io(lpath.clone()))?);
        inner.log.racy = true;
    }
    Ok(snap)
}

/// Under the write lock, after [`prepare_write`]: appends one encoded transaction.
pub fn append(
    dir: &Dir,
    opts: &Options,
    inner: &mut Inner,
    bytes: &[u8],
    sync: bool,
) -> Result<Arc<IndexSnapshot>, Error> {
    let lpath = dir.file(LOG_FILE);
    let io = |e: io::Error| Error::Io {
        file: lpath.clone(),
        err: e,
    };
    let f = match inner.log.writer.take() {
        Some(f) => f,
        None => {
            let f = dir.open_rw(LOG_FILE).map_err(io)?;
            if id(&f.metadata().map_err(io)?) != inner.log.id {
                inner.broken = true;
                return Err(corrupt(
                    lpath.clone(),
                    "log replaced while the write lock was held",
                    0,
                ));
            }
            f
        }
    };
    f.write_all_at(bytes, inner.log.end).map_err(io)?;
    if sync {
        f.sync_data().map_err(io)?;
    }
    let after = f.metadata().map_err(io)?;
    inner.log.writer = Some(f);
    // Under the write lock the log now holds what we read plus these bytes: applied
    // from memory instead of read back (unless the file says otherwise).
    let ours = inner.log.seen_len == inner.log.end
        && after.len() == inner.log.end + bytes.len() as u64
        && id(&after) == inner.log.id;
    let snap = match ours {
        true => take_bytes(&lpath, inner, bytes, ctime(&after)).map_err(|e| damaged(inner, e))?,
        false => refresh(dir, opts, inner)?,
    };
    let size = inner.log.end.saturating_sub(LOG_HEADER_LEN as u64);
    if compaction_due(size, opts, inner) {
        if let Err(e) = compact(dir, opts, inner) {
            tracing::warn!(
                "index compaction in {} failed (the log keeps the changes): {e}",
                dir.path().display()
            );
        }
    }
    Ok(snap)
}

/// A log this many times bigger than its index is compacted even below
/// `log_compact_bytes` (but not below [`LOG_SMALL`]): in a folder changed all the time the
/// log stays racy and every write first compares it whole (see [`verify_racy_log`]),
/// while rewriting a small mailbox's index costs little. Measured with imaptest: a
/// 30-message mailbox's log grew to hundreds of KiB and its APPENDs took 1.8 ms instead
/// of 0.5 ms.
const LOG_OVER_INDEX: u64 = 4;
const LOG_SMALL: u64 = 64 << 10;

fn compaction_due(size: u64, opts: &Options, inner: &Inner) -> bool {
    size > opts.log_compact_bytes
        || inner.log.records > LOG_COMPACT_RECORDS
        || size > LOG_SMALL.max(LOG_OVER_INDEX.saturating_mul(inner.index_id.len))
}

/// Under the write lock, caught up: new index of generation G+1 (temp, fsync, rename),
/// then an empty log of G+1 (temp, fsync, rename), then the directory fsync.
pub fn compact(dir: &Dir, opts: &Options, inner: &mut Inner) -> Result<(), Error> {
    let gen = inner.generation + 1;
    write_index(dir, opts, gen, inner.pair_id, &inner.snap)?;
    inner.generation = gen;
    let ipath = dir.file(INDEX_FILE);
    let f = dir.open_ro(INDEX_FILE).map_err(Error::io(ipath.clone()))?;
    inner.index_id = index_id(&f.metadata().map_err(Error::io(ipath))?);
    inner._index_file = f;
    // From here the old log is stale: if we fail below, the next writer replaces it.
    inner.log.stale = true;
    let lpath = dir.file(LOG_FILE);
    let lh = LogHeader {
        generation: gen,
        pair_id: inner.pair_id,
        uid_validity: inner.snap.header.uid_validity,
    };
    log::create(dir, &lh, opts.fsync != FsyncMode::Never).map_err(Error::io(lpath.clone()))?;
    sync_dir(dir, opts)?;
    inner.log = open_log_state(dir)?;
    Ok(())
}

impl Inner {
    /// The last refresh found damage [`heal`] can repair.
    pub fn healable(&self) -> bool {
        self.healable && self.trusted
    }
}

#[cfg(test)]
impl Inner {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// As if the log's last change had not moved its ctime (a coarse file-system clock:
    /// a write in the same tick as the previous one).
    pub fn hide_log_ctime_change(&mut self, dir: &Path) {
        if let Ok(m) = std::fs::metadata(dir.join(LOG_FILE)) {
            self.log.ctime = ctime(&m);
        }
    }
}
