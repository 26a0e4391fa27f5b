//! Safe rewriting of the small text files auth keeps (passwd-file, app passwords): an
//! exclusive `flock` on a companion `.lock` file, then temp file + fsync + rename +
//! directory fsync, so a reader sees the old or the new file, never half of one.
//! Knows files, not their formats.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// What was being done to a file when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileAction {
    Read,
    Create,
    Write,
    OpenLockFile,
    Lock,
}

impl std::fmt::Display for FileAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileAction::Read => "read",
            FileAction::Create => "create",
            FileAction::Write => "write",
            FileAction::OpenLockFile => "open lock file",
            FileAction::Lock => "lock",
        })
    }
}

/// A file of auth's that could not be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: FileAction,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {what}", .path.display())]
    Malformed { path: PathBuf, what: &'static str },
}

impl FileError {
    /// The failure to do `action` to `path`, for `map_err`.
    pub fn io(action: FileAction, path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
        move |source| FileError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// `Read` of `path`, for `map_err`.
    pub fn read(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
        FileError::io(FileAction::Read, path)
    }
}

/// Held while a file is being edited; unlocks when dropped (the kernel drops the flock
/// with the descriptor).
pub struct EditLock {
    _file: File,
}

/// `PATH` + `suffix` in the same directory.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Takes the edit lock of `path` (`PATH.lock`, created mode 0600), waiting for another
/// editor to finish.
pub fn lock(path: &Path) -> Result<EditLock, FileError> {
    let lp = sibling(path, ".lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lp)
        .map_err(FileError::io(FileAction::OpenLockFile, &lp))?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(FileError::io(FileAction::Lock, &lp)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(EditLock { _file: f })
}

/// Replaces `path` with `contents` atomically. The new file keeps the old one's mode
/// (0600 when there was none) except for the bits of "other": these files hold password
/// hashes, which must not stay world-readable (a passwd-file checked out of git is 0644).
/// Call with the edit lock held.
pub fn replace(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7770)
        .unwrap_or(0o600);
    let tmp = sibling(path, &format!(".tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        FileError::io(FileAction::Write, path)(source)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_mode_and_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users");
        std::fs::write(&p, "old\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let _l = lock(&p).unwrap();
        replace(&p, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // No temp file left behind.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    }

    #[test]
    fn new_files_are_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fresh");
        replace(&p, b"x").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// A world-readable passwd-file (as git checks it out) loses the bits of "other" at
    /// the first edit; owner and group bits stay.
    #[test]
    fn replace_keeps_the_mode_but_not_world_access() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users");
        std::fs::write(&p, "# none\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
        replace(&p, b"alice:{PLAIN}x\n").unwrap();
        let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, 0o660);
        assert_eq!(std::fs::read(&p).unwrap(), b"alice:{PLAIN}x\n");
    }
}
