//! The storage context: what every store, folder and mailbox of this process shares,
//! created once (by [`crate::mailbox::Storage::new`], at server start) and passed
//! explicitly — held by every store ([`super::Ctx`]), folder ([`super::folder::Folder`])
//! and through them every mailbox. There is no process-wide variable behind it: two
//! contexts (two servers in one test process) share nothing but the files.
//!
//! It holds the `[storage]` settings, the index options (with the index engine's own
//! shared state: one instance per folder, the write-lock gate), and the in-process state
//! of open folders: one [`FolderState`] and one [`FolderShared`] per folder directory
//! (weak references: dropped with their last user), and the day each folder's cache was
//! last compacted.
//!
//! This module must not know about IMAP.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::mailbox::registry::Registry;

use super::lock::FolderShared;
use super::sync::FolderState;
use crate::config::{FsyncMode, StorageConfig};

pub struct StorageCtx {
    pub cfg: StorageConfig,
    /// `[storage]` index options (lock method, NFS, cache drop days) with the index
    /// engine's shared state; the fsync mode is set per call ([`StorageCtx::index_options`]).
    index: crate::index::Options,
    /// One synchronised view per folder, shared by every session ([`FolderState::get`]).
    pub(super) folders: Registry<FolderState>,
    /// One in-process lock and change counter per folder ([`super::lock`]).
    pub(super) locks: Registry<FolderShared>,
    /// The day each folder's cache was last compacted ([`super::cachecare`]).
    compacted: Mutex<HashMap<PathBuf, u32>>,
    /// The inotify instance that tells a sync nothing changed ([`super::quiet`]).
    pub(super) changes: Arc<super::quiet::Changes>,
}

impl StorageCtx {
    pub fn new(cfg: &StorageConfig) -> Arc<StorageCtx> {
        Arc::new(StorageCtx {
            cfg: cfg.clone(),
            index: crate::mailbox::index_options(cfg),
            folders: Registry::default(),
            locks: Registry::default(),
            compacted: Mutex::new(HashMap::new()),
            changes: super::quiet::Changes::new(),
        })
    }

    /// The index options of a folder (every index of this context shares their state).
    pub fn index_options(&self, fsync: FsyncMode) -> crate::index::Options {
        crate::index::Options {
            fsync,
            ..self.index.clone()
        }
    }

    /// A UIDVALIDITY never handed out before by this context (the time, or above the
    /// last one: see [`crate::index::Shared::fresh_uid_validity`]); the indexes it opens
    /// take theirs from the same counter.
    pub fn fresh_uid_validity(&self) -> u32 {
        self.index.shared.fresh_uid_validity()
    }

    /// `[storage] nfs`: directory stamps come from the server's clock.
    pub fn nfs(&self) -> bool {
        self.index.nfs
    }

    /// The in-process lock and change counter of the folder at `path`.
    pub fn folder_shared(&self, path: &Path) -> Arc<FolderShared> {
        self.locks.get_or_make(path, FolderShared::default)
    }

    /// Records that the cache of the folder at `path` is compacted `day`; `false` when
    /// it was already that day.
    pub fn first_compaction_of(&self, path: &Path, day: u32) -> bool {
        let mut m = self.compacted.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 100_000 {
            m.clear();
        }
        m.insert(path.to_path_buf(), day) != Some(day)
    }
}
