//! Directory listing through `getdents64` without a heap allocation per entry:
//! std's `ReadDir` allocates each entry's name twice before the caller sees it, which on a
//! 100,000-message `cur/` is a measurable part of a folder's first scan. Names are lent
//! for the duration of one callback.
//!
//! This module knows directories and entry types, nothing of Maildir.

use std::os::fd::OwnedFd;
#[cfg(test)]
use std::path::Path;
use std::sync::Arc;

/// The kind of an entry as `readdir` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Symlink,
    Dir,
    Other,
    /// The file system does not say (`DT_UNKNOWN`): the caller asks with `lstat`.
    Unknown,
}

/// An opener of the directory to list (beneath the mail root, never through a link),
/// or the giver of a descriptor kept open from an earlier listing (read from its start;
/// the caller keeps other listings off it meanwhile).
pub type Open<'a> = dyn Fn() -> std::io::Result<Arc<OwnedFd>> + Sync + 'a;

/// Calls `f(name, kind)` for every entry of the directory `open` opens but `.` and `..`.
pub fn each(open: &Open<'_>, mut f: impl FnMut(&[u8], Kind)) -> std::io::Result<()> {
    let fd = open()?;
    crate::beneath::each_entry_in(&fd, |name, t| {
        let kind = match t {
            libc::DT_REG => Kind::File,
            libc::DT_LNK => Kind::Symlink,
            libc::DT_DIR => Kind::Dir,
            libc::DT_UNKNOWN => Kind::Unknown,
            _ => Kind::Other,
        };
        f(name, kind)
    })
}

/// Opens a directory by path (`O_NOFOLLOW`): for tests.
#[cfg(test)]
fn by_path(dir: &Path) -> impl Fn() -> std::io::Result<Arc<OwnedFd>> + Sync + '_ {
    move || {
        crate::beneath::open_nofollow(dir, crate::beneath::How::Read)
            .map(|f| Arc::new(OwnedFd::from(f)))
    }
}

/// Names listed by the lister thread of [`each_pipelined`], passed on in batches.
#[derive(Default)]
struct Batch {
    names: Vec<u8>,
    /// End offset of each name in `names`, and its kind.
    ends: Vec<(usize, Kind)>,
}

const BATCH: usize = 2048;

/// Like [`each`], but the directory is read on a helper thread while `f` runs on the
/// caller's: on a directory of 100,000 entries the kernel spends about as long producing
/// names (an htree directory hashes each one) as the caller takes to use them, and two
/// cores do both at once. Falls back to [`each`] when no thread can be started.
pub fn each_pipelined(open: &Open<'_>, mut f: impl FnMut(&[u8], Kind)) -> std::io::Result<()> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
        let lister = std::thread::Builder::new()
            .name("loft-listing".into())
            .spawn_scoped(scope, move || {
                let mut batch = Batch::default();
                each(open, |name, kind| {
                    batch.names.extend_from_slice(name);
                    batch.ends.push((batch.names.len(), kind));
                    if batch.ends.len() == BATCH {
                        // The receiver is gone only when the caller stopped listening.
                        let _ = tx.send(std::mem::take(&mut batch));
                    }
                })?;
                if !batch.ends.is_empty() {
                    let _ = tx.send(batch);
                }
                Ok(())
            });
        let Ok(lister) = lister else {
            return each(open, f);
        };
        for batch in rx {
            let mut start = 0;
            for &(end, kind) in &batch.ends {
                if let Some(name) = batch.names.get(start..end) {
                    f(name, kind);
                }
                start = end;
            }
        }
        lister.join().unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "directory listing stopped unexpectedly",
            ))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_names_and_kinds() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"x").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("a", d.path().join("l")).unwrap();
        std::fs::write(d.path().join("ünï"), b"x").unwrap();
        let mut got = Vec::new();
        each(&by_path(d.path()), |n, k| got.push((n.to_vec(), k))).unwrap();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let kinds: Vec<(&[u8], Kind)> = got.iter().map(|(n, k)| (&n[..], *k)).collect();
        // Entry types are reported by ext4/xfs/tmpfs; others may say Unknown.
        for (n, k) in &kinds {
            assert!(
                *k == Kind::Unknown
                    || match *n {
                        b"a" => *k == Kind::File,
                        b"sub" => *k == Kind::Dir,
                        b"l" => *k == Kind::Symlink,
                        _ => *k == Kind::File,
                    },
                "{:?} {k:?}",
                String::from_utf8_lossy(n)
            );
        }
        let names: Vec<&[u8]> = kinds.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [&b"a"[..], b"l", b"sub", "ünï".as_bytes()]);
        assert!(each(&by_path(&d.path().join("missing")), |_, _| {}).is_err());
        assert!(each_pipelined(&by_path(&d.path().join("missing")), |_, _| {}).is_err());
    }

    /// The pipelined listing gives exactly the entries of the plain one, across batches.
    #[test]
    fn pipelined_lists_the_same() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..(BATCH * 2 + 7) {
            std::fs::write(d.path().join(format!("{i}.m")), b"").unwrap();
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        each(&by_path(d.path()), |n, k| a.push((n.to_vec(), k))).unwrap();
        each_pipelined(&by_path(d.path()), |n, k| b.push((n.to_vec(), k))).unwrap();
        a.sort_by(|x, y| x.0.cmp(&y.0));
        b.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(a.len(), BATCH * 2 + 7);
        assert_eq!(a, b);
    }
}
