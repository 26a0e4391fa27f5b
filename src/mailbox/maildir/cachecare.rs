//! Upkeep of a folder's index cache (`loft.index.cache`) around the sessions that use it
//! through `Mailbox::cache_lookup` / `cache_offer`: values offered are written at every
//! sync and at close; the cache is bound to the folder's UIDVALIDITY (a new UIDVALIDITY
//! empties it); it is compacted when it says so (`needs_compaction`) and otherwise once a
//! day, at the last close, dropping values of expunged messages and fields no client
//! asked for in `[storage] cache_drop_days`.
//!
//! This module must not know about IMAP or about which fields are cached.

use std::collections::HashSet;
use std::sync::Arc;

use super::sync::FolderState;
use crate::index::Index;
use crate::mailbox::Snapshot;

fn today() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs() / 86_400) as u32)
        .unwrap_or(0)
}

fn index(state: &FolderState) -> Option<Arc<Index>> {
    state.with(|c| c.index.clone())
}

fn warn(state: &FolderState, what: &str, e: &crate::index::Error) {
    tracing::warn!(folder = %state.folder.path.display(), error = %e, "index cache: {what}");
}

/// Binds the cache to the snapshot's UIDVALIDITY, writes offered values, compacts when
/// the cache asks for it.
pub fn at_sync(state: &FolderState, snapshot: &Snapshot) {
    let Some(ix) = index(state) else { return };
    let cache = ix.cache();
    if snapshot.uid_validity != 0 && cache.uid_validity() != snapshot.uid_validity {
        if let Err(e) = cache.bind_uid_validity(snapshot.uid_validity) {
            warn(state, "cannot bind to the UIDVALIDITY", &e);
        }
    }
    if let Err(e) = cache.flush() {
        warn(state, "write failed", &e);
    }
    if cache.needs_compaction() {
        compact(state, &ix, snapshot);
    }
}

/// Writes offered values; the last session of the day compacts.
pub fn at_close(state: &Arc<FolderState>) {
    let Some(ix) = index(state) else { return };
    if let Err(e) = ix.cache().flush() {
        warn(state, "write failed", &e);
    }
    let due = Arc::strong_count(state) == 1
        && (state.folder.storage).first_compaction_of(&state.folder.path, today());
    if due || ix.cache().needs_compaction() {
        let snapshot = state.with(|c| c.snapshot.clone());
        compact(state, &ix, &snapshot);
    }
}

fn compact(state: &FolderState, ix: &Index, snapshot: &Snapshot) {
    let live: HashSet<u32> = snapshot.messages.iter().map(|m| m.uid).collect();
    if let Err(e) = ix.cache().compact(&|u| live.contains(&u), today()) {
        warn(state, "compaction failed", &e);
    }
}
