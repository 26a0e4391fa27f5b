//! The in-memory state of an open index and the file protocol around it: loading the
//! index + log pair (with the generation rules of `docs/index-format.md`), cheap refresh
//! by comparing inodes and the log size, appending transactions, compaction, creation
//! and rebuild.
//!
//! This module knows files and generations, not what callers store in records.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, Metadata};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::apply::apply_txn;
use super::create::write_index;
use super::format::{decode_index, decode_log_header, LogHeader, LOG_HEADER_LEN};
use super::{log, mmap, Error, FsyncMode, IndexSnapshot, LockMethod, Options};
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

fn id(m: &Metadata) -> FileId {
    FileId {
        dev: m.dev(),
        ino: m.ino(),
        len: 0,
        ctime: (0, 0),
    }
}

fn index_id(m: &Metadata) -> FileId {
    FileId {
        len: m.len(),
        ctime: (m.ctime(), m.ctime_nsec()),
        ..id(m)
    }
}

pub struct LogState {
    /// Kept open so that its inode number cannot be reused by a later file while we
    /// compare ids.
    _file: File,
    id: FileId,
    /// Offset after the last transaction applied.
    end: u64,
    /// File size when last looked at.
    seen_len: u64,
    /// Committed records since the generation started (compaction trigger).
    records: u64,
    /// The log is of an older generation than the index: all of it is in the index.
    stale: bool,
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

/// True when `path` no longer names the inode `was` (replaced by another process).
fn replaced(path: &Path, was: FileId) -> bool {
    fs::metadata(path)
        .map(|m| index_id(&m) != was)
        .unwrap_or(true)
}

/// Loads the pair; `Ok(None)` when there is no index yet.
pub(super) fn load(dir: &Path, opts: &Options) -> Result<Option<Inner>, Error> {
    let ipath = dir.join(INDEX_FILE);
    let lpath = dir.join(LOG_FILE);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match load_once(dir, opts, &ipath, &lpath) {
            // The pair did not match, but the index was replaced meanwhile (compaction or
            // rebuild by another process): look again.
            Err(Retry(e, was)) if attempt < 5 && (replaced(&ipath, was) || attempt < 3) => {
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

fn load_once(
    dir: &Path,
    opts: &Options,
    ipath: &Path,
    lpath: &Path,
) -> Result<Option<Inner>, LoadErr> {
    let f = match super::open_ro(ipath) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Creation writes the log first: a log holding no changes alone is an
            // unfinished creation; one with changes means the index was lost.
            return match fs::metadata(lpath) {
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
    let idx = {
        let bytes = mmap::read_whole(&f, opts.nfs).map_err(ioerr(ipath))?;
        decode_index(&bytes).map_err(|b| Fatal(Error::corrupted(ipath.into(), b)))?
    };
    let lf = match super::open_ro(lpath) {
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
    let lid = id(&lf.metadata().map_err(ioerr(lpath))?);
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
        first_unseen: idx.first_unseen,
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
    let _ = dir;
    Ok(Some(Inner {
        snap: Arc::new(snap),
        generation: idx.generation,
        pair_id: idx.pair_id,
        index_id: iid,
        _index_file: f,
        log: LogState {
            _file: lf,
            id: lid,
            end,
            seen_len: len,
            records,
            stale,
        },
        broken: false,
    }))
}

/// The state of a pair this process has just written under the write lock (rebuild):
/// `snap` is what the index holds and the log is empty, so nothing is read back. The
/// files are opened for their identities; the lock keeps anyone from replacing them
/// before that.
pub(super) fn written(
    dir: &Path,
    snap: IndexSnapshot,
    generation: u64,
    pair_id: u64,
) -> Result<Inner, Error> {
    let (ipath, lpath) = (dir.join(INDEX_FILE), dir.join(LOG_FILE));
    let open = |p: &Path| {
        super::open_ro(p)
            .and_then(|f| f.metadata().map(|m| (f, m)))
            .map_err(|err| Error::Io {
                file: p.to_path_buf(),
                err,
            })
    };
    let (f, im) = open(&ipath)?;
    let (lf, lm) = open(&lpath)?;
    Ok(Inner {
        snap: Arc::new(snap),
        generation,
        pair_id,
        index_id: index_id(&im),
        _index_file: f,
        log: LogState {
            _file: lf,
            id: id(&lm),
            end: lm.len(),
            seen_len: lm.len(),
            records: 0,
            stale: false,
        },
        broken: false,
    })
}

pub(super) fn sync_dir(dir: &Path, opts: &Options) -> Result<(), Error> {
    if opts.fsync == FsyncMode::Never {
        return Ok(());
    }
    log::fsync_dir(dir).map_err(Error::io(dir.to_path_buf()))
}

fn reload(dir: &Path, opts: &Options, inner: &mut Inner) -> Result<Arc<IndexSnapshot>, Error> {
    inner.broken = true;
    match load(dir, opts)? {
        Some(new) => {
            *inner = new;
            Ok(inner.snap.clone())
        }
        None => Err(corrupt(
            dir.join(INDEX_FILE),
            "index file missing (deleted while in use)",
            0,
        )),
    }
}

fn stat(path: &Path, nfs: bool) -> Result<Metadata, Error> {
    // On NFS, opening the file revalidates its attributes (close-to-open consistency);
    // a plain stat could be answered from the attribute cache.
    let r = if nfs {
        super::open_ro(path).and_then(|f| f.metadata())
    } else {
        fs::metadata(path)
    };
    r.map_err(|err| match err.kind() {
        ErrorKind::NotFound => corrupt(path.into(), "file missing (deleted while in use)", 0),
        _ => Error::Io {
            file: path.into(),
            err,
        },
    })
}

pub fn refresh(dir: &Path, opts: &Options, inner: &mut Inner) -> Result<Arc<IndexSnapshot>, Error> {
    if inner.broken {
        return reload(dir, opts, inner);
    }
    let lpath = dir.join(LOG_FILE);
    let (im, lm) = match (
        stat(&dir.join(INDEX_FILE), opts.nfs),
        stat(&lpath, opts.nfs),
    ) {
        (Ok(i), Ok(l)) => (i, l),
        (Err(e), _) | (_, Err(e)) => {
            inner.broken = true;
            return Err(e);
        }
    };
    let len = lm.len();
    if index_id(&im) != inner.index_id
        || id(&lm) != inner.log.id
        || len < inner.log.end
        || inner.log.stale && len != inner.log.seen_len
    {
        return reload(dir, opts, inner);
    }
    if len == inner.log.seen_len && inner.log.end == len {
        return Ok(inner.snap.clone());
    }
    match catch_up(&lpath, inner) {
        Ok(s) => Ok(s),
        Err(e) => {
            inner.broken = true;
            Err(e)
        }
    }
}

fn catch_up(lpath: &Path, inner: &mut Inner) -> Result<Arc<IndexSnapshot>, Error> {
    let f = super::open_ro(lpath).map_err(Error::io(lpath.into()))?;
    let m = f.metadata().map_err(Error::io(lpath.into()))?;
    if id(&m) != inner.log.id {
        return Err(corrupt(lpath.into(), "log replaced while reading", 0));
    }
    let bytes = log::read_from(&f, inner.log.end).map_err(Error::io(lpath.into()))?;
    let sc = log::scan(&bytes, inner.log.end).map_err(|b| Error::corrupted(lpath.into(), b))?;
    inner.log.seen_len = inner.log.end + bytes.len() as u64;
    if sc.txns.is_empty() {
        return Ok(inner.snap.clone());
    }
    // In place when no one else holds the snapshot (no copy of 100,000 records for one
    // append); a failure leaves it half-applied, but the caller marks the state broken
    // and the next refresh reloads from the files.
    let snap = Arc::make_mut(&mut inner.snap);
    for (at, txn) in &sc.txns {
        apply_txn(snap, txn, *at).map_err(|b| Error::corrupted(lpath.into(), b))?;
    }
    inner.log.end = sc.end;
    inner.log.records += sc.records;
    Ok(inner.snap.clone())
}

fn open_log_state(lpath: &Path) -> Result<LogState, Error> {
    let f = super::open_ro(lpath).map_err(Error::io(lpath.into()))?;
    let m = f.metadata().map_err(Error::io(lpath.into()))?;
    let end = LOG_HEADER_LEN as u64;
    Ok(LogState {
        _file: f,
        id: id(&m),
        end,
        seen_len: m.len(),
        records: 0,
        stale: false,
    })
}

/// Under the write lock: catch up, replace a stale log, cut off a torn tail.
pub fn prepare_write(
    dir: &Path,
    opts: &Options,
    inner: &mut Inner,
) -> Result<Arc<IndexSnapshot>, Error> {
    let snap = refresh(dir, opts, inner)?;
    let lpath = dir.join(LOG_FILE);
    if inner.log.stale {
        let lh = LogHeader {
            generation: inner.generation,
            pair_id: inner.pair_id,
            uid_validity: snap.header.uid_validity,
        };
        log::create(dir, &lh, opts.fsync != FsyncMode::Never).map_err(Error::io(lpath.clone()))?;
        sync_dir(dir, opts)?;
        inner.log = open_log_state(&lpath)?;
    }
    if inner.log.seen_len > inner.log.end {
        let f = super::open_rw(&lpath).map_err(Error::io(lpath.clone()))?;
        f.set_len(inner.log.end).map_err(Error::io(lpath.clone()))?;
        if opts.fsync != FsyncMode::Never {
            f.sync_data().map_err(Error::io(lpath.clone()))?;
        }
        inner.log.seen_len = inner.log.end;
    }
    Ok(snap)
}

/// Under the write lock, after [`prepare_write`]: appends one encoded transaction.
pub fn append(
    dir: &Path,
    opts: &Options,
    inner: &mut Inner,
    bytes: &[u8],
    sync: bool,
) -> Result<Arc<IndexSnapshot>, Error> {
    let lpath = dir.join(LOG_FILE);
    let io = |e: io::Error| Error::Io {
        file: lpath.clone(),
        err: e,
    };
    let f = super::open_rw(&lpath).map_err(io)?;
    if id(&f.metadata().map_err(io)?) != inner.log.id {
        inner.broken = true;
        return Err(corrupt(
            lpath.clone(),
            "log replaced while the write lock was held",
            0,
        ));
    }
    f.write_all_at(bytes, inner.log.end).map_err(io)?;
    if sync {
        f.sync_data().map_err(io)?;
    }
    drop(f);
    let snap = refresh(dir, opts, inner)?;
    let size = inner.log.end.saturating_sub(LOG_HEADER_LEN as u64);
    if size > opts.log_compact_bytes || inner.log.records > LOG_COMPACT_RECORDS {
        if let Err(e) = compact(dir, opts, inner) {
            tracing::warn!(
                "index compaction in {} failed (the log keeps the changes): {e}",
                dir.display()
            );
        }
    }
    Ok(snap)
}

/// Under the write lock, caught up: new index of generation G+1 (temp, fsync, rename),
/// then an empty log of G+1 (temp, fsync, rename), then the directory fsync.
pub fn compact(dir: &Path, opts: &Options, inner: &mut Inner) -> Result<(), Error> {
    let gen = inner.generation + 1;
    write_index(dir, opts, gen, inner.pair_id, &inner.snap)?;
    inner.generation = gen;
    let ipath = dir.join(INDEX_FILE);
    let f = super::open_ro(&ipath).map_err(Error::io(ipath.clone()))?;
    inner.index_id = index_id(&f.metadata().map_err(Error::io(ipath))?);
    inner._index_file = f;
    // From here the old log is stale: if we fail below, the next writer replaces it.
    inner.log.stale = true;
    let lpath = dir.join(LOG_FILE);
    let lh = LogHeader {
        generation: gen,
        pair_id: inner.pair_id,
        uid_validity: inner.snap.header.uid_validity,
    };
    log::create(dir, &lh, opts.fsync != FsyncMode::Never).map_err(Error::io(lpath.clone()))?;
    sync_dir(dir, opts)?;
    inner.log = open_log_state(&lpath)?;
    Ok(())
}

#[cfg(test)]
impl Inner {
    pub fn generation(&self) -> u64 {
        self.generation
    }
}
