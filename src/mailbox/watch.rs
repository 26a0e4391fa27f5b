//! Change notification for IDLE: a Linux inotify descriptor watching the directories a
//! mailbox lives in — a Maildir folder's directory (the index files another session or
//! process appends to) and its `cur/` and `new/` (deliveries by an MTA, renames and
//! unlinks by other mail programs); an mbox file's directory (mail appended to the file,
//! the file rewritten or replaced). It only says "look
//! again": the session then syncs as it would on its poll tick, so a missed or spurious
//! event costs nothing but time, and the poll stays as the fallback (NFS: changes made on
//! another client raise no event here).
#![allow(unsafe_code)] // inotify has no wrapper in std; each block has a SAFETY comment

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What wakes a session in IDLE: entries made, renamed or removed, and files written.
const EVENTS: u32 = libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE;

/// A non-blocking descriptor that becomes readable when something in `dirs` may have
/// changed, or `None` when inotify is unavailable or a directory cannot be watched (then
/// IDLE polls). Links are not followed
/// (`IN_DONT_FOLLOW | IN_ONLYDIR`): a watch can only wake the session, never read.
pub fn change_signal(dirs: &[PathBuf]) -> Option<File> {
    // SAFETY: plain syscall without pointers; the result is checked before use.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by inotify_init1 and is owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut watching = 0;
    for dir in dirs {
        let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
            continue;
        };
        let mask = EVENTS | libc::IN_DONT_FOLLOW | libc::IN_ONLYDIR;
        // SAFETY: `fd` is the open inotify descriptor owned by `owned`; `c` is a
        // NUL-terminated path that outlives the call.
        if unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) } >= 0 {
            watching += 1;
        }
    }
    (watching == dirs.len()).then(|| File::from(owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A file delivered into `new/` makes the descriptor readable; reading it empty
    /// makes it quiet again.
    #[test]
    fn a_delivery_is_signalled() {
        let d = tempfile::tempdir().unwrap();
        for s in ["cur", "new", "tmp"] {
            std::fs::create_dir(d.path().join(s)).unwrap();
        }
        let top = d.path().to_path_buf();
        let dirs = [top.clone(), top.join("cur"), top.join("new")];
        let mut sig = change_signal(&dirs).expect("inotify");
        let mut buf = [0u8; 4096];
        assert!(sig.read(&mut buf).is_err(), "quiet before any change");
        std::fs::write(top.join("tmp/m"), b"x").unwrap();
        std::fs::rename(top.join("tmp/m"), top.join("new/m")).unwrap();
        assert!(sig.read(&mut buf).unwrap() > 0, "the delivery is signalled");
        while sig.read(&mut buf).is_ok() {}
        assert!(sig.read(&mut buf).is_err(), "quiet again once read");
    }
}
