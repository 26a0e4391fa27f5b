//! [`Mailbox`] for one Maildir folder opened by one session: sync, fetch, flag changes by
//! renaming, expunge by unlinking, copy by hard link.
//!
//! This module must not know about IMAP.

use std::sync::Arc;

use super::cachecare;
use super::flagsync;
use super::folder::{self, Folder};
use super::lock::FolderLock;
use super::save::{self, Pending};
use super::sync::FolderState;
use super::Ctx;
use crate::config::FsyncMode;
use crate::mailbox::{
    CopyResult, Error, ErrorKind, Flags, Mailbox, MessageData, Result, StoreOp, SyncResult, Uid,
};

pub struct MaildirMailbox {
    ctx: Arc<Ctx>,
    /// Shared with every other session of this process on the folder.
    state: Arc<FolderState>,
    read_only: bool,
    /// Read-only opens: the highest UID already reported as \Recent, so that each sync
    /// reports only messages that arrived since (not every unclaimed one again).
    recent_reported: Uid,
}

fn no_write() -> Error {
    Error::new(ErrorKind::NoPerm, "Mailbox is read-only")
}

fn expunged() -> Error {
    Error::new(ErrorKind::Expunged, "Message was expunged")
}

impl MaildirMailbox {
    pub fn open(ctx: Arc<Ctx>, folder: Folder, read_only: bool) -> Result<MaildirMailbox> {
        folder.check_selectable()?;
        let state = FolderState::get(folder, ctx.fsync);
        Ok(MaildirMailbox {
            ctx,
            state,
            read_only,
            recent_reported: 0,
        })
    }

    fn folder(&self) -> &Folder {
        &self.state.folder
    }

    /// The folder's index and the newest UID (UIDNEXT − 1 of the snapshot): what the
    /// cache's decisions are relative to.
    fn cache_target(&self) -> Option<(Arc<crate::index::Index>, Uid)> {
        self.state.with(|c| {
            c.index
                .clone()
                .map(|ix| (ix, c.snapshot.uid_next.saturating_sub(1)))
        })
    }

    /// RFC822.SIZE of `uid` as the index knows it.
    fn known_size(&self, uid: Uid) -> Option<u64> {
        self.state.with(|c| {
            let r = c.snapshot.messages.records().by_uid(uid)?;
            Some(r.size).filter(|s| *s != crate::mailbox::UNKNOWN_SIZE)
        })
    }

    /// Reads a message file with `read`, following a rename by another program (flag
    /// change, `new/` -> `cur/`) by its base name.
    fn read_file<T>(
        &self,
        uid: Uid,
        read: impl Fn(&std::path::Path) -> std::io::Result<T>,
    ) -> Result<T> {
        let Some((sub, name, base)) = self.state.with(|c| {
            c.file(uid)
                .map(|f| (f.sub, f.name.clone(), f.base().to_string()))
        }) else {
            return Err(expunged());
        };
        let path = self.folder().file_path(sub, &name);
        match read(&path) {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.find_moved(uid, &base, &read)
            }
            // A link put in the message's place is not followed (logged once).
            Err(e) => Err(self.folder().root.io_err(&path, e, "message file")),
        }
    }

    /// The file of `uid` was not where the map said: renamed (flags, `new/` -> `cur/`) or
    /// expunged. Looked up by base name; when that fails too, once more under the folder
    /// lock: Loft's own renames (a flag flush renaming thousands of files) run under it
    /// and are in the file map before it is released, so neither the map nor a listing
    /// made then can be caught halfway through them. Only then is it expunged.
    fn find_moved<T>(
        &self,
        uid: Uid,
        base: &str,
        read: &impl Fn(&std::path::Path) -> std::io::Result<T>,
    ) -> Result<T> {
        if let Some(d) = self.read_by_base(base, read)? {
            return Ok(d);
        }
        let folder = self.folder();
        let _lock = FolderLock::acquire(&folder.path, folder.shared.clone())?;
        let now = self
            .state
            .with(|c| c.file(uid).map(|f| (f.sub, f.name.clone())));
        if let Some((sub, name)) = now {
            let p = folder.file_path(sub, &name);
            match read(&p) {
                Ok(d) => return Ok(d),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(folder.root.io_err(&p, e, "message file")),
            }
        }
        self.read_by_base(base, read)?.ok_or_else(expunged)
    }

    /// Reads the file whose base name is `base`, wherever it is now; `None` if none is.
    fn read_by_base<T>(
        &self,
        base: &str,
        read: &impl Fn(&std::path::Path) -> std::io::Result<T>,
    ) -> Result<Option<T>> {
        let Some((sub, name)) = self.folder().find_base(base) else {
            return Ok(None);
        };
        let p = self.folder().file_path(sub, &name);
        match read(&p) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.folder().root.io_err(&p, e, "message file")),
        }
    }
}

impl Drop for MaildirMailbox {
    fn drop(&mut self) {
        super::sizes::record(&self.state);
        flagsync::on_close(&self.state, self.ctx.fsync);
        cachecare::at_close(&self.state);
    }
}

impl Mailbox for MaildirMailbox {
    fn name(&self) -> &str {
        &self.folder().name
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn change_signal(&self) -> Option<std::fs::File> {
        let p = &self.folder().path;
        super::watch::change_signal(&[p.clone(), p.join("cur"), p.join("new")])
    }

    fn sync(&mut self) -> Result<SyncResult> {
        flagsync::maybe_flush(&self.state, self.ctx.fsync);
        super::sizes::record(&self.state);
        let (snapshot, mut new_recent) = self.state.refresh(!self.read_only)?;
        if self.read_only {
            // EXAMINE claims nothing but reports what is still \Recent for whichever
            // session claims it next (RFC 3501 §6.3.2, §7.3.2).
            let threshold = self.state.with(|c| c.recent_threshold);
            let after = threshold.max(self.recent_reported);
            let from = snapshot.messages.count_uids(|u| u <= after);
            new_recent = snapshot.messages.uids().skip(from).collect();
            if let Some(last) = new_recent.last() {
                self.recent_reported = *last;
            }
        }
        if self.state.take_dirty_found() {
            flagsync::mark_dirty(&self.state);
        }
        if self.state.take_dates_unknown() {
            super::dates::start_fill(&self.state);
        }
        cachecare::at_sync(&self.state, &snapshot);
        Ok(SyncResult {
            snapshot,
            new_recent,
        })
    }

    fn fetch_message(&self, uid: Uid) -> Result<MessageData> {
        let size = self.known_size(uid);
        self.read_file(uid, |p| folder::read_message(self.folder(), p, size))
    }

    fn fetch_for_search(&self, uid: Uid) -> Result<MessageData> {
        let size = self.known_size(uid);
        self.read_file(uid, |p| folder::read_stored(self.folder(), p, size))
    }

    fn fetch_header(&self, uid: Uid) -> Result<MessageData> {
        self.read_file(uid, |p| folder::read_header(self.folder(), p))
    }

    /// Only when the file holds the served bytes: its length is the RFC822.SIZE the index
    /// knows (so it has no bare LF to convert, and was not changed in size since).
    fn fetch_range(&self, uid: Uid, range: std::ops::Range<u64>) -> Result<Option<MessageData>> {
        let known = self.state.with(|c| {
            let r = c.snapshot.messages.records().by_uid(uid)?;
            c.files.get(uid)?;
            // `S=` (file size) differing from `W=` (RFC822.SIZE) in the base (the record's
            // key): LF line ends; no need to open the file to know the answer.
            let base = std::str::from_utf8(&r.key).ok()?;
            let p = super::filename::parse(base)?;
            let converted = matches!((p.fsize(base), p.vsize(base)), (Some(s), Some(w)) if s != w);
            Some((r.size, converted))
        });
        match known {
            Some((size, false)) if size != crate::mailbox::UNKNOWN_SIZE => {
                match self.read_file(uid, |p| {
                    folder::read_range(self.folder(), p, size, range.clone())
                }) {
                    Ok(d) => Ok(d),
                    // The caller's full read reports it (or finds the message after all).
                    Err(e) if e.kind == ErrorKind::Expunged => Ok(None),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(None),
        }
    }

    fn cache_lookup(&self, uids: &[Uid], field: &str, f: &mut dyn FnMut(usize, Option<&[u8]>)) {
        match self.cache_target() {
            Some((ix, newest)) => ix.cache().get_many_with(uids, field, newest, f),
            None => (0..uids.len()).for_each(|i| f(i, None)),
        }
    }

    fn internal_date(&self, uid: Uid) -> Option<i64> {
        super::dates::lookup(&self.state, uid)
    }

    fn sizes(&self, uids: &[Uid]) -> Vec<Option<u64>> {
        super::sizes::resolve(&self.state, uids)
    }

    fn cache_offer(&self, uid: Uid, field: &str, value: &[u8]) {
        if let Some((ix, newest)) = self.cache_target() {
            ix.cache().offer(uid, field, value, newest);
        }
    }

    fn store(&mut self, uids: &[Uid], op: StoreOp, flags: &Flags) -> Result<Vec<(Uid, Flags)>> {
        if self.read_only {
            return Err(no_write());
        }
        flagsync::store(
            &self.state,
            self.ctx.fsync,
            self.ctx.flag_sync,
            uids,
            op,
            flags,
        )
    }

    fn expunge(&mut self, only: Option<&[Uid]>) -> Result<Vec<Uid>> {
        if self.read_only {
            return Err(no_write());
        }
        self.state.refresh(false)?;
        let folder = self.folder().clone();
        let mut gone = Vec::new();
        let mut recorded = false;
        // A set, not a slice scan per file: a POP3 QUIT may name tens of thousands.
        let only: Option<std::collections::HashSet<Uid>> =
            only.map(|o| o.iter().copied().collect());
        {
            let _lock = FolderLock::acquire(&folder.path, folder.shared.clone())?;
            // \Deleted as the index has it (a file name may not show it yet).
            let (files, snapshot) = self.state.with(|c| (c.files.clone(), c.snapshot.clone()));
            for m in snapshot.messages.records() {
                if m.flags & crate::mailbox::SysFlags::DELETED.0 == 0 {
                    continue;
                }
                if only.as_ref().is_some_and(|o| !o.contains(&m.uid)) {
                    continue;
                }
                let Some(f) = files.file(m.uid, &m.key) else {
                    continue;
                };
                let mut p = folder.file_path(f.sub, &f.name);
                if folder.fs().lstat(&p).is_err() {
                    if let Some((sub, n)) = folder.find_base(f.base()) {
                        p = folder.file_path(sub, &n);
                    }
                }
                match folder.fs().unlink(&p) {
                    Ok(()) => gone.push(m.uid),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(p.display(), e)),
                }
            }
            if !gone.is_empty() {
                if self.ctx.fsync == FsyncMode::Always {
                    super::fsio::sync_dir(&folder.path.join("cur"))?;
                }
                folder.shared.bump();
                // Under the lock: the records go with the files (snapshot order: ascending).
                recorded = self.state.expunged(&gone)?;
            }
        }
        if !gone.is_empty() && !recorded {
            // Drops the unlinked files from the uid list and the snapshot.
            self.state.rescan_now()?;
        } else if !gone.is_empty() {
            // Other sessions and this one catch up from the index.
            self.state.refresh(false)?;
        }
        Ok(gone)
    }

    fn copy_to(&mut self, uids: &[Uid], dest: &str) -> Result<CopyResult> {
        let dest = self.ctx.folder(dest)?;
        dest.check_selectable()?;
        let mut wanted: Vec<Uid> = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let (files, snapshot) = self.state.with(|c| (c.files.clone(), c.snapshot.clone()));
        let mut pending = Vec::new();
        let mut sources = Vec::new();
        let mut failure = None;
        for uid in wanted {
            let record = snapshot.messages.records().by_uid(uid);
            let Some(f) = record.and_then(|r| files.file(uid, &r.key)) else {
                continue;
            };
            let mut src = self.folder().file_path(f.sub, &f.name);
            if !self.folder().fs().lstat(&src).is_ok_and(|st| st.is_file()) {
                match self.folder().find_base(f.base()) {
                    Some((sub, name)) => src = self.folder().file_path(sub, &name),
                    None => continue, // expunged meanwhile
                }
            }
            let meta = (snapshot.messages.find(uid).ok()).and_then(|i| snapshot.messages.get(i));
            // Flags as the index has them (the file name may not show them yet).
            let flags = meta.as_ref().map(|m| m.flags.clone()).unwrap_or_default();
            let mtime = (meta.as_ref())
                .map(|m| m.internal_date)
                .filter(|d| *d != crate::index::UNKNOWN_DATE)
                .or_else(|| f.stat_mtime(self.folder()))
                .unwrap_or(0);
            match link_or_copy(&src, &dest, self.ctx.fsync, mtime) {
                Ok((tmp, unique, fsize)) => {
                    let vsize = match (f.vsize(), meta) {
                        (Some(v), _) => v,
                        (None, Some(m)) if m.size != crate::mailbox::UNKNOWN_SIZE => m.size,
                        _ => folder::file_crlf_size(dest.fs(), &tmp)
                            .map_err(|e| Error::io(tmp.display(), e))?,
                    };
                    pending.push(Pending {
                        tmp,
                        unique,
                        fsize,
                        vsize,
                        flags,
                    });
                    sources.push(uid);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for p in pending {
                let _ = dest.fs().unlink(&p.tmp);
            }
            return Err(e);
        }
        let (uidv, dest_uids) = save::publish(&dest, pending, self.ctx.fsync)?;
        sources.truncate(dest_uids.len());
        Ok(CopyResult {
            dest_uid_validity: uidv,
            source_uids: sources,
            dest_uids,
        })
    }
}

/// Hard-links `src` into the destination's `tmp/`; copies the bytes when linking is not
/// possible (another file system). Returns the temp path, its unique name and file size.
/// Both ends are resolved beneath the mail root: a link at `src` is neither linked
/// nor read.
fn link_or_copy(
    src: &std::path::Path,
    dest: &Folder,
    fsync: FsyncMode,
    mtime: i64,
) -> Result<(std::path::PathBuf, String, u64)> {
    use crate::beneath::How;
    let fs = dest.fs();
    let unique = save::unique_name();
    let tmp = dest.path.join("tmp").join(&unique);
    match fs.lstat(src) {
        Ok(st) if st.is_file() => {}
        Ok(_) => {
            let e = std::io::Error::from_raw_os_error(libc::ELOOP);
            return Err(dest.root.io_err(src, e, "message file"));
        }
        Err(e) => return Err(Error::io(src.display(), e)),
    }
    if fs.link(src, &tmp).is_err() {
        let mut from = fs
            .open_file(src, How::Read)
            .map_err(|e| dest.root.io_err(src, e, "message file"))?;
        let mode = fs.file_mode_in(&dest.path).unwrap_or(0o600);
        let mut f = fs
            .open_file(&tmp, How::CreateNew(mode))
            .map_err(|e| Error::io(tmp.display(), e))?;
        let copied = std::io::copy(&mut from, &mut f);
        if let Err(e) = copied {
            let _ = fs.unlink(&tmp);
            return Err(Error::io(tmp.display(), e));
        }
        let _ = save::set_mtime(&f, mtime);
        if fsync != FsyncMode::Never {
            f.sync_all().map_err(|e| Error::io(tmp.display(), e))?;
        }
    }
    let fsize = fs
        .lstat(&tmp)
        .map_err(|e| Error::io(tmp.display(), e))?
        .size;
    Ok((tmp, unique, fsize))
}
