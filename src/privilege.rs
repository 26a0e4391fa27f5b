//! Privileges of the `loft` command: which account serves mail, and the one-way switch to
//! it. Started as root, `serve` binds its ports and the auth socket and reads the TLS key,
//! then [`enter`] prepares the files the service account needs, switches to that account
//! for good (supplementary groups, then real, effective and saved group and user IDs) and
//! proves it: every ID of every thread, no capability left, root not regainable. All of it
//! happens before the first connection is accepted (`loft::server::serve_with`).
//!
//! Only the binary does this, never the library: the integration tests start servers
//! in-process, and CI runs them as root.
//!
//! Plain `libc` calls (already a dependency) rather than nix or rustix: a dozen calls,
//! each wrapped once here with its `SAFETY` reasoning; glibc's set*id wrappers apply the
//! change to every thread of the process (the tokio workers exist already), which a raw
//! syscall would not.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use loft::config::{Config, Diagnostic, ServerConfig, WhenNotRoot};

/// A user and group, with names for messages (a number without a name shows as itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (uid {}), group {} (gid {})",
            self.user, self.uid, self.group, self.gid
        )
    }
}

/// What `serve` does with its privileges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Started as root: bind, then switch to this account for good.
    Drop(Account),
    /// Started as an ordinary account: serve as it. `configured` is `[server] user` when it
    /// names another account (`when_not_root = "run"`).
    Stay {
        me: Account,
        configured: Option<String>,
    },
    /// Started as root and staying root (`allow_root = true`).
    Root,
}

impl Plan {
    /// The account that will own the mail.
    pub fn service_ids(&self) -> (u32, u32) {
        match self {
            Plan::Drop(a) | Plan::Stay { me: a, .. } => (a.uid, a.gid),
            Plan::Root => (0, 0),
        }
    }

    /// One sentence for `check-config` and the log.
    pub fn explain(&self) -> String {
        match self {
            Plan::Drop(a) => format!(
                "started as root, Loft binds its ports and the auth socket and reads the TLS key, \
                 then serves mail as {a} for good"
            ),
            Plan::Stay {
                me,
                configured: None,
            } => format!("serves mail as {me}, the account that starts it"),
            Plan::Stay {
                me,
                configured: Some(u),
            } => format!(
                "serves mail as {me}, the account that starts it ([server] user {u:?} applies \
                 when started as root; when_not_root = \"run\")"
            ),
            Plan::Root => "serves mail as ROOT ([server] allow_root = true)".into(),
        }
    }
}

/// Why a configuration cannot serve: each names the `[server]` key to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    NoSuchUser(String),
    NoSuchGroup(String),
    /// `user` is a number without a passwd entry and no `group` is given.
    NoPrimaryGroup(u32),
    GroupWithoutUser,
    RootWithoutUser,
    /// The configured account is root (or group 0) and `allow_root` is false.
    TargetIsRoot(Account),
    /// Started by an ordinary account other than the configured one.
    CannotSwitch {
        wanted: Account,
        me: Account,
    },
}

impl PlanError {
    /// The `[server]` key the diagnostic points at ("" = the section).
    pub fn key(&self) -> &'static str {
        match self {
            PlanError::NoSuchGroup(_) | PlanError::GroupWithoutUser => "group",
            PlanError::RootWithoutUser => "",
            _ => "user",
        }
    }

    /// The diagnostic, at the key's position in the config file.
    pub fn diagnostic(&self, cfg: &Config) -> Diagnostic {
        cfg.positions
            .diagnostic(&cfg.path, "server", self.key(), self.to_string())
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoSuchUser(u) => write!(
                f,
                "[server] user {u:?}: no such user (create it, e.g. `adduser --system --group {u}`)"
            ),
            PlanError::NoSuchGroup(g) => write!(f, "[server] group {g:?}: no such group"),
            PlanError::NoPrimaryGroup(uid) => write!(
                f,
                "[server] user {uid} has no passwd entry, so no primary group: set [server] group"
            ),
            PlanError::GroupWithoutUser => {
                write!(f, "[server] group is set without [server] user")
            }
            PlanError::RootWithoutUser => write!(
                f,
                "started as root with no [server] user: Loft would serve mail as root. Set \
                 [server] user to an account that owns the mail and nothing else (e.g. \
                 user = \"vmail\"), or allow_root = true if you insist"
            ),
            PlanError::TargetIsRoot(a) => write!(
                f,
                "[server] user/group is {a}: Loft would serve mail with root privileges. Name an \
                 unprivileged account, or set allow_root = true if you insist"
            ),
            PlanError::CannotSwitch { wanted, me } => write!(
                f,
                "[server] user/group is {wanted}, but Loft was started as {me}, which cannot \
                 switch accounts: start it as root or as that account, or set \
                 when_not_root = \"run\""
            ),
        }
    }
}

/// The effective user and group of this process.
pub fn current_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Decides what `serve` does, for a process whose effective IDs are `me`.
pub fn plan(s: &ServerConfig, me: (u32, u32)) -> Result<Plan, PlanError> {
    let wanted = match (&s.user, &s.group) {
        (None, None) => None,
        (None, Some(_)) => return Err(PlanError::GroupWithoutUser),
        (Some(u), g) => Some(resolve(u, g.as_deref())?),
    };
    if me.0 == 0 {
        return match wanted {
            None if s.allow_root => Ok(Plan::Root),
            None => Err(PlanError::RootWithoutUser),
            Some(a) if (a.uid == 0 || a.gid == 0) && !s.allow_root => {
                Err(PlanError::TargetIsRoot(a))
            }
            Some(a) if a.uid == 0 => Ok(Plan::Root),
            Some(a) => Ok(Plan::Drop(a)),
        };
    }
    let me = account_of(me.0, me.1);
    match wanted {
        None => Ok(Plan::Stay {
            me,
            configured: None,
        }),
        Some(a) if a.uid == me.uid && (s.group.is_none() || a.gid == me.gid) => Ok(Plan::Stay {
            me,
            configured: None,
        }),
        Some(a) if s.when_not_root == WhenNotRoot::Run => Ok(Plan::Stay {
            me,
            configured: Some(a.user),
        }),
        Some(wanted) => Err(PlanError::CannotSwitch { wanted, me }),
    }
}

/// The account named by `user` (and `group`, else the user's primary group); names or numbers.
fn resolve(user: &str, group: Option<&str>) -> Result<Account, PlanError> {
    let pw = match user.parse::<u32>() {
        Ok(uid) => passwd_by_uid(uid)
            .map(|(u, g, n)| (u, Some(g), n))
            .or(Some((uid, None, user.to_string()))),
        Err(_) => passwd_by_name(user).map(|(u, g, n)| (u, Some(g), n)),
    };
    let Some((uid, primary, user)) = pw else {
        return Err(PlanError::NoSuchUser(user.to_string()));
    };
    let (gid, group) = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => (gid, group_name(gid).unwrap_or_else(|| g.to_string())),
            Err(_) => group_by_name(g).ok_or_else(|| PlanError::NoSuchGroup(g.to_string()))?,
        },
        None => {
            let gid = primary.ok_or(PlanError::NoPrimaryGroup(uid))?;
            (gid, group_name(gid).unwrap_or_else(|| gid.to_string()))
        }
    };
    Ok(Account {
        uid,
        gid,
        user,
        group,
    })
}

/// `uid`/`gid` with their names when they have some.
pub fn account_of(uid: u32, gid: u32) -> Account {
    Account {
        uid,
        gid,
        user: passwd_by_uid(uid)
            .map(|(_, _, n)| n)
            .unwrap_or_else(|| uid.to_string()),
        group: group_name(gid).unwrap_or_else(|| gid.to_string()),
    }
}

/// Runs a `get*_r` lookup with a growing buffer. `call` returns the function's result code
/// and whether an entry was found.
fn with_buffer(mut call: impl FnMut(&mut [u8]) -> (i32, bool)) -> bool {
    let mut size = 4096;
    loop {
        let mut buf = vec![0u8; size];
        let (rc, found) = call(&mut buf);
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        return rc == 0 && found;
    }
}

fn passwd_lookup(
    by: impl Fn(*mut libc::passwd, &mut [u8], *mut *mut libc::passwd) -> i32,
) -> Option<(u32, u32, String)> {
    // SAFETY: passwd is plain data, filled by the lookup before it is read.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out = None;
    let found = with_buffer(|buf| {
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = by(&mut pw, buf, &mut result);
        if rc == 0 && !result.is_null() {
            // SAFETY: on success pw_name points into `buf`, a NUL-terminated string that
            // lives until the end of this closure, where it is copied.
            let name = unsafe { CStr::from_ptr(pw.pw_name) }
                .to_string_lossy()
                .into_owned();
            out = Some((pw.pw_uid, pw.pw_gid, name));
        }
        (rc, !result.is_null())
    });
    out.filter(|_| found)
}

fn passwd_by_name(name: &str) -> Option<(u32, u32, String)> {
    let c = CString::new(name).ok()?;
    passwd_lookup(|pw, buf, result| {
        // SAFETY: every pointer is valid for the call: `c` is NUL-terminated, `buf` is
        // writable for its length, `pw` and `result` point at live locals.
        unsafe { libc::getpwnam_r(c.as_ptr(), pw, buf.as_mut_ptr().cast(), buf.len(), result) }
    })
}

fn passwd_by_uid(uid: u32) -> Option<(u32, u32, String)> {
    passwd_lookup(|pw, buf, result| {
        // SAFETY: as in `passwd_by_name`.
        unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr().cast(), buf.len(), result) }
    })
}

fn group_lookup(
    by: impl Fn(*mut libc::group, &mut [u8], *mut *mut libc::group) -> i32,
) -> Option<(u32, String)> {
    // SAFETY: group is plain data, filled by the lookup before it is read.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut out = None;
    let found = with_buffer(|buf| {
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = by(&mut gr, buf, &mut result);
        if rc == 0 && !result.is_null() {
            // SAFETY: as for pw_name in `passwd_lookup`.
            let name = unsafe { CStr::from_ptr(gr.gr_name) }
                .to_string_lossy()
                .into_owned();
            out = Some((gr.gr_gid, name));
        }
        (rc, !result.is_null())
    });
    out.filter(|_| found)
}

fn group_by_name(name: &str) -> Option<(u32, String)> {
    let c = CString::new(name).ok()?;
    group_lookup(|gr, buf, result| {
        // SAFETY: as in `passwd_by_name`.
        unsafe { libc::getgrnam_r(c.as_ptr(), gr, buf.as_mut_ptr().cast(), buf.len(), result) }
    })
}

pub fn group_name(gid: u32) -> Option<String> {
    group_lookup(|gr, buf, result| {
        // SAFETY: as in `passwd_by_name`.
        unsafe { libc::getgrgid_r(gid, gr, buf.as_mut_ptr().cast(), buf.len(), result) }
    })
    .map(|(_, n)| n)
}

// ---- the switch ----

/// Why the switch failed or could not be proven; startup stops.
#[derive(Debug)]
pub enum DropError {
    Call(&'static str, io::Error),
    /// A call that only root may make succeeded after the switch.
    Regained(&'static str),
    /// An ID or capability is not what the switch should have left.
    Left(String),
}

impl fmt::Display for DropError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropError::Call(what, e) => write!(f, "cannot drop root privileges: {what}: {e}"),
            DropError::Regained(what) => {
                write!(
                    f,
                    "root privileges could be regained after the switch ({what} succeeded)"
                )
            }
            DropError::Left(what) => write!(f, "root privileges not fully dropped: {what}"),
        }
    }
}

fn check(what: &'static str, rc: libc::c_int) -> Result<(), DropError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(DropError::Call(what, io::Error::last_os_error()))
    }
}

/// Switches the whole process to `a` for good: supplementary groups reduced to `a.gid`,
/// then real/effective/saved group IDs, then user IDs (the kernel clears every capability
/// when the last of the user IDs leaves 0), then no_new_privs. Then [`verify`].
pub fn drop_to(a: &Account) -> Result<(), DropError> {
    let groups = [a.gid as libc::gid_t];
    // SAFETY: `groups` is a valid array of one gid for the call.
    check("setgroups", unsafe { libc::setgroups(1, groups.as_ptr()) })?;
    // SAFETY: plain syscalls on integers; glibc applies them to every thread.
    check("setresgid", unsafe { libc::setresgid(a.gid, a.gid, a.gid) })?;
    // SAFETY: as above.
    check("setresuid", unsafe { libc::setresuid(a.uid, a.uid, a.uid) })?;
    // SAFETY: prctl with integer arguments; no_new_privs is one-way and per-thread
    // inherited, so threads made later (the blocking pool) get it too.
    check("prctl(PR_SET_NO_NEW_PRIVS)", unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    })?;
    verify(a)
}

/// Proves the switch: getresuid/getresgid, the group list, every thread's IDs and
/// capabilities in /proc, and that setuid(0)/setgid(0) now fail.
pub fn verify(a: &Account) -> Result<(), DropError> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are valid locals.
    check("getresuid", unsafe {
        libc::getresuid(&mut r, &mut e, &mut s)
    })?;
    if [r, e, s] != [a.uid; 3] {
        return Err(DropError::Left(format!("user IDs are {r}/{e}/{s}")));
    }
    // SAFETY: as above.
    check("getresgid", unsafe {
        libc::getresgid(&mut r, &mut e, &mut s)
    })?;
    if [r, e, s] != [a.gid; 3] {
        return Err(DropError::Left(format!("group IDs are {r}/{e}/{s}")));
    }
    let mut list = [0 as libc::gid_t; 64];
    // SAFETY: `list` is writable for 64 entries; getgroups fails rather than overflow.
    let n = unsafe { libc::getgroups(list.len() as libc::c_int, list.as_mut_ptr()) };
    if n < 0 || list.iter().take(n as usize).any(|g| *g != a.gid) {
        return Err(DropError::Left("supplementary groups remain".into()));
    }
    verify_threads(a)?;
    // SAFETY: plain syscalls; after a real switch they fail with EPERM. Should one
    // succeed, startup stops at once (the caller exits).
    if unsafe { libc::setuid(0) } == 0 {
        return Err(DropError::Regained("setuid(0)"));
    }
    // SAFETY: as above.
    if unsafe { libc::setgid(0) } == 0 {
        return Err(DropError::Regained("setgid(0)"));
    }
    Ok(())
}

/// Every thread's Uid/Gid lines show `a` four times, and no capability is permitted,
/// effective or ambient.
fn verify_threads(a: &Account) -> Result<(), DropError> {
    let tasks = std::fs::read_dir("/proc/self/task")
        .map_err(|e| DropError::Call("reading /proc/self/task", e))?;
    let mut seen = 0;
    for t in tasks.flatten() {
        let status = match std::fs::read_to_string(t.path().join("status")) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // thread ended
            Err(e) => return Err(DropError::Call("reading a thread's status", e)),
        };
        if let Some(problem) = status_problem(&status, a) {
            return Err(DropError::Left(format!(
                "thread {}: {problem}",
                t.file_name().to_string_lossy()
            )));
        }
        seen += 1;
    }
    if seen == 0 {
        return Err(DropError::Left("no thread status could be read".into()));
    }
    Ok(())
}

/// What is wrong in one /proc status text for account `a`, if anything.
pub fn status_problem(status: &str, a: &Account) -> Option<String> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
    };
    for (name, id) in [("Uid:", a.uid), ("Gid:", a.gid)] {
        match field(name) {
            Some(v) if v.len() == 4 && v.iter().all(|x| x.parse() == Ok(id)) => {}
            other => return Some(format!("{name} {other:?}, expected {id} four times")),
        }
    }
    for name in ["CapPrm:", "CapEff:", "CapAmb:"] {
        match field(name) {
            Some(v) if v.len() == 1 && u64::from_str_radix(v[0], 16) == Ok(0) => {}
            // Kernels before 4.3 have no CapAmb line.
            None if name == "CapAmb:" => {}
            other => return Some(format!("{name} {other:?}, expected none")),
        }
    }
    None
}

// ---- the files the service account needs ----

/// The fixed part of a mail location template: the folder above the first `%`
/// (`/srv/mail/%d/%n` -> `/srv/mail`). `None` for home-based templates (`%h/...`).
pub fn mail_root(location: &str) -> Option<PathBuf> {
    let fixed = &location[..location.find('%').unwrap_or(location.len())];
    let dir = &fixed[..fixed.rfind('/')?];
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// The passwd-file Loft ships and creates itself (`users` beside the config), also when
/// it is reached through a folder held open by root ([`anchor`]): the same folder.
pub fn is_default_passwd(cfg: &Config) -> bool {
    let dir = match cfg.path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file = &cfg.auth.passwd_file;
    let same_dir = || {
        let (Ok(a), Some(Ok(b))) = (
            std::fs::metadata(&dir),
            file.parent().map(std::fs::metadata),
        ) else {
            return false;
        };
        (a.dev(), a.ino()) == (b.dev(), b.ino())
    };
    file.file_name() == Some("users".as_ref()) && same_dir()
}

/// The permission bits of `m` that apply to `a` (owner, group or other).
fn bits_for(m: &std::fs::Metadata, a: &Account) -> u32 {
    let mode = m.mode();
    if m.uid() == a.uid {
        (mode >> 6) & 7
    } else if m.gid() == a.gid {
        (mode >> 3) & 7
    } else {
        mode & 7
    }
}

/// Which folder on the way to `dir` (`dir` included) `a` cannot search, in words ending
/// with `who`. A path through one of this process's descriptors (`/proc/self/fd/N/...`,
/// see [`anchor`]) is judged from that folder down: its ancestors are not searched again.
pub(crate) fn search_denied(dir: &Path, a: &Account, who: &str) -> Option<String> {
    let (mut up, rest) = match loft::beneath::split_fd_path(dir) {
        Some((via, rest)) => (via, rest),
        None => (PathBuf::new(), dir),
    };
    let mut steps = Vec::new();
    if !up.as_os_str().is_empty() {
        steps.push(up.clone());
    }
    for c in rest.components() {
        up.push(c);
        steps.push(up.clone());
    }
    for step in steps {
        let shown = anchor::real_path(&step);
        let Ok(m) = std::fs::metadata(&step) else {
            return Some(format!("{} cannot be read", shown.display()));
        };
        if bits_for(&m, a) & 1 == 0 {
            return Some(format!(
                "{} (mode {:o}, owner uid {}) is not searchable by {who}",
                shown.display(),
                m.mode() & 0o7777,
                m.uid()
            ));
        }
    }
    None
}

/// Why `a` cannot use `path` (`write` for a folder to create files in, else read),
/// judged from owners and mode bits (ACLs are not looked at), or `None` when it can.
pub fn denied(path: &Path, a: &Account, write: bool) -> Option<String> {
    if a.uid == 0 {
        return None;
    }
    // A folder held open by root is reached without its ancestors.
    let held = loft::beneath::split_fd_path(path).is_some_and(|(_, r)| r.as_os_str().is_empty());
    if let Some(parent) = path.parent().filter(|_| !held) {
        if let Some(why) = search_denied(parent, a, "it") {
            return Some(why);
        }
    }
    let m = std::fs::metadata(path).ok()?;
    let need = if write { 3 } else { 4 };
    (bits_for(&m, a) & need != need).then(|| {
        format!(
            "{} (mode {:o}, owner uid {}, gid {}) is not {} by it",
            anchor::real_path(path).display(),
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            if write { "writable" } else { "readable" }
        )
    })
}

/// Why `a` cannot reach `path` through its folders (the existing ones; missing ones
/// will be created by root), or `None` when it can.
pub fn unreachable(path: &Path, a: &Account) -> Option<String> {
    if loft::beneath::split_fd_path(path).is_some_and(|(_, r)| r.as_os_str().is_empty()) {
        return None; // a folder held open by root
    }
    let up = path
        .ancestors()
        .skip(1)
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    denied(&up.join(".probe"), a, false)
}

/// Why the preparation as root before the switch refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("the service account {user} cannot reach {}: {why}", .path.display())]
    Unreachable {
        user: String,
        path: PathBuf,
        why: String,
    },
    #[error("the service account {user} cannot write in the mail root {}: {why}", .path.display())]
    RootNotWritable {
        user: String,
        path: PathBuf,
        why: String,
    },
    #[error("cannot create {}: {source}", .path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot give {} to {user}: {source}", .path.display())]
    GiveRoot {
        path: PathBuf,
        user: String,
        source: io::Error,
    },
    #[error("cannot let group {group} read {}: {source}", .path.display())]
    Share {
        group: String,
        path: PathBuf,
        source: io::Error,
    },
}

/// Why `serve` did not get past the switch from root (the `before_accept` step).
#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error("{0}")]
    Drop(DropError),
    /// After the switch the account cannot use a file; `FILE:LINE:COL` of its key.
    #[error("{0}")]
    Access(Diagnostic),
}

/// As root, before the switch: creates the mail root (owned by `a`, mode 0700) when it
/// does not exist, and lets `a`'s group read the shipped passwd-file and its app
/// passwords when they are root's and `a` could not. Changes nothing when `a` could not
/// even reach them (folders held open by [`anchor::hold_closed`] count as reachable), or
/// could not write in an existing mail root. Returns what it did, for the log.
pub fn prepare(cfg: &Config, a: &Account) -> Result<Vec<String>, PrepareError> {
    let root = mail_root(&cfg.storage.location);
    for p in std::iter::once(&cfg.auth.passwd_file).chain(root.as_ref()) {
        if let Some(why) = unreachable(p, a) {
            return Err(PrepareError::Unreachable {
                user: a.user.clone(),
                path: anchor::real_path(p),
                why,
            });
        }
    }
    // An existing mail root the account cannot write in is refused before any change.
    if let Some(why) = root
        .as_ref()
        .filter(|r| r.exists())
        .and_then(|r| denied(r, a, true))
    {
        return Err(PrepareError::RootNotWritable {
            user: a.user.clone(),
            path: anchor::real_path(root.as_deref().unwrap_or(Path::new(""))),
            why,
        });
    }
    let mut done = Vec::new();
    if let Some(root) = mail_root(&cfg.storage.location) {
        if !root.exists() {
            create_mail_root(&root, a)?;
            done.push(format!(
                "created mail root {} for {}",
                root.display(),
                a.user
            ));
        }
    }
    if is_default_passwd(cfg) {
        let apps = loft::auth::app_passwords::path_for(&cfg.auth.passwd_file);
        for f in [cfg.auth.passwd_file.clone(), apps] {
            if let Some(what) = share_with_group(&f, a)? {
                done.push(what);
            }
        }
    }
    Ok(done)
}

/// Makes every missing folder of `root`: the parents root's and mode 0755 (whatever the
/// umask), the mail root itself `a`'s and mode 0700.
fn create_mail_root(root: &Path, a: &Account) -> Result<(), PrepareError> {
    let mut missing: Vec<&Path> = root.ancestors().take_while(|p| !p.exists()).collect();
    missing.reverse();
    for dir in missing {
        let err = |source| PrepareError::Create {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir(dir).map_err(err)?;
        // Through a descriptor of the folder just made, never following a link someone
        // may have put in its place since.
        let fd = open_nofollow(dir, libc::O_DIRECTORY).map_err(err)?;
        if dir == root {
            std::os::unix::fs::fchown(&fd, Some(a.uid), Some(a.gid)).map_err(|source| {
                PrepareError::GiveRoot {
                    path: root.to_path_buf(),
                    user: a.user.clone(),
                    source,
                }
            })?;
        }
        let mode = if dir == root { 0o700 } else { 0o755 };
        fd.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
    }
    Ok(())
}

/// Opens `path` read-only without following a final symbolic link.
fn open_nofollow(path: &Path, flags: libc::c_int) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | flags)
        .open(path)
}

/// When root owns `file` and `a` cannot read it: group `a.gid`, group-readable.
pub fn share_with_group(file: &Path, a: &Account) -> Result<Option<String>, PrepareError> {
    // The descriptor, not the name, is judged and changed: a link is never followed.
    let Ok(f) = open_nofollow(file, libc::O_NONBLOCK) else {
        return Ok(None);
    };
    let Ok(m) = f.metadata() else {
        return Ok(None);
    };
    if !m.is_file() || m.uid() != 0 || denied(file, a, false).is_none() {
        return Ok(None);
    }
    let mode = (m.mode() & 0o7777) | 0o040;
    std::os::unix::fs::fchown(&f, None, Some(a.gid))
        .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(mode)))
        .map_err(|source| PrepareError::Share {
            group: a.group.clone(),
            path: anchor::real_path(file),
            source,
        })?;
    Ok(Some(format!(
        "{} is now readable by group {} (mode {mode:o})",
        anchor::real_path(file).display(),
        a.group
    )))
}

/// After the switch: the service account can really read the passwd-file (re-read when it
/// changes) and the app passwords, and write in the mail root (access(2), exact now that
/// the real IDs are the service account's).
pub fn check_access(cfg: &Config, a: &Account) -> Result<(), Diagnostic> {
    let apps = loft::auth::app_passwords::path_for(&cfg.auth.passwd_file);
    let mut wants = vec![(
        "auth",
        "passwd_file",
        cfg.auth.passwd_file.clone(),
        libc::R_OK,
    )];
    if apps.exists() {
        wants.push(("auth", "passwd_file", apps, libc::R_OK));
    }
    if let Some(root) = mail_root(&cfg.storage.location) {
        wants.push(("storage", "location", root, libc::W_OK | libc::X_OK));
    }
    for (section, key, path, mode) in wants {
        let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: `c` is a NUL-terminated path valid for the call.
        if unsafe { libc::access(c.as_ptr(), mode) } != 0 {
            let e = io::Error::last_os_error();
            let why = denied(&path, a, mode != libc::R_OK).unwrap_or_else(|| e.to_string());
            let msg = format!(
                "after switching to {a}: cannot {} {}: {why}",
                if mode == libc::R_OK {
                    "read"
                } else {
                    "write in"
                },
                anchor::real_path(&path).display()
            );
            return Err(cfg.positions.diagnostic(&cfg.path, section, key, msg));
        }
    }
    Ok(())
}

/// The `before_accept` step of `serve`: prepare, switch and prove it, per `plan`.
pub fn enter(cfg: &Config, plan: &Plan) -> Result<(), EnterError> {
    match plan {
        Plan::Drop(a) => {
            for line in prepare(cfg, a)? {
                tracing::info!("{line}");
            }
            drop_to(a).map_err(EnterError::Drop)?;
            check_access(cfg, a).map_err(EnterError::Access)?;
            tracing::info!(
                "root privileges dropped for good: serving mail as {a} (IDs, groups and \
                 capabilities of every thread checked)"
            );
        }
        Plan::Root => tracing::warn!("serving mail as root ([server] allow_root = true)"),
        Plan::Stay { .. } => tracing::info!("{}", plan.explain()),
    }
    Ok(())
}

pub mod anchor;

#[cfg(test)]
mod tests;
