//! Reading a whole index file: through a read-only memory map, or (with `nfs = true`,
//! or for empty files) with plain reads. This is the only module of `index` with
//! `unsafe` (it also holds the two lock syscalls, see [`try_lock`]).
//!
//! Loft never modifies `loft.index` in place: a new version is written to a temp file and
//! renamed over it, so the inode a map points at stays as it was. The length is checked
//! against fstat right before and right after mapping, and the map is decoded at once and
//! dropped, so only a foreign process truncating the file in place during that decode
//! could make a page vanish (SIGBUS); callers never hold a map between uses.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;

pub enum FileBytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Map(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

fn read_all(file: &File, len: u64) -> io::Result<FileBytes> {
    let mut v = Vec::with_capacity(len as usize);
    let mut f = file;
    f.read_to_end(&mut v)?;
    Ok(FileBytes::Owned(v))
}

/// The current content of `file` (opened read-only, positioned at 0).
pub fn read_whole(file: &File, nfs: bool) -> io::Result<FileBytes> {
    let len = file.metadata()?.len();
    if nfs || len == 0 || usize::try_from(len).is_err() {
        return read_all(file, len);
    }
    // SAFETY: the map is read-only and private to this function's caller; `len` was just
    // taken from fstat, so every mapped page is backed by the file as it is now. Loft
    // replaces index files by rename and never truncates them in place (see the module
    // doc); the length is re-checked below and a change falls back to plain reads.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .len(len as usize)
            .populate()
            .map(file)?
    };
    if file.metadata()?.len() != len {
        drop(map);
        return read_all(file, len);
    }
    Ok(FileBytes::Map(map))
}

/// One non-blocking attempt at an exclusive lock on the whole of `fd`: fcntl `F_SETLK`
/// (`fcntl = true`; per process, released when any descriptor of the file is closed by
/// this process) or `flock(LOCK_EX | LOCK_NB)`. Returns the libc result (0 = locked;
/// -1 = see errno).
pub fn try_lock(fd: std::os::unix::io::RawFd, fcntl: bool) -> i32 {
    if fcntl {
        // SAFETY: `libc::flock` is plain old data for which all-zero bytes are valid.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as _;
        fl.l_whence = libc::SEEK_SET as _;
        // SAFETY: `fd` is an open descriptor owned by the caller for the duration of the
        // call; F_SETLK only reads the struct we pass by valid pointer.
        unsafe { libc::fcntl(fd, libc::F_SETLK, &fl as *const libc::flock) }
    } else {
        // SAFETY: `fd` is an open descriptor owned by the caller; flock takes no pointers.
        unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }
    }
}
