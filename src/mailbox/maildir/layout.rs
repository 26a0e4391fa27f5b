//! [`Store`] over a Maildir++ tree: listing, creating, deleting and renaming folders,
//! subscriptions, STATUS and special-use mailboxes.
//!
//! Special-use attributes (RFC 6154) are recorded in `<root>/loft-special-use`, one
//! `<attribute> <mailbox name>` line each (e.g. `\Sent Sent`); `ensure_special_use`
//! creates Drafts, Sent, Trash, Junk and Archive when missing and records them unless the
//! attribute is already given to another mailbox.
//!
//! Subscriptions live in `<root>/subscriptions`, one UTF-8 mailbox name per line. When
//! reading, Dovecot's version-2 file (`V\t2` header, hierarchy levels separated by tabs)
//! is understood, and Courier's `courierimapsubscribed` (`INBOX.A.B`, modified UTF-7) is
//! used when no `subscriptions` file exists yet.
//!
//! This module must not know about message files.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::fsio;
use super::mailbox::MaildirMailbox;
use super::names;
use super::save::MaildirAppend;
use super::sync::View;
use super::uidlist::{self, UidList};
use super::Ctx;
use crate::mailbox::{
    normalize_name, utf7, AppendSink, Error, ErrorKind, Mailbox, MailboxEntry, Result, SpecialUse,
    StatusInfo, Store, SysFlags,
};

pub const SPECIAL_USE_FILE: &str = "loft-special-use";
pub const SUBSCRIPTIONS_FILE: &str = "subscriptions";
const COURIER_SUBSCRIPTIONS: &str = "courierimapsubscribed";

const DEFAULT_SPECIAL: [(&str, SpecialUse); 5] = [
    ("Drafts", SpecialUse::Drafts),
    ("Sent", SpecialUse::Sent),
    ("Trash", SpecialUse::Trash),
    ("Junk", SpecialUse::Junk),
    ("Archive", SpecialUse::Archive),
];

const ALL_SPECIAL: [SpecialUse; 7] = [
    SpecialUse::All,
    SpecialUse::Archive,
    SpecialUse::Drafts,
    SpecialUse::Flagged,
    SpecialUse::Junk,
    SpecialUse::Sent,
    SpecialUse::Trash,
];

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

    fn read_special(&self) -> Vec<(SpecialUse, String)> {
        let path = self.ctx.root.join(SPECIAL_USE_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for line in text.lines() {
            let parsed = line.split_once(' ').and_then(|(a, n)| {
                let su = ALL_SPECIAL
                    .iter()
                    .find(|s| s.attribute().eq_ignore_ascii_case(a))?;
                Some((*su, n.to_string()))
            });
            match parsed {
                Some(p) => out.push(p),
                None if line.is_empty() => {}
                None => {
                    tracing::warn!(file = %path.display(), line, "ignoring malformed special-use line")
                }
            }
        }
        out
    }

    fn write_special(&self, list: &[(SpecialUse, String)]) -> Result<()> {
        let mut text = String::new();
        for (su, n) in list {
            text.push_str(&format!("{} {}\n", su.attribute(), n));
        }
        fsio::write_atomic(
            &self.ctx.root.join(SPECIAL_USE_FILE),
            text.as_bytes(),
            self.ctx.fsync,
        )
    }

    fn set_special(&self, name: &str, su: SpecialUse) -> Result<()> {
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = self.read_special();
        list.retain(|(s, n)| *s != su && n != name);
        list.push((su, name.to_string()));
        self.write_special(&list)
    }

    fn create_one(&self, name: &str) -> Result<bool> {
        let folder = self.ctx.folder(name)?;
        if folder.path.join("cur").is_dir() {
            return Ok(false);
        }
        super::mkdir(&folder.path)?;
        for d in ["cur", "new", "tmp"] {
            super::mkdir(&folder.path.join(d))?;
        }
        let marker = folder.path.join("maildirfolder");
        std::fs::write(&marker, b"").map_err(|e| Error::io(marker.display(), e))?;
        if !folder.path.join(uidlist::FILE).exists() {
            UidList::new(uidlist::fresh_uid_validity()).save(&folder.path, self.ctx.fsync)?;
        }
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
        let special = self.read_special();
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
        let mut special = self.read_special();
        let before = special.len();
        special.retain(|(_, n)| *n != name);
        if special.len() != before {
            self.write_special(&special)?;
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
        let mut special = self.read_special();
        let mut changed = false;
        for (_, n) in special.iter_mut() {
            if let Some((_, _, _, new_name)) = plan.iter().find(|(_, _, old, _)| old == n) {
                *n = new_name.clone();
                changed = true;
            }
        }
        if changed {
            self.write_special(&special)?;
        }
        Ok(())
    }

    fn subscriptions(&self) -> Result<Vec<String>> {
        let path = self.ctx.root.join(SUBSCRIPTIONS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(parse_subscriptions(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::read(self.ctx.root.join(COURIER_SUBSCRIPTIONS)) {
                    Ok(bytes) => Ok(parse_courier_subscriptions(&String::from_utf8_lossy(
                        &bytes,
                    ))),
                    Err(_) => Ok(Vec::new()),
                }
            }
            Err(e) => Err(Error::io(path.display(), e)),
        }
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
        let mut text = String::new();
        for s in subs {
            text.push_str(&s);
            text.push('\n');
        }
        fsio::write_atomic(
            &self.ctx.root.join(SUBSCRIPTIONS_FILE),
            text.as_bytes(),
            self.ctx.fsync,
        )
    }

    fn status(&self, name: &str) -> Result<StatusInfo> {
        let folder = self.ctx.folder(name)?;
        folder.check_selectable()?;
        let mut view = View::new(folder, self.ctx.fsync);
        view.refresh(false)?;
        let s = &view.snapshot;
        Ok(StatusInfo {
            messages: s.messages.len() as u32,
            recent: s
                .messages
                .iter()
                .filter(|m| m.uid > view.recent_threshold)
                .count() as u32,
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
        for (name, su) in DEFAULT_SPECIAL {
            self.create_one(name)?;
            let claimed = self.read_special().iter().any(|(s, _)| *s == su);
            if !claimed {
                self.set_special(name, su)?;
            }
        }
        Ok(())
    }
}

fn parse_subscriptions(text: &str) -> Vec<String> {
    let mut lines = text.lines().peekable();
    let v2 = lines.peek().is_some_and(|l| l.starts_with("V\t"));
    if v2 {
        lines.next();
    }
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        // v2 separates levels with tabs; an old v1 file from a Maildir++ setup uses `.`,
        // which can never be part of a Loft name component.
        let name = if v2 {
            line.replace('\t', "/")
        } else {
            line.replace('.', "/")
        };
        let name = normalize_name(&name);
        if names::components(&name).is_ok() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn parse_courier_subscriptions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let rest = line.strip_prefix("INBOX.").unwrap_or(line);
        let mut parts = Vec::new();
        let mut ok = !rest.is_empty();
        for p in rest.split('.') {
            match utf7::decode(p) {
                Some(d) if !d.is_empty() => parts.push(d),
                _ => ok = false,
            }
        }
        if ok {
            let n = normalize_name(&parts.join("/"));
            if names::components(&n).is_ok() && !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_formats() {
        assert_eq!(
            parse_subscriptions("A\ninbox\nB/C\nD.E\n\n"),
            vec!["A", "INBOX", "B/C", "D/E"]
        );
        assert_eq!(parse_subscriptions("V\t2\n\nA\tB\nC\n"), vec!["A/B", "C"]);
        assert_eq!(
            parse_courier_subscriptions("INBOX.Sent\nINBOX.A.Entw&APw-rfe\n"),
            vec!["Sent", "A/Entw\u{fc}rfe"]
        );
    }
}
