//! [`Store`] over a Maildir++ tree: listing, creating, deleting and renaming folders,
//! subscriptions, STATUS and special-use mailboxes.
//!
//! `ensure_special_use` creates Drafts, Sent, Trash, Junk and Archive when missing and
//! records their attributes in `loft-special-use` ([`super::rootfiles`]) unless the
//! attribute is already given to another mailbox.
//!
//! This module must not know about message files.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod import;

use super::mailbox::MaildirMailbox;
use super::names;
use super::rootfiles;
use super::save::MaildirAppend;
use super::sync::FolderState;
use super::uidstore;
use super::Ctx;
use crate::mailbox::{
    normalize_name, AppendSink, Error, ErrorKind, Mailbox, MailboxEntry, Result, SpecialUse,
    StatusInfo, Store, SysFlags,
};

/// Prefix of a folder being built (not a folder name: those start with `.`).
const CREATING: &str = "loft-creating.";

/// Prefix of a deleted folder on its way out.
const DELETING: &str = "loft-deleting.";

/// A `loft-creating.*`/`loft-deleting.*` directory untouched this long was left by a
/// crash (a CREATE or DELETE takes well under a second) and is removed.
const LEFTOVER_SECS: i64 = 3600;

/// What [`MaildirStore::create_one`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Made {
    /// The folder was selectable already.
    No,
    /// A new folder directory (removed again when a later step fails).
    New,
    /// An existing directory got its missing `cur/ new/ tmp/`.
    Completed,
}

pub struct MaildirStore {
    pub ctx: Arc<Ctx>,
    /// Serialises rewrites of the store-wide files (subscriptions, special-use).
    files_lock: std::sync::Mutex<()>,
    /// Mailboxes the last [`Store::list`] found (`usize::MAX` before the first).
    listed: std::sync::atomic::AtomicUsize,
    /// The user lock a session or a conversion holds ([`crate::mailbox::userlock`]).
    _user_lock: Option<crate::mailbox::userlock::UserLock>,
}

impl MaildirStore {
    pub fn new(ctx: Arc<Ctx>) -> MaildirStore {
        MaildirStore {
            ctx,
            files_lock: std::sync::Mutex::new(()),
            listed: std::sync::atomic::AtomicUsize::new(usize::MAX),
            _user_lock: None,
        }
    }

    /// The store, holding `lock` until dropped.
    pub fn holding(mut self, lock: crate::mailbox::userlock::UserLock) -> MaildirStore {
        self._user_lock = Some(lock);
        self
    }

    /// Selectable folders (client name → directory name), from the root listing. A
    /// folder that is a symbolic link is skipped (logged once): it could show another
    /// user's mail.
    fn folders(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let fs = &self.ctx.fs.fs;
        let entries = fs
            .list(&self.ctx.root)
            .map_err(|e| Error::io(self.ctx.root.display(), e))?;
        for (os, kind) in entries {
            let Some(dir) = os.to_str() else { continue };
            if dir.starts_with(CREATING) || dir.starts_with(DELETING) {
                self.remove_leftover(dir);
                continue;
            }
            if !dir.starts_with('.') || dir == "." || dir == ".." {
                continue;
            }
            let path = self.ctx.root.join(dir);
            let kind = match kind {
                libc::DT_UNKNOWN => match fs.lstat(&path) {
                    Ok(st) if st.is_dir() => libc::DT_DIR,
                    Ok(st) if st.is_symlink() => libc::DT_LNK,
                    _ => continue,
                },
                k => k,
            };
            if kind == libc::DT_LNK {
                self.ctx.fs.warn_link(&path, "mail folder");
                continue;
            }
            if kind != libc::DT_DIR {
                continue;
            }
            let Some(name) = names::from_dir(dir) else {
                tracing::warn!(root = %self.ctx.root.display(), dir, "ignoring folder with an invalid name");
                continue;
            };
            if name == "INBOX" {
                continue;
            }
            out.insert(name, dir.to_string());
        }
        Ok(out)
    }

    fn set_special(&self, name: &str, su: SpecialUse) -> Result<()> {
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = rootfiles::read_special(&self.ctx.root);
        list.retain(|(s, n)| *s != su && n != name);
        list.push((su, name.to_string()));
        rootfiles::write_special(&self.ctx.root, &list, self.ctx.fsync)
    }

    /// Creates folder `name` unless it is selectable already.
    /// All or nothing: a new folder is built complete (`cur/ new/ tmp/`, marker, index)
    /// under a temporary name that is not a folder name, then renamed into place, so a
    /// full disk leaves no half-made folder behind.
    fn create_one(&self, name: &str) -> Result<Made> {
        if normalize_name(name) == "INBOX" {
            return Ok(Made::No); // the root, made when the store was opened
        }
        let folder = self.ctx.folder(name)?;
        let fs = &self.ctx.fs.fs;
        match fs.lstat(&folder.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Ok(st) if st.is_dir() => return self.complete_existing(&folder),
            Ok(_) => {
                self.ctx.fs.warn_link(&folder.path, "mail folder");
                return Err(Error::new(
                    ErrorKind::NoPerm,
                    "Mailbox name is taken by something that is not a mailbox",
                ));
            }
            Err(e) => return Err(self.ctx.fs.io_err(&folder.path, e, "mail folder")),
        }
        // Recorded before anything is created: a disk too full for this small file
        // leaves no half-made folder behind.
        let uid_validity = {
            let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
            rootfiles::next_uid_validity(
                &self.ctx.root,
                self.ctx.fsync,
                self.ctx.storage.fresh_uid_validity(),
            )?
        };
        let temp = self
            .ctx
            .root
            .join(format!("{CREATING}{}", super::save::unique_name()));
        let built = self.build_folder(&temp, uid_validity);
        let placed = built.and_then(|()| {
            fs.rename(&temp, &folder.path)
                .map_err(|e| Error::io(folder.path.display(), e))
        });
        match placed {
            Ok(()) => {
                folder.shared.bump();
                Ok(Made::New)
            }
            Err(e) => {
                if let Err(re) = fs.remove_tree(&temp) {
                    tracing::warn!(dir = %temp.display(), error = %re, "cannot remove unfinished mailbox directory");
                }
                // Made by someone else meanwhile: not ours to report as a failure.
                if fs
                    .lstat(&folder.path.join("cur"))
                    .is_ok_and(|st| st.is_dir())
                {
                    return Ok(Made::No);
                }
                Err(e)
            }
        }
    }

    /// The directories and marker of a new folder, in directory `dir` (not yet a folder
    /// name).
    fn make_folder_dirs(&self, dir: &std::path::Path) -> Result<()> {
        let fs = &self.ctx.fs.fs;
        super::mkdir(&self.ctx.fs, dir)?;
        for d in ["cur", "new", "tmp"] {
            super::mkdir(&self.ctx.fs, &dir.join(d))?;
        }
        let marker = dir.join("maildirfolder");
        let mode = fs.file_mode_in(dir).unwrap_or(0o600);
        fs.open_file(&marker, crate::beneath::How::CreateNew(mode))
            .map_err(|e| Error::io(marker.display(), e))?;
        Ok(())
    }

    /// Everything a new folder holds, in directory `dir` (not yet a folder name).
    fn build_folder(&self, dir: &std::path::Path, uid_validity: u32) -> Result<()> {
        self.make_folder_dirs(dir)?;
        // The index files, with a UIDVALIDITY above every one this store handed out
        // (nothing to import in a new folder). Written whole; the folder is renamed into
        // place afterwards, replacing nothing (a session that still has a deleted folder of
        // the same name open sees the new UIDVALIDITY at its next sync).
        let header = crate::index::Header {
            uid_validity,
            uid_next: 1,
            recent_uid: 1,
            ..Default::default()
        };
        crate::index::Index::rebuild(
            dir,
            &self.ctx.storage.index_options(self.ctx.fsync),
            header,
            Vec::new(),
            Vec::new(),
        )
        .map_err(uidstore::map_err)?;
        if self.ctx.fsync != crate::config::FsyncMode::Never {
            super::fsio::sync_dir(dir)?;
        }
        Ok(())
    }

    /// A folder directory without `cur/` (a parent made by another program): gets the
    /// missing subdirectories, and loses again those made here when one fails.
    fn complete_existing(&self, folder: &super::folder::Folder) -> Result<Made> {
        let fs = &self.ctx.fs.fs;
        if fs
            .lstat(&folder.path.join("cur"))
            .is_ok_and(|st| st.is_dir())
        {
            return Ok(Made::No);
        }
        let mut made: Vec<std::path::PathBuf> = Vec::new();
        for d in ["cur", "new", "tmp"] {
            let p = folder.path.join(d);
            if fs.lstat(&p).is_ok() {
                continue;
            }
            if let Err(e) = super::mkdir(&self.ctx.fs, &p) {
                for m in made.iter().rev() {
                    let _ = fs.rmdir(m);
                }
                return Err(e);
            }
            made.push(p);
        }
        folder.shared.bump();
        Ok(Made::Completed)
    }

    /// Removes a half-built or half-deleted folder directory a crash left in the root
    /// (never followed if it is a link; only when untouched for an hour).
    fn remove_leftover(&self, dir: &str) {
        let fs = &self.ctx.fs.fs;
        let path = self.ctx.root.join(dir);
        let Ok(st) = fs.lstat(&path) else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if !st.is_dir() || now.saturating_sub(st.mtime) < LEFTOVER_SECS {
            return;
        }
        match fs.remove_tree(&path) {
            Ok(()) => {
                tracing::info!(dir = %path.display(), "removed a folder directory left by a crash")
            }
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "cannot remove a folder directory left by a crash")
            }
        }
    }

    /// Removes folders this command created (newest first) after a later step failed.
    fn undo_created(&self, created: &[String]) {
        for name in created.iter().rev() {
            let Ok(folder) = self.ctx.folder(name) else {
                continue;
            };
            if let Err(e) = self.ctx.fs.fs.remove_tree(&folder.path) {
                tracing::warn!(dir = %folder.path.display(), error = %e, "cannot remove a mailbox made by a failed command");
            }
            folder.shared.bump();
        }
    }

    fn exists_or_has_children(&self, name: &str) -> Result<bool> {
        let prefix = format!("{name}/");
        Ok(self
            .folders()?
            .keys()
            .any(|n| n == name || n.starts_with(&prefix)))
    }

    /// RFC 3501 §6.3.5: renaming INBOX moves its messages into a new folder and leaves
    /// INBOX empty. All or nothing: when a move fails, the moved files go back and the
    /// folders made for the target are removed.
    fn rename_inbox(&self, to: &str) -> Result<()> {
        if self.exists_or_has_children(to)? {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        let created = self.create_parents_and(to)?;
        let inbox = self.ctx.folder("INBOX")?;
        let target = self.ctx.folder(to)?;
        let fs = &self.ctx.fs.fs;
        let _l1 = super::lock::FolderLock::acquire(&inbox.path, inbox.shared.clone())?;
        let mut moved: Vec<(std::path::PathBuf, std::path::PathBuf)> = Vec::new();
        let mut failure = None;
        'subs: for sub in ["new", "cur"] {
            let dir = inbox.path.join(sub);
            let Ok(entries) = fs.list(&dir) else {
                continue;
            };
            for (n, kind) in entries {
                if n.to_string_lossy().starts_with('.') || kind == libc::DT_DIR {
                    continue;
                }
                let from = dir.join(&n);
                if !fs.lstat(&from).is_ok_and(|st| st.is_file()) {
                    continue;
                }
                let to_path = target.path.join(sub).join(&n);
                if let Err(e) = fs.rename(&from, &to_path) {
                    failure = Some(Error::io(to_path.display(), e));
                    break 'subs;
                }
                moved.push((from, to_path));
            }
        }
        if let Some(e) = failure {
            for (from, to_path) in moved.iter().rev() {
                if let Err(re) = fs.rename(to_path, from) {
                    tracing::warn!(file = %to_path.display(), error = %re, "cannot move a message back to INBOX after a failed RENAME");
                }
            }
            drop(_l1);
            self.undo_created(&created);
            inbox.shared.bump();
            return Err(e);
        }
        inbox.shared.bump();
        target.shared.bump();
        Ok(())
    }

    /// Creates `name` and its missing parents; returns the folders made new here (for
    /// [`Self::undo_created`]). When one fails, those made before are removed again.
    fn create_parents_and(&self, name: &str) -> Result<Vec<String>> {
        let parts = names::components(name)?;
        let mut created = Vec::new();
        for i in 1..=parts.len() {
            let n = parts[..i].join("/");
            match self.create_one(&n) {
                Ok(Made::New) => created.push(n),
                Ok(_) => {}
                Err(e) => {
                    self.undo_created(&created);
                    return Err(e);
                }
            }
        }
        Ok(created)
    }
}

impl MaildirStore {
    /// Renames the directories of `plan` (source, target, old name, new name) and
    /// updates `loft-special-use`; when a step fails, puts back what was done and
    /// removes the folders of `created` (parents made for the target).
    fn apply_rename(&self, plan: &[RenameStep], created: &[String]) -> Result<()> {
        let fs = &self.ctx.fs.fs;
        let undo = |done: &[&RenameStep]| {
            for (src, dst, _, _) in done.iter().rev() {
                if let Err(e) = fs.rename(dst, src) {
                    tracing::warn!(dir = %dst.display(), error = %e, "cannot move a mailbox back after a failed RENAME");
                }
                self.ctx.storage.folder_shared(src).bump();
                self.ctx.storage.folder_shared(dst).bump();
            }
            self.undo_created(created);
        };
        let mut done = Vec::new();
        for item in plan {
            let (src, dst, _, _) = item;
            if let Err(e) = fs.rename(src, dst) {
                undo(&done);
                return Err(Error::io(src.display(), e));
            }
            self.ctx.storage.folder_shared(src).bump();
            done.push(item);
        }
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut special = rootfiles::read_special(&self.ctx.root);
        let mut changed = false;
        for (_, n) in special.iter_mut() {
            if let Some((_, _, _, new_name)) = plan.iter().find(|(_, _, old, _)| old == n) {
                *n = new_name.clone();
                changed = true;
            }
        }
        if changed {
            if let Err(e) = rootfiles::write_special(&self.ctx.root, &special, self.ctx.fsync) {
                undo(&done);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// One directory of a RENAME: source, target, old name, new name.
type RenameStep = (std::path::PathBuf, std::path::PathBuf, String, String);

impl Store for MaildirStore {
    fn import(
        &self,
        folder: &crate::mailbox::ImportFolder<'_>,
        next: crate::mailbox::NextMessage<'_>,
    ) -> Result<u64> {
        self.import_folder(folder, next)
    }

    fn list(&self) -> Result<Vec<MailboxEntry>> {
        let folders = self.folders()?;
        let mut all: BTreeMap<String, bool> = BTreeMap::new(); // name -> selectable
        all.insert("INBOX".into(), true);
        for (name, dir) in &folders {
            let cur = self.ctx.root.join(dir).join("cur");
            let selectable = self.ctx.fs.fs.lstat(&cur).is_ok_and(|st| st.is_dir());
            all.insert(name.clone(), selectable);
        }
        let names: Vec<String> = all.keys().cloned().collect();
        for n in names {
            let mut parent = n.as_str();
            while let Some((p, _)) = parent.rsplit_once('/') {
                all.entry(p.to_string()).or_insert(false);
                parent = p;
            }
        }
        let special = rootfiles::read_special(&self.ctx.root);
        let keys: BTreeSet<String> = all.keys().cloned().collect();
        self.listed
            .store(keys.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(all
            .into_iter()
            .map(|(name, selectable)| {
                let prefix = format!("{name}/");
                // The first name from the prefix on: a child sorts right after it.
                let first = keys
                    .range::<str, _>((
                        std::ops::Bound::Included(prefix.as_str()),
                        std::ops::Bound::Unbounded,
                    ))
                    .next();
                MailboxEntry {
                    has_children: first.is_some_and(|k| k.starts_with(&prefix)),
                    noselect: !selectable,
                    special_use: special.iter().find(|(_, n)| *n == name).map(|(s, _)| *s),
                    name,
                }
            })
            .collect())
    }

    fn create(&self, name: &str, special_use: Option<SpecialUse>) -> Result<()> {
        let name = normalize_name(name);
        if name == "INBOX" {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        // All or nothing: a failure (a full disk) removes the parents made here too.
        let exists = self.ctx.folder(&name).is_ok_and(|f| {
            self.ctx
                .fs
                .fs
                .lstat(&f.path.join("cur"))
                .is_ok_and(|st| st.is_dir())
        });
        if exists {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        let created = self.create_parents_and(&name)?;
        if let Some(su) = special_use {
            if let Err(e) = self.set_special(&name, su) {
                self.undo_created(&created);
                return Err(e);
            }
        }
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        let name = normalize_name(name);
        if name == "INBOX" {
            return Err(Error::new(ErrorKind::NoPerm, "INBOX cannot be deleted"));
        }
        let folder = self.ctx.folder(&name)?;
        let fs = &self.ctx.fs.fs;
        if !fs
            .lstat(&folder.path.join("cur"))
            .is_ok_and(|st| st.is_dir())
        {
            if self.exists_or_has_children(&name)? {
                // RFC 3501 §6.3.4: deleting a \Noselect name with inferiors is an error.
                return Err(Error::new(
                    ErrorKind::HasChildren,
                    "Mailbox has children and no messages",
                ));
            }
            // A link in the folder's place is not a mailbox (and is left alone).
            if !fs.lstat(&folder.path).is_ok_and(|st| st.is_dir()) {
                return Err(Error::new(ErrorKind::NonExistent, "Mailbox does not exist"));
            }
        }
        // All or nothing: the special-use list first (a full disk fails it before the
        // folder is touched), then the folder moves out of sight atomically; when that
        // fails the list is put back. Children are separate `.A.B` directories, so they
        // stay and `A` becomes an implicit \Noselect parent.
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old_special = rootfiles::read_special(&self.ctx.root);
        let mut special = old_special.clone();
        special.retain(|(_, n)| *n != name);
        let changed = special.len() != old_special.len();
        if changed {
            rootfiles::write_special(&self.ctx.root, &special, self.ctx.fsync)?;
        }
        let trash = self
            .ctx
            .root
            .join(format!("{DELETING}{}", super::save::unique_name()));
        if let Err(e) = fs.rename(&folder.path, &trash) {
            if changed {
                let _ = rootfiles::write_special(&self.ctx.root, &old_special, self.ctx.fsync);
            }
            return Err(Error::io(folder.path.display(), e));
        }
        if let Err(e) = fs.remove_tree(&trash) {
            tracing::warn!(dir = %trash.display(), error = %e, "cannot remove deleted mailbox directory");
        }
        folder.shared.bump();
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let from = normalize_name(from);
        let to = normalize_name(to);
        names::components(&to)?;
        if to == "INBOX" {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        if from == "INBOX" {
            return self.rename_inbox(&to);
        }
        names::components(&from)?;
        let folders = self.folders()?;
        let prefix = format!("{from}/");
        let moving: Vec<(String, String)> = folders
            .iter()
            .filter(|(n, _)| **n == from || n.starts_with(&prefix))
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect();
        if moving.is_empty() {
            return Err(Error::new(ErrorKind::NonExistent, "Mailbox does not exist"));
        }
        if self.exists_or_has_children(&to)? {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        if to.starts_with(&prefix) {
            return Err(Error::new(
                ErrorKind::BadName,
                "Cannot rename a mailbox into itself",
            ));
        }
        // Check every new name before touching anything.
        let mut plan = Vec::new();
        for (n, d) in &moving {
            let new_name = format!("{to}{}", &n[from.len()..]);
            plan.push((
                self.ctx.root.join(d),
                self.ctx.root.join(names::to_dir(&new_name)?),
                n.clone(),
                new_name,
            ));
        }
        // All or nothing: parents made here, folders moved and the special-use list
        // all go back when a later step fails (a full disk).
        let created = match to.rsplit_once('/') {
            Some((p, _)) => self.create_parents_and(p)?,
            None => Vec::new(),
        };
        self.apply_rename(&plan, &created)
    }

    fn subscriptions(&self) -> Result<Vec<String>> {
        rootfiles::read_subscriptions(&self.ctx.root, NAMES)
    }

    fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<()> {
        let name = normalize_name(name);
        names::components(&name)?;
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut subs = self.subscriptions()?;
        let had = subs.contains(&name);
        if subscribed == had {
            return Ok(());
        }
        if subscribed {
            subs.push(name);
        } else {
            subs.retain(|n| *n != name);
        }
        rootfiles::write_subscriptions(&self.ctx.root, &subs, self.ctx.fsync)
    }

    fn status(&self, name: &str) -> Result<StatusInfo> {
        self.status_sized(name, true)
    }

    fn status_is_small(&self, name: &str, max_messages: usize, size: bool) -> bool {
        let Ok(folder) = self.ctx.folder(name) else {
            return false;
        };
        FolderState::existing(&self.ctx.storage, &folder.path).is_some_and(|st| {
            st.with(|c| {
                c.index.is_some()
                    && c.files.len() <= max_messages
                    && !(size
                        && c.snapshot
                            .messages
                            .sizes()
                            .any(|m| m == crate::mailbox::UNKNOWN_SIZE))
            })
        })
    }

    fn list_is_small(&self, max: usize) -> bool {
        self.listed.load(std::sync::atomic::Ordering::Relaxed) <= max
    }

    /// Sizes not computed yet are computed (and recorded) only when `size` is wanted.
    fn status_sized(&self, name: &str, size: bool) -> Result<StatusInfo> {
        let folder = self.ctx.folder(name)?;
        folder.check_selectable()?;
        if FolderState::existing(&self.ctx.storage, &folder.path).is_none() {
            match super::sync::quick_status(&folder, self.ctx.fsync) {
                Some(st) if st.size != crate::mailbox::UNKNOWN_SIZE => return Ok(st),
                Some(st) if !size => return Ok(StatusInfo { size: 0, ..st }),
                _ => {}
            }
        }
        let state = FolderState::get(folder, self.ctx.fsync);
        let (mut s, _) = state.refresh(false)?;
        if size
            && s.messages
                .sizes()
                .any(|m| m == crate::mailbox::UNKNOWN_SIZE)
        {
            let uids: Vec<_> = (s.messages.records().iter())
                .filter(|m| m.size == crate::mailbox::UNKNOWN_SIZE)
                .map(|m| m.uid)
                .collect();
            super::sizes::resolve(&state, &uids);
            super::sizes::record(&state);
            s = state.with(|c| c.snapshot.clone());
        }
        let threshold = state.with(|c| c.recent_threshold);
        Ok(StatusInfo {
            messages: s.messages.len() as u32,
            recent: s.messages.uids().filter(|u| *u > threshold).count() as u32,
            uid_next: s.uid_next,
            uid_validity: s.uid_validity,
            unseen: (s.messages.records().iter())
                .filter(|r| r.flags & SysFlags::SEEN.0 == 0)
                .count() as u32,
            // A size still unknown (file vanished, index unwritable) counts 0 octets.
            size: (s.messages.sizes())
                .filter(|n| *n != crate::mailbox::UNKNOWN_SIZE)
                .sum(),
        })
    }

    fn open(&self, name: &str, read_only: bool) -> Result<Box<dyn Mailbox>> {
        let folder = self.ctx.folder(name)?;
        Ok(Box::new(MaildirMailbox::open(
            self.ctx.clone(),
            folder,
            read_only,
        )?))
    }

    fn append(&self, name: &str) -> Result<Box<dyn AppendSink>> {
        let folder = self.ctx.folder(name)?;
        Ok(Box::new(MaildirAppend::start(folder, self.ctx.fsync)?))
    }

    fn ensure_special_use(&self) -> Result<()> {
        let mut created = Vec::new();
        for (name, su) in rootfiles::DEFAULT_SPECIAL {
            if !matches!(self.create_one(name)?, Made::No) {
                created.push(name);
            }
            let claimed = rootfiles::read_special(&self.ctx.root)
                .iter()
                .any(|(s, _)| *s == su);
            if !claimed {
                self.set_special(name, su)?;
            }
        }
        self.auto_subscribe(&created)
    }
}

impl MaildirStore {
    /// Subscribes the folders `ensure_special_use` just created (Dovecot's `auto =
    /// subscribe`): clients that show subscribed folders only (Thunderbird by default)
    /// would otherwise see none of them, and try to CREATE their own Trash. An account
    /// that never had a subscription list (made by an earlier Loft) gets INBOX and every
    /// default special folder once; after that the list is the user's.
    fn auto_subscribe(&self, created: &[&str]) -> Result<()> {
        let root = &self.ctx.root;
        let never_listed = !root.join(rootfiles::SUBSCRIPTIONS_FILE).exists()
            && !root.join(rootfiles::COURIER_SUBSCRIPTIONS).exists();
        let mut want: Vec<&str> = created.to_vec();
        if never_listed {
            want = std::iter::once("INBOX")
                .chain(rootfiles::DEFAULT_SPECIAL.iter().map(|(n, _)| *n))
                .collect();
        }
        if want.is_empty() {
            return Ok(());
        }
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut subs = rootfiles::read_subscriptions(root, NAMES)?;
        let before = subs.len();
        for name in want {
            if !subs.iter().any(|s| s == name) {
                subs.push(name.to_string());
            }
        }
        if subs.len() == before && !never_listed {
            return Ok(());
        }
        rootfiles::write_subscriptions(root, &subs, self.ctx.fsync)
    }
}

/// Whether `name` is a name this layout accepts (for the subscription list).
fn valid_name(name: &str) -> bool {
    names::components(name).is_ok()
}

/// This layout's names, for the subscription list (`.` separates levels in old lists).
const NAMES: rootfiles::Names = rootfiles::Names {
    valid: valid_name,
    dots_are_levels: true,
};
