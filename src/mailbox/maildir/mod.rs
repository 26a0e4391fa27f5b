//! Maildir / Maildir++ storage, compatible with Dovecot and Courier on the same files.
//!
//! # Layout
//!
//! The user's root (the expanded `location`) holds `cur/ new/ tmp/` = INBOX. Every other
//! mailbox is a Maildir++ folder `<root>/.Name` or `<root>/.Parent.Child` with its own
//! `cur/ new/ tmp/` and an empty `maildirfolder` file. The on-disk separator is `.`, the
//! client separator `/`; name components are stored in modified UTF-7 like Dovecot does.
//! A `.` inside a client name component is refused (`BadName`), as Dovecot does with this
//! layout; see [`names`]. Parents that exist only because of their children (`.A.B`
//! without `.A`) are listed `\Noselect`. CREATE creates missing parents as real folders.
//!
//! # Files per folder
//!
//! * message files `<unique>[,S=<size>][,W=<vsize>]:2,<flags>` — [`filename`]
//! * `dovecot-keywords` — keyword letters `a`–`z`, shared with Dovecot — [`keywords`]
//! * `loft.index`, `loft.index.log`, `loft.index.cache`, `loft.index.lock` — the index
//!   engine's files: UIDVALIDITY, UIDNEXT, recent threshold, per message base name, size,
//!   date, flags, keywords — [`uidstore`], `docs/index-format.md`
//! * `loft-uidlist.lock` — `flock` target of the folder lock — [`lock`]
//! * `loft-uidlist` (Loft's former uid list), `dovecot-uidlist`, `courierimapuiddb` —
//!   read once to import UIDs into a new index — [`uidlist`], [`migrate`]
//!
//! Store-wide files in the root: `subscriptions`, `loft-special-use` ([`rootfiles`]).
//!
//! # Decisions
//!
//! * More than 26 keywords in one folder: the STORE/APPEND/COPY is refused with
//!   `ErrorKind::Limit` (a Maildir file name can only carry 26 keyword letters).
//! * Appended bytes are stored as sent; RFC822.SIZE and FETCH use CRLF line ends (bare LFs
//!   are converted on the fly; `W=` carries the CRLF size).
//! * Deleting a folder with children removes the folder directory; the children keep it
//!   listed as a `\Noselect` parent (RFC 3501 §6.3.4).
//! * Renaming INBOX moves its files into the new folder, which gets a fresh UIDVALIDITY
//!   and assigns UIDs in delivery order; INBOX's children stay (RFC 3501 §6.3.5).
//!
//! This module must not know about IMAP, POP3 or Lua.

pub mod admin;
// Format-neutral helpers, named here so the modules below reach them as `super::…`.
use super::{crlf, fsio, location, rootfiles, watch};
mod cachecare;
mod dates;
mod filemap;
mod filename;
pub(crate) mod flagsync;
mod folder;
mod keywords;
mod layout;
mod lock;
mod mailbox;
mod migrate;
mod names;
mod quiet;
mod rawdir;
mod save;
mod sizes;
mod storage;
mod sync;
mod uidlist;
mod uidstore;

/// For the `maildir_text` fuzz target: runs every parser of text that a Maildir holds
/// (file names, `loft-uidlist`, `dovecot-uidlist`, `dovecot-keywords`, folder directory
/// names) on `text`. Panics only when a parsed name's base does not lie inside it or its
/// flags do not make a parsable new name, which is what the fuzzer looks for.
#[doc(hidden)]
pub fn fuzz_check_text(text: &str) {
    let p = std::path::Path::new("fuzz");
    if let Some(l) = uidlist::UidList::parse(text, p) {
        assert!(l.uid_next >= 1);
    }
    let _ = migrate::parse(text);
    let _ = keywords::Keywords::parse(text, p);
    let _ = names::from_dir(text);
    sync::fuzz_stamp(text.as_bytes());
    for line in text.lines() {
        if let Some(n) = filename::parse(line) {
            let base = n.base(line);
            assert!(line.starts_with(base) && !base.is_empty() && !base.contains(':'));
            let letters =
                filename::flag_letters(n.sys, &n.keyword_letters(), &filename::other_letters(line));
            assert!(filename::parse(&filename::cur_name(base, &letters)).is_some());
        }
    }
}

#[cfg(test)]
mod tests;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{normalize_name, Error, ErrorKind, Result, Store};
use crate::config::FsyncMode;

/// The user's mail root, opened once: every path of the store is resolved beneath it
/// without following a symbolic link ([`crate::beneath`]).
pub struct Root {
    pub fs: crate::beneath::Beneath,
    /// Paths already warned about (a skipped link is logged once, not per command).
    warned: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl Root {
    pub fn new(fs: crate::beneath::Beneath) -> Root {
        Root {
            fs,
            warned: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Logs once per path that a symbolic link (or something not a directory where a
    /// directory belongs) was not followed.
    pub fn warn_link(&self, path: &Path, what: &str) {
        let mut w = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() < 10_000 && w.insert(path.to_path_buf()) {
            tracing::warn!(root = %self.fs.root().display(), file = %path.display(), "{what}: symbolic link not followed (mail stays inside the mail root)");
        }
    }

    /// An I/O error on `path`: a refused link is logged once and reported as a
    /// missing mailbox or message; anything else as [`Error::io`].
    pub fn io_err(&self, path: &Path, e: std::io::Error, what: &str) -> Error {
        if crate::beneath::is_link_refusal(&e) {
            self.warn_link(path, what);
            return Error::new(ErrorKind::NonExistent, "Mailbox or message does not exist")
                .with_detail(format!("{}: {e}", path.display()));
        }
        Error::io(path.display(), e)
    }
}

pub use storage::StorageCtx;

/// What every part of one user's store needs.
pub struct Ctx {
    /// What every store of this process shares (settings, open folders, indexes).
    pub storage: Arc<StorageCtx>,
    /// The resolved mail root (the path of `fs`).
    pub root: PathBuf,
    pub fs: Arc<Root>,
    pub fsync: FsyncMode,
    /// When flag changes reach Maildir file names.
    pub flag_sync: flagsync::FlagSync,
}

impl Ctx {
    /// The folder of a client mailbox name (checked; nothing on disk is touched).
    pub fn folder(&self, name: &str) -> Result<folder::Folder> {
        let name = normalize_name(name);
        if name == "INBOX" {
            return Ok(folder::Folder::new(
                name,
                self.root.clone(),
                self.fs.clone(),
                &self.storage,
            ));
        }
        let dir = names::to_dir(&name)?;
        Ok(folder::Folder::new(
            name,
            self.root.join(dir),
            self.fs.clone(),
            &self.storage,
        ))
    }
}

/// Creates a directory beneath the root unless it exists, with the mode of its parent
/// (whatever the umask). An existing link is not a directory: refused.
pub(crate) fn mkdir(root: &Root, path: &Path) -> Result<()> {
    match root.fs.mkdir_beside(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match root.fs.lstat(path) {
            Ok(st) if st.is_dir() => Ok(()),
            _ => Err(root.io_err(
                path,
                std::io::Error::from_raw_os_error(libc::ELOOP),
                "directory",
            )),
        },
        Err(e) => Err(root.io_err(path, e, "directory")),
    }
}

/// Opens (creating on first use) the Maildir of `user`.
pub fn open_store(
    storage: &Arc<StorageCtx>,
    user: &str,
    home: Option<&Path>,
    mode: crate::mailbox::userlock::Mode,
) -> Result<Arc<dyn Store>> {
    let ctx = ctx(storage, user, home)?;
    let lock = crate::mailbox::userlock::take(&ctx.fs.fs, &ctx.root, mode)?;
    Ok(Arc::new(layout::MaildirStore::new(ctx).holding(lock)))
}

/// The store context of `user` (creating the root on first use).
pub fn ctx(storage: &Arc<StorageCtx>, user: &str, home: Option<&Path>) -> Result<Arc<Ctx>> {
    let cfg = &storage.cfg;
    let location = location::expand(&cfg.location, user, home)?;
    let location = PathBuf::from(location);
    if !location.is_absolute() {
        return Err(
            Error::new(ErrorKind::Temporary, "Bad mail location").with_detail(format!(
                "mail location {} is not absolute",
                location.display()
            )),
        );
    }
    if !location.is_dir() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&location)
            .map_err(|e| Error::io(location.display(), e))?;
    }
    // The root itself may be a link an admin set up: resolved here, once.
    let fs =
        crate::beneath::Beneath::open(&location).map_err(|e| Error::io(location.display(), e))?;
    ctx_in(storage, fs)
}

/// The store context over a mail root already opened (tests pick the resolver).
pub(crate) fn ctx_in(storage: &Arc<StorageCtx>, fs: crate::beneath::Beneath) -> Result<Arc<Ctx>> {
    let cfg = &storage.cfg;
    let fs = Arc::new(Root::new(fs));
    let root = fs.fs.root().to_path_buf();
    for d in ["cur", "new", "tmp"] {
        mkdir(&fs, &root.join(d))?;
    }
    let ctx = Arc::new(Ctx {
        storage: storage.clone(),
        root,
        fs,
        fsync: cfg.fsync,
        flag_sync: match cfg.maildir_flag_sync {
            crate::config::MaildirFlagSync::Lazy => flagsync::FlagSync::Lazy,
            crate::config::MaildirFlagSync::Immediate => flagsync::FlagSync::Immediate,
        },
    });
    Ok(ctx)
}
