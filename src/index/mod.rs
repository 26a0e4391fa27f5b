//! Placeholder of the index engine's module root for the cache branch: only the names the
//! cache uses (`Error`, `Options`, `LockMethod`). The index helper's `mod.rs` replaces it.

use std::path::PathBuf;

pub mod cache;

/// Why an index file could not be used.
#[derive(Debug)]
pub enum Error {
    Corrupted {
        file: PathBuf,
        what: String,
        offset: u64,
    },
    Io {
        file: PathBuf,
        err: std::io::Error,
    },
    Locked {
        file: PathBuf,
    },
}

/// How index files are locked against other processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMethod {
    Fcntl,
    Flock,
    Dotlock,
}

/// Settings of the index engine, from `[storage]`.
#[derive(Clone, Debug)]
pub struct Options {
    pub fsync: crate::config::FsyncMode,
    pub lock_method: LockMethod,
    pub nfs: bool,
    pub log_compact_bytes: u64,
    pub cache_drop_days: u32,
}
