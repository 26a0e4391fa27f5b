//! RFC822.SIZE of messages whose file name carries no `W=` (what Postfix, procmail,
//! maildrop and most delivery agents write). A scan never opens a message file: such a
//! message enters the index with [`UNKNOWN_SIZE`], and the first command that needs its
//! size (FETCH RFC822.SIZE, SEARCH LARGER/SMALLER, STATUS SIZE, POP3 STAT/LIST, COPY)
//! reads the file once ([`resolve`]); the sizes found are recorded in the index in one
//! transaction (a `SetSizes` log record), so they are computed once and survive a
//! restart.
//!
//! This module must not know about IMAP.

use super::folder::{self, FileInfo};
use super::sync::FolderState;
use crate::mailbox::{Uid, UNKNOWN_SIZE};

/// Computed sizes are kept in the folder state and recorded in the index once this many
/// are waiting (and at the next sync): a FETCH 1:* asks per chunk of 512 messages, and
/// every index transaction rebuilds the shared snapshot.
const RECORD_EVERY: usize = 16_384;

/// The size of every `uids[i]` (as the shared snapshot has it, or computed now and
/// recorded); `None` for a message that is gone (expunged, or its file vanished).
pub fn resolve(state: &FolderState, uids: &[Uid]) -> Vec<Option<u64>> {
    let mut out: Vec<Option<u64>> = vec![None; uids.len()];
    // (position in `uids`, uid, file) of every size to compute.
    let mut todo: Vec<(usize, Uid, FileInfo)> = Vec::new();
    {
        let pending = lock(&state.sizes_pending);
        state.with(|c| {
            for (i, &uid) in uids.iter().enumerate() {
                let Some(r) = c.snapshot.messages.records().by_uid(uid) else {
                    continue;
                };
                match (r.size, pending.get(&uid)) {
                    (UNKNOWN_SIZE, Some(&size)) => out[i] = Some(size),
                    (UNKNOWN_SIZE, None) => {
                        if let Some(f) = c.files.file(uid, &r.key) {
                            todo.push((i, uid, f));
                        }
                    }
                    (size, _) => out[i] = Some(size),
                }
            }
        });
    }
    if todo.is_empty() {
        return out;
    }
    let mut found = 0;
    let mut computed: Vec<(Uid, u64)> = Vec::with_capacity(todo.len());
    for (i, uid, file) in todo {
        if let Some(size) = compute(state, &file) {
            out[i] = Some(size);
            computed.push((uid, size));
            found += 1;
        }
    }
    let due = {
        let mut pending = lock(&state.sizes_pending);
        pending.extend(computed);
        pending.len() >= RECORD_EVERY
    };
    if due && found > 0 {
        record(state);
    }
    out
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records the sizes computed so far in the index, in one transaction (called when many
/// are waiting, and at every sync).
pub fn record(state: &FolderState) {
    let sizes: Vec<(Uid, u64)> = {
        let mut pending = lock(&state.sizes_pending);
        if pending.is_empty() {
            return;
        }
        let mut v: Vec<(Uid, u64)> = pending.drain().collect();
        pending.shrink_to(RECORD_EVERY);
        v.sort_unstable();
        v
    };
    let started = std::time::Instant::now();
    match state.record_sizes(&sizes) {
        Ok(()) => tracing::debug!(
            folder = %state.folder.path.display(),
            sizes = sizes.len(),
            ms = started.elapsed().as_millis() as u64,
            "message sizes recorded in the index"
        ),
        // The sizes are computed again when next asked.
        Err(e) => tracing::warn!(
            folder = %state.folder.path.display(),
            error = %e,
            "cannot record message sizes in the index"
        ),
    }
}

/// Reads one message file for its CRLF size, following a rename by another program by
/// its base name. `None`: the file is gone (or unreadable: logged).
fn compute(state: &FolderState, file: &FileInfo) -> Option<u64> {
    let f = &state.folder;
    let path = f.file_path(file.sub, &file.name);
    match folder::file_crlf_size(f.fs(), &path) {
        Ok(size) => return Some(size),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            // A link in the message's place is not followed (logged once).
            let err = f.root.io_err(&path, e, "message file");
            tracing::warn!(file = %path.display(), error = %err, "cannot read message to compute its size");
            return None;
        }
    }
    let (sub, name) = f.find_base(file.base())?;
    folder::file_crlf_size(f.fs(), &f.file_path(sub, &name)).ok()
}
