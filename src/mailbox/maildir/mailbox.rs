//! [`Mailbox`] for one Maildir folder opened by one session: sync, fetch, flag changes by
//! renaming, expunge by unlinking, copy by hard link.
//!
//! This module must not know about IMAP.

use std::sync::Arc;

use super::filename;
use super::folder::{self, FileInfo, Folder, Sub};
use super::keywords::{self, Keywords};
use super::lock::FolderLock;
use super::save::{self, Pending};
use super::sync::{flags_of, FolderState};
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
        })
    }

    fn folder(&self) -> &Folder {
        &self.state.folder
    }

    /// Reads a message file with `read`, following a rename by another program (flag
    /// change, `new/` -> `cur/`) by its base name.
    fn read_file(
        &self,
        uid: Uid,
        read: fn(&std::path::Path) -> std::io::Result<MessageData>,
    ) -> Result<MessageData> {
        let Some((sub, name, base)) = self.state.with(|c| {
            c.files
                .get(&uid)
                .map(|f| (f.sub, f.name.clone(), f.parsed.base.clone()))
        }) else {
            return Err(expunged());
        };
        let path = self.folder().file_path(sub, &name);
        match read(&path) {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match self.folder().find_base(&base) {
                    Some((sub, name)) => {
                        let p = self.folder().file_path(sub, &name);
                        read(&p).map_err(|e| match e.kind() {
                            std::io::ErrorKind::NotFound => expunged(),
                            _ => Error::io(p.display(), e),
                        })
                    }
                    None => Err(expunged()),
                }
            }
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    /// Renames one message to carry `flags`. `Ok(None)` when its file is gone (or was
    /// renamed by someone else: the caller rescans and retries).
    fn rename_flags(
        &self,
        f: &FileInfo,
        kw: &Keywords,
        op: StoreOp,
        change: &Flags,
    ) -> Result<Option<(Flags, Option<FileInfo>)>> {
        let new_flags = flags_of(kw, f).apply(op, change);
        let mut letters: Vec<u8> = Vec::new();
        for k in &new_flags.keywords {
            // Every keyword got its letter (and was saved) before the first rename.
            match kw.find(k) {
                Some(l) => letters.push(l),
                None => {
                    return Err(Error::new(ErrorKind::Temporary, "Keyword has no letter")
                        .with_detail(format!(
                            "{}: keyword {k} not allocated",
                            self.folder().path.display()
                        )))
                }
            }
        }
        // Letters with no name in dovecot-keywords are kept: we cannot know their meaning.
        letters.extend(
            f.parsed
                .keyword_letters
                .iter()
                .filter(|l| kw.name_of(**l).is_none()),
        );
        let name = filename::cur_name(
            &f.parsed.base,
            &filename::flag_letters(new_flags.sys, &letters, &f.parsed.other_letters),
        );
        if f.sub == Sub::Cur && name == f.name {
            return Ok(Some((new_flags, None)));
        }
        let from = self.folder().file_path(f.sub, &f.name);
        let to = self.folder().file_path(Sub::Cur, &name);
        match std::fs::rename(&from, &to) {
            Ok(()) => {
                let mut entry = f.clone();
                entry.sub = Sub::Cur;
                if let Some(p) = filename::parse(&name) {
                    entry.parsed = p;
                }
                entry.name = name;
                Ok(Some((new_flags, Some(entry))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(from.display(), e)),
        }
    }

    /// Gives every new keyword of a STORE its letter and writes `dovecot-keywords`
    /// before any file is renamed: a crash in between then leaves a named letter that no
    /// file uses yet, never a letter in file names without a name. Letters that files
    /// carry without a name are not handed out (see [`keywords`](super::keywords)).
    /// The caller holds the folder lock.
    fn allocate_keywords(&self, op: StoreOp, flags: &Flags) -> Result<Arc<Keywords>> {
        let (kw, files) = self.state.with(|c| (c.keywords.clone(), c.files.clone()));
        if op == StoreOp::Remove {
            return Ok(kw);
        }
        let fresh: Vec<&String> = flags
            .keywords
            .iter()
            .filter(|k| kw.find(k).is_none())
            .collect();
        if fresh.is_empty() {
            return Ok(kw);
        }
        // Letters in the names we know plus any on disk now (renamed by other programs).
        let in_use = files
            .values()
            .fold(0, |m, f| m | keywords::mask(&f.parsed.keyword_letters))
            | self.folder().keyword_letters_in_use()?;
        let path = self.folder().path.clone();
        // Re-read: another process may have allocated letters since our last scan.
        let mut kw = Keywords::load(&path);
        for k in fresh {
            kw.allocate(k, in_use, &path)?;
        }
        kw.save(&path, self.ctx.fsync)?;
        self.state.set_keywords(kw);
        Ok(self.state.with(|c| c.keywords.clone()))
    }

    /// One pass of renames under the folder lock: the new flags of each message done, the
    /// UIDs whose file was not where we thought.
    fn store_pass(
        &self,
        uids: &[Uid],
        op: StoreOp,
        flags: &Flags,
        out: &mut Vec<(Uid, Flags)>,
    ) -> Result<Vec<Uid>> {
        let _lock = FolderLock::acquire(&self.folder().path, self.folder().shared.clone())?;
        let kw = self.allocate_keywords(op, flags)?;
        let files = self.state.with(|c| c.files.clone());
        let mut renamed = Vec::new();
        let mut retry = Vec::new();
        let mut result = Ok(());
        for &uid in uids {
            let Some(f) = files.get(&uid) else {
                continue;
            };
            match self.rename_flags(f, &kw, op, flags) {
                Ok(Some((fl, entry))) => {
                    out.push((uid, fl));
                    if let Some(e) = entry {
                        renamed.push((uid, e));
                    }
                }
                Ok(None) => retry.push(uid),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let any = !renamed.is_empty();
        self.state.renamed(renamed);
        if any {
            if self.ctx.fsync == FsyncMode::Always {
                super::fsio::sync_dir(&self.folder().path.join("cur"))?;
            }
            self.folder().shared.bump();
        }
        result.map(|_| retry)
    }
}

impl Mailbox for MaildirMailbox {
    fn name(&self) -> &str {
        &self.folder().name
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn sync(&mut self) -> Result<SyncResult> {
        let (snapshot, new_recent) = self.state.refresh(!self.read_only)?;
        Ok(SyncResult {
            snapshot,
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
        // Current names and keyword letters (cheap when nothing changed).
        self.state.refresh(false)?;
        let mut out = Vec::new();
        let retry = self.store_pass(uids, op, flags, &mut out)?;
        if !retry.is_empty() {
            // Renamed under us: rescan once (without the folder lock) and try again.
            self.state.rescan_now()?;
            let again = self.store_pass(&retry, op, flags, &mut out)?;
            drop(again); // Gone for good: expunged by someone else.
        }
        out.sort_by_key(|(u, _)| *u);
        Ok(out)
    }

    fn expunge(&mut self, only: Option<&[Uid]>) -> Result<Vec<Uid>> {
        if self.read_only {
            return Err(no_write());
        }
        self.state.refresh(false)?;
        let folder = self.folder().clone();
        let mut gone = Vec::new();
        // A set, not a slice scan per file: a POP3 QUIT may name tens of thousands.
        let only: Option<std::collections::HashSet<Uid>> =
            only.map(|o| o.iter().copied().collect());
        {
            let _lock = FolderLock::acquire(&folder.path, folder.shared.clone())?;
            let files = self.state.with(|c| c.files.clone());
            for (uid, f) in files.iter() {
                if !f.parsed.sys.contains(crate::mailbox::SysFlags::DELETED) {
                    continue;
                }
                if only.as_ref().is_some_and(|o| !o.contains(uid)) {
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
            }
        }
        if !gone.is_empty() {
            // Drops the unlinked files from the uid list and the snapshot.
            self.state.rescan_now()?;
        }
        Ok(gone)
    }

    fn copy_to(&mut self, uids: &[Uid], dest: &str) -> Result<CopyResult> {
        let dest = self.ctx.folder(dest)?;
        dest.check_selectable()?;
        let mut wanted: Vec<Uid> = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let (files, snapshot, kw) = self
            .state
            .with(|c| (c.files.clone(), c.snapshot.clone(), c.keywords.clone()));
        let mut pending = Vec::new();
        let mut sources = Vec::new();
        let mut failure = None;
        for uid in wanted {
            let Some(f) = files.get(&uid) else {
                continue;
            };
            let mut src = self.folder().file_path(f.sub, &f.name);
            if !src.exists() {
                match self.folder().find_base(&f.parsed.base) {
                    Some((sub, name)) => src = self.folder().file_path(sub, &name),
                    None => continue, // expunged meanwhile
                }
            }
            let meta = snapshot
                .messages
                .binary_search_by_key(&uid, |m| m.uid)
                .ok()
                .and_then(|i| snapshot.messages.get(i));
            let flags = flags_of(&kw, f);
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
