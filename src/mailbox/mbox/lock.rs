//! Locking an mbox file against the other programs that write it — Postfix `local(8)`,
//! procmail, mutt, Python's `mailbox`, Dovecot — and against this process's own sessions.
//!
//! Three methods, taken in the configured order, each until one common deadline:
//!
//! * **dotlock**: the file `<name>.lock` beside the mbox, holding this process's PID:
//!   written to an unnamed file (`O_TMPFILE`) linked under the name, so it never appears
//!   empty (else made with `O_CREAT | O_EXCL`), in the folder's open directory (never
//!   through a link someone put there). One that names a process gone from this host, or whose mtime is
//!   older than the stale time (a holder that died without removing it, or one on another
//!   host), is removed and the lock taken again; it is removed only while it is still the
//!   same file (device and inode checked just before). Removed on release only if it is
//!   still ours.
//! * **fcntl**: an open-file-description lock (`F_OFD_SETLK`, Linux ≥ 3.15) over the
//!   whole file, shared for reading, exclusive for writing. It conflicts with the classic
//!   `fcntl`/`lockf` locks other programs take, and, unlike those, also between two
//!   descriptors of this process (two sessions) and is not dropped when some other
//!   descriptor of the file is closed.
//! * **flock**: `flock(2)`, for sites whose delivery agent uses it.
//!
//! Waiting polls (10 ms, doubling up to 200 ms): no lock is waited for without a deadline,
//! and a lock is never held while waiting for a client (the caller's rule). Dovecot's
//! defaults: reads `fcntl`, writes `dotlock` then `fcntl`.
//!
//! This module knows files and locks, nothing of messages or the index.
#![allow(unsafe_code)]
// fcntl and flock have no safe wrapper; each block has a SAFETY comment

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::beneath;

/// A locking method (`[storage] mbox_read_locks`, `mbox_write_locks`).
pub use crate::durability::MboxLock as Method;

/// Shared (reading) or exclusive (changing the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub read: Vec<Method>,
    pub write: Vec<Method>,
    /// How long to wait for all of them together.
    pub timeout: Duration,
    /// A dotlock not changed for this long is stale.
    pub dotlock_stale: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            read: vec![Method::Fcntl],
            write: vec![Method::Dotlock, Method::Fcntl],
            timeout: Duration::from_secs(30),
            dotlock_stale: Duration::from_secs(120),
        }
    }
}

#[derive(Debug)]
pub enum LockError {
    /// Another program held the lock until the deadline.
    Timeout { method: Method, waited: Duration },
    /// The lock could not be asked for (e.g. no right to create the dotlock).
    Io { method: Method, error: io::Error },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Timeout { method, waited } => write!(
                f,
                "{} lock still held by another program after {} ms",
                method.name(),
                waited.as_millis()
            ),
            LockError::Io { method, error } => {
                write!(f, "cannot take the {} lock: {error}", method.name())
            }
        }
    }
}

/// The locks held on one mbox file; all released when dropped (in reverse order).
pub struct Held {
    dotlock: Option<Dotlock>,
    /// Descriptors holding a kernel lock (duplicates of the mbox's: the lock belongs to
    /// the open file description), with the method each holds.
    kernel: Vec<(Method, File)>,
}

impl Held {
    /// The locks held, in the order taken (tests).
    #[cfg(test)]
    pub fn methods(&self) -> Vec<Method> {
        let mut m: Vec<Method> = self.dotlock.iter().map(|_| Method::Dotlock).collect();
        m.extend(self.kernel.iter().map(|(k, _)| *k));
        m
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for (method, f) in self.kernel.drain(..).rev() {
            let _ = kernel_lock(&f, method, None);
        }
        if let Some(d) = self.dotlock.take() {
            d.release();
        }
    }
}

/// Locks the mbox `file`, named `name` in the open directory `dir`, for `kind`.
pub fn lock(
    dir: &OwnedFd,
    name: &OsStr,
    file: &File,
    kind: Kind,
    cfg: &Config,
) -> Result<Held, LockError> {
    let started = Instant::now();
    let deadline = started + cfg.timeout;
    let methods = match kind {
        Kind::Read => &cfg.read,
        Kind::Write => &cfg.write,
    };
    let mut held = Held {
        dotlock: None,
        kernel: Vec::new(),
    };
    for &method in methods {
        let io = |error| LockError::Io { method, error };
        let timeout = || LockError::Timeout {
            method,
            waited: started.elapsed(),
        };
        match method {
            Method::Dotlock if held.dotlock.is_none() => {
                held.dotlock = Some(
                    Dotlock::take(dir, name, deadline, cfg.dotlock_stale).map_err(|e| match e {
                        Waited::Timeout => timeout(),
                        Waited::Io(e) => io(e),
                    })?,
                );
            }
            Method::Dotlock => {}
            Method::Fcntl | Method::Flock => {
                let f = file.try_clone().map_err(io)?;
                poll(deadline, || kernel_lock(&f, method, Some(kind))).map_err(|e| match e {
                    Waited::Timeout => timeout(),
                    Waited::Io(e) => io(e),
                })?;
                held.kernel.push((method, f));
            }
        }
    }
    Ok(held)
}

enum Waited {
    Timeout,
    Io(io::Error),
}

/// Calls `attempt` until it gives `Ok(true)` or the deadline passes; `Ok(false)` means
/// "held by someone else, try again". The pauses start at 2 ms and grow to 25 ms, not
/// more: a delivery agent holds a lock for milliseconds, and a longer pause would leave
/// the file unlocked and unread (an IDLE session's new mail late by up to the pause)
/// while it delivers the next message. An attempt costs one system call (or a link).
fn poll(deadline: Instant, mut attempt: impl FnMut() -> io::Result<bool>) -> Result<(), Waited> {
    let mut pause = Duration::from_millis(2);
    loop {
        if attempt().map_err(Waited::Io)? {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Waited::Timeout);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// Takes (`Some(kind)`) or releases (`None`) a kernel lock on `f` without waiting:
/// `Ok(false)` when another holder has it.
fn kernel_lock(f: &File, method: Method, kind: Option<Kind>) -> io::Result<bool> {
    let fd = f.as_raw_fd();
    let rc = match method {
        Method::Fcntl => {
            // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = match kind {
                Some(Kind::Read) => libc::F_RDLCK,
                Some(Kind::Write) => libc::F_WRLCK,
                None => libc::F_UNLCK,
            } as libc::c_short;
            fl.l_whence = libc::SEEK_SET as libc::c_short;
            // l_start = l_len = 0: the whole file, however long it grows; l_pid must be
            // 0 for OFD locks.
            // SAFETY: `fd` is open for the call; `fl` is a valid flock that outlives it.
            unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) }
        }
        Method::Flock => {
            let op = match kind {
                Some(Kind::Read) => libc::LOCK_SH | libc::LOCK_NB,
                Some(Kind::Write) => libc::LOCK_EX | libc::LOCK_NB,
                None => libc::LOCK_UN,
            };
            // SAFETY: plain system call on an open descriptor.
            unsafe { libc::flock(fd, op) }
        }
        Method::Dotlock => return Ok(true),
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // EWOULDBLOCK is EAGAIN on Linux.
        Some(libc::EAGAIN | libc::EACCES | libc::EINTR) => Ok(false),
        _ => Err(e),
    }
}

/// A dotlock this process made.
struct Dotlock {
    dir: OwnedFd,
    name: OsString,
    dev: u64,
    ino: u64,
}

impl Dotlock {
    fn take(
        dir: &OwnedFd,
        mbox: &OsStr,
        deadline: Instant,
        stale: Duration,
    ) -> Result<Dotlock, Waited> {
        let mut name = mbox.to_os_string();
        name.push(".lock");
        let dir = dir.try_clone().map_err(Waited::Io)?;
        let mut made = None;
        let pid = format!("{}\n", std::process::id());
        poll(deadline, || match create_with_pid(&dir, &name, &pid) {
            Ok(f) => {
                let st = beneath::fstat(&f)?;
                made = Some((st.dev, st.ino));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                break_if_stale(&dir, &name, stale)?;
                Ok(false)
            }
            Err(e) => Err(e),
        })?;
        let (dev, ino) = made.ok_or(Waited::Timeout)?;
        Ok(Dotlock {
            dir,
            name,
            dev,
            ino,
        })
    }

    fn release(self) {
        let ours = beneath::lstat_at(&self.dir, &self.name)
            .is_ok_and(|st| st.dev == self.dev && st.ino == self.ino);
        if ours {
            let _ = beneath::unlink_at(&self.dir, &self.name);
        } else {
            tracing::warn!(lock = ?self.name, "our dotlock was removed or replaced by another program while held");
        }
    }
}

/// Makes the dotlock `name` holding `pid`: appearing with its content (so a process
/// killed while making it never leaves an empty lock that names no holder), or, where the
/// file system cannot do that, created then written.
fn create_with_pid(dir: &OwnedFd, name: &OsStr, pid: &str) -> io::Result<File> {
    match beneath::create_filled_at(dir, name, 0o600, pid.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            let mut f = beneath::create_new_at(dir, name, 0o600)?;
            if let Err(e) = f.write_all(pid.as_bytes()) {
                // Just made with O_EXCL, so ours: never left behind empty (a full disk
                // makes the name but not its content).
                let _ = beneath::unlink_at(dir, name);
                return Err(e);
            }
            Ok(f)
        }
        other => other,
    }
}

/// Whether the mbox `mbox` has a dotlock whose holder is a process of this host that is
/// gone (a crash): taking the write lock removes it, which other programs would do only
/// after their own stale time (Postfix 500 s, procmail about 17 minutes).
pub fn dead_dotlock(dir: &OwnedFd, mbox: &OsStr) -> bool {
    let mut name = mbox.to_os_string();
    name.push(".lock");
    beneath::lstat_at(dir, &name).is_ok_and(|st| st.is_file()) && holder_is_gone(dir, &name)
}

/// Removes the dotlock `name` when stale: it names a process of this host that is gone,
/// or it was not changed for `stale`. Only the file looked at is removed (checked again
/// just before).
fn break_if_stale(dir: &OwnedFd, name: &OsStr, stale: Duration) -> io::Result<()> {
    let Ok(st) = beneath::lstat_at(dir, name) else {
        return Ok(()); // gone meanwhile: the next attempt takes it
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let old = now.saturating_sub(st.mtime) >= stale.as_secs() as i64;
    let dead = !old && st.is_file() && holder_is_gone(dir, name);
    if !(old || dead) {
        return Ok(());
    }
    match beneath::lstat_at(dir, name) {
        Ok(again) if again.dev == st.dev && again.ino == st.ino && again.mtime == st.mtime => {
            tracing::warn!(lock = ?name, age_secs = now - st.mtime, holder_gone = dead, "removing a stale mbox dotlock");
            match beneath::unlink_at(dir, name) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Whether the dotlock holds the PID of a process that does not exist here. A lock with
/// anything else in it (empty, another host's, binary) is left to the stale time.
fn holder_is_gone(dir: &OwnedFd, name: &OsStr) -> bool {
    let Ok(f) = beneath::open_read_at(dir, name) else {
        return false;
    };
    let mut text = String::new();
    if f.take(32).read_to_string(&mut text).is_err() {
        return false;
    }
    let Ok(pid) = text.trim().parse::<i32>() else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    struct Box_ {
        _tmp: tempfile::TempDir,
        dir: OwnedFd,
        path: std::path::PathBuf,
    }

    fn mbox() -> Box_ {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("box");
        std::fs::write(&path, b"").unwrap();
        let dir = OwnedFd::from(File::open(tmp.path()).unwrap());
        Box_ {
            _tmp: tmp,
            dir,
            path,
        }
    }

    fn cfg(write: &[Method], timeout_ms: u64) -> Config {
        Config {
            read: vec![Method::Fcntl],
            write: write.to_vec(),
            timeout: Duration::from_millis(timeout_ms),
            dotlock_stale: Duration::from_secs(120),
        }
    }

    fn open(b: &Box_) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&b.path)
            .unwrap()
    }

    fn try_lock(b: &Box_, kind: Kind, c: &Config) -> Result<Held, LockError> {
        lock(&b.dir, OsStr::new("box"), &open(b), kind, c)
    }

    #[test]
    fn two_sessions_of_one_process_exclude_each_other() {
        let b = mbox();
        for methods in [
            &[Method::Dotlock, Method::Fcntl][..],
            &[Method::Fcntl],
            &[Method::Flock],
        ] {
            let c = cfg(methods, 150);
            let held = try_lock(&b, Kind::Write, &c).unwrap();
            assert_eq!(held.methods(), methods);
            assert_eq!(
                b.path.with_file_name("box.lock").exists(),
                methods.contains(&Method::Dotlock)
            );
            let t0 = Instant::now();
            match try_lock(&b, Kind::Write, &c) {
                Err(LockError::Timeout { method, .. }) => assert_eq!(method, methods[0]),
                other => panic!("{methods:?}: {:?}", other.map(|h| h.methods())),
            }
            assert!(
                t0.elapsed() >= Duration::from_millis(140),
                "gave up before the deadline"
            );
            drop(held);
            assert!(!b.path.with_file_name("box.lock").exists());
            drop(try_lock(&b, Kind::Write, &c).expect("free again"));
        }
    }

    #[test]
    fn readers_share_a_writer_waits() {
        let b = mbox();
        let c = cfg(&[Method::Fcntl], 100);
        let r1 = try_lock(&b, Kind::Read, &c).unwrap();
        let r2 = try_lock(&b, Kind::Read, &c).unwrap();
        assert!(matches!(
            try_lock(&b, Kind::Write, &c),
            Err(LockError::Timeout { .. })
        ));
        drop((r1, r2));
        let w = try_lock(&b, Kind::Write, &c).unwrap();
        assert!(matches!(
            try_lock(&b, Kind::Read, &c),
            Err(LockError::Timeout { .. })
        ));
        drop(w);
    }

    #[test]
    fn stale_dotlocks_are_broken_live_ones_kept() {
        let b = mbox();
        let lockfile = b.path.with_file_name("box.lock");
        let c = cfg(&[Method::Dotlock], 120);
        // Held by a live process (this one): kept.
        std::fs::write(&lockfile, format!("{}\n", std::process::id())).unwrap();
        assert!(matches!(
            try_lock(&b, Kind::Write, &c),
            Err(LockError::Timeout { .. })
        ));
        // Held by a process that is gone: broken at once.
        let mut child = Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        std::fs::write(&lockfile, format!("{gone}\n")).unwrap();
        drop(try_lock(&b, Kind::Write, &c).expect("the dead holder's lock is broken"));
        // Something else in it: kept while fresh, broken once older than the stale time.
        std::fs::write(&lockfile, b"host.example:123").unwrap();
        assert!(matches!(
            try_lock(&b, Kind::Write, &c),
            Err(LockError::Timeout { .. })
        ));
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&lockfile)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        drop(try_lock(&b, Kind::Write, &c).expect("an old lock is broken"));
        assert!(!lockfile.exists());
    }

    #[test]
    fn a_link_at_the_dotlock_is_never_followed() {
        let b = mbox();
        let target = b.path.with_file_name("elsewhere");
        let lockfile = b.path.with_file_name("box.lock");
        std::os::unix::fs::symlink(&target, &lockfile).unwrap();
        let c = cfg(&[Method::Dotlock], 100);
        assert!(matches!(
            try_lock(&b, Kind::Write, &c),
            Err(LockError::Timeout { .. })
        ));
        assert!(!target.exists(), "the link was followed");
        let mut c = c;
        c.dotlock_stale = Duration::ZERO;
        drop(try_lock(&b, Kind::Write, &c).expect("a stale link is removed, not followed"));
        assert!(!target.exists());
    }

    /// Python's `mailbox.mbox.lock()` (lockf + dotlock, what many tools use) and Loft's
    /// default write locks exclude each other both ways.
    #[test]
    fn python_mailbox_and_loft_exclude_each_other() {
        if Command::new("python3").arg("-V").output().is_err() {
            eprintln!("python3 not installed: skipped");
            return;
        }
        let b = mbox();
        let script = "import mailbox, sys\n\
            box = mailbox.mbox(sys.argv[1], create=False)\n\
            try:\n    box.lock()\nexcept mailbox.ExternalClashError:\n    sys.exit(3)\n\
            print('locked', flush=True)\n\
            sys.stdin.read()\n\
            box.unlock()\n";
        let mut py = Command::new("python3")
            .args(["-c", script])
            .arg(&b.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = [0u8; 7];
        py.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
        assert_eq!(&line, b"locked\n");
        let c = Config {
            timeout: Duration::from_millis(300),
            ..Config::default()
        };
        assert!(matches!(
            try_lock(&b, Kind::Write, &c),
            Err(LockError::Timeout {
                method: Method::Dotlock,
                ..
            })
        ));
        // The kernel lock alone conflicts with Python's lockf too.
        assert!(matches!(
            try_lock(&b, Kind::Write, &cfg(&[Method::Fcntl], 200)),
            Err(LockError::Timeout {
                method: Method::Fcntl,
                ..
            })
        ));
        drop(py.stdin.take());
        assert!(py.wait().unwrap().success());
        let held = try_lock(&b, Kind::Write, &c).expect("free once Python unlocked");
        let status = Command::new("python3")
            .args(["-c", script])
            .arg(&b.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(3), "Python locked a file Loft holds");
        drop(held);
    }
}
