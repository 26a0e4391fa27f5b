//! "Nothing changed here since": one inotify instance per storage context watching the
//! directories of the folders open in this process (the folder itself, for its index
//! and keyword files, and its `cur/` and `new/`). A sync whose folder received no event
//! since its last look at the folder's stamps skips the look: one `read` that finds the
//! queue empty instead of five or six `lstat`s (a look per command was a sixth of a busy
//! server's system calls).
//!
//! Events are queued by the kernel inside the system call that changes the directory
//! (rename, unlink, write…), whichever local process makes it, so an event of a change
//! completed before a sync began is in the queue when the sync reads it. A folder's
//! [`Token`] is therefore taken *before* the look it vouches for: any change after it
//! moves the token, one before it is seen by the look. What inotify cannot vouch for
//! turns the fast path off and the looks on: NFS (another client's changes raise no
//! event here; the caller never asks), a full queue (every folder's token moves), a
//! watched directory removed or renamed away, no inotify or no watch left.
//!
//! One instance for the process, not one per folder: Linux allows 128 per user.
//!
//! This module knows directories and inotify, nothing of messages or indexes.
#![allow(unsafe_code)] // inotify has no wrapper in std; each block has a SAFETY comment

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Every change that can move a fingerprint: entries made, renamed or removed, files
/// written, metadata changed (an index file's ctime), the directory itself gone.
const MASK: u32 = libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

/// After one of these a watch no longer tells about the folder's directory.
const GONE: u32 = libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED | libc::IN_UNMOUNT;

/// The storage context's inotify instance.
pub struct Changes {
    /// Made by the first watch (a process that never syncs a folder holds none of the
    /// 128 instances a user may have); `None` inside: inotify unavailable, nothing is
    /// watched.
    fd: std::sync::OnceLock<Option<OwnedFd>>,
    state: Mutex<Dispatch>,
}

#[derive(Default)]
struct Dispatch {
    /// Watch descriptor → the folder it belongs to and which of its directories it is.
    by_wd: HashMap<i32, (Arc<Gen>, Place)>,
    /// Folders watched so far: a token of one folder's watches never equals one of
    /// watches made before or after.
    made: u64,
    /// Queue overflows seen (events were lost: every folder may have changed).
    overflows: u64,
}

/// One folder's count of events.
#[derive(Default)]
struct Gen {
    /// Which watches these are (see `Dispatch::made`).
    id: u64,
    n: AtomicU64,
    /// A watched directory went away: the watches say nothing more.
    gone: AtomicBool,
    /// The entries the events named, numbered as they were counted.
    log: Mutex<Log>,
}

/// The most entries a folder's log keeps; beyond, it starts again (and says so).
const LOG_MAX: usize = 256;

/// The events of one folder that named an entry, in the order the kernel queued them.
#[derive(Default)]
struct Log {
    /// Every event counted after this number is in `entries`.
    from: u64,
    entries: Vec<(u64, Place, Box<[u8]>, Presence)>,
}

/// Which of a folder's watched directories an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// The folder's own directory (index and keyword files, `cur` and `new` themselves).
    Folder,
    Cur,
    New,
}

/// What an event says of the entry it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    /// Made or moved in.
    Made,
    /// Removed or moved away.
    Gone,
    /// Something these events cannot judge (a directory, or an event without a name).
    Odd,
}

/// An entry of a watched directory some event since a token named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Touched {
    pub place: Place,
    pub name: Vec<u8>,
    /// There before the first of those events, as far as the events tell.
    pub was: bool,
    /// There after the last of them.
    pub is: bool,
}

/// The events seen up to a moment, for one folder: equal tokens mean no event between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    id: u64,
    n: u64,
    overflows: u64,
}

/// A folder's watches; removed when dropped.
pub struct Watched {
    changes: Arc<Changes>,
    gen: Arc<Gen>,
    wds: Vec<i32>,
}

impl Changes {
    /// A new instance; its inotify descriptor is made by the first watch (when the kernel
    /// refuses one, nothing is watched and nothing skipped).
    pub fn new() -> Arc<Changes> {
        Arc::new(Changes {
            fd: std::sync::OnceLock::new(),
            state: Mutex::new(Dispatch::default()),
        })
    }

    /// The inotify descriptor, made on first use.
    fn fd(&self) -> Option<&OwnedFd> {
        self.fd
            .get_or_init(|| {
                // SAFETY: plain syscall without pointers; the result is checked before use.
                let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
                // SAFETY: `fd` was just returned by inotify_init1 and is owned by nothing else.
                (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
            })
            .as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, Dispatch> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watches the directory open as `dir` and its `cur/` and `new/` (reached from `dir`,
    /// no link followed). `None` when any watch cannot be added, or a directory is
    /// already watched for another folder (one inode, one watch descriptor).
    pub fn watch(self: &Arc<Changes>, dir: &OwnedFd) -> Option<Watched> {
        let fd = self.fd()?.as_raw_fd();
        let top = format!("/proc/self/fd/{}", dir.as_raw_fd());
        let mut st = self.lock();
        st.made += 1;
        let gen = Arc::new(Gen {
            id: st.made,
            ..Gen::default()
        });
        let mut wds = Vec::with_capacity(3);
        for (path, nofollow, place) in [
            (top.clone(), 0, Place::Folder),
            (format!("{top}/cur"), libc::IN_DONT_FOLLOW, Place::Cur),
            (format!("{top}/new"), libc::IN_DONT_FOLLOW, Place::New),
        ] {
            let c = CString::new(path).ok()?;
            // SAFETY: `fd` is the open inotify descriptor of `self`; `c` is a
            // NUL-terminated path that outlives the call.
            let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), MASK | nofollow) };
            if wd < 0 || st.by_wd.contains_key(&wd) || wds.contains(&wd) {
                for w in wds {
                    st.by_wd.remove(&w);
                    self.unwatch(w);
                }
                return None;
            }
            st.by_wd.insert(wd, (gen.clone(), place));
            wds.push(wd);
        }
        Some(Watched {
            changes: self.clone(),
            gen,
            wds,
        })
    }

    fn unwatch(&self, wd: i32) {
        if let Some(fd) = self.fd.get().and_then(Option::as_ref) {
            // SAFETY: plain syscall on our own inotify descriptor; failure is harmless.
            unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
        }
    }

    /// The folder's token now, after reading every queued event; `None` once its watches
    /// say nothing more (a directory gone).
    pub fn token(&self, w: &Watched) -> Option<Token> {
        let overflows = self.drain()?;
        if w.gen.gone.load(Ordering::Acquire) {
            return None;
        }
        Some(Token {
            id: w.gen.id,
            n: w.gen.n.load(Ordering::Acquire),
            overflows,
        })
    }

    /// Reads the queue empty, counting each event for its folder; the overflow count.
    /// `None` when the queue cannot be read (events may be waiting unread).
    fn drain(&self) -> Option<u64> {
        let fd = self.fd.get().and_then(Option::as_ref)?;
        let mut st = self.lock();
        let mut buf = [0u8; 4096];
        // The kernel returns as many whole events as fit: a read that left room for the
        // largest one took every event queued when it ran (what came later is a change
        // after the token, so need not be read now).
        const ROOM: usize = std::mem::size_of::<libc::inotify_event>() + 256;
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`, which outlives the call.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                match std::io::Error::last_os_error().kind() {
                    std::io::ErrorKind::WouldBlock => return Some(st.overflows),
                    std::io::ErrorKind::Interrupted => continue,
                    _ => return None,
                }
            }
            let n = n as usize;
            st.dispatch(&buf[..n]);
            if n + ROOM <= buf.len() {
                return Some(st.overflows);
            }
        }
    }
}

impl Dispatch {
    /// Counts the events of one read (whole `inotify_event` records, as the kernel
    /// returns them).
    fn dispatch(&mut self, mut b: &[u8]) {
        const HEAD: usize = std::mem::size_of::<libc::inotify_event>();
        while b.len() >= HEAD {
            let wd = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            let mask = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
            let len = u32::from_ne_bytes([b[12], b[13], b[14], b[15]]) as usize;
            let name = b.get(HEAD..HEAD + len).unwrap_or_default();
            // The name is NUL-padded to an alignment.
            let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
            if mask & libc::IN_Q_OVERFLOW != 0 {
                self.overflows += 1;
            } else if let Some((g, place)) = self.by_wd.get(&wd) {
                if mask & GONE != 0 {
                    g.gone.store(true, Ordering::Release);
                }
                let n = g.n.fetch_add(1, Ordering::AcqRel) + 1;
                g.note(n, *place, name, mask);
            }
            b = b.get(HEAD + len..).unwrap_or_default();
        }
    }
}

impl Gen {
    /// Logs event `n` when it says an entry came or went (or cannot be judged).
    fn note(&self, n: u64, place: Place, name: &[u8], mask: u32) {
        let presence = if name.is_empty() || mask & libc::IN_ISDIR != 0 {
            Presence::Odd
        } else if mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
            Presence::Made
        } else if mask & (libc::IN_DELETE | libc::IN_MOVED_FROM) != 0 {
            Presence::Gone
        } else {
            return; // written or its attributes changed: still there
        };
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.entries.len() >= LOG_MAX {
            log.entries.clear();
            log.from = n;
            return;
        }
        log.entries.push((n, place, name.into(), presence));
    }
}

impl Changes {
    /// The entries events named between the tokens `from` and `to` of `w` (both taken
    /// from it, `from` first), each with its presence before and after them; `None` when
    /// the events cannot tell: other watches, an overflow between, the log restarted,
    /// or an event that cannot be judged in `cur/` or `new/`.
    pub fn touched(&self, w: &Watched, from: Token, to: Token) -> Option<Vec<Touched>> {
        if from.id != w.gen.id || to.id != w.gen.id || from.overflows != to.overflows {
            return None;
        }
        let log = w.gen.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.from > from.n {
            return None;
        }
        let mut out: Vec<Touched> = Vec::new();
        let mut at: HashMap<(Place, &[u8]), usize> = HashMap::new();
        for (n, place, name, presence) in &log.entries {
            if *n <= from.n || *n > to.n {
                continue;
            }
            if *presence == Presence::Odd && *place != Place::Folder {
                return None;
            }
            let is = *presence == Presence::Made;
            match at.get(&(*place, &name[..])) {
                Some(&i) => out[i].is = is,
                None => {
                    at.insert((*place, &name[..]), out.len());
                    out.push(Touched {
                        place: *place,
                        name: name.to_vec(),
                        was: !is,
                        is,
                    });
                }
            }
        }
        Some(out)
    }

    /// Drops the log entries up to `upto`: asked about them again (from an older token),
    /// the log says it cannot tell.
    pub fn forget(&self, w: &Watched, upto: Token) {
        let mut log = w.gen.log.lock().unwrap_or_else(|p| p.into_inner());
        log.entries.retain(|(n, ..)| *n > upto.n);
        log.from = log.from.max(upto.n);
    }

    /// Whether `a` was taken after `b` (both of the same watches and overflow count).
    pub fn later(a: Token, b: Token) -> bool {
        a.id == b.id && a.overflows == b.overflows && a.n > b.n
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut st = self.changes.lock();
        for &wd in &self.wds {
            if st
                .by_wd
                .get(&wd)
                .is_some_and(|(g, _)| Arc::ptr_eq(g, &self.gen))
            {
                st.by_wd.remove(&wd);
                self.changes.unwatch(wd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn folder() -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        for s in ["cur", "new", "tmp"] {
            fs::create_dir(d.path().join(s)).unwrap();
        }
        let fd = OwnedFd::from(fs::File::open(d.path()).unwrap());
        (d, fd)
    }

    /// Every kind of change the fingerprint covers moves the token; reading, and writing
    /// in `tmp/`, do not.
    #[test]
    fn changes_move_the_token_and_reads_do_not() {
        let c = Changes::new();
        let (d, fd) = folder();
        let w = c.watch(&fd).expect("inotify");
        let p = d.path();
        fs::write(p.join("loft.index.log"), b"x").unwrap();
        fs::write(p.join("cur/a:2,"), b"m").unwrap();
        let mut t = c.token(&w).unwrap();
        let quiet = |c: &Changes, t: Token| c.token(&w) == Some(t);
        fs::read(p.join("cur/a:2,")).unwrap();
        fs::read_dir(p.join("cur")).unwrap().for_each(drop);
        fs::write(p.join("tmp/x"), b"y").unwrap();
        assert!(quiet(&c, t), "reads and tmp/ are no change");
        let steps: [&dyn Fn(); 6] = [
            &|| fs::rename(p.join("tmp/x"), p.join("new/x")).unwrap(),
            &|| fs::rename(p.join("cur/a:2,"), p.join("cur/a:2,S")).unwrap(),
            &|| fs::remove_file(p.join("new/x")).unwrap(),
            &|| {
                use std::io::Write;
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(p.join("loft.index.log"))
                    .unwrap();
                f.write_all(b"more").unwrap();
            },
            &|| {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(p.join("loft.index.log"), fs::Permissions::from_mode(0o600))
                    .unwrap()
            },
            &|| fs::write(p.join("dovecot-keywords"), b"0 k\n").unwrap(),
        ];
        for (i, step) in steps.iter().enumerate() {
            step();
            assert!(!quiet(&c, t), "step {i} is seen");
            t = c.token(&w).unwrap();
            assert!(quiet(&c, t));
        }
    }

    /// A watched directory replaced (renamed away, another put in its place) ends the
    /// watches: no token, so the caller looks again.
    #[test]
    fn a_replaced_directory_ends_the_watch() {
        let c = Changes::new();
        let (d, fd) = folder();
        let w = c.watch(&fd).expect("inotify");
        assert!(c.token(&w).is_some());
        fs::rename(d.path().join("cur"), d.path().join("old")).unwrap();
        fs::create_dir(d.path().join("cur")).unwrap();
        assert!(c.token(&w).is_none());
        // The folder itself moved away.
        let (d2, fd2) = folder();
        let w2 = c.watch(&fd2).expect("inotify");
        fs::rename(d2.path(), d.path().join("moved")).unwrap();
        assert!(c.token(&w2).is_none());
    }

    /// A `cur` that is a link is not watched (no link followed); one directory cannot be
    /// watched for two folders; dropping a folder's watches frees them.
    #[test]
    fn links_and_shared_directories_are_refused() {
        let c = Changes::new();
        let (d, fd) = folder();
        let (other, _) = folder();
        fs::remove_dir(d.path().join("cur")).unwrap();
        std::os::unix::fs::symlink(other.path().join("cur"), d.path().join("cur")).unwrap();
        assert!(c.watch(&fd).is_none(), "cur/ is a link");
        let (_e, fd) = folder();
        let w = c.watch(&fd).unwrap();
        assert!(c.watch(&fd).is_none(), "already watched");
        let t = c.token(&w).unwrap();
        drop(w);
        assert!(c.lock().by_wd.is_empty());
        let w = c.watch(&fd).expect("free again");
        assert_ne!(c.token(&w), Some(t), "new watches, new tokens");
    }

    /// The entries named since a token, each with its presence before and after: made
    /// then renamed, removed, index files beside; a directory made in `cur/` cannot be
    /// judged; tokens of other watches, or from before the log restarted, tell nothing.
    #[test]
    fn touched_entries_since_a_token() {
        let c = Changes::new();
        let (d, fd) = folder();
        let p = d.path();
        fs::write(p.join("new/x"), b"m").unwrap();
        let w = c.watch(&fd).expect("inotify");
        let t0 = c.token(&w).unwrap();
        fs::write(p.join("cur/a"), b"m").unwrap();
        fs::rename(p.join("cur/a"), p.join("cur/b")).unwrap();
        fs::remove_file(p.join("new/x")).unwrap();
        fs::write(p.join("loft.index.log"), b"l").unwrap();
        let t1 = c.token(&w).unwrap();
        let mut got = c.touched(&w, t0, t1).unwrap();
        got.sort_by_key(|a| (a.name.clone(), a.was));
        let t = |place, name: &str, was, is| Touched {
            place,
            name: name.into(),
            was,
            is,
        };
        assert_eq!(
            got,
            vec![
                t(Place::Cur, "a", false, false),
                t(Place::Cur, "b", false, true),
                t(Place::Folder, "loft.index.log", false, true),
                t(Place::New, "x", true, false),
            ]
        );
        assert_eq!(c.touched(&w, t1, c.token(&w).unwrap()), Some(vec![]));
        c.forget(&w, t1);
        assert_eq!(c.touched(&w, t0, t1), None, "forgotten");
        assert!(Changes::later(t1, t0) && !Changes::later(t0, t1));
        fs::create_dir(p.join("cur/sub")).unwrap();
        assert_eq!(
            c.touched(&w, t1, c.token(&w).unwrap()),
            None,
            "a directory in cur/"
        );
        let (_e, fd2) = folder();
        let w2 = c.watch(&fd2).unwrap();
        assert_eq!(
            c.touched(&w2, t0, c.token(&w2).unwrap()),
            None,
            "another folder's token"
        );
        // More entries than the log keeps: it restarts, and says so.
        let t2 = c.token(&w).unwrap();
        for i in 0..LOG_MAX + 10 {
            fs::write(p.join(format!("tmp/{i}")), b"").unwrap();
            fs::rename(p.join(format!("tmp/{i}")), p.join(format!("new/{i}"))).unwrap();
        }
        let t3 = c.token(&w).unwrap();
        assert_eq!(c.touched(&w, t2, t3), None, "log restarted");
    }
}
