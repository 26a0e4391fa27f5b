//! Folders the service account needs but cannot reach by name. A root newcomer's
//! checkout typically sits under /root (mode 0700): the service account may search
//! neither /root nor anything below it. Before the switch, root opens each folder Loft
//! uses afterwards (the passwd-file's folder, the mail root) whose *ancestors* are closed
//! to the service account, keeps that descriptor for the life of the process, and Loft
//! reaches the folder through `/proc/self/fd/N/...` from then on: the kernel follows such
//! a magic link without checking the ancestors again, and lets a process use its own
//! descriptors after the switch (the process is non-dumpable then, so its /proc/PID/fd is
//! root's and no other process of the service account can borrow them). The folders'
//! own modes still apply: the mail root must be the service account's, the passwd-file
//! readable by its group. Folders the service account can reach keep their real paths.
//!
//! `beneath::canonicalize` keeps such paths behind their descriptor, so mail roots and
//! index folders opened later stay reachable.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use loft::config::Config;

use super::{create_mail_root, mail_root, search_denied, Account};

/// One folder held open by root for the service account.
#[derive(Debug)]
pub struct Anchor {
    /// Kept open for the life of the process; `via` names it.
    _fd: OwnedFd,
    /// The folder's real path (as the kernel reports it).
    pub real: PathBuf,
    /// `/proc/self/fd/N`.
    pub via: PathBuf,
    /// What Loft keeps there ("the passwd-file's folder", "the mail root").
    pub what: &'static str,
    /// Which ancestor the service account cannot search, in words.
    pub why: String,
}

impl Anchor {
    /// The startup log line.
    pub fn log_line(&self, a: &Account) -> String {
        format!(
            "{} is reached through {} ({}; opened by root before the switch because {}; only \
             this process can use it, {} still cannot reach anything else there; log lines \
             name files beneath it {}/...)",
            self.real.display(),
            self.via.display(),
            self.what,
            self.why,
            a.user,
            self.via.display()
        )
    }

    /// `check-config`'s explanation.
    pub fn explain(&self) -> String {
        format!(
            "{} ({}): {}; serve reaches it through a descriptor opened by root before the \
             switch (/proc/self/fd), the folder's own mode still applies",
            self.real.display(),
            self.what,
            self.why
        )
    }
}

/// The folders held open; dropping them closes the descriptors.
#[derive(Debug, Default)]
pub struct Anchors(pub Vec<Anchor>);

/// Why a folder could not be held open.
#[derive(Debug)]
pub enum AnchorError {
    /// The folder could not be opened.
    Open(PathBuf, io::Error),
    /// `/proc/self/fd` does not show the descriptor (no /proc, or a foreign one).
    Proc(PathBuf, String),
    /// The mail root could not be created.
    Create(super::PrepareError),
}

impl fmt::Display for AnchorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnchorError::Open(p, e) => write!(f, "cannot open {}: {e}", p.display()),
            AnchorError::Proc(p, why) => write!(
                f,
                "cannot reach {} through /proc/self/fd after the switch: {why}",
                p.display()
            ),
            AnchorError::Create(e) => write!(f, "{e}"),
        }
    }
}

/// Which proper ancestor of `dir` the account cannot search, in words (`None`: it can).
/// Missing folders are not judged: root creates them searchable.
pub fn closed_ancestor(dir: &Path, a: &Account) -> Option<String> {
    let up = dir.ancestors().skip(1).find(|p| p.exists())?;
    search_denied(up, a, &a.user)
}

/// Opens `dir` (following links: the admin's choice) and checks that /proc shows it.
fn hold(dir: &Path, what: &'static str, why: String) -> Result<Anchor, AnchorError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| AnchorError::Open(dir.to_path_buf(), e))?;
    let fd = OwnedFd::from(f);
    let via = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let held = loft::beneath::fstat(&fd).map_err(|e| AnchorError::Open(dir.to_path_buf(), e))?;
    match std::fs::metadata(&via) {
        Ok(m) if m.dev() == held.dev && m.ino() == held.ino => {}
        Ok(_) => {
            let why = format!("{} is another folder", via.display());
            return Err(AnchorError::Proc(dir.to_path_buf(), why));
        }
        Err(e) => return Err(AnchorError::Proc(dir.to_path_buf(), e.to_string())),
    }
    let real = std::fs::read_link(&via).unwrap_or_else(|_| dir.to_path_buf());
    Ok(Anchor {
        _fd: fd,
        real,
        via,
        what,
        why,
    })
}

/// As root, before the switch: holds open the passwd-file's folder and the mail root when
/// `a` cannot search one of their ancestors, and rewrites `cfg`'s paths to go through
/// them. With `create`, a missing mail root under such a folder is created first (owned
/// by `a`, mode 0700). Returns the folders held and what was created, for the log.
pub fn hold_closed(
    cfg: &mut Config,
    a: &Account,
    create: bool,
) -> Result<(Anchors, Vec<String>), AnchorError> {
    let mut held = Anchors::default();
    let mut done = Vec::new();
    let passwd_dir = cfg.auth.passwd_file.parent().map(Path::to_path_buf);
    if let (Some(dir), Some(name)) = (passwd_dir, cfg.auth.passwd_file.file_name()) {
        if let Some(why) = dir.is_dir().then(|| closed_ancestor(&dir, a)).flatten() {
            let anchor = hold(&dir, "the passwd-file's folder", why)?;
            cfg.auth.passwd_file = anchor.via.join(name);
            held.0.push(anchor);
        }
    }
    let Some(root) = mail_root(&cfg.storage.location) else {
        return Ok((held, done));
    };
    let Some(why) = closed_ancestor(&root, a) else {
        return Ok((held, done));
    };
    if !root.exists() {
        if !create {
            return Ok((held, done));
        }
        // /proc must work before anything is created for it.
        hold(Path::new("/"), "a probe", String::new())?;
        create_mail_root(&root, a).map_err(AnchorError::Create)?;
        done.push(format!(
            "created mail root {} for {}",
            root.display(),
            a.user
        ));
    }
    let anchor = hold(&root, "the mail root", why)?;
    // mail_root is a prefix of the template; what follows it stays as it is.
    let rest = &cfg.storage.location[root.as_os_str().len()..];
    cfg.storage.location = format!("{}{rest}", anchor.via.display());
    held.0.push(anchor);
    Ok((held, done))
}

/// The real path behind `path` when it goes through one of this process's descriptors.
pub fn real_path(path: &Path) -> PathBuf {
    match loft::beneath::split_fd_path(path) {
        Some((via, rest)) => match std::fs::read_link(&via) {
            Ok(real) if rest.as_os_str().is_empty() => real,
            Ok(real) => real.join(rest),
            Err(_) => path.to_path_buf(),
        },
        None => path.to_path_buf(),
    }
}
