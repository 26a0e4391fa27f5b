//! Small file-system helpers: atomic rewrite (temp file + fsync + rename) and directory
//! fsync, both honouring the configured [`FsyncMode`].
//!
//! This module must not know about mail formats (Maildir and mbox both use it).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::beneath::{open_nofollow, How};
use crate::config::FsyncMode;
use crate::mailbox::{Error, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
thread_local! {
    /// Directories [`sync_dir`] was called on by this thread (tests check fsync policy).
    pub static SYNCED_DIRS: std::cell::RefCell<Vec<std::path::PathBuf>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Takes the list of directories this thread fsynced so far (tests only).
#[cfg(test)]
pub fn take_synced_dirs() -> Vec<std::path::PathBuf> {
    SYNCED_DIRS.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Replaces `path` with `bytes` atomically: readers see the old or the new file, never a
/// mix. fsyncs the file and then the directory unless `Never`: these are index files
/// (uid list, keyword letters) whose rename must not be lost after an acknowledged
/// command, so `Optimized` syncs them too.
pub fn write_atomic(path: &Path, bytes: &[u8], fsync: FsyncMode) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        // A fresh name (O_EXCL, never through a link), the mode of the mail beside it.
        let how = How::CreateNew(crate::beneath::file_mode_for(path));
        let mut f = open_nofollow(&tmp, how).map_err(|e| Error::io(tmp.display(), e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io(tmp.display(), e))?;
        if fsync != FsyncMode::Never {
            f.sync_all().map_err(|e| Error::io(tmp.display(), e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display(), e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    if fsync != FsyncMode::Never {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads a whole file without following a link in its last component (uid lists,
/// keywords, subscriptions: files an attacker could replace with a link to anything).
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut open_nofollow(path, How::Read)?, &mut v)?;
    Ok(v)
}

/// fsyncs a directory so renames in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(test)]
    SYNCED_DIRS.with(|s| s.borrow_mut().push(dir.to_path_buf()));
    let f = open_nofollow(dir, How::Read).map_err(|e| Error::io(dir.display(), e))?;
    f.sync_all().map_err(|e| Error::io(dir.display(), e))
}

/// Nanoseconds since the epoch, for change detection.
pub fn unix_nanos(t: std::io::Result<std::time::SystemTime>) -> i128 {
    match t {
        Ok(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        },
        Err(_) => 0,
    }
}
