//! The folder directory of an index, held open for the index's whole life: every index
//! file is opened, created, renamed, listed and removed *relative to this descriptor*
//! with one file name and never through a link (`openat`/`renameat`/`unlinkat` with
//! `O_NOFOLLOW`, see `crate::beneath`). A folder directory renamed away and replaced by
//! a link after the index was opened cannot redirect a later write into another
//! directory: the descriptor still names the original directory.
//!
//! The path is kept for the registry key, for error messages and log lines only.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::beneath::{self, How};

/// An open folder directory and the (canonical) path that named it when opened.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of the directory.
    id: (u64, u64),
}

impl Dir {
    /// Opens `dir` (its last component must not be a link) and binds it to its canonical
    /// path: the descriptor must be the very directory that path resolves to now (same
    /// device and inode), else `ELOOP` (a link, or a directory swapped meanwhile).
    pub fn open(dir: &Path) -> io::Result<Dir> {
        let fd = beneath::open_dir_nofollow(dir).map_err(|e| {
            // `O_DIRECTORY | O_NOFOLLOW` on a link says ENOTDIR: report it as the link it is.
            let link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
            match e.raw_os_error() {
                Some(libc::ENOTDIR) if link => io::Error::from_raw_os_error(libc::ELOOP),
                _ => e,
            }
        })?;
        // Kept under /proc/self/fd/N when reached that way (see beneath::canonicalize).
        let path = beneath::canonicalize(dir)?;
        let held = beneath::fstat(&fd)?;
        let named = beneath::fstat(&beneath::open_dir_nofollow(&path)?)?;
        if (held.dev, held.ino) != (named.dev, named.ino) {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let id = (held.dev, held.ino);
        Ok(Dir { fd, path, id })
    }

    /// Device and inode of the directory.
    pub fn id(&self) -> (u64, u64) {
        self.id
    }

    /// Whether `path` names this very directory now (its last component not a link):
    /// one `lstat`, where [`Dir::open`] opens and resolves the whole path.
    pub fn is_at(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && (m.dev(), m.ino()) == self.id)
    }

    /// A second descriptor of the same directory (for a lock that outlives a borrow).
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
            id: self.id,
        })
    }

    /// The canonical path the directory had when opened (messages, keys, logs).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The human name of file `name` in this directory, for errors and logs.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The mode of a new file here (that of the mail beside it, whatever the umask).
    fn new_mode(&self) -> u32 {
        beneath::fstat(&self.fd).map_or(0o600, |st| beneath::file_mode_beside(st.perm()))
    }

    pub fn open_ro(&self, name: &str) -> io::Result<File> {
        beneath::open_at(&self.fd, OsStr::new(name), How::Read)
    }

    pub fn open_rw(&self, name: &str) -> io::Result<File> {
        beneath::open_at(&self.fd, OsStr::new(name), How::ReadWrite)
    }

    /// Opens read-write, creating it (mode of the mail beside it) when missing.
    pub fn open_or_create(&self, name: &str) -> io::Result<File> {
        beneath::open_at(
            &self.fd,
            OsStr::new(name),
            How::OpenOrCreate(self.new_mode()),
        )
    }

    /// Creates a new file (`O_EXCL`, never through a link); a leftover of that name
    /// (a crashed writer's temp file) is removed first.
    pub fn create_fresh(&self, name: &str) -> io::Result<File> {
        match self.create_fresh_excl(name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.remove(name)?;
                self.create_fresh_excl(name)
            }
            r => r,
        }
    }

    /// Creates a new file (`O_EXCL`: a dot-lock) with the mode of the mail beside it.
    pub fn create_fresh_excl(&self, name: &str) -> io::Result<File> {
        beneath::open_at(&self.fd, OsStr::new(name), How::CreateNew(self.new_mode()))
    }

    /// Reads a whole file.
    pub fn read_file(&self, name: &str) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io::Read::read_to_end(&mut self.open_ro(name)?, &mut v)?;
        Ok(v)
    }

    /// Metadata of `name`, a link reported as a link.
    pub fn metadata(&self, name: &str) -> io::Result<Metadata> {
        beneath::metadata_at(&self.fd, OsStr::new(name))
    }

    /// `lstat` of `name`: one system call (what a refresh asks of both files).
    pub fn lstat(&self, name: &str) -> io::Result<beneath::Stat> {
        beneath::lstat_at(&self.fd, OsStr::new(name))
    }

    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        beneath::rename_at(&self.fd, OsStr::new(from), OsStr::new(to))
    }

    pub fn hard_link(&self, from: &str, to: &str) -> io::Result<()> {
        beneath::link_at(&self.fd, OsStr::new(from), OsStr::new(to))
    }

    pub fn remove(&self, name: &str) -> io::Result<()> {
        beneath::unlink_at(&self.fd, OsStr::new(name))
    }

    /// The names in the directory.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        beneath::names_at(&self.fd)
    }

    /// `fsync` of the directory itself (after a create or a rename).
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: plain system call on an open descriptor owned by `self`.
        let rc = unsafe { libc::fsync(std::os::fd::AsRawFd::as_raw_fd(&self.fd)) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
