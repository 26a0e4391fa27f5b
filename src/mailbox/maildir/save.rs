//! Saving messages: unique file names, APPEND (`tmp/` → `cur/`) and publishing copied
//! files with fresh UIDs.
//!
//! A message is written to `tmp/<unique>`, fsynced (unless `fsync = never`), given its
//! INTERNALDATE as mtime, then renamed to `cur/<unique>,S=<size>,W=<vsize>:2,<flags>`
//! under the folder lock, `cur/` is fsynced (unless `fsync = never`: also with
//! `optimized`, new mail is never acknowledged before it is durable), and its UID recorded
//! in the uid list. A crash before the rename leaves only a `tmp/` file (ignored, removed
//! after 36 h); after it, a complete message that the next scan gives a UID if the uid
//! list write did not happen.
//!
//! This module must not know about IMAP.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::filename;
use super::folder::{FileInfo, Folder, Sub};
use super::fsio;
use super::keywords::Keywords;
use super::lock::FolderLock;
use super::sync::FolderState;
use super::uidstore;
use crate::config::FsyncMode;
use crate::mailbox::{AppendSink, Error, Flags, Result, Uid};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates or fails.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        let raw = if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        } else {
            String::new()
        };
        let raw = if raw.is_empty() {
            "localhost".to_string()
        } else {
            raw
        };
        escape_host(&raw)
    })
}

/// `/` and `:` cannot appear in a Maildir name: written as `\057` and `\072`.
pub fn escape_host(h: &str) -> String {
    h.replace('/', "\\057").replace(':', "\\072")
}

/// `<secs>.M<usecs>P<pid>Q<counter>.<host>`: unique per host, process and call.
pub fn unique_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        hostname()
    )
}

#[cfg(test)]
thread_local! {
    /// Makes this thread's next index commits in [`publish`] fail with `ENOSPC` (tests).
    pub static FAIL_COMMIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A complete file in the destination's `tmp/`, ready to be published.
pub struct Pending {
    pub tmp: PathBuf,
    pub unique: String,
    pub fsize: u64,
    pub vsize: u64,
    pub flags: Flags,
}

/// Renames pending files into `cur/` and gives them UIDs, in order, under the folder lock.
/// Returns the UIDVALIDITY and the new UIDs. Unpublished temp files are removed on error.
/// The folder's shared state (when a session of this storage context has it open) takes
/// the new files as they are, without listing the folder ([`FolderState::published`]).
pub fn publish(dest: &Folder, items: Vec<Pending>, fsync: FsyncMode) -> Result<(u32, Vec<Uid>)> {
    let cleanup = |items: &[Pending]| {
        for p in items {
            let _ = dest.fs().unlink(&p.tmp);
        }
    };
    // Import old UIDs or repair the index first (a full scan, without the lock).
    if let Err(e) = uidstore::ensure(dest, fsync) {
        cleanup(&items);
        return Err(e);
    }
    let done = {
        let lock = FolderLock::acquire(&dest.path, dest.shared.clone());
        let _lock = match lock {
            Ok(l) => l,
            Err(e) => {
                cleanup(&items);
                return Err(e);
            }
        };
        place(dest, items, fsync)?
    };
    if let Some(state) = FolderState::existing(&dest.storage, &dest.path) {
        state.published(
            done.files,
            done.cur_before,
            done.cur_after,
            done.changes_before,
        );
    }
    match done.failure {
        Some(e) => Err(e),
        None => Ok((done.uid_validity, done.uids)),
    }
}

/// What [`place`] did.
struct Placed {
    uid_validity: u32,
    uids: Vec<Uid>,
    files: Vec<(Uid, FileInfo)>,
    /// `cur/`'s mtime (ns) just before the first rename and after the commit.
    cur_before: i128,
    cur_after: i128,
    /// The folder's in-process change counter before this publish bumped it.
    changes_before: u64,
    failure: Option<Error>,
}

fn cur_mtime(dest: &Folder) -> i128 {
    std::fs::metadata(dest.path.join("cur")).map_or(0, |m| fsio::unix_nanos(m.modified()))
}

/// The part of [`publish`] under the folder lock: numbers the files from the index's
/// UIDNEXT, renames them into `cur/` and records them in one transaction.
fn place(dest: &Folder, items: Vec<Pending>, fsync: FsyncMode) -> Result<Placed> {
    let cleanup = |items: &[Pending]| {
        for p in items {
            let _ = dest.fs().unlink(&p.tmp);
        }
    };
    let mut slot = None;
    let base = match uidstore::ready(dest, fsync, &mut slot) {
        Ok(Some(b)) => b,
        Ok(None) => {
            cleanup(&items);
            return Err(Error::new(
                crate::mailbox::ErrorKind::Temporary,
                "Mailbox index is being repaired, try again",
            ));
        }
        Err(e) => {
            cleanup(&items);
            return Err(e);
        }
    };
    let Some(ix) = slot else {
        cleanup(&items);
        return Err(Error::new(
            crate::mailbox::ErrorKind::Temporary,
            "Mailbox index is being repaired, try again",
        ));
    };
    let kw = match allocate_keywords(dest, &items, fsync) {
        Ok(kw) => kw,
        Err(e) => {
            cleanup(&items);
            return Err(e);
        }
    };
    let mut out = Placed {
        uid_validity: base.header.uid_validity,
        uids: Vec::with_capacity(items.len()),
        files: Vec::with_capacity(items.len()),
        cur_before: cur_mtime(dest),
        cur_after: 0,
        changes_before: dest.shared.changes(),
        failure: None,
    };
    let mut next = base.header.uid_next.max(1);
    let mut placed: Vec<PathBuf> = Vec::with_capacity(items.len());
    let mut files = super::filemap::FileMap::default();
    for p in items {
        if out.failure.is_some() {
            let _ = dest.fs().unlink(&p.tmp);
            continue;
        }
        // Every keyword has a letter by now (allocate_keywords).
        let letters: Vec<u8> = p.flags.keywords.iter().filter_map(|k| kw.find(k)).collect();
        if next >= u32::MAX - 1 {
            let _ = dest.fs().unlink(&p.tmp);
            out.failure = Some(Error::new(
                crate::mailbox::ErrorKind::Limit,
                "Mailbox has no UIDs left",
            ));
            continue;
        }
        let base_name = format!("{},S={},W={}", p.unique, p.fsize, p.vsize);
        let name = filename::cur_name(
            &base_name,
            &filename::flag_letters(p.flags.sys, &letters, &[]),
        );
        let target = dest.file_path(Sub::Cur, &name);
        let mtime = dest.fs().lstat(&p.tmp).map_or(0, |st| st.mtime);
        if let Err(e) = dest.fs().rename(&p.tmp, &target) {
            let _ = dest.fs().unlink(&p.tmp);
            out.failure = Some(Error::io(target.display(), e));
            continue;
        }
        let uid = next;
        next += 1;
        if let Some(parsed) = filename::parse(&name) {
            files.insert(uid, FileInfo::new(Sub::Cur, &name, parsed, Some(mtime)));
        }
        out.uids.push(uid);
        placed.push(target);
    }
    if !out.uids.is_empty() {
        // New mail must survive a power loss once acknowledged: the data was fsynced
        // before (append commit, or the copy in link_or_copy), and the rename into cur/ is
        // made durable here in every mode but `never`, before the index names it.
        // COPY/MOVE need it too: MOVE expunges the source right after this returns.
        let committed = (|| {
            if fsync != FsyncMode::Never {
                fsio::sync_dir(&dest.path.join("cur"))?;
            }
            #[cfg(test)]
            if FAIL_COMMIT.with(|f| f.get()) {
                let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
                return Err(Error::io("test: index commit", e));
            }
            uidstore::append(&ix, &base, &files, &kw)
        })();
        if let Err(e) = committed {
            // All or nothing (a full disk): files the index does not name must not
            // turn up as new mail at the next scan after the client was told NO.
            for t in &placed {
                if let Err(ue) = dest.fs().unlink(t) {
                    tracing::warn!(file = %t.display(), error = %ue, "cannot remove a message whose index commit failed");
                }
            }
            dest.shared.bump();
            return Err(e);
        }
        out.cur_after = cur_mtime(dest);
        out.files = files.iter().map(|(u, f)| (u, f.clone())).collect();
        dest.shared.bump();
    }
    Ok(out)
}

/// Loads `dovecot-keywords`, gives every new keyword of `items` a letter and, when one was
/// new, writes the file before the caller renames any message into `cur/` (a crash in
/// between leaves a named, unused letter). Letters present in file names without a name
/// are never handed out. Fails (nothing renamed yet) on a 27th keyword.
fn allocate_keywords(dest: &Folder, items: &[Pending], fsync: FsyncMode) -> Result<Keywords> {
    let mut kw = Keywords::load(&dest.path);
    let fresh: Vec<&String> = items
        .iter()
        .flat_map(|p| p.flags.keywords.iter())
        .filter(|k| kw.find(k).is_none())
        .collect();
    if fresh.is_empty() {
        return Ok(kw);
    }
    let in_use = dest.keyword_letters_in_use()?;
    for k in fresh {
        kw.allocate(k, in_use, &dest.path)?;
    }
    kw.save(&dest.path, fsync)?;
    Ok(kw)
}

/// Creates a new file in `tmp/` for writing.
pub fn create_tmp(dest: &Folder) -> Result<(std::fs::File, PathBuf, String)> {
    let unique = unique_name();
    let path = dest.path.join("tmp").join(&unique);
    // The mode of the mail beside it (0600 in a 0700 folder), whatever the umask.
    let mode = dest.fs().file_mode_in(&dest.path).unwrap_or(0o600);
    let file = dest
        .fs()
        .open_file(&path, crate::beneath::How::CreateNew(mode))
        .map_err(|e| dest.root.io_err(&path, e, "mail folder"))?;
    Ok((file, path, unique))
}

/// Sets a file's mtime (INTERNALDATE) to `secs` since the epoch.
pub fn set_mtime(file: &std::fs::File, secs: i64) -> std::io::Result<()> {
    let t = if secs >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
    };
    file.set_modified(t)
}

/// APPEND in progress.
pub struct MaildirAppend {
    dest: Folder,
    fsync: FsyncMode,
    file: Option<std::fs::File>,
    tmp: PathBuf,
    unique: String,
    fsize: u64,
    vsize: u64,
    prev: u8,
    done: bool,
}

impl MaildirAppend {
    pub fn start(dest: Folder, fsync: FsyncMode) -> Result<MaildirAppend> {
        dest.check_selectable()?;
        let (file, tmp, unique) = create_tmp(&dest)?;
        Ok(MaildirAppend {
            dest,
            fsync,
            file: Some(file),
            tmp,
            unique,
            fsize: 0,
            vsize: 0,
            prev: 0,
            done: false,
        })
    }
}

impl AppendSink for MaildirAppend {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(Error::new(
                crate::mailbox::ErrorKind::Temporary,
                "Append already finished",
            ));
        };
        file.write_all(chunk)
            .map_err(|e| Error::io(self.tmp.display(), e))?;
        for &b in chunk {
            if b == b'\n' && self.prev != b'\r' {
                self.vsize += 1;
            }
            self.prev = b;
        }
        self.fsize += chunk.len() as u64;
        self.vsize += chunk.len() as u64;
        Ok(())
    }

    fn commit(
        mut self: Box<Self>,
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> Result<(u32, Uid)> {
        let Some(file) = self.file.take() else {
            return Err(Error::new(
                crate::mailbox::ErrorKind::Temporary,
                "Append already finished",
            ));
        };
        if self.fsync != FsyncMode::Never {
            file.sync_all()
                .map_err(|e| Error::io(self.tmp.display(), e))?;
        }
        if let Some(secs) = internal_date {
            set_mtime(&file, secs).map_err(|e| Error::io(self.tmp.display(), e))?;
        }
        drop(file);
        self.done = true;
        let pending = Pending {
            tmp: self.tmp.clone(),
            unique: self.unique.clone(),
            fsize: self.fsize,
            vsize: self.vsize,
            flags: flags.clone(),
        };
        let (uidv, uids) = publish(&self.dest, vec![pending], self.fsync)?;
        match uids.first() {
            Some(u) => Ok((uidv, *u)),
            None => Err(Error::new(
                crate::mailbox::ErrorKind::Temporary,
                "Message was not saved",
            )),
        }
    }

    fn abort(self: Box<Self>) {
        // Drop removes the temp file.
    }
}

impl Drop for MaildirAppend {
    fn drop(&mut self) {
        if !self.done {
            self.file.take();
            let _ = self.dest.fs().unlink(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names() {
        assert_eq!(escape_host("a/b:c"), "a\\057b\\072c");
        let a = unique_name();
        let b = unique_name();
        assert_ne!(a, b);
        assert!(!a.contains('/') && !a.contains(':'));
        let (secs, rest) = a.split_once(".M").unwrap();
        assert!(secs.parse::<u64>().is_ok());
        assert!(rest.contains(&format!("P{}Q", std::process::id())));
    }
}
