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
    file: Option<std::fs::File>,
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
        // Never through a link; created with the mode of the mail beside it.
        let how = crate::beneath::How::OpenOrCreate(crate::beneath::file_mode_for(&path));
        let file = match crate::beneath::open_nofollow(&path, how) {
            Ok(f) => f,
            Err(e) => {
                release(&shared);
                return Err(Error::io(path.display(), e));
            }
        };
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::WouldBlock
                && err.raw_os_error() != Some(libc::EINTR)
            {
                release(&shared);
                return Err(Error::io(path.display(), err));
            }
            if Instant::now() >= deadline {
                release(&shared);
                return Err(timeout(folder));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(FolderLock {
            shared,
            file: Some(file),
        })
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Closing the file releases the flock; release the in-process lock after it.
        drop(self.file.take());
        let mut locked = self.shared.locked.lock().unwrap_or_else(|p| p.into_inner());
        *locked = false;
        self.shared.cond.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
