//! The user lock: who may use one user's mail store as a whole.
//!
//! Every store a session opens (IMAP after LOGIN, POP3 after PASS) holds a shared
//! `flock(2)` on the file `loft-user.lock` in the store's own directory (the Maildir root;
//! `.loft-index/` of an mbox store) until the session ends. `loft convert` takes it
//! exclusively without waiting: it refuses while any session of the user is open, and while
//! it runs, a login finds the lock taken and is refused with a temporary failure (IMAP
//! `NO [UNAVAILABLE]`, POP3 `-ERR [IN-USE]`) instead of changing mail the conversion has
//! already copied. The lock goes with the process (kill -9 included): nothing to clean up.
//!
//! The file is opened beneath the store's root (never through a link) and left in place;
//! its content is empty and means nothing.

use std::fs::File;
use std::path::Path;

use crate::beneath::{self, Beneath, How};

/// The lock file's name in the store's own directory.
pub const FILE: &str = "loft-user.lock";

/// How the lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A session (shared: any number at once).
    Session,
    /// The whole store for one program (`loft convert`).
    Exclusive,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Held by another in a conflicting mode.
    #[error("the user's mail is in use: {}", match .0 { Mode::Session => "being converted", Mode::Exclusive => "sessions are open or a conversion runs" })]
    Busy(Mode),
    #[error("{path}: {err}")]
    Io {
        path: std::path::PathBuf,
        err: std::io::Error,
    },
}

/// A held user lock; released when dropped.
#[derive(Debug)]
pub struct UserLock {
    _file: File,
}

/// Takes the user lock of the store whose own directory is `dir` (beneath `fs`'s root).
pub fn take(fs: &Beneath, dir: &Path, mode: Mode) -> Result<UserLock, LockError> {
    let path = dir.join(FILE);
    let io = |err| LockError::Io {
        path: path.clone(),
        err,
    };
    let file = fs.open_file(&path, How::OpenOrCreate(0o600)).map_err(io)?;
    match beneath::try_flock(&file, mode == Mode::Exclusive).map_err(io)? {
        true => Ok(UserLock { _file: file }),
        false => Err(LockError::Busy(mode)),
    }
}

impl From<LockError> for super::Error {
    fn from(e: LockError) -> super::Error {
        match &e {
            LockError::Busy(Mode::Session) => super::Error::new(
                super::ErrorKind::InUse,
                "Mail is being converted, try again in a few minutes",
            )
            .with_detail(e.to_string()),
            LockError::Busy(Mode::Exclusive) => {
                super::Error::new(super::ErrorKind::InUse, "Mail is in use by open sessions")
                    .with_detail(e.to_string())
            }
            LockError::Io { .. } => super::Error::new(
                super::ErrorKind::Temporary,
                "Mail is temporarily unavailable",
            )
            .with_detail(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_share_and_exclude_the_exclusive_holder() {
        let d = tempfile::tempdir().unwrap();
        let fs = Beneath::open(d.path()).unwrap();
        let root = fs.root().to_path_buf();
        let a = take(&fs, &root, Mode::Session).unwrap();
        let _b = take(&fs, &root, Mode::Session).unwrap();
        assert!(matches!(
            take(&fs, &root, Mode::Exclusive),
            Err(LockError::Busy(Mode::Exclusive))
        ));
        drop(a);
        drop(_b);
        let x = take(&fs, &root, Mode::Exclusive).unwrap();
        assert!(matches!(
            take(&fs, &root, Mode::Session),
            Err(LockError::Busy(Mode::Session))
        ));
        drop(x);
        take(&fs, &root, Mode::Session).unwrap();
    }

    #[test]
    fn a_link_in_the_lock_files_place_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join(FILE)).unwrap();
        let fs = Beneath::open(d.path()).unwrap();
        let root = fs.root().to_path_buf();
        assert!(matches!(
            take(&fs, &root, Mode::Session),
            Err(LockError::Io { .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
