//! `loft index rebuild|verify|show USER [MAILBOX]`: the index files of a user's folders
//! seen by an administrator. Rebuild first writes pending flag changes into file names,
//! then rebuilds from the mail files keeping every UID; verify checks the files
//! (`Index::verify`) and that records and mail files match one to one; show prints the
//! header, counts, each cache field's decision and last use, and file sizes.
//!
//! This module must not know about IMAP.

use std::collections::HashSet;
use std::sync::Arc;

use super::flagsync;
use super::folder::Folder;
use super::sync::FolderState;
use super::Ctx;
use crate::index::{self, Index};
use crate::mailbox::{Result, Store};

/// The selectable folders named by `mailbox` (all of them when `None`).
fn folders(ctx: &Arc<Ctx>, mailbox: Option<&str>) -> Result<Vec<Folder>> {
    let names: Vec<String> = match mailbox {
        Some(m) => vec![m.to_string()],
        None => {
            let store = super::layout::MaildirStore::new(ctx.clone());
            let mut v: Vec<String> = store
                .list()?
                .into_iter()
                .filter(|e| !e.noselect)
                .map(|e| e.name)
                .collect();
            v.sort();
            v
        }
    };
    let mut out = Vec::new();
    for n in names {
        let f = ctx.folder(&n)?;
        f.check_selectable()?;
        out.push(f);
    }
    Ok(out)
}

/// Rebuilds the index of each folder; one line per folder.
pub fn rebuild(ctx: &Arc<Ctx>, mailbox: Option<&str>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in folders(ctx, mailbox)? {
        let name = f.name.clone();
        let state = FolderState::get(f, ctx.fsync);
        state.refresh(false)?;
        flagsync::flush(&state, ctx.fsync)?;
        state.rebuild_now()?;
        if state.take_dates_unknown() {
            // A big folder's dates are filled in after the scan; here, before the answer.
            super::dates::fill(&state);
        }
        let (s, _) = state.refresh(false)?;
        out.push(format!(
            "{name}: rebuilt, {} messages, UIDVALIDITY {}, UIDNEXT {}",
            s.messages.len(),
            s.uid_validity,
            s.uid_next
        ));
    }
    Ok(out)
}

/// Every inconsistency of each folder's index, prefixed with the mailbox name.
pub fn verify(ctx: &Arc<Ctx>, mailbox: Option<&str>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in folders(ctx, mailbox)? {
        if !f.path.join(index::INDEX_FILE).exists() {
            out.push(format!("{}: no index files yet", f.name));
            continue;
        }
        let problems = Index::verify(&f.path);
        if !problems.is_empty() {
            out.extend(problems.into_iter().map(|p| format!("{}: {p}", f.name)));
            continue;
        }
        let ix = match Index::open(&f.path, &ctx.storage.index_options(ctx.fsync)) {
            Ok(ix) => ix,
            Err(e) => {
                out.push(format!("{}: {e}", f.name));
                continue;
            }
        };
        let snap = match ix.refresh() {
            Ok(s) => s,
            Err(e) => {
                out.push(format!("{}: {e}", f.name));
                continue;
            }
        };
        let files = f.scan()?;
        let bases: HashSet<&str> = files.iter().map(|x| x.base()).collect();
        let keys: HashSet<&[u8]> = snap.records.iter().map(|r| &*r.key).collect();
        for r in &snap.records {
            if !std::str::from_utf8(&r.key).is_ok_and(|k| bases.contains(k)) {
                out.push(format!(
                    "{}: UID {} names {:?}, which no mail file has (expunged behind Loft's back; the next scan drops it)",
                    f.name,
                    r.uid,
                    String::from_utf8_lossy(&r.key)
                ));
            }
        }
        for x in &files {
            if !keys.contains(x.base().as_bytes()) {
                out.push(format!(
                    "{}: mail file {} has no UID yet (delivered behind Loft's back; the next scan gives it one)",
                    f.name, x.name
                ));
            }
        }
    }
    Ok(out)
}

/// The header, counts, cache decisions and sizes of one folder's index.
pub fn show(ctx: &Arc<Ctx>, mailbox: &str) -> Result<String> {
    let f = folders(ctx, Some(mailbox))?.pop().ok_or_else(|| {
        crate::mailbox::Error::new(crate::mailbox::ErrorKind::NonExistent, "no such mailbox")
    })?;
    let state = FolderState::get(f.clone(), ctx.fsync);
    state.refresh(false)?;
    let ix = state.with(|c| c.index.clone()).ok_or_else(|| {
        crate::mailbox::Error::new(crate::mailbox::ErrorKind::Temporary, "index not open")
    })?;
    crate::mailbox::admin::show_index(&f.name, &f.path, &f.path, &ix)
}
