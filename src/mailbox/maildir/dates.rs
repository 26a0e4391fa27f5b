//! Internal dates that a scan left unknown. Listing a folder does not `stat` its files;
//! the few new files of a normal scan get their mtimes at once, but the first scan of a
//! big existing Maildir (100,000 files: the `stat` calls would cost more than the listing
//! and the index build together) records [`UNKNOWN_DATE`]. Right after that scan a task
//! on the blocking pool asks for every missing mtime and records them in one index
//! transaction ([`fill`]); a session that needs a date before then asks for that one
//! message ([`lookup`]).
//!
//! This module must not know about IMAP.

use std::sync::Arc;

use super::sync::FolderState;
use crate::mailbox::{Uid, UNKNOWN_DATE};

/// How long the background fill waits: the SELECT that found the dates unknown answers
/// first (on 2 cores the fill would compete with it for the CPU).
const FILL_DELAY: std::time::Duration = std::time::Duration::from_millis(300);

/// Starts [`fill`] in the background (on tokio's blocking pool when there is a runtime,
/// else right here).
pub fn start_fill(state: &Arc<FolderState>) {
    let state = state.clone();
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(move || {
                std::thread::sleep(FILL_DELAY);
                fill(&state)
            });
        }
        Err(_) => fill(&state),
    }
}

/// Asks the file system for the mtime of every message whose date the index does not
/// know and records them. A file renamed or expunged meanwhile keeps an unknown date; the
/// next scan that sees it starts another fill.
pub fn fill(state: &FolderState) {
    let started = std::time::Instant::now();
    // The shared state as it is now (two `Arc` clones, no copy of 100,000 entries); one
    // path buffer reused for every `stat`: a big transient allocation here would stay in
    // this blocking thread's allocator arena as resident memory.
    let (snapshot, files) = state.with(|c| (c.snapshot.clone(), c.files.clone()));
    let mut path = state.folder.path.clone();
    let mut dates: Vec<(Uid, i64)> = Vec::new();
    for m in (snapshot.messages.records().iter()).filter(|m| m.internal_date == UNKNOWN_DATE) {
        let Some(f) = files.get(m.uid) else { continue };
        let Some(f) = f.file(&m.key) else { continue };
        path.push(f.sub.dir());
        path.push(&*f.name);
        // Beneath the mail root through the listing's descriptor, never through a link.
        if let Ok(st) = state.folder.lstat(&path) {
            dates.push((m.uid, st.mtime));
        }
        path.pop();
        path.pop();
    }
    drop((snapshot, files));
    if dates.is_empty() {
        return;
    }
    match state.record_dates(&dates) {
        Ok(()) => tracing::debug!(
            folder = %state.folder.path.display(),
            dates = dates.len(),
            ms = started.elapsed().as_millis() as u64,
            "internal dates recorded in the index"
        ),
        Err(e) => tracing::warn!(
            folder = %state.folder.path.display(),
            error = %e,
            "cannot record internal dates in the index; they are looked up per message"
        ),
    }
}

/// The date of one message whose snapshot date is unknown.
pub fn lookup(state: &FolderState, uid: Uid) -> Option<i64> {
    let known = state.with(|c| {
        let r = c.snapshot.messages.records().by_uid(uid)?;
        Some(r.internal_date).filter(|d| *d != UNKNOWN_DATE)
    });
    if known.is_some() {
        return known;
    }
    let f = state.with(|c| c.file(uid))?;
    f.stat_mtime(&state.folder).or_else(|| {
        // Renamed since the listing (flags written by another program): find it by base.
        let (sub, name) = state.folder.find_base(f.base())?;
        let st = state
            .folder
            .lstat(&state.folder.file_path(sub, &name))
            .ok()?;
        Some(st.mtime)
    })
}
