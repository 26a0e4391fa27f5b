//! Flag changes: durable in the index at once, in Maildir file names later.
//!
//! STORE commits the new flags to the index (one log append, fsynced per `[storage]
//! fsync`) and marks the records dirty; it renames no file, so a STORE on 100,000
//! messages costs one transaction. [`flush`] renames the files of dirty records to carry
//! their flags (what other Maildir readers such as mutt or Dovecot see) and clears the
//! dirty bits. It runs when the last session of this process closes the folder, when a
//! session touches the folder and the oldest pending change is older than
//! [`FLUSH_AFTER`], and right after every STORE with `[storage] maildir_flag_sync =
//! "immediate"`. A scan never takes the old flags in a dirty record's file name for an
//! external change (see `uidstore`).
//!
//! Keyword letters are allocated (and `dovecot-keywords` written) at STORE time, so the
//! 26-letter limit of Maildir is enforced when the client asks, not at the flush.
//!
//! This module must not know about IMAP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::filename;
use super::folder::Sub;
use super::fsio;
use super::keywords::Keywords;
use super::lock::FolderLock;
use super::sync::FolderState;
use super::uidstore;
use crate::config::FsyncMode;
use crate::mailbox::{Error, ErrorKind, Flags, Result, StoreOp, SysFlags, Uid};

/// Pending file renames are done at the latest this long after the first flag change.
pub const FLUSH_AFTER: Duration = Duration::from_secs(5);

/// When file names follow flag changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlagSync {
    /// At the last close of the folder or after [`FLUSH_AFTER`] (default).
    #[default]
    Lazy,
    /// Before STORE answers.
    Immediate,
}

fn lock_dirty(state: &FolderState) -> std::sync::MutexGuard<'_, Option<Instant>> {
    state.dirty_since.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gives every new keyword its letter and writes `dovecot-keywords` (see
/// [`keywords`](super::keywords)); the caller holds the folder lock.
fn allocate_keywords(
    state: &FolderState,
    op: StoreOp,
    flags: &Flags,
    fsync: FsyncMode,
) -> Result<()> {
    let (kw, files) = state.with(|c| (c.keywords.clone(), c.files.clone()));
    if op == StoreOp::Remove {
        return Ok(());
    }
    let fresh: Vec<&String> = flags
        .keywords
        .iter()
        .filter(|k| kw.find(k).is_none())
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let folder = &state.folder;
    // Letters in the names we know plus any on disk now (renamed by other programs).
    let in_use =
        files.values().fold(0, |m, f| m | f.keyword_bits()) | folder.keyword_letters_in_use()?;
    // Re-read: another process may have allocated letters since our last scan.
    let mut kw = Keywords::load(&folder.path);
    for k in fresh {
        kw.allocate(k, in_use, &folder.path)?;
    }
    kw.save(&folder.path, fsync)?;
    state.set_keywords(kw);
    Ok(())
}

/// STORE: new flags into the index (dirty), file names later. Returns the new flags of
/// every message of `uids` that exists.
pub fn store(
    state: &Arc<FolderState>,
    fsync: FsyncMode,
    mode: FlagSync,
    uids: &[Uid],
    op: StoreOp,
    change: &Flags,
) -> Result<Vec<(Uid, Flags)>> {
    state.refresh(false)?;
    let mut out = Vec::new();
    {
        let folder = &state.folder;
        let _lock = FolderLock::acquire(&folder.path, folder.shared.clone())?;
        allocate_keywords(state, op, change, fsync)?;
        let ix = state
            .with(|c| c.index.clone())
            .ok_or_else(|| Error::new(ErrorKind::Temporary, "Mailbox index not open, try again"))?;
        let snap = ix.refresh().map_err(|e| {
            uidstore::report(&e);
            uidstore::map_err(e)
        })?;
        let mut changes = Vec::new();
        for &uid in uids {
            let Some(r) = snap.get(uid) else { continue };
            let now = Flags {
                sys: SysFlags(r.flags),
                keywords: uidstore::names_of(&snap, r.keywords),
            };
            let new = now.apply(op, change);
            if new != now {
                changes.push((uid, new.sys.0, new.keywords.clone()));
            }
            out.push((uid, new));
        }
        // Our reference would make the commit copy the whole snapshot to apply one
        // transaction (100,000 records for a one-message STORE).
        drop(snap);
        if !changes.is_empty() {
            uidstore::store_flags(&ix, &changes, true)?;
            mark_dirty(state);
        }
    }
    // Other sessions catch up from the index (no directory listing).
    state.refresh(false)?;
    if mode == FlagSync::Immediate {
        flush(state, fsync)?;
    }
    out.sort_by_key(|(u, _)| *u);
    Ok(out)
}

/// Notes pending file renames (a STORE, or dirty records found in the index by a scan,
/// e.g. left by a process that ended) and arms a timer that flushes them after
/// [`FLUSH_AFTER`] even when no session touches the folder again. The timer holds only
/// a weak reference: a folder nobody uses any more was flushed at its last close.
pub fn mark_dirty(state: &Arc<FolderState>) {
    {
        let mut since = lock_dirty(state);
        if since.is_some() {
            return;
        }
        *since = Some(Instant::now());
    }
    let weak = Arc::downgrade(state);
    let spawned = std::thread::Builder::new()
        .name("loft-flag-flush".into())
        .spawn(move || {
            std::thread::sleep(FLUSH_AFTER);
            if let Some(state) = weak.upgrade() {
                let fsync = state.fsync;
                maybe_flush(&state, fsync);
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no flag flush timer; flags are written at the next command or close");
    }
}

/// Flushes when the oldest pending change is older than [`FLUSH_AFTER`].
pub fn maybe_flush(state: &FolderState, fsync: FsyncMode) {
    let due = lock_dirty(state).is_some_and(|t| t.elapsed() >= FLUSH_AFTER);
    if due {
        if let Err(e) = flush(state, fsync) {
            tracing::warn!(folder = %state.folder.path.display(), error = %e, "cannot write flag changes to Maildir file names yet");
        }
    }
}

/// Renames the files of dirty records to carry their flags, then clears the dirty bits.
pub fn flush(state: &FolderState, fsync: FsyncMode) -> Result<()> {
    let folder = &state.folder;
    let _lock = FolderLock::acquire(&folder.path, folder.shared.clone())?;
    let Some(ix) = state.with(|c| c.index.clone()) else {
        return Ok(());
    };
    let snap = ix.refresh().map_err(|e| {
        uidstore::report(&e);
        uidstore::map_err(e)
    })?;
    let files = state.with(|c| c.files.clone());
    let kw = letters_for_dirty(state, &snap, &files, fsync)?;
    let mut renamed = Vec::new();
    let mut done = Vec::new();
    for r in snap.records.iter().filter(|r| r.dirty) {
        let Some(f) = files.file(r.uid, &r.key) else {
            continue;
        };
        let mut letters = Vec::new();
        let mut named = true;
        for n in uidstore::names_of(&snap, r.keywords) {
            match kw.find(&n) {
                Some(l) => letters.push(l),
                None => named = false,
            }
        }
        if !named {
            tracing::warn!(file = %folder.file_path(f.sub, &f.name).display(), "a keyword has no letter in dovecot-keywords; file name not updated");
            continue;
        }
        // Letters with no name in dovecot-keywords are kept: we cannot know their meaning.
        letters.extend(
            f.parsed
                .keyword_letters()
                .into_iter()
                .filter(|l| kw.name_of(*l).is_none()),
        );
        let name = filename::cur_name(
            f.base(),
            &filename::flag_letters(
                SysFlags(r.flags),
                &letters,
                &filename::other_letters(&f.name),
            ),
        );
        if f.sub == Sub::Cur && *name == *f.name {
            done.push(r.uid);
            continue;
        }
        let mut from = folder.file_path(f.sub, &f.name);
        if folder.fs().lstat(&from).is_err() {
            match folder.find_base(f.base()) {
                Some((sub, n)) => from = folder.file_path(sub, &n),
                None => continue, // expunged by another program: the next scan drops it
            }
        }
        let to = folder.file_path(Sub::Cur, &name);
        match folder.fs().rename(&from, &to) {
            Ok(()) => {
                let mut entry = f.clone();
                entry.sub = Sub::Cur;
                if let Some(p) = filename::parse(&name) {
                    entry.parsed = p;
                }
                entry.name = name.into();
                renamed.push((r.uid, entry));
                done.push(r.uid);
            }
            Err(e) => {
                tracing::warn!(file = %from.display(), error = %e, "cannot rename message file to carry its flags");
            }
        }
    }
    if fsync == FsyncMode::Always && !renamed.is_empty() {
        fsio::sync_dir(&folder.path.join("cur"))?;
    }
    state.renamed(renamed);
    if !done.is_empty() {
        uidstore::clear_dirty(&ix, &done)?;
    }
    let left = ix
        .refresh()
        .map(|s| s.records.iter().any(|r| r.dirty))
        .unwrap_or(true);
    let mut since = lock_dirty(state);
    if !left {
        *since = None;
    }
    Ok(())
}

/// `dovecot-keywords`, with a letter for every keyword of a dirty record (one whose
/// letter was lost with the file since the STORE gets a new one, written before any
/// file carries it).
fn letters_for_dirty(
    state: &FolderState,
    snap: &crate::index::IndexSnapshot,
    files: &super::filemap::FileMap,
    fsync: FsyncMode,
) -> Result<Keywords> {
    let folder = &state.folder;
    let mut kw = Keywords::load(&folder.path);
    let mut missing: Vec<String> = Vec::new();
    for r in snap.records.iter().filter(|r| r.dirty && r.keywords != 0) {
        for n in uidstore::names_of(snap, r.keywords) {
            if kw.find(&n).is_none() && !missing.iter().any(|m| m.eq_ignore_ascii_case(&n)) {
                missing.push(n);
            }
        }
    }
    if missing.is_empty() {
        return Ok(kw);
    }
    let in_use =
        files.values().fold(0, |m, f| m | f.keyword_bits()) | folder.keyword_letters_in_use()?;
    for n in &missing {
        if let Err(e) = kw.allocate(n, in_use, &folder.path) {
            tracing::warn!(folder = %folder.path.display(), keyword = %n, error = %e, "keyword cannot get a Maildir letter; it stays in the index only");
        }
    }
    kw.save(&folder.path, fsync)?;
    state.set_keywords(kw.clone());
    Ok(kw)
}

/// Called when a session closes the folder: the last one flushes.
pub fn on_close(state: &Arc<FolderState>, fsync: FsyncMode) {
    // The registry holds a weak reference; a count of 1 is this session.
    if Arc::strong_count(state) == 1 && lock_dirty(state).is_some() {
        if let Err(e) = flush(state, fsync) {
            tracing::warn!(folder = %state.folder.path.display(), error = %e, "cannot write flag changes to Maildir file names at close; they stay in the index and are written later");
        }
    }
}
