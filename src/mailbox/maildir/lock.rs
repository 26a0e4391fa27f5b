//! Folder locking and in-process change notification.
//!
//! Every update of a folder's uid list (and every rename that must not race with a
//! directory scan) happens under the folder lock: first a per-folder in-process lock from
//! the storage context ([`super::StorageCtx::folder_shared`]: threads of this process),
//! then `flock(LOCK_EX)` on
//! `loft-uidlist.lock` in the folder (other Loft processes). Waiting is bounded by
//! [`LOCK_TIMEOUT`]; on timeout the caller gets [`ErrorKind::Temporary`].
//!
//! The registry entry also carries a change counter bumped by in-process writers, so other
//! sessions of this process notice changes even when directory mtimes have too coarse a
//! granularity.
//!
//! This module must not know about message files or uid list contents.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::mailbox::{Error, ErrorKind, Result};

pub const LOCK_FILE: &str = "loft-uidlist.lock";
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared in-process state of one folder.
/// [`FolderShared::dir`] slot of the folder directory itself.
pub const FOLDER_SLOT: usize = 2;

#[derive(Default)]
pub struct FolderShared {
    locked: Mutex<bool>,
    cond: Condvar,
    changes: AtomicU64,
    /// `new/` and `cur/` as the last listing opened them (beneath the mail root, no
    /// link on the way): messages are opened relative to these, one path component each,
    /// and the next listing reads them again when they are still the folder's `new/` and
    /// `cur/` (same device and inode). Slot [`FOLDER_SLOT`]: the folder itself, for the
    /// stats of change detection.
    dirs: Mutex<[Option<Kept>; 3]>,
    /// Held while listing `new/` (0) or `cur/` (1) through a descriptor of `dirs`: a
    /// listing moves the position of the descriptor, which every holder shares.
    listing: [Mutex<()>; 2],
    /// The lock file as the last holder had it open, with its device and inode: the next
    /// holder locks it again without opening it (checked to be still the file at the
    /// lock's path once locked).
    kept: Mutex<Option<(std::fs::File, (u64, u64))>>,
}

/// A directory descriptor and the identity (device, inode) it had when opened.
struct Kept {
    fd: Arc<std::os::fd::OwnedFd>,
    id: (u64, u64),
}

impl FolderShared {
    /// The directory descriptor of `new/` (0) or `cur/` (1) from the last listing, or of
    /// the folder ([`FOLDER_SLOT`]).
    pub fn dir(&self, i: usize) -> Option<Arc<std::os::fd::OwnedFd>> {
        let d = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        Some(d.get(i)?.as_ref()?.fd.clone())
    }

    /// The kept descriptor of slot `i` when it is still the directory `id` (device,
    /// inode) that an `lstat` just found: a directory renamed away and replaced is
    /// opened anew.
    pub fn dir_if(&self, i: usize, id: (u64, u64)) -> Option<Arc<std::os::fd::OwnedFd>> {
        let d = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let k = d.get(i)?.as_ref()?;
        (k.id == id).then(|| k.fd.clone())
    }

    /// Remembers the descriptor a listing used, and returns it shared.
    pub fn set_dir(&self, i: usize, fd: std::os::fd::OwnedFd) -> Arc<std::os::fd::OwnedFd> {
        let id = crate::beneath::fstat(&fd).map_or((0, 0), |s| (s.dev, s.ino));
        let fd = Arc::new(fd);
        let mut d = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = d.get_mut(i) {
            *slot = Some(Kept { fd: fd.clone(), id });
        }
        fd
    }

    /// Held while listing through a kept descriptor of `new/` (0) or `cur/` (1).
    pub fn listing(&self, i: usize) -> Option<std::sync::MutexGuard<'_, ()>> {
        let m = self.listing.get(i)?;
        Some(m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }
    pub fn bump(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Held while a folder is locked; unlocks on drop.
pub struct FolderLock {
    shared: Arc<FolderShared>,
    /// The locked file, with its device and inode.
    file: Option<(std::fs::File, (u64, u64))>,
}

fn timeout(path: &Path) -> Error {
    Error::new(ErrorKind::Temporary, "Mailbox is locked, try again later")
        .with_detail(format!("timeout locking {}", path.display()))
}

impl FolderLock {
    pub fn acquire(folder: &Path, shared: Arc<FolderShared>) -> Result<FolderLock> {
        let deadline = Instant::now() + LOCK_TIMEOUT;
        {
            let mut locked = shared.locked.lock().unwrap_or_else(|p| p.into_inner());
            while *locked {
                let now = Instant::now();
                if now >= deadline {
                    return Err(timeout(folder));
                }
                let (g, _) = shared
                    .cond
                    .wait_timeout(locked, deadline - now)
                    .unwrap_or_else(|p| p.into_inner());
                locked = g;
            }
            *locked = true;
        }
        let release = |shared: &FolderShared| {
            let mut locked = shared.locked.lock().unwrap_or_else(|p| p.into_inner());
            *locked = false;
            shared.cond.notify_one();
        };
        let path = folder.join(LOCK_FILE);
        let kept = shared.kept.lock().unwrap_or_else(|p| p.into_inner()).take();
        match lock_file(&path, kept, deadline) {
            Ok(kept) => Ok(FolderLock {
                shared,
                file: Some(kept),
            }),
            Err(e) => {
                release(&shared);
                Err(e)
            }
        }
    }
}

/// Locks the file at `path` (`flock`, exclusive), the descriptor `kept` from the last
/// holder when it is still the file at that path once locked (a lock file removed or
/// replaced meanwhile is opened anew: locking an orphan would exclude nobody).
fn lock_file(
    path: &Path,
    kept: Option<(std::fs::File, (u64, u64))>,
    deadline: Instant,
) -> Result<(std::fs::File, (u64, u64))> {
    if let Some((file, id)) = kept {
        flock_until(path, &file, deadline)?;
        let here = std::fs::symlink_metadata(path).map(|m| (m.dev(), m.ino()));
        if here.is_ok_and(|h| h == id) {
            return Ok((file, id));
        }
    }
    // Never through a link; created with the mode of the mail beside it.
    let how = crate::beneath::How::OpenOrCreate(crate::beneath::file_mode_for(path));
    let file =
        crate::beneath::open_nofollow(path, how).map_err(|e| Error::io(path.display(), e))?;
    flock_until(path, &file, deadline)?;
    let st = crate::beneath::fstat(&file).map_err(|e| Error::io(path.display(), e))?;
    Ok((file, (st.dev, st.ino)))
}

/// `flock(LOCK_EX)` on `file`, retried until `deadline`.
fn flock_until(path: &Path, file: &std::fs::File, deadline: Instant) -> Result<()> {
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::WouldBlock && err.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::io(path.display(), err));
        }
        if Instant::now() >= deadline {
            return Err(timeout(path.parent().unwrap_or(path)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Unlock the file (kept open for the next holder); release the in-process lock
        // after it. A file that cannot be unlocked is closed, which unlocks it.
        if let Some((file, id)) = self.file.take() {
            // SAFETY: flock on a file descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) } == 0 {
                *self.shared.kept.lock().unwrap_or_else(|p| p.into_inner()) = Some((file, id));
            }
        }
        let mut locked = self.shared.locked.lock().unwrap_or_else(|p| p.into_inner());
        *locked = false;
        self.shared.cond.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether another open file description can lock `path` now.
    fn lockable_from_outside(path: &Path) -> bool {
        let f = std::fs::File::open(path).unwrap();
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    }

    /// The lock file kept open between holders is the file at the lock's path: locked
    /// while held, unlocked after; removed or replaced meanwhile, it is opened anew.
    #[test]
    fn the_kept_lock_file_is_the_one_at_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let storage = super::super::StorageCtx::new(
            &crate::config::Config::for_tests(std::path::Path::new("/nonexistent")).storage,
        );
        let shared = storage.folder_shared(dir.path());
        let path = dir.path().join(LOCK_FILE);
        for round in 0..3 {
            let l = FolderLock::acquire(dir.path(), shared.clone()).unwrap();
            assert!(!lockable_from_outside(&path), "round {round}: not locked");
            drop(l);
            assert!(lockable_from_outside(&path), "round {round}: still locked");
            match round {
                0 => std::fs::remove_file(&path).unwrap(),
                1 => {
                    std::fs::rename(&path, dir.path().join("old")).unwrap();
                    std::fs::write(&path, b"").unwrap();
                }
                _ => {}
            }
        }
        assert!(shared.kept.lock().unwrap().is_some());
    }

    #[test]
    fn same_path_same_shared_and_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let storage = super::super::StorageCtx::new(
            &crate::config::Config::for_tests(std::path::Path::new("/nonexistent")).storage,
        );
        let a = storage.folder_shared(dir.path());
        let b = storage.folder_shared(dir.path());
        assert!(Arc::ptr_eq(&a, &b));
        let l = FolderLock::acquire(dir.path(), a.clone()).unwrap();
        let b2 = b.clone();
        let p = dir.path().to_path_buf();
        let t = std::thread::spawn(move || FolderLock::acquire(&p, b2).map(|_| Instant::now()));
        std::thread::sleep(Duration::from_millis(100));
        let released = Instant::now();
        drop(l);
        let got = t.join().unwrap().unwrap();
        assert!(got >= released);
        b.bump();
        assert_eq!(a.changes(), 1);
    }
}
