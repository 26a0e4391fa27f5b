//! How storage keeps its files safe: the fsync policy and the lock method (`[storage]
//! fsync`, `lock_method`). Plain value types in a leaf, so that `config` (which parses
//! them), `index` and `mailbox` (which obey them) can all name them without `config`
//! and `index` naming each other.

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
