//! [`Mailbox`] for one Maildir folder opened by one session: sync, fetch, flag changes by
//! renaming, expunge by unlinking, copy by hard link.
//!
//! This module must not know about IMAP.

use std::sync::Arc;

use super::filename;
use super::folder::{self, Folder, Sub};
use super::keywords;
use super::lock::FolderLock;
use super::save::{self, Pending};
use super::sync::View;
use super::Ctx;
use crate::config::FsyncMode;
use crate::mailbox::{
    CopyResult, Error, ErrorKind, Flags, Mailbox, MessageData, Result, StoreOp, SyncResult, Uid,
};

pub struct MaildirMailbox {
    ctx: Arc<Ctx>,
    view: View,
    read_only: bool,
}

fn no_write() -> Error {
    Error::new(ErrorKind::NoPerm, "Mailbox is read-only")
}

impl MaildirMailbox {
    pub fn open(ctx: Arc<Ctx>, folder: Folder, read_only: bool) -> Result<MaildirMailbox> {
        folder.check_selectable()?;
        let view = View::new(folder, ctx.fsync);
        Ok(MaildirMailbox {
            ctx,
            view,
            read_only,
        })
    }

    /// Reads a message file with `read`, following a rename by another program (flag
    /// change, `new/` -> `cur/`) by its base name.
    fn read_file(
        &self,
        uid: Uid,
        read: fn(&std::path::Path) -> std::io::Result<MessageData>,
    ) -> Result<MessageData> {
        let Some(f) = self.view.files.get(&uid) else {
            return Err(Error::new(ErrorKind::Expunged, "Message was expunged"));
        };
        let path = self.view.folder.file_path(f.sub, &f.name);
        match read(&path) {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match self.view.folder.find_base(&f.parsed.base) {
                    Some((sub, name)) => {
                        let p = self.view.folder.file_path(sub, &name);
                        read(&p).map_err(|e| match e.kind() {
                            std::io::ErrorKind::NotFound => {
                                Error::new(ErrorKind::Expunged, "Message was expunged")
                            }
                            _ => Error::io(p.display(), e),
                        })
                    }
                    None => Err(Error::new(ErrorKind::Expunged, "Message was expunged")),
                }
            }
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    /// Renames one message to carry `flags`. `Ok(false)` when its file is gone.
    fn rename_flags(&mut self, uid: Uid, op: StoreOp, change: &Flags) -> Result<Option<Flags>> {
        let Some(f) = self.view.files.get(&uid).cloned() else {
            return Ok(None);
        };
        let new_flags = self.view.flags_of(&f).apply(op, change);
        let mut letters: Vec<u8> = Vec::new();
        for k in &new_flags.keywords {
            // Every keyword got its letter (and was saved) before the first rename.
            match self.view.keywords.find(k) {
                Some(l) => letters.push(l),
                None => {
                    return Err(Error::new(ErrorKind::Temporary, "Keyword has no letter")
                        .with_detail(format!(
                            "{}: keyword {k} not allocated",
                            self.view.folder.path.display()
                        )))
                }
            }
        }
        // Letters with no name in dovecot-keywords are kept: we cannot know their meaning.
        letters.extend(
            f.parsed
                .keyword_letters
                .iter()
                .filter(|l| self.view.keywords.name_of(**l).is_none()),
        );
        let name = filename::cur_name(
            &f.parsed.base,
            &filename::flag_letters(new_flags.sys, &letters, &f.parsed.other_letters),
        );
        if f.sub == Sub::Cur && name == f.name {
            return Ok(Some(new_flags));
        }
        let from = self.view.folder.file_path(f.sub, &f.name);
        let to = self.view.folder.file_path(Sub::Cur, &name);
        match std::fs::rename(&from, &to) {
            Ok(()) => {
                if let Some(entry) = self.view.files.get_mut(&uid) {
                    entry.sub = Sub::Cur;
                    entry.name = name;
                    if let Some(p) = filename::parse(&entry.name) {
                        entry.parsed = p;
                    }
                }
                Ok(Some(new_flags))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(from.display(), e)),
        }
    }
}

impl MaildirMailbox {
    /// Gives every new keyword of a STORE its letter and writes `dovecot-keywords`
    /// before any file is renamed: a crash in between then leaves a named letter that no
    /// file uses yet, never a letter in file names without a name. Letters that files
    /// carry without a name are not handed out (see [`keywords`](super::keywords)).
    fn allocate_keywords(&mut self, op: StoreOp, flags: &Flags) -> Result<()> {
        if op == StoreOp::Remove {
            return Ok(());
        }
        let fresh: Vec<&String> = flags
            .keywords
            .iter()
            .filter(|k| self.view.keywords.find(k).is_none())
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        // The caller just rescanned under the lock: `files` holds every file name.
        let in_use = self
            .view
            .files
            .values()
            .fold(0, |m, f| m | keywords::mask(&f.parsed.keyword_letters));
        let path = self.view.folder.path.clone();
        let mut kw = self.view.keywords.clone();
        for k in fresh {
            kw.allocate(k, in_use, &path)?;
        }
        kw.save(&path, self.ctx.fsync)?;
        self.view.keywords = kw;
        Ok(())
    }
}

impl Mailbox for MaildirMailbox {
    fn name(&self) -> &str {
        &self.view.folder.name
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn sync(&mut self) -> Result<SyncResult> {
        let new_recent = self.view.refresh(!self.read_only)?;
        Ok(SyncResult {
            snapshot: self.view.snapshot.clone(),
            new_recent,
        })
    }

    fn fetch_message(&self, uid: Uid) -> Result<MessageData> {
        self.read_file(uid, folder::read_message)
    }

    fn fetch_header(&self, uid: Uid) -> Result<MessageData> {
        self.read_file(uid, folder::read_header)
    }

    fn store(&mut self, uids: &[Uid], op: StoreOp, flags: &Flags) -> Result<Vec<(Uid, Flags)>> {
        if self.read_only {
            return Err(no_write());
        }
        let folder = self.view.folder.clone();
        let _lock = FolderLock::acquire(&folder.path, folder.shared.clone())?;
        // Current names and keyword letters (someone may have renamed files meanwhile).
        self.view.refresh_locked(false)?;
        self.allocate_keywords(op, flags)?;
        let mut out = Vec::new();
        let mut retry = Vec::new();
        let mut result = Ok(());
        for &uid in uids {
            match self.rename_flags(uid, op, flags) {
                Ok(Some(f)) => out.push((uid, f)),
                Ok(None) => retry.push(uid),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() && !retry.is_empty() {
            // Renamed under us: rescan once and try again.
            self.view.refresh_locked(false)?;
            for uid in retry {
                match self.rename_flags(uid, op, flags) {
                    Ok(Some(f)) => out.push((uid, f)),
                    Ok(None) => {}
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        if self.ctx.fsync == FsyncMode::Always && !out.is_empty() {
            super::fsio::sync_dir(&folder.path.join("cur"))?;
        }
        folder.shared.bump();
        result?;
        out.sort_by_key(|(u, _)| *u);
        Ok(out)
    }

    fn expunge(&mut self, only: Option<&[Uid]>) -> Result<Vec<Uid>> {
        if self.read_only {
            return Err(no_write());
        }
        let folder = self.view.folder.clone();
        let _lock = FolderLock::acquire(&folder.path, folder.shared.clone())?;
        self.view.refresh_locked(false)?;
        let mut gone = Vec::new();
        for (uid, f) in &self.view.files {
            if !f.parsed.sys.contains(crate::mailbox::SysFlags::DELETED) {
                continue;
            }
            if only.is_some_and(|o| !o.contains(uid)) {
                continue;
            }
            let p = folder.file_path(f.sub, &f.name);
            match std::fs::remove_file(&p) {
                Ok(()) => gone.push(*uid),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p.display(), e)),
            }
        }
        if !gone.is_empty() {
            if self.ctx.fsync == FsyncMode::Always {
                super::fsio::sync_dir(&folder.path.join("cur"))?;
            }
            folder.shared.bump();
            // Drops the unlinked files from the uid list and the snapshot.
            self.view.refresh_locked(false)?;
        }
        Ok(gone)
    }

    fn copy_to(&mut self, uids: &[Uid], dest: &str) -> Result<CopyResult> {
        let dest = self.ctx.folder(dest)?;
        dest.check_selectable()?;
        let mut wanted: Vec<Uid> = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut pending = Vec::new();
        let mut sources = Vec::new();
        let mut failure = None;
        for uid in wanted {
            let Some(f) = self.view.files.get(&uid) else {
                continue;
            };
            let mut src = self.view.folder.file_path(f.sub, &f.name);
            if !src.exists() {
                match self.view.folder.find_base(&f.parsed.base) {
                    Some((sub, name)) => src = self.view.folder.file_path(sub, &name),
                    None => continue, // expunged meanwhile
                }
            }
            let meta = self.view.snapshot.messages.iter().find(|m| m.uid == uid);
            let flags = self.view.flags_of(f);
            match link_or_copy(&src, &dest, self.ctx.fsync, f.mtime) {
                Ok((tmp, unique, fsize)) => {
                    let vsize = match (f.parsed.vsize, meta) {
                        (Some(v), _) => v,
                        (None, Some(m)) if m.size > 0 => m.size,
                        _ => {
                            folder::file_crlf_size(&tmp).map_err(|e| Error::io(tmp.display(), e))?
                        }
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
                let _ = std::fs::remove_file(&p.tmp);
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
fn link_or_copy(
    src: &std::path::Path,
    dest: &Folder,
    fsync: FsyncMode,
    mtime: i64,
) -> Result<(std::path::PathBuf, String, u64)> {
    let unique = save::unique_name();
    let tmp = dest.path.join("tmp").join(&unique);
    if std::fs::hard_link(src, &tmp).is_err() {
        std::fs::copy(src, &tmp).map_err(|e| Error::io(src.display(), e))?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(|e| Error::io(tmp.display(), e))?;
        let _ = save::set_mtime(&f, mtime);
        if fsync != FsyncMode::Never {
            f.sync_all().map_err(|e| Error::io(tmp.display(), e))?;
        }
    }
    let fsize = std::fs::metadata(&tmp)
        .map_err(|e| Error::io(tmp.display(), e))?
        .len();
    Ok((tmp, unique, fsize))
}
