//! The write lock of one index directory: an in-process gate (so threads of one process
//! exclude each other even with fcntl, whose locks are per process; one per storage
//! context, see [`super::Shared`]), then the
//! inter-process lock on `loft.index.lock` by fcntl, flock, or a dotlock
//! `loft.index.lock.lck` created with O_EXCL and taken over when older than 120 s.
//! Waits at most the given time, then `Error::Locked`.
//!
//! This module knows lock files, not what the lock protects.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{Dir, Error, LockMethod};

pub const LOCK_FILE: &str = "loft.index.lock";
pub const DOTLOCK_FILE: &str = "loft.index.lock.lck";
/// A dotlock whose mtime is older than this was left by a dead process.
pub const DOTLOCK_STALE: Duration = Duration::from_secs(120);

/// The in-process half of the write lock: the index directories some thread of this
/// process holds locked (one per [`super::Shared`], never process-wide).
#[derive(Default)]
pub struct Gate {
    held: Mutex<HashSet<PathBuf>>,
    freed: Condvar,
}

/// The lock file as the last holder of one index's write lock had it open, with its
/// device and inode: the next holder locks it again without opening it (one `lstat`
/// then checks it is still the file at the lock's path; a lock file removed or replaced
/// meanwhile is opened anew, since locking an orphan would exclude nobody).
pub type KeptLock = Arc<Mutex<Option<(File, (u64, u64))>>>;

/// Held until dropped.
pub struct WriteLock {
    gate: Arc<Gate>,
    key: PathBuf,
    /// The locked lock file (fcntl or flock), given back to `kept` when released.
    file: Option<(File, (u64, u64))>,
    fcntl: bool,
    kept: Option<KeptLock>,
    /// The directory holding the dot-lock file, when one was taken.
    dotlock: Option<Dir>,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        if let Some(d) = &self.dotlock {
            let _ = d.remove(DOTLOCK_FILE);
        }
        // Unlocked and kept for the next holder; a file that cannot be unlocked is
        // closed, which unlocks it. Before the gate opens, so the next thread finds it.
        if let Some((f, id)) = self.file.take() {
            if super::fileio::unlock(f.as_raw_fd(), self.fcntl) == 0 {
                if let Some(k) = &self.kept {
                    *k.lock().unwrap_or_else(|e| e.into_inner()) = Some((f, id));
                }
            }
        }
        let mut g = self.gate.held.lock().unwrap_or_else(|e| e.into_inner());
        g.remove(&self.key);
        self.gate.freed.notify_all();
    }
}

fn gate(gate: &Gate, key: &Path, deadline: Instant) -> bool {
    let mut g = gate.held.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if !g.contains(key) {
            g.insert(key.to_path_buf());
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        g = match gate.freed.wait_timeout(g, deadline - now) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        };
    }
}

fn backoff(deadline: Instant, step: &mut u64) -> bool {
    if Instant::now() >= deadline {
        return false;
    }
    std::thread::sleep(Duration::from_millis(*step));
    *step = (*step * 2).min(20);
    true
}

fn try_os_lock(f: &File, method: LockMethod) -> io::Result<bool> {
    let rc = super::fileio::try_lock(f.as_raw_fd(), method == LockMethod::Fcntl);
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) | Some(libc::EINTR) => Ok(false),
        _ => Err(e),
    }
}

fn dotlock(dir: &Dir, deadline: Instant) -> Result<bool, io::Error> {
    let mut step = 1;
    loop {
        match dir.create_fresh_excl(DOTLOCK_FILE) {
            Ok(mut f) => {
                let _ = writeln!(f, "{}", std::process::id());
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let stale = dir
                    .metadata(DOTLOCK_FILE)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > DOTLOCK_STALE);
                if stale {
                    let path = dir.file(DOTLOCK_FILE);
                    tracing::warn!("removing stale index dotlock {}", path.display());
                    let _ = dir.remove(DOTLOCK_FILE);
                    continue;
                }
            }
            Err(e) => return Err(e),
        }
        if !backoff(deadline, &mut step) {
            return Ok(false);
        }
    }
}

/// The write lock of the index in `dir` as `opts` ask for it (their lock method, dotlocks
/// on NFS, the storage context's gate), waiting at most [`super::LOCK_TIMEOUT`].
pub fn of_index(dir: &Dir, opts: &super::Options, kept: &KeptLock) -> Result<WriteLock, Error> {
    let method = super::state::lock_method(opts);
    acquire(dir, method, super::LOCK_TIMEOUT, &opts.shared.gate, kept)
}

/// Takes the write lock of `dir` (keyed by its canonical path), waiting at most `timeout`,
/// through the lock file `kept` holds when there is one.
pub fn acquire(
    dir: &Dir,
    method: LockMethod,
    timeout: Duration,
    in_process: &Arc<Gate>,
    kept: &KeptLock,
) -> Result<WriteLock, Error> {
    let deadline = Instant::now() + timeout;
    let lock_path = dir.file(LOCK_FILE);
    let locked = || Error::Locked {
        file: lock_path.clone(),
    };
    if !gate(in_process, dir.path(), deadline) {
        return Err(locked());
    }
    let mut held = WriteLock {
        gate: in_process.clone(),
        key: dir.path().to_path_buf(),
        file: None,
        fcntl: method == LockMethod::Fcntl,
        kept: Some(kept.clone()),
        dotlock: None,
    };
    let io_err = |err| Error::Io {
        file: lock_path.clone(),
        err,
    };
    if method == LockMethod::Dotlock {
        if !dotlock(dir, deadline).map_err(io_err)? {
            return Err(locked());
        }
        held.dotlock = Some(dir.try_clone().map_err(io_err)?);
        return Ok(held);
    }
    let lock_until = |f: &File| -> Result<(), Error> {
        let mut step = 1;
        while !try_os_lock(f, method).map_err(io_err)? {
            if !backoff(deadline, &mut step) {
                return Err(locked());
            }
        }
        Ok(())
    };
    let again = kept.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((f, id)) = again {
        lock_until(&f)?;
        // Locked through `held` from here: dropped, it unlocks and keeps the file.
        held.file = Some((f, id));
        if dir.lstat(LOCK_FILE).is_ok_and(|st| (st.dev, st.ino) == id) {
            return Ok(held);
        }
        if let Some((f, _)) = held.file.take() {
            super::fileio::unlock(f.as_raw_fd(), held.fcntl);
        }
    }
    let f = dir.open_or_create(LOCK_FILE).map_err(io_err)?;
    lock_until(&f)?;
    let st = crate::beneath::fstat(&f).map_err(io_err)?;
    held.file = Some((f, (st.dev, st.ino)));
    Ok(held)
}
