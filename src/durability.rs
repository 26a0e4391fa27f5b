//! How storage keeps its files safe: the fsync policy and the lock methods (`[storage]
//! fsync`, `lock_method`, `mbox_read_locks`, `mbox_write_locks`). Plain value types in
//! a leaf, so that `config` (which parses them), `index` and `mailbox` (which obey them)
//! can all name them without `config` and `index` naming each other.

/// When written data is forced to the disk (`[storage] fsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncMode {
    /// Every commit and every new message file.
    Always,
    /// New mail, directory changes and structural index changes; flag changes are
    /// left to the kernel (docs/maildir.md, "fsync").
    Optimized,
    /// Never: the kernel writes back when it likes.
    Never,
}

/// How processes lock a folder's index (`[storage] lock_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMethod {
    Fcntl,
    Flock,
    Dotlock,
}

/// A way of locking an mbox file (`[storage] mbox_read_locks`, `mbox_write_locks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MboxLock {
    /// The file `<mbox>.lock` beside it, made exclusively.
    Dotlock,
    /// A POSIX record lock over the whole file.
    Fcntl,
    /// `flock(2)`.
    Flock,
}

impl MboxLock {
    /// Every method, in the order their names are listed in messages.
    pub const ALL: [MboxLock; 3] = [MboxLock::Dotlock, MboxLock::Fcntl, MboxLock::Flock];

    /// The name used in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            MboxLock::Dotlock => "dotlock",
            MboxLock::Fcntl => "fcntl",
            MboxLock::Flock => "flock",
        }
    }
}
