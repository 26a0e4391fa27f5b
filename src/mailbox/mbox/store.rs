//! The mbox store of one user, Dovecot's `mbox:~/mail:INBOX=/var/mail/%u` layout:
//!
//! * `location` is the folder directory: every mailbox is a file in it, a sub-folder a
//!   directory (`A/B` is the file `B` in the directory `A`), names in modified UTF-7 as
//!   Dovecot writes them. A directory is a `\Noselect` parent; a file cannot have
//!   children (creating `A/B` under the file `A` is refused).
//! * INBOX is the `inbox` spool file when configured (`/var/mail/<user>`), else the file
//!   `INBOX` in `location`.
//! * Loft's own files live in `location/.loft-index/`: each mailbox's index files in
//!   `m.<name>/` (one `m.<level>` directory per level), and the subscription list,
//!   special-use list and UIDVALIDITY state at its top. Names starting with `.` are never
//!   mailboxes, nor are the dotlocks (`<file>.lock`) of files beside them.
//!
//! Every path is resolved beneath the folder directory without following a link
//! ([`crate::beneath`]); the spool's directory is the admin's and opened as configured.
//!
//! This module must not know about IMAP.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod import;

use super::lock;
use super::mailbox::{MboxAppend, MboxMailbox};
use super::state::FileState;
use crate::beneath::Beneath;
use crate::config::{FsyncMode, StorageConfig};
use crate::mailbox::registry::Registry;
use crate::mailbox::{
    location, normalize_name, rootfiles, utf7, AppendSink, Error, ErrorKind, Mailbox, MailboxEntry,
    Result, SpecialUse, StatusInfo, Store,
};

/// Loft's directory inside the folder directory.
pub const LOFT_DIR: &str = ".loft-index";
/// Deepest folder hierarchy listed.
const MAX_DEPTH: usize = 32;
/// Most mailboxes listed.
const MAX_LISTED: usize = 100_000;
/// How long a file's state is kept after its last session closed it, and how many are
/// kept so: a client that selects the mailbox again (or reconnects) finds it synced.
const LINGER: std::time::Duration = std::time::Duration::from_secs(60);
const MAX_LINGERING: usize = 4;

/// What every mbox store of this process shares.
pub struct StorageCtx {
    pub cfg: StorageConfig,
    index: crate::index::Options,
    states: Registry<FileState>,
    /// Paths already warned about (a link not followed is logged once).
    warned: Mutex<std::collections::HashSet<PathBuf>>,
    /// States whose last session closed lately, kept a while ([`LINGER`]).
    lingering: Mutex<Vec<(std::time::Instant, Arc<FileState>)>>,
}

impl StorageCtx {
    pub fn new(cfg: &StorageConfig) -> Arc<StorageCtx> {
        Arc::new(StorageCtx {
            cfg: cfg.clone(),
            index: crate::mailbox::index_options(cfg),
            states: Registry::default(),
            warned: Mutex::new(Default::default()),
            lingering: Mutex::new(Vec::new()),
        })
    }

    pub fn index_options(&self) -> crate::index::Options {
        self.index.clone()
    }

    pub fn fresh_uid_validity(&self) -> u32 {
        self.index.shared.fresh_uid_validity()
    }

    /// Keeps `state` a while after its last session closed it (the oldest let go first).
    fn linger(&self, state: Arc<FileState>) {
        if state.is_gone() {
            return;
        }
        let mut l = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        l.retain(|(_, s)| !Arc::ptr_eq(s, &state));
        l.push((std::time::Instant::now(), state));
        let extra = l.len().saturating_sub(MAX_LINGERING);
        l.drain(..extra);
    }

    /// The file at `path` and the files below it are deleted or renamed: their states
    /// are never handed out again, and those kept are let go.
    fn forget(&self, path: &Path) {
        self.states.each_under(path, |s| s.set_gone());
        let mut l = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        l.retain(|(_, s)| !s.place.path.starts_with(path));
    }

    /// Lets go of every kept state (the server stops): each saves its sync.
    pub fn let_go(&self) {
        let kept = std::mem::take(&mut *self.lingering.lock().unwrap_or_else(|p| p.into_inner()));
        drop(kept);
    }

    /// Lets go of the states kept longer than [`LINGER`].
    fn prune_lingering(&self) {
        let mut l = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        l.retain(|(t, _)| t.elapsed() < LINGER);
    }

    pub fn lock_config(&self) -> lock::Config {
        let m = &self.cfg.mbox;
        lock::Config {
            read: m.read_locks.clone(),
            write: m.write_locks.clone(),
            timeout: m.lock_timeout,
            dotlock_stale: m.dotlock_stale,
        }
    }

    /// An I/O error on `path`: a link refused is logged once and reported as missing.
    pub fn io_err(&self, path: &Path, e: std::io::Error) -> Error {
        if crate::beneath::is_link_refusal(&e) {
            let mut w = self.warned.lock().unwrap_or_else(|p| p.into_inner());
            if w.len() < 10_000 && w.insert(path.to_path_buf()) {
                tracing::warn!(file = %path.display(), "mbox: symbolic link not followed (mail stays inside the mail root)");
            }
            return Error::new(ErrorKind::NonExistent, "Mailbox does not exist")
                .with_detail(format!("{}: {e}", path.display()));
        }
        Error::io(path.display(), e)
    }
}

/// Where a mailbox's file is: its directory (open), its name there, its path (for logs
/// and as the key of its shared state), and its index directory.
pub struct Place {
    pub dir: OwnedFd,
    pub name: OsString,
    pub path: PathBuf,
    pub index_dir: PathBuf,
    /// The store's own directory (`.loft-index`): its UIDVALIDITY state.
    pub loft_dir: PathBuf,
}

/// One user's mbox folders (cheap to clone: a session's mailbox keeps one for COPY).
#[derive(Clone)]
pub struct MboxStore {
    storage: Arc<StorageCtx>,
    /// The folder directory, opened once.
    fs: Arc<Beneath>,
    root: PathBuf,
    /// The INBOX spool file when configured.
    inbox: Option<PathBuf>,
    fsync: FsyncMode,
    /// Serialises this store's edits of its list files.
    files_lock: Arc<Mutex<()>>,
    /// The user lock a session or a conversion holds ([`crate::mailbox::userlock`]).
    user_lock: Option<Arc<crate::mailbox::userlock::UserLock>>,
}

fn bad(text: &str) -> Error {
    Error::new(ErrorKind::BadName, text.to_string())
}

/// The levels of a normalised client name other than INBOX, checked: no empty level, no
/// control character, no level starting with `.` (hidden, and `..`), none ending in
/// `.lock` (a dotlock's name), each at most 255 bytes on disk.
fn levels(name: &str) -> Result<Vec<String>> {
    if name.is_empty() || name.chars().any(|c| c.is_control()) {
        return Err(bad("Invalid mailbox name"));
    }
    let mut out = Vec::new();
    for p in name.split('/') {
        if p.is_empty() {
            return Err(bad("Mailbox name has an empty hierarchy level"));
        }
        if p.starts_with('.') || p.ends_with(".lock") {
            return Err(bad("Mailbox name not allowed here"));
        }
        let enc = utf7::encode(p);
        if enc.len() > 255 {
            return Err(bad("Mailbox name too long"));
        }
        out.push(enc);
    }
    if out.len() > MAX_DEPTH {
        return Err(bad("Mailbox hierarchy too deep"));
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    name == "INBOX" || levels(name).is_ok()
}

/// This layout's names: a `.` is part of a name.
const NAMES: rootfiles::Names = rootfiles::Names {
    valid: valid_name,
    dots_are_levels: false,
};

/// Opens the store of `user` (creating the folder directory on first use).
pub fn open_store(
    storage: &Arc<StorageCtx>,
    user: &str,
    home: Option<&Path>,
    mode: crate::mailbox::userlock::Mode,
) -> Result<Arc<dyn Store>> {
    let mut store = MboxStore::open(storage, user, home)?;
    let lock = crate::mailbox::userlock::take(&store.fs, &store.loft_dir(), mode)?;
    store.user_lock = Some(Arc::new(lock));
    Ok(Arc::new(store))
}

impl MboxStore {
    pub fn open(storage: &Arc<StorageCtx>, user: &str, home: Option<&Path>) -> Result<MboxStore> {
        let cfg = &storage.cfg;
        let root = PathBuf::from(location::expand(&cfg.location, user, home)?);
        let inbox = match &cfg.inbox {
            Some(t) => Some(PathBuf::from(location::expand(t, user, home)?)),
            None => None,
        };
        for p in std::iter::once(&root).chain(inbox.as_ref()) {
            if !p.is_absolute() {
                return Err(Error::new(ErrorKind::Temporary, "Bad mail location")
                    .with_detail(format!("mail location {} is not absolute", p.display())));
            }
        }
        if !root.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(&root)
                .map_err(|e| Error::io(root.display(), e))?;
        }
        let fs = Beneath::open(&root).map_err(|e| Error::io(root.display(), e))?;
        let root = fs.root().to_path_buf();
        let store = MboxStore {
            storage: storage.clone(),
            fs: Arc::new(fs),
            root,
            inbox,
            fsync: cfg.fsync,
            files_lock: Arc::new(Mutex::new(())),
            user_lock: None,
        };
        store.mkdirs(&store.root.join(LOFT_DIR))?;
        Ok(store)
    }

    fn loft_dir(&self) -> PathBuf {
        self.root.join(LOFT_DIR)
    }

    /// Creates `path` and its missing parents beneath the root (never through a link).
    fn mkdirs(&self, path: &Path) -> Result<()> {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        let mut at = self.root.clone();
        for part in rel.components() {
            at.push(part);
            match self.fs.lstat(&at) {
                Ok(st) if st.is_dir() => continue,
                Ok(_) => {
                    let e = std::io::Error::from_raw_os_error(libc::ENOTDIR);
                    return Err(self.storage.io_err(&at, e));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.storage.io_err(&at, e)),
            }
            match self.fs.mkdir(&at, 0o700) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.storage.io_err(&at, e)),
            }
        }
        Ok(())
    }

    /// The path of mailbox `name`'s file (or directory) and of its index directory.
    fn paths(&self, name: &str) -> Result<(PathBuf, PathBuf)> {
        let name = normalize_name(name);
        let mut index = self.loft_dir();
        if name == "INBOX" {
            index.push("m.INBOX");
            let file = self
                .inbox
                .clone()
                .unwrap_or_else(|| self.root.join("INBOX"));
            return Ok((file, index));
        }
        if name.starts_with("INBOX/") {
            return Err(Error::new(
                ErrorKind::NoPerm,
                "INBOX cannot have children here",
            ));
        }
        let mut file = self.root.clone();
        for l in levels(&name)? {
            index.push(format!("m.{l}"));
            file.push(l);
        }
        Ok((file, index))
    }

    /// The open place of mailbox `name` (its directory opened without links).
    fn place(&self, name: &str) -> Result<Place> {
        let (path, index_dir) = self.paths(name)?;
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        let file_name = path.file_name().map(OsString::from).unwrap_or_default();
        let dir = match parent.starts_with(&self.root) {
            true => self.fs.open_dir(&parent),
            // The configured spool directory, as the admin named it.
            false => crate::beneath::canonicalize(&parent)
                .and_then(|p| crate::beneath::open_dir_nofollow(&p)),
        };
        let dir = dir.map_err(|e| self.storage.io_err(&parent, e))?;
        Ok(Place {
            dir,
            name: file_name,
            path,
            index_dir,
            loft_dir: self.loft_dir(),
        })
    }

    /// The shared state of mailbox `name`, which must be a file (or INBOX).
    pub fn state(&self, name: &str) -> Result<Arc<FileState>> {
        self.storage.prune_lingering();
        let name = normalize_name(name);
        let (path, index_dir) = self.paths(&name)?;
        if let Some(st) = self.storage.states.get(&path).filter(|s| !s.is_gone()) {
            return Ok(st);
        }
        if name != "INBOX" {
            match self.fs.lstat(&path) {
                Ok(st) if st.is_file() => {}
                Ok(st) if st.is_dir() => {
                    return Err(Error::new(
                        ErrorKind::NonExistent,
                        "Mailbox is not selectable",
                    ))
                }
                Ok(_) => {
                    let e = std::io::Error::from_raw_os_error(libc::ELOOP);
                    return Err(self.storage.io_err(&path, e));
                }
                Err(e) => return Err(self.storage.io_err(&path, e)),
            }
        }
        self.mkdirs(&index_dir)?;
        let place = self.place(&name)?;
        let storage = self.storage.clone();
        Ok(self.storage.states.get_usable_or_make(
            &path,
            |s| !s.is_gone(),
            || FileState::new(name, place, storage),
        ))
    }

    /// Every mailbox under the folder directory: name -> is a file.
    fn walk(&self) -> Result<BTreeMap<String, bool>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![(self.root.clone(), String::new(), 0usize)];
        while let Some((dir, prefix, depth)) = todo.pop() {
            let entries = match self.fs.list(&dir) {
                Ok(e) => e,
                Err(e) if depth > 0 => {
                    tracing::debug!(dir = %dir.display(), "mbox listing: {e}");
                    continue;
                }
                Err(e) => return Err(self.storage.io_err(&dir, e)),
            };
            let names: std::collections::HashSet<OsString> =
                entries.iter().map(|(n, _)| n.clone()).collect();
            for (n, _) in &entries {
                let Some(s) = n.to_str() else { continue };
                if s.starts_with('.') || out.len() >= MAX_LISTED {
                    continue;
                }
                if let Some(base) = s.strip_suffix(".lock") {
                    if names.contains(&OsString::from(base)) {
                        continue;
                    }
                }
                let Some(decoded) = utf7::decode(s).filter(|d| !d.contains('/')) else {
                    continue;
                };
                let name = format!("{prefix}{decoded}");
                if depth == 0 && name.eq_ignore_ascii_case("INBOX") {
                    continue;
                }
                let path = dir.join(n);
                match self.fs.lstat(&path) {
                    Ok(st) if st.is_file() => {
                        out.insert(name, true);
                    }
                    Ok(st) if st.is_dir() && depth + 1 < MAX_DEPTH => {
                        out.insert(name.clone(), false);
                        todo.push((path, format!("{name}/"), depth + 1));
                    }
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// Loft's subscription list; until it has one, Dovecot's (`<location>/.subscriptions`,
    /// names in modified UTF-7 where they decode), so a user moving from Dovecot keeps
    /// the folders a client shows.
    fn read_subscriptions(&self) -> Result<Vec<String>> {
        if self.loft_dir().join(rootfiles::SUBSCRIPTIONS_FILE).exists() {
            return rootfiles::read_subscriptions(&self.loft_dir(), NAMES);
        }
        match crate::mailbox::fsio::read(&self.root.join(".subscriptions")) {
            Ok(b) => {
                let text = String::from_utf8_lossy(&b);
                let subs = rootfiles::parse_subscriptions(&text, NAMES);
                Ok(subs
                    .into_iter()
                    .map(|n| utf7::decode(&n).filter(|d| valid_name(d)).unwrap_or(n))
                    .collect())
            }
            Err(_) => Ok(Vec::new()),
        }
    }

    fn set_special(&self, name: &str, su: SpecialUse) -> Result<()> {
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = rootfiles::read_special(&self.loft_dir());
        list.retain(|(s, n)| *s != su && n != name);
        list.push((su, name.to_string()));
        rootfiles::write_special(&self.loft_dir(), &list, self.fsync)
    }

    /// Creates the empty file of `name` (and its parent directories); `false` when it
    /// exists already as a file.
    fn create_file(&self, name: &str) -> Result<bool> {
        let (path, index_dir) = self.paths(name)?;
        if normalize_name(name) == "INBOX" {
            return Ok(false);
        }
        let parent = path.parent().unwrap_or(&self.root);
        let mut above = parent;
        while above.starts_with(&self.root) && above != self.root {
            if self.fs.lstat(above).is_ok_and(|st| st.is_file()) {
                return Err(Error::new(
                    ErrorKind::NoPerm,
                    "Mailbox cannot have children (it is an mbox file)",
                ));
            }
            above = above.parent().unwrap_or(&self.root);
        }
        match self.fs.lstat(&path) {
            Ok(st) if st.is_file() => return Ok(false),
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    "Mailbox already exists",
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.storage.io_err(&path, e)),
        }
        self.mkdirs(parent)?;
        // A name made again gets a greater UIDVALIDITY than any before it.
        let stale = (self.storage.states.get(&path)).is_none_or(|s| s.is_gone());
        if stale {
            let _ = self.fs.remove_tree(&index_dir);
        }
        let dir = self
            .fs
            .open_dir(parent)
            .map_err(|e| self.storage.io_err(parent, e))?;
        let file_name = path.file_name().unwrap_or_default();
        match crate::beneath::create_new_at(&dir, file_name, 0o600) {
            Ok(f) => {
                if self.fsync != FsyncMode::Never {
                    let _ = f.sync_all();
                    let _ = crate::mailbox::fsio::sync_dir(parent);
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.storage.io_err(&path, e)),
        }
    }
}

impl Store for MboxStore {
    fn import(
        &self,
        folder: &crate::mailbox::ImportFolder<'_>,
        next: crate::mailbox::NextMessage<'_>,
    ) -> Result<u64> {
        self.import_folder(folder, next)
    }

    fn list(&self) -> Result<Vec<MailboxEntry>> {
        let all = self.walk()?;
        let special = rootfiles::read_special(&self.loft_dir());
        let su_of = |n: &str| special.iter().find(|(_, s)| s == n).map(|(su, _)| *su);
        let mut out = vec![MailboxEntry {
            name: "INBOX".into(),
            noselect: false,
            has_children: false,
            special_use: None,
        }];
        for (name, is_file) in &all {
            let prefix = format!("{name}/");
            let has_children = all
                .range(prefix.clone()..)
                .next()
                .is_some_and(|(n, _)| n.starts_with(&prefix));
            out.push(MailboxEntry {
                name: name.clone(),
                noselect: !is_file,
                has_children,
                special_use: su_of(name),
            });
        }
        Ok(out)
    }

    fn create(&self, name: &str, special_use: Option<SpecialUse>) -> Result<()> {
        let name = normalize_name(name);
        if name == "INBOX" {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        if !self.create_file(&name)? {
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
        let (path, index_dir) = self.paths(&name)?;
        self.storage.forget(&path);
        match self.fs.lstat(&path) {
            Ok(st) if st.is_dir() => match self.fs.rmdir(&path) {
                Ok(()) => {}
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::HasChildren,
                        "Mailbox has children, delete them first",
                    ))
                }
            },
            Ok(st) if st.is_file() => self
                .fs
                .unlink(&path)
                .map_err(|e| self.storage.io_err(&path, e))?,
            // A link (or anything else) in a mailbox's place is not a mailbox.
            Ok(_) => {
                let e = std::io::Error::from_raw_os_error(libc::ELOOP);
                return Err(self.storage.io_err(&path, e));
            }
            Err(e) => return Err(self.storage.io_err(&path, e)),
        }
        let _ = self.fs.remove_tree(&index_dir);
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = rootfiles::read_special(&self.loft_dir());
        let before = list.len();
        list.retain(|(_, n)| *n != name);
        if list.len() != before {
            rootfiles::write_special(&self.loft_dir(), &list, self.fsync)?;
        }
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize_name(from), normalize_name(to));
        if to == "INBOX" {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        let (to_path, to_index) = self.paths(&to)?;
        if self.fs.lstat(&to_path).is_ok() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        if from == "INBOX" {
            return super::mailbox::move_inbox(self, &to);
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(bad("Cannot rename a mailbox into itself"));
        }
        let (from_path, from_index) = self.paths(&from)?;
        self.storage.forget(&from_path);
        match self.fs.lstat(&from_path) {
            Ok(st) if st.is_file() || st.is_dir() => {}
            Ok(_) => {
                let e = std::io::Error::from_raw_os_error(libc::ELOOP);
                return Err(self.storage.io_err(&from_path, e));
            }
            Err(e) => return Err(self.storage.io_err(&from_path, e)),
        }
        let to_parent = to_path.parent().unwrap_or(&self.root).to_path_buf();
        if self.fs.lstat(&to_parent).is_ok_and(|st| !st.is_dir()) {
            return Err(Error::new(
                ErrorKind::NoPerm,
                "Mailbox cannot have children (it is an mbox file)",
            ));
        }
        self.mkdirs(&to_parent)?;
        self.fs
            .rename(&from_path, &to_path)
            .map_err(|e| self.storage.io_err(&from_path, e))?;
        let _ = self.fs.remove_tree(&to_index);
        if self.fs.lstat(&from_index).is_ok() {
            self.mkdirs(to_index.parent().unwrap_or(&self.root))?;
            let _ = self.fs.rename(&from_index, &to_index);
        }
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = rootfiles::read_special(&self.loft_dir());
        let mut changed = false;
        for (_, n) in list.iter_mut() {
            if *n == from || n.starts_with(&format!("{from}/")) {
                *n = format!("{to}{}", &n[from.len()..]);
                changed = true;
            }
        }
        if changed {
            rootfiles::write_special(&self.loft_dir(), &list, self.fsync)?;
        }
        Ok(())
    }

    fn subscriptions(&self) -> Result<Vec<String>> {
        self.read_subscriptions()
    }

    fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<()> {
        let name = normalize_name(name);
        if !valid_name(&name) {
            return Err(bad("Invalid mailbox name"));
        }
        let _g = self.files_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut subs = self.read_subscriptions()?;
        let had = subs.contains(&name);
        match subscribed {
            true if !had => subs.push(name),
            false if had => subs.retain(|s| *s != name),
            _ => return Ok(()),
        }
        rootfiles::write_subscriptions(&self.loft_dir(), &subs, self.fsync)
    }

    fn status(&self, name: &str) -> Result<StatusInfo> {
        self.status_sized(name, true)
    }

    fn status_sized(&self, name: &str, size: bool) -> Result<StatusInfo> {
        let state = self.state(name)?;
        let (s, _) = state.refresh(false)?;
        let recent_from = state.recent_threshold();
        let records = s.messages.records();
        let mut info = StatusInfo {
            messages: records.len() as u32,
            recent: records.iter().filter(|r| r.uid >= recent_from).count() as u32,
            uid_next: s.uid_next.max(1),
            uid_validity: s.uid_validity,
            unseen: (records.iter())
                .filter(|r| r.flags & crate::mailbox::SysFlags::SEEN.0 == 0)
                .count() as u32,
            size: 0,
        };
        if size {
            let unknown: Vec<_> = (records.iter())
                .filter(|r| r.size == crate::mailbox::UNKNOWN_SIZE)
                .map(|r| r.uid)
                .collect();
            let computed = state.sizes(&unknown);
            info.size = (records.iter())
                .filter(|r| r.size != crate::mailbox::UNKNOWN_SIZE)
                .map(|r| r.size)
                .chain(computed.into_iter().flatten())
                .sum();
        }
        Ok(info)
    }

    fn open(&self, name: &str, read_only: bool) -> Result<Box<dyn Mailbox>> {
        let state = self.state(name)?;
        Ok(Box::new(MboxMailbox::open(self.clone(), state, read_only)))
    }

    fn append(&self, name: &str) -> Result<Box<dyn AppendSink>> {
        let state = self.state(name)?;
        Ok(Box::new(MboxAppend::new(state)))
    }

    fn ensure_special_use(&self) -> Result<()> {
        if !self.storage.cfg.autocreate_special_use {
            return Ok(());
        }
        let never_listed = !self.loft_dir().join(rootfiles::SUBSCRIPTIONS_FILE).exists()
            && !self.root.join(".subscriptions").exists();
        let mut created = Vec::new();
        for (name, su) in rootfiles::DEFAULT_SPECIAL {
            if self.create_file(name)? {
                created.push(name);
            }
            let claimed = rootfiles::read_special(&self.loft_dir())
                .iter()
                .any(|(s, _)| *s == su);
            if !claimed {
                self.set_special(name, su)?;
            }
        }
        if never_listed {
            created = std::iter::once("INBOX")
                .chain(rootfiles::DEFAULT_SPECIAL.iter().map(|(n, _)| *n))
                .collect();
        }
        for n in created {
            self.set_subscribed(n, true)?;
        }
        Ok(())
    }
}

/// `loft index rebuild|verify|show`: the selectable mailboxes named by `mailbox` (all
/// when `None`).
impl MboxStore {
    fn admin_states(&self, mailbox: Option<&str>) -> Result<Vec<Arc<FileState>>> {
        let names: Vec<String> = match mailbox {
            Some(m) => vec![m.to_string()],
            None => (self.list()?.into_iter())
                .filter(|e| !e.noselect)
                .map(|e| e.name)
                .collect(),
        };
        names.iter().map(|n| self.state(n)).collect()
    }

    pub fn index_rebuild(&self, mailbox: Option<&str>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for st in self.admin_states(mailbox)? {
            st.refresh(false)?;
            let s = st.rebuild_now()?;
            out.push(format!(
                "{}: rebuilt, {} messages, UIDVALIDITY {}, UIDNEXT {}",
                st.name,
                s.messages.len(),
                s.uid_validity,
                s.uid_next
            ));
        }
        Ok(out)
    }

    pub fn index_verify(&self, mailbox: Option<&str>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for st in self.admin_states(mailbox)? {
            let problems = st.verify()?;
            out.extend(problems.into_iter().map(|p| format!("{}: {p}", st.name)));
        }
        Ok(out)
    }

    pub fn index_show(&self, mailbox: &str) -> Result<String> {
        let st = self.state(mailbox)?;
        st.refresh(false)?;
        let ix = st
            .index()
            .ok_or_else(|| Error::new(ErrorKind::Temporary, "index not open"))?;
        crate::mailbox::admin::show_index(&st.name, &st.place.path, &st.place.index_dir, &ix)
    }
}

impl MboxStore {
    /// Keeps `state` a while after its last session closed it.
    pub fn linger(&self, state: Arc<FileState>) {
        self.storage.linger(state);
    }

    /// The state of INBOX and of a new mailbox `to` (created empty) for RENAME INBOX.
    pub fn rename_pair(&self, to: &str) -> Result<(Arc<FileState>, Arc<FileState>)> {
        let inbox = self.state("INBOX")?;
        if !self.create_file(to)? {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        Ok((inbox, self.state(to)?))
    }
}
