//! Opening, creating, renaming and removing files *beneath* one directory without ever
//! following a symbolic link: the containment primitive of the mail store.
//!
//! A user's mail root is opened once ([`Beneath::open`]; the root path itself may be a
//! symlink an admin set up, it is resolved then and never again). Every later path is
//! taken relative to that directory descriptor:
//!
//! * with `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` when the kernel has it
//!   (Linux ≥ 5.6): one system call, the kernel refuses any symlink and any `..` escape;
//! * otherwise (`ENOSYS`, or `EPERM` under a seccomp filter that does not know the call)
//!   by walking the path one component at a time with `openat(…, O_NOFOLLOW)` from
//!   directory descriptor to directory descriptor ([`Resolver::Walk`]).
//!
//! Renames, unlinks and `mkdir` go through the descriptor of the parent directory
//! (`renameat`, `unlinkat`, `mkdirat`), opened the same way, so a directory swapped for
//! a link between a check and the change cannot redirect it.
//!
//! A root given as `/proc/self/fd/N/...` (a folder the `loft` binary held open before
//! dropping root, see `privilege::anchor` in the binary) stays expressed through that
//! descriptor when resolved ([`canonicalize`]).
//!
//! Files and directories created here get an explicit mode after creation (`fchmod`),
//! so the process umask does not matter: see [`file_mode_beside`].
//!
//! `libc` is called directly (rather than through rustix) because the crate already
//! depends on it, the few calls needed are simple, and a leaf module with no crate
//! dependencies is what the index may use as well.
//!
//! This module depends on std and libc only; it knows nothing of mail.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// How paths are resolved beneath the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`.
    Openat2,
    /// `openat` with `O_NOFOLLOW`, component by component.
    Walk,
}

/// How a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Read,
    ReadWrite,
    /// Create a new file (`O_EXCL`) with exactly this mode, read-write.
    CreateNew(u32),
    /// Open read-write, creating it with exactly this mode when missing.
    OpenOrCreate(u32),
}

/// What `lstat` says about an entry (never a link's target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
    pub dev: u64,
    pub ino: u64,
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
    /// The permission bits (`0o7777`).
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// The mode of a file created in a directory of mode `dir_mode`: the directory's
/// permission bits without any `x` (a 0700 Maildir gets 0600 files, 0750 gets 0640).
pub fn file_mode_beside(dir_mode: u32) -> u32 {
    dir_mode & 0o666
}

/// The mode of a directory created in a directory of mode `parent_mode`: the same
/// read/write/search bits.
pub fn dir_mode_beside(parent_mode: u32) -> u32 {
    parent_mode & 0o777
}

/// A directory beneath which every path is resolved without following links.
#[derive(Debug)]
pub struct Beneath {
    root: PathBuf,
    fd: OwnedFd,
    resolver: Resolver,
    /// Device and inode of the root directory (it stays the one opened).
    id: (u64, u64),
}

/// `O_CLOEXEC | O_NOFOLLOW` and the access flags of `how`.
fn open_flags(how: How) -> libc::c_int {
    // O_NONBLOCK: a FIFO put where a file is expected would block `open` until a writer
    // came (a hang a local user could cause); regular files ignore the flag.
    let base = libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    match how {
        How::Read => base | libc::O_RDONLY,
        How::ReadWrite => base | libc::O_RDWR,
        How::CreateNew(_) => base | libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
        How::OpenOrCreate(_) => base | libc::O_RDWR,
    }
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// [`How::OpenOrCreate`] with `open(flags, mode)`: the existing file first (a lock file
/// exists nearly always: one call, no failed `O_EXCL` create), created with exactly
/// `mode` when missing, and opened again when another process created it meanwhile.
fn open_or_create(
    mode: u32,
    open: impl Fn(libc::c_int, u32) -> io::Result<OwnedFd>,
) -> io::Result<OwnedFd> {
    match open(open_flags(How::ReadWrite), 0) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        r => return r,
    }
    match open(open_flags(How::CreateNew(mode)), mode) {
        Ok(fd) => {
            fchmod(&fd, mode)?;
            Ok(fd)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open(open_flags(How::ReadWrite), 0),
        Err(e) => Err(e),
    }
}

fn own(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by a successful open call and is owned by no one.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The components of a relative path; `..`, a root or a prefix are refused.
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} leaves its directory", rel.display()),
                ))
            }
        }
    }
    Ok(out)
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, rel, flags | …, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`.
fn openat2(dir: RawFd, rel: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: flags as u64,
        mode: if flags & libc::O_CREAT != 0 {
            u64::from(mode)
        } else {
            0
        },
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    for _ in 0..8 {
        // SAFETY: `rel` is NUL-terminated and `how` a properly laid out `struct open_how`
        // (linux/openat2.h: three u64) whose size is passed; both outlive the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                rel.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match own(ret as libc::c_int) {
            // A concurrent rename elsewhere on the system: the kernel asks to retry.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            r => return r,
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// `openat(dir, name, flags)` for one component (`name` has no `/`).
fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is an open fd.
    own(unsafe { libc::openat(dir, name.as_ptr(), flags, mode as libc::c_uint) })
}

fn fchmod(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain system call on an open descriptor.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(|_| ())
}

fn fstatat(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<Stat> {
    // SAFETY: an all-zero `struct stat` is a valid value; it is only written by the call.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated, `st` a valid out pointer, `dir` an open fd.
    check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, flags) })?;
    Ok(Stat {
        mode: st.st_mode,
        size: st.st_size as u64,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec,
        ctime: st.st_ctime,
        ctime_nsec: st.st_ctime_nsec,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// `lstat` of `name` in the open directory `dir`: one system call, one path component,
/// a link reported as a link.
pub fn lstat_at(dir: &OwnedFd, name: &OsStr) -> io::Result<Stat> {
    let c = one_name(name)?;
    fstatat(dir.as_raw_fd(), &c, libc::AT_SYMLINK_NOFOLLOW)
}

/// `lstat` of an open descriptor.
pub fn fstat(fd: &impl AsRawFd) -> io::Result<Stat> {
    fstatat(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
}

impl Beneath {
    /// Opens `root` (following links in `root` itself: the admin's choice), with the
    /// best resolver the kernel offers.
    /// `LOFT_BENEATH=walk` in the environment forces the fallback (to test it, or on a
    /// system whose `openat2` misbehaves).
    pub fn open(root: &Path) -> io::Result<Beneath> {
        if std::env::var_os("LOFT_BENEATH").is_some_and(|v| v == "walk") {
            return Beneath::with_resolver(root, Resolver::Walk);
        }
        let mut b = Beneath::with_resolver(root, Resolver::Openat2)?;
        match openat2(
            b.fd.as_raw_fd(),
            c".",
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        ) {
            Ok(_) => {}
            // ENOSYS: kernel < 5.6; EPERM: a seccomp filter that does not know it;
            // EINVAL/E2BIG: resolve flags unknown to this kernel.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::E2BIG)
                ) =>
            {
                b.resolver = Resolver::Walk
            }
            Err(e) => return Err(e),
        }
        Ok(b)
    }

    /// Opens `root` with a given resolver (tests use [`Resolver::Walk`] to exercise the
    /// fallback on kernels that have `openat2`).
    pub fn with_resolver(root: &Path, resolver: Resolver) -> io::Result<Beneath> {
        let root = canonicalize(root)?;
        let c = cstr(root.as_os_str())?;
        // SAFETY: `c` is NUL-terminated and outlives the call.
        let fd = own(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        let st = fstat(&fd)?;
        Ok(Beneath {
            root,
            fd,
            resolver,
            id: (st.dev, st.ino),
        })
    }

    /// Device and inode of the root directory.
    pub fn root_id(&self) -> (u64, u64) {
        self.id
    }

    /// The resolved root path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// `path` relative to the root: an absolute path must start with the root, a
    /// relative one is taken as is. `..` is refused either way.
    fn rel<'a>(&self, path: &'a Path) -> io::Result<Vec<&'a OsStr>> {
        components(self.strip_root(path)?)
    }

    /// An absolute `path` without the root it must start with; a relative one as is.
    fn strip_root<'a>(&self, path: &'a Path) -> io::Result<&'a Path> {
        if !path.is_absolute() {
            return Ok(path);
        }
        path.strip_prefix(&self.root).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not beneath {}", path.display(), self.root.display()),
            )
        })
    }

    /// `path` relative to the root, checked like [`Self::rel`] without collecting the
    /// components (`openat2` refuses an escape by itself; this refuses `..` earlier).
    fn rel_path<'a>(&self, path: &'a Path) -> io::Result<&'a Path> {
        let rel = self.strip_root(path)?;
        if rel.as_os_str().is_empty()
            || rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} leaves its directory", rel.display()),
            ));
        }
        Ok(rel)
    }

    /// Opens the path made of `parts` with `flags` (which include `O_NOFOLLOW`).
    fn open_parts(&self, parts: &[&OsStr], flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
        let root = self.fd.as_raw_fd();
        if self.resolver == Resolver::Openat2 {
            let joined: PathBuf = if parts.is_empty() {
                PathBuf::from(".")
            } else {
                parts.iter().collect()
            };
            return openat2(root, &cstr(joined.as_os_str())?, flags, mode);
        }
        let Some((last, dirs)) = parts.split_last() else {
            return openat(root, c".", flags, mode);
        };
        let mut cur: Option<OwnedFd> = None;
        for d in dirs {
            let at = cur.as_ref().map_or(root, |f| f.as_raw_fd());
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            cur = Some(openat(at, &cstr(d)?, flags, 0)?);
        }
        let at = cur.as_ref().map_or(root, |f| f.as_raw_fd());
        openat(at, &cstr(last)?, flags, mode)
    }

    /// Opens a file beneath the root; no component may be a symbolic link (`ELOOP`,
    /// or `ENOTDIR` for a directory component on the fallback).
    pub fn open_file(&self, path: &Path, how: How) -> io::Result<File> {
        if self.resolver == Resolver::Openat2 && matches!(how, How::Read | How::ReadWrite) {
            // The hot path (every FETCH of a message): one allocation, one system call.
            let rel = self.rel_path(path)?;
            let fd = openat2(
                self.fd.as_raw_fd(),
                &cstr(rel.as_os_str())?,
                open_flags(how),
                0,
            )?;
            return Ok(File::from(fd));
        }
        let parts = self.rel(path)?;
        let fd = match how {
            How::Read | How::ReadWrite => self.open_parts(&parts, open_flags(how), 0)?,
            How::CreateNew(mode) => {
                let fd = self.open_parts(&parts, open_flags(how), mode)?;
                fchmod(&fd, mode)?;
                fd
            }
            How::OpenOrCreate(mode) => {
                open_or_create(mode, |flags, mode| self.open_parts(&parts, flags, mode))?
            }
        };
        Ok(File::from(fd))
    }

    /// Opens `name`, one component, in directory `dir` (a descriptor opened beneath the
    /// root), without following a link: the hot path of reading a message from a
    /// listed directory.
    pub fn open_in(&self, dir: &OwnedFd, name: &OsStr, how: How) -> io::Result<File> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let c = cstr(name)?;
        let fd = match (self.resolver, how) {
            (Resolver::Openat2, How::Read | How::ReadWrite) => {
                openat2(dir.as_raw_fd(), &c, open_flags(how), 0)?
            }
            (_, How::Read | How::ReadWrite) => openat(dir.as_raw_fd(), &c, open_flags(how), 0)?,
            (_, How::CreateNew(mode)) => {
                let fd = openat(dir.as_raw_fd(), &c, open_flags(How::CreateNew(mode)), mode)?;
                fchmod(&fd, mode)?;
                fd
            }
            (_, How::OpenOrCreate(mode)) => {
                open_or_create(mode, |flags, mode| openat(dir.as_raw_fd(), &c, flags, mode))?
            }
        };
        Ok(File::from(fd))
    }

    /// Opens a directory beneath the root for reading (listing, `fsync`, `*at` calls).
    pub fn open_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        let parts = self.rel(path)?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        self.open_parts(&parts, flags, 0)
    }

    /// The parent directory of `path` (opened beneath the root) and its last component.
    /// The root itself when `path` is one component: no open, no close (a folder's
    /// `lstat`, `rename` or `unlink` in the mail root is common).
    fn parent(&self, path: &Path) -> io::Result<(ParentDir<'_>, CString)> {
        let parts = self.rel(path)?;
        let Some((last, dirs)) = parts.split_last() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the root itself has no parent here",
            ));
        };
        if dirs.is_empty() {
            return Ok((ParentDir::Root(&self.fd), cstr(last)?));
        }
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        Ok((
            ParentDir::Opened(self.open_parts(dirs, flags, 0)?),
            cstr(last)?,
        ))
    }

    /// `lstat` of `name` in directory `dir` (opened beneath the root): one component,
    /// a link reported as a link, never followed. What [`Beneath::lstat`] does without
    /// opening the parent again, for many files of one directory.
    pub fn lstat_in(&self, dir: &OwnedFd, name: &OsStr) -> io::Result<Stat> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        fstatat(dir.as_raw_fd(), &cstr(name)?, libc::AT_SYMLINK_NOFOLLOW)
    }

    /// `lstat` of an entry: a link is reported as a link, never followed.
    pub fn lstat(&self, path: &Path) -> io::Result<Stat> {
        if self.rel(path)?.is_empty() {
            return fstat(&self.fd);
        }
        let (dir, name) = self.parent(path)?;
        fstatat(dir.as_raw_fd(), &name, libc::AT_SYMLINK_NOFOLLOW)
    }

    /// Creates a directory with exactly `mode` (not reduced by the umask).
    pub fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        // SAFETY: `name` is NUL-terminated; `dir` is open.
        check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let fd = openat(dir.as_raw_fd(), &name, flags, 0)?;
        fchmod(&fd, mode)
    }

    /// Creates a directory whose mode is that of its parent ([`dir_mode_beside`]).
    pub fn mkdir_beside(&self, path: &Path) -> io::Result<()> {
        let parent = path.parent().unwrap_or(Path::new(""));
        let mode = dir_mode_beside(self.stat_dir(parent)?.perm());
        self.mkdir(path, mode)
    }

    /// `fstat` of a directory opened beneath the root (the root for `""`).
    pub fn stat_dir(&self, path: &Path) -> io::Result<Stat> {
        fstat(&self.open_dir(path)?)
    }

    /// The mode a new file in directory `dir` gets ([`file_mode_beside`]).
    pub fn file_mode_in(&self, dir: &Path) -> io::Result<u32> {
        Ok(file_mode_beside(self.stat_dir(dir)?.perm()))
    }

    /// Renames `from` to `to` (both beneath the root; links in the last component are
    /// renamed as links, never followed).
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (fd1, n1) = self.parent(from)?;
        let (fd2, n2) = self.parent(to)?;
        // SAFETY: both names are NUL-terminated; both fds are open directories.
        check(unsafe { libc::renameat(fd1.as_raw_fd(), n1.as_ptr(), fd2.as_raw_fd(), n2.as_ptr()) })
            .map(|_| ())
    }

    /// Hard-links `from` to `to` (a link at `from` is linked as a link, not followed).
    pub fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (fd1, n1) = self.parent(from)?;
        let (fd2, n2) = self.parent(to)?;
        // SAFETY: both names are NUL-terminated; both fds are open directories.
        check(unsafe {
            libc::linkat(
                fd1.as_raw_fd(),
                n1.as_ptr(),
                fd2.as_raw_fd(),
                n2.as_ptr(),
                0,
            )
        })
        .map(|_| ())
    }

    /// Removes a file (or a link, never its target).
    pub fn unlink(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        // SAFETY: `name` is NUL-terminated; `dir` is open.
        check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(|_| ())
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        // SAFETY: `name` is NUL-terminated; `dir` is open.
        check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
            .map(|_| ())
    }

    /// The entries of a directory beneath the root (but `.` and `..`) with their
    /// `d_type` (`DT_UNKNOWN` when the file system does not say).
    pub fn list(&self, path: &Path) -> io::Result<Vec<(std::ffi::OsString, u8)>> {
        let mut out = Vec::new();
        each_entry(self.open_dir(path)?, |name, kind| {
            out.push((OsStr::from_bytes(name).to_os_string(), kind))
        })?;
        Ok(out)
    }

    /// Removes a directory tree without following links (a link inside is removed as
    /// a link). Depth is bounded by what a Maildir folder holds (`cur/`, `new/`, `tmp/`).
    pub fn remove_tree(&self, path: &Path) -> io::Result<()> {
        self.remove_tree_depth(path, 0)
    }

    fn remove_tree_depth(&self, path: &Path, depth: u32) -> io::Result<()> {
        if depth > 8 {
            return Err(io::Error::other(format!(
                "{} is nested too deep",
                path.display()
            )));
        }
        let names: Vec<std::ffi::OsString> = self.list(path)?.into_iter().map(|(n, _)| n).collect();
        for n in names {
            let p = path.join(&n);
            match self.lstat(&p) {
                Ok(st) if st.is_dir() => self.remove_tree_depth(&p, depth + 1)?,
                Ok(_) => self.unlink(&p)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.rmdir(path)
    }
}

/// The directory a path's last component is in: the root's own descriptor, or one
/// opened beneath it.
enum ParentDir<'a> {
    Root(&'a OwnedFd),
    Opened(OwnedFd),
}

impl AsRawFd for ParentDir<'_> {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            ParentDir::Root(fd) => fd.as_raw_fd(),
            ParentDir::Opened(fd) => fd.as_raw_fd(),
        }
    }
}

/// Calls `f(name, d_type)` for every entry of the open directory `fd` but `.` and `..`.
pub fn each_entry(fd: OwnedFd, f: impl FnMut(&[u8], u8)) -> io::Result<()> {
    each_entry_in(&fd, f)
}

/// Bytes asked of the kernel per `getdents64` (glibc's `readdir` asks 32 KiB).
const DIRENT_BUF: usize = 64 << 10;

/// Like [`each_entry`], on a directory descriptor that stays open: read from its start
/// (`lseek` to 0 first), so a descriptor kept from one listing to the next lists the
/// directory as it is now. The caller makes sure no other thread lists through the same
/// open file description at the same time (they share its position).
///
/// `getdents64` directly rather than `fdopendir`/`readdir`: no duplicated descriptor,
/// no `fcntl` calls and no `DIR` to allocate per listing.
pub fn each_entry_in(fd: &OwnedFd, mut f: impl FnMut(&[u8], u8)) -> io::Result<()> {
    // SAFETY: plain system call on a descriptor we borrow.
    if unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // Not zeroed: the kernel fills what it returns (a listing per sync of a busy folder
    // would otherwise clear 64 KiB each time).
    let mut buf: Vec<u8> = Vec::with_capacity(DIRENT_BUF);
    loop {
        buf.clear();
        // SAFETY: the kernel writes at most `capacity` bytes into the buffer, which
        // lives across the call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.capacity(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the kernel initialised the first `n` bytes (n <= capacity).
        unsafe { buf.set_len((n as usize).min(buf.capacity())) };
        for (name, kind) in Dirents(&buf) {
            if name != b"." && name != b".." {
                f(name, kind);
            }
        }
    }
}

/// The records of one `getdents64` answer (`struct linux_dirent64`: inode u64, offset
/// i64, record length u16, type u8, then the NUL-terminated name), read with bounds
/// checks: a record that does not fit ends the walk.
struct Dirents<'a>(&'a [u8]);

/// Offsets in `struct linux_dirent64`.
const D_RECLEN: usize = 16;
const D_TYPE: usize = 18;
const D_NAME: usize = 19;

impl<'a> Iterator for Dirents<'a> {
    type Item = (&'a [u8], u8);
    fn next(&mut self) -> Option<(&'a [u8], u8)> {
        let b = self.0;
        let len = usize::from(u16::from_ne_bytes([
            *b.get(D_RECLEN)?,
            *b.get(D_RECLEN + 1)?,
        ]));
        let rec = b.get(..len).filter(|_| len > D_NAME)?;
        self.0 = b.get(len..).unwrap_or_default();
        let name = rec.get(D_NAME..)?;
        let name = name.get(..name.iter().position(|&c| c == 0)?)?;
        Some((name, *rec.get(D_TYPE)?))
    }
}

/// Opens `path` without following a link in its last component (`O_NOFOLLOW`), for
/// code that has a path and no directory descriptor (the index engine). A created
/// file gets the mode [`file_mode_beside`] its directory, whatever the umask.
pub fn open_nofollow(path: &Path, how: How) -> io::Result<File> {
    let c = cstr(path.as_os_str())?;
    let open = |flags: libc::c_int, mode: u32| -> io::Result<OwnedFd> {
        // SAFETY: `c` is NUL-terminated and outlives the call.
        own(unsafe { libc::open(c.as_ptr(), flags, mode as libc::c_uint) })
    };
    let fd = match how {
        How::Read | How::ReadWrite => open(open_flags(how), 0)?,
        How::CreateNew(mode) => {
            let fd = open(open_flags(how), mode)?;
            fchmod(&fd, mode)?;
            fd
        }
        How::OpenOrCreate(mode) => open_or_create(mode, open)?,
    };
    Ok(File::from(fd))
}

/// One file name (no `/`, not `.` or `..`, not empty) as a C string.
fn one_name(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    cstr(name)
}

/// Opens directory `path` for reading (`*at` calls, `fsync`, listing) without following
/// a link in its last component. A path that is exactly `/proc/self/fd/N` (a descriptor
/// this process holds, see [`split_fd_path`]) is reopened through that descriptor.
pub fn open_dir_nofollow(path: &Path) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let c = match split_fd_path(path) {
        // The anchor itself is a /proc "magic link": followed as a directory component.
        Some((anchor, rest)) if rest.as_os_str().is_empty() => cstr(anchor.join(".").as_os_str())?,
        _ => cstr(path.as_os_str())?,
    };
    // SAFETY: `c` is NUL-terminated and outlives the call.
    own(unsafe { libc::open(c.as_ptr(), flags) })
}

/// Opens `name`, one component, in the open directory `dir` without following a link
/// (`ELOOP`). A created file gets exactly `mode` ([`How::CreateNew`]).
pub fn open_at(dir: &OwnedFd, name: &OsStr, how: How) -> io::Result<File> {
    let c = one_name(name)?;
    let fd = match how {
        How::Read | How::ReadWrite => openat(dir.as_raw_fd(), &c, open_flags(how), 0)?,
        How::CreateNew(mode) => {
            let fd = openat(dir.as_raw_fd(), &c, open_flags(how), mode)?;
            fchmod(&fd, mode)?;
            fd
        }
        How::OpenOrCreate(mode) => {
            open_or_create(mode, |flags, mode| openat(dir.as_raw_fd(), &c, flags, mode))?
        }
    };
    Ok(File::from(fd))
}

/// Reads `file` at offset `at` until `buf` is full or the file ends (a file that
/// shrank yields fewer bytes, which the caller's checks see); the bytes read.
pub fn read_full_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Copies `len` bytes of `from` at `from_at` to `to` at `to_at` inside the kernel
/// (`copy_file_range(2)`: no copy through user memory; a file system that can shares or
/// clones the blocks). Falls back to reads and writes where the call is not supported
/// (another file system, an old kernel). The files' positions are not used or moved.
pub fn copy_range(from: &File, from_at: u64, to: &File, to_at: u64, len: u64) -> io::Result<()> {
    let mut done = 0u64;
    while done < len {
        let chunk = (len - done).min(1 << 30) as usize;
        let mut off_in = i64::try_from(from_at + done).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mut off_out = i64::try_from(to_at + done).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: both descriptors are open files owned by the callers' `File`s for the
        // call; the offsets are plain integers the kernel reads and updates.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut off_in,
                to.as_raw_fd(),
                &mut off_out,
                chunk,
                0,
            )
        };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => done += n as u64,
            _ => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) => {
                        return copy_by_buffer(from, from_at + done, to, to_at + done, len - done)
                    }
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Starts writing back the dirty pages of `file` in `at..at + len` without waiting for
/// them (`sync_file_range(2)` with `SYNC_FILE_RANGE_WRITE`), so that a later `fdatasync`
/// finds less to write. Makes nothing durable by itself.
pub fn start_writeback(file: &File, at: u64, len: u64) -> io::Result<()> {
    let off = i64::try_from(at).map_err(|_| io::ErrorKind::InvalidInput)?;
    let n = i64::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: the descriptor is an open file owned by the caller's `File` for the call;
    // the other arguments are plain integers.
    let r = unsafe { libc::sync_file_range(file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE) };
    match r {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

fn copy_by_buffer(from: &File, from_at: u64, to: &File, to_at: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; (1usize << 20).min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        from.read_exact_at(&mut buf[..n], from_at + done)?;
        to.write_all_at(&buf[..n], to_at + done)?;
        done += n as u64;
    }
    Ok(())
}

/// The whole of `file`, read into a buffer sized for `expected` bytes (plus one: a file
/// of that size then needs no second buffer). Unlike `read_to_end` on a `File`, asks
/// the file system for no size (`std` takes an fstat and an lseek per call to size its
/// buffer, which a caller that knows the size pays for nothing). A file that grew or
/// shrank meanwhile yields what `read` returned.
pub fn read_sized(file: &File, expected: u64) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; expected.saturating_add(1).min(1 << 30) as usize];
    let mut filled = 0;
    loop {
        filled += read_full_at(file, &mut v[filled..], filled as u64)?;
        if filled < v.len() {
            break;
        }
        v.resize(filled + filled.clamp(64 << 10, 1 << 30), 0);
    }
    v.truncate(filled);
    Ok(v)
}

/// The metadata of `name` in the open directory `dir`, a link reported as a link
/// (`O_PATH | O_NOFOLLOW`, then `fstat`: the std type, ctime included).
pub fn metadata_at(dir: &OwnedFd, name: &OsStr) -> io::Result<std::fs::Metadata> {
    let c = one_name(name)?;
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    File::from(openat(dir.as_raw_fd(), &c, flags, 0)?).metadata()
}

/// `renameat` of two names in the same open directory (links renamed as links).
pub fn rename_at(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> io::Result<()> {
    let (a, b) = (one_name(from)?, one_name(to)?);
    let d = dir.as_raw_fd();
    // SAFETY: both names are NUL-terminated; `d` is an open directory.
    check(unsafe { libc::renameat(d, a.as_ptr(), d, b.as_ptr()) }).map(|_| ())
}

/// `linkat` of two names in the same open directory (a link is linked, not followed).
pub fn link_at(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> io::Result<()> {
    let (a, b) = (one_name(from)?, one_name(to)?);
    let d = dir.as_raw_fd();
    // SAFETY: both names are NUL-terminated; `d` is an open directory.
    check(unsafe { libc::linkat(d, a.as_ptr(), d, b.as_ptr(), 0) }).map(|_| ())
}

/// Opens `name`, one component, in the open directory `dir` for reading, never through a
/// link (and never blocking on a FIFO put there).
pub fn open_read_at(dir: &OwnedFd, name: &OsStr) -> io::Result<File> {
    let c = one_name(name)?;
    openat(dir.as_raw_fd(), &c, open_flags(How::Read), 0).map(File::from)
}

/// Opens `name`, one component, in the open directory `dir` for reading and writing,
/// never through a link.
pub fn open_rw_at(dir: &OwnedFd, name: &OsStr) -> io::Result<File> {
    let c = one_name(name)?;
    openat(dir.as_raw_fd(), &c, open_flags(How::ReadWrite), 0).map(File::from)
}

/// `flock(2)` on `file` without waiting: shared or exclusive. `Ok(false)` when another
/// open file holds a lock that conflicts.
pub fn try_flock(file: &File, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    } | libc::LOCK_NB;
    loop {
        // SAFETY: plain system call on a descriptor `file` keeps open for the call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Creates `name`, one component, in the open directory `dir`: a new file (`O_EXCL`, so
/// never through a link put there) with exactly `mode`, open read-write.
pub fn create_new_at(dir: &OwnedFd, name: &OsStr, mode: u32) -> io::Result<File> {
    let c = one_name(name)?;
    let fd = openat(dir.as_raw_fd(), &c, open_flags(How::CreateNew(mode)), mode)?;
    fchmod(&fd, mode)?;
    Ok(File::from(fd))
}

/// Creates `name`, one component, in the open directory `dir` with `content` already in
/// it: written to an unnamed file (`O_TMPFILE`) that is then linked under the name, so
/// the name never shows a file half written (a dotlock holding its holder's PID, even if
/// the process is killed while making it). `AlreadyExists` when the name is taken (a
/// link there is not followed). Other errors when the file system or `/proc` does not
/// allow it: the caller falls back to [`create_new_at`].
pub fn create_filled_at(
    dir: &OwnedFd,
    name: &OsStr,
    mode: u32,
    content: &[u8],
) -> io::Result<File> {
    use std::io::Write;
    let c = one_name(name)?;
    let fd = openat(
        dir.as_raw_fd(),
        c".",
        libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
        mode,
    )?;
    fchmod(&fd, mode)?;
    let mut f = File::from(fd);
    f.write_all(content)?;
    let proc = CString::new(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both names are NUL-terminated and outlive the call; `dir` is an open
    // directory. AT_SYMLINK_FOLLOW resolves the /proc magic link to the unnamed file; the
    // new name is never followed (linkat fails with EEXIST when it exists).
    check(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })?;
    Ok(f)
}

/// `unlinkat` of a file (or a link, never its target) in the open directory `dir`.
pub fn unlink_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let c = one_name(name)?;
    // SAFETY: `c` is NUL-terminated; `dir` is an open directory.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
}

/// The entry names of the open directory `dir` (but `.` and `..`), read through a new
/// open file description so that `dir`'s own position is untouched.
pub fn names_at(dir: &OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = openat(dir.as_raw_fd(), c".", flags, 0)?;
    let mut out = Vec::new();
    each_entry(fd, |name, _| {
        out.push(OsStr::from_bytes(name).to_os_string())
    })?;
    Ok(out)
}

/// The mode for a new file in the directory holding `path` ([`file_mode_beside`]);
/// 0600 when the directory cannot be asked.
pub fn file_mode_for(path: &Path) -> u32 {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::metadata(dir).map_or(0o600, |m| {
        file_mode_beside(std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
    })
}

/// Splits a path reached through one of this process's directory descriptors,
/// `/proc/self/fd/N/rest`, into `/proc/self/fd/N` and `rest` (`None` for any other
/// path). The `loft` binary, started as root, opens such descriptors for directories the
/// service account cannot reach by name (docs/operations.md, "Privileges").
pub fn split_fd_path(path: &Path) -> Option<(PathBuf, &Path)> {
    let rest = path.strip_prefix("/proc/self/fd").ok()?;
    let mut c = rest.components();
    let n = match c.next()? {
        Component::Normal(n) => n,
        _ => return None,
    };
    if n.is_empty() || !n.as_bytes().iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((Path::new("/proc/self/fd").join(n), c.as_path()))
}

/// `std::fs::canonicalize`, except that a path under `/proc/self/fd/N` stays expressed
/// through that descriptor while it resolves to a place beneath the descriptor's
/// directory: realpath(3) would turn it into the directory's real path, which an
/// account that cannot search the directory's ancestors cannot use. The path is
/// resolved once by the kernel (`O_PATH`, links followed as realpath would) and the
/// result read back from the new descriptor's link in /proc. A link that leads out of
/// the directory gives the real path it leads to.
pub fn canonicalize(path: &Path) -> io::Result<PathBuf> {
    let Some((anchor, _)) = split_fd_path(path) else {
        return std::fs::canonicalize(path);
    };
    let c = cstr(path.as_os_str())?;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    let fd = own(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    let base = std::fs::read_link(&anchor)?;
    Ok(match real.strip_prefix(&base) {
        Ok(rest) if rest.as_os_str().is_empty() => anchor,
        Ok(rest) => anchor.join(rest),
        Err(_) => real,
    })
}

/// Whether an error means "a symbolic link was in the way" (`ELOOP`; `EXDEV` when
/// `openat2` saw an escape; `ENOTDIR` when the fallback met a link as a directory).
pub fn is_link_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EXDEV))
}

#[cfg(test)]
mod tests;
