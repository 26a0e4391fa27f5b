//! How index files are read, and the two lock syscalls (the only `unsafe` of
//! `index`, see [`try_lock`]).
//!
//! Index files are read with `read`/`pread` into buffers, never memory-mapped: any file
//! under a mail root can be truncated by another program (another Loft, Dovecot, an
//! admin, a full disk) at any moment, and touching a mapped page past the new end of
//! the file raises SIGBUS, which kills the whole daemon. A read of a shrunken file just
//! returns fewer bytes, which the CRC checks then reject. See "Reading files" in
//! `docs/index-format.md` for the reasoning and the measured cost.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

/// One non-blocking attempt at an exclusive lock on the whole of `fd`: an fcntl
/// open-file-description lock `F_OFD_SETLK` (`fcntl = true`) or `flock(LOCK_EX |
/// LOCK_NB)`. OFD locks are the fcntl byte-range locks other processes (and NFS) see,
/// but owned by the open file like flock's: two descriptors of one process exclude each
/// other, and closing another descriptor of the file does not drop the lock (classic
/// `F_SETLK` locks are per process and are dropped by any close). Returns the libc result
/// (0 = locked; -1 = see errno).
pub fn try_lock(fd: std::os::unix::io::RawFd, fcntl: bool) -> i32 {
    set_lock(fd, fcntl, true)
}

/// Releases the lock [`try_lock`] took on `fd` (same `fcntl` choice). Returns the libc
/// result (0 = unlocked).
pub fn unlock(fd: std::os::unix::io::RawFd, fcntl: bool) -> i32 {
    set_lock(fd, fcntl, false)
}

/// `F_OFD_SETLK` with a write lock or an unlock on the whole file, or `flock` with
/// `LOCK_EX | LOCK_NB` or `LOCK_UN`.
fn set_lock(fd: std::os::unix::io::RawFd, fcntl: bool, lock: bool) -> i32 {
    if fcntl {
        // SAFETY: `libc::flock` is plain old data for which all-zero bytes are valid;
        // `l_pid` must stay 0 for an OFD lock.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = if lock { libc::F_WRLCK } else { libc::F_UNLCK } as _;
        fl.l_whence = libc::SEEK_SET as _;
        // SAFETY: `fd` is an open descriptor owned by the caller for the duration of the
        // call; F_OFD_SETLK only reads the struct we pass by valid pointer.
        unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl as *const libc::flock) }
    } else {
        let op = if lock {
            libc::LOCK_EX | libc::LOCK_NB
        } else {
            libc::LOCK_UN
        };
        // SAFETY: `fd` is an open descriptor owned by the caller; flock takes no pointers.
        unsafe { libc::flock(fd, op) }
    }
}
