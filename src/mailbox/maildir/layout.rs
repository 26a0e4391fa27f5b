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

pub struct MaildirStore {
    pub ctx: Arc<Ctx>,
    /// Serialises rewrites of the store-wide files (subscriptions, special-use).
    files_lock: std::sync::Mutex<()>,
}

impl MaildirStore {
    pub fn new(ctx: Arc<Ctx>) -> MaildirStore {
        MaildirStore {
            ctx,
            files_lock: std::sync::Mutex::new(()),
        }
    }

    /// Selectable folders (client name → directory name), from the root listing.
    fn folders(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let rd =
            std::fs::read_dir(&self.ctx.root).map_err(|e| Error::io(self.ctx.root.display(), e))?;
        for ent in rd.flatten() {
            let os = ent.file_name();
            let Some(dir) = os.to_str() else { continue };
            if !dir.starts_with('.') || dir == "." || dir == ".." {
                continue;
            }
            if !ent.path().is_dir() {
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

    fn create_one(&self, name: &str) -> Result<bool> {
        let folder = self.ctx.folder(name)?;
        if folder.path.join("cur").is_dir() {
            return Ok(false);
        }
        // Recorded before anything is created: a disk too full for this small file
        // leaves no half-made folder behind.
        let uid_validity = {
            let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
            rootfiles::next_uid_validity(&self.ctx.root, self.ctx.fsync)?
        };
        super::mkdir(&folder.path)?;
        for d in ["cur", "new", "tmp"] {
            super::mkdir(&folder.path.join(d))?;
        }
        let marker = folder.path.join("maildirfolder");
        std::fs::write(&marker, b"").map_err(|e| Error::io(marker.display(), e))?;
        // The index files, with a UIDVALIDITY above every one this store handed out
        // (nothing to import in a new folder). Written whole, replacing whatever a
        // deleted folder of the same name left (also in a session that still has it
        // open: that one sees the new UIDVALIDITY at its next sync).
        let header = crate::index::Header {
            uid_validity,
            uid_next: 1,
            recent_uid: 1,
            ..Default::default()
        };
        crate::index::Index::rebuild(
            &folder.path,
            &uidstore::options(self.ctx.fsync),
            header,
            Vec::new(),
            Vec::new(),
        )
        .map_err(uidstore::map_err)?;
        Ok(true)
    }

    fn exists_or_has_children(&self, name: &str) -> Result<bool> {
        let prefix = format!("{name}/");
        Ok(self
            .folders()?
            .keys()
            .any(|n| n == name || n.starts_with(&prefix)))
    }

    fn rename_inbox(&self, to: &str) -> Result<()> {
        if self.exists_or_has_children(to)? {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        self.create_parents_and(to)?;
        let inbox = self.ctx.folder("INBOX")?;
        let target = self.ctx.folder(to)?;
        let _l1 = super::lock::FolderLock::acquire(&inbox.path, inbox.shared.clone())?;
        for sub in ["new", "cur"] {
            let dir = inbox.path.join(sub);
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for ent in rd.flatten() {
                let n = ent.file_name();
                if n.to_string_lossy().starts_with('.') || !ent.path().is_file() {
                    continue;
                }
                let to_path = target.path.join(sub).join(&n);
                std::fs::rename(ent.path(), &to_path)
                    .map_err(|e| Error::io(to_path.display(), e))?;
            }
        }
        inbox.shared.bump();
        target.shared.bump();
        Ok(())
    }

    fn create_parents_and(&self, name: &str) -> Result<()> {
        let parts = names::components(name)?;
        for i in 1..=parts.len() {
            self.create_one(&parts[..i].join("/"))?;
        }
        Ok(())
    }
}

impl Store for MaildirStore {
    fn list(&self) -> Result<Vec<MailboxEntry>> {
        let folders = self.folders()?;
        let mut all: BTreeMap<String, bool> = BTreeMap::new(); // name -> selectable
        all.insert("INBOX".into(), true);
        for (name, dir) in &folders {
            let selectable = self.ctx.root.join(dir).join("cur").is_dir();
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
        Ok(all
            .into_iter()
            .map(|(name, selectable)| {
                let prefix = format!("{name}/");
                MailboxEntry {
                    has_children: keys.iter().any(|k| k.starts_with(&prefix)),
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
        let parts = names::components(&name)?;
        let mut created = false;
        for i in 1..=parts.len() {
            created = self.create_one(&parts[..i].join("/"))?;
        }
        if !created {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        if let Some(su) = special_use {
            self.set_special(&name, su)?;
        }
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        let name = normalize_name(name);
        if name == "INBOX" {
            return Err(Error::new(ErrorKind::NoPerm, "INBOX cannot be deleted"));
        }
        let folder = self.ctx.folder(&name)?;
        if !folder.path.join("cur").is_dir() {
            if self.exists_or_has_children(&name)? {
                // RFC 3501 §6.3.4: deleting a \Noselect name with inferiors is an error.
                return Err(Error::new(
                    ErrorKind::HasChildren,
                    "Mailbox has children and no messages",
                ));
            }
            if !folder.path.exists() {
                return Err(Error::new(ErrorKind::NonExistent, "Mailbox does not exist"));
            }
        }
        // Move out of sight atomically, then remove. Children are separate `.A.B`
        // directories, so they stay and `A` becomes an implicit \Noselect parent.
        let trash = self
            .ctx
            .root
            .join(format!("loft-deleting.{}", super::save::unique_name()));
        std::fs::rename(&folder.path, &trash).map_err(|e| Error::io(folder.path.display(), e))?;
        if let Err(e) = std::fs::remove_dir_all(&trash) {
            tracing::warn!(dir = %trash.display(), error = %e, "cannot remove deleted mailbox directory");
        }
        folder.shared.bump();
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut special = rootfiles::read_special(&self.ctx.root);
        let before = special.len();
        special.retain(|(_, n)| *n != name);
        if special.len() != before {
            rootfiles::write_special(&self.ctx.root, &special, self.ctx.fsync)?;
        }
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
        if let Some((p, _)) = to.rsplit_once('/') {
            self.create_parents_and(p)?;
        }
        for (src, dst, _, _) in &plan {
            std::fs::rename(src, dst).map_err(|e| Error::io(src.display(), e))?;
            super::lock::shared(src).bump();
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
            rootfiles::write_special(&self.ctx.root, &special, self.ctx.fsync)?;
        }
        Ok(())
    }

    fn subscriptions(&self) -> Result<Vec<String>> {
        rootfiles::read_subscriptions(&self.ctx.root)
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
        let folder = self.ctx.folder(name)?;
        folder.check_selectable()?;
        if FolderState::existing(&folder.path).is_none() {
            if let Some(st) = super::sync::quick_status(&folder, self.ctx.fsync) {
                return Ok(st);
            }
        }
        let state = FolderState::get(folder, self.ctx.fsync);
        let (s, _) = state.refresh(false)?;
        let threshold = state.with(|c| c.recent_threshold);
        Ok(StatusInfo {
            messages: s.messages.len() as u32,
            recent: s.messages.iter().filter(|m| m.uid > threshold).count() as u32,
            uid_next: s.uid_next,
            uid_validity: s.uid_validity,
            unseen: s
                .messages
                .iter()
                .filter(|m| !m.flags.sys.contains(SysFlags::SEEN))
                .count() as u32,
            size: s.messages.iter().map(|m| m.size).sum(),
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
            if self.create_one(name)? {
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
        let mut subs = rootfiles::read_subscriptions(root)?;
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
