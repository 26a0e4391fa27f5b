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

/// The size of every `uids[i]` (as the shared snapshot has it, or computed now and
/// recorded); `None` for a message that is gone (expunged, or its file vanished).
pub fn resolve(state: &FolderState, uids: &[Uid]) -> Vec<Option<u64>> {
    let mut out: Vec<Option<u64>> = vec![None; uids.len()];
    // (position in `uids`, uid, file) of every size to compute.
    let mut todo: Vec<(usize, Uid, FileInfo)> = Vec::new();
    state.with(|c| {
        for (i, &uid) in uids.iter().enumerate() {
            let Ok(j) = c.snapshot.messages.binary_search_by_key(&uid, |m| m.uid) else {
                continue;
            };
            match c.snapshot.messages[j].size {
                UNKNOWN_SIZE => {
                    if let Some(f) = c.files.get(uid) {
                        todo.push((i, uid, f.clone()));
                    }
                }
                size => out[i] = Some(size),
            }
        }
    });
    if todo.is_empty() {
        return out;
    }
    let started = std::time::Instant::now();
    let mut found: Vec<(Uid, u64)> = Vec::with_capacity(todo.len());
    for (i, uid, file) in todo {
        if let Some(size) = compute(state, &file) {
            out[i] = Some(size);
            found.push((uid, size));
        }
    }
    if found.is_empty() {
        return out;
    }
    match state.record_sizes(&found) {
        Ok(()) => tracing::debug!(
            folder = %state.folder.path.display(),
            sizes = found.len(),
            ms = started.elapsed().as_millis() as u64,
            "message sizes computed and recorded in the index"
        ),
        // The answers stand; the sizes are computed again next time.
        Err(e) => tracing::warn!(
            folder = %state.folder.path.display(),
            error = %e,
            "cannot record message sizes in the index"
        ),
    }
    out
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
