//! Both resolvers refuse every symbolic link and every escape, and create with exact modes.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use super::*;
use std::os::unix::fs::{symlink, PermissionsExt};

fn both(root: &Path) -> Vec<Beneath> {
    let mut v = vec![Beneath::with_resolver(root, Resolver::Walk).unwrap()];
    let auto = Beneath::open(root).unwrap();
    if auto.resolver() == Resolver::Openat2 {
        v.push(auto);
    } else {
        eprintln!("openat2 not available here: only the fallback is tested");
    }
    v
}

fn setup() -> (tempfile::TempDir, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"shadow").unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join(".A/cur")).unwrap();
    std::fs::write(r.join(".A/cur/msg"), b"mail").unwrap();
    symlink(outside.path().join("secret"), r.join(".A/cur/link")).unwrap();
    symlink("msg", r.join(".A/cur/rel")).unwrap();
    symlink(outside.path(), r.join(".Evil")).unwrap();
    symlink(".A", r.join(".Other")).unwrap();
    std::fs::create_dir(r.join(".B")).unwrap();
    symlink("../.A/cur", r.join(".B/cur")).unwrap();
    (d, outside)
}

#[test]
fn reads_plain_files_and_refuses_every_link() {
    let (d, _o) = setup();
    for b in both(d.path()) {
        let mut s = String::new();
        let mut f = b
            .open_file(&d.path().join(".A/cur/msg"), How::Read)
            .unwrap();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!(s, "mail");
        assert!(b.open_file(Path::new(".A/cur/msg"), How::Read).is_ok());
        for bad in [
            ".A/cur/link",
            ".A/cur/rel",
            ".Evil/secret",
            ".Other/cur/msg",
            ".B/cur/msg",
        ] {
            let e = b.open_file(Path::new(bad), How::Read).unwrap_err();
            assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::ELOOP | libc::EXDEV | libc::ENOTDIR)
                ),
                "{bad} with {:?}: {e}",
                b.resolver()
            );
        }
        for bad in ["../x", "/etc/passwd", ".A/../../x"] {
            assert!(b.open_file(Path::new(bad), How::Read).is_err(), "{bad}");
        }
        assert!(b.open_dir(Path::new(".Evil")).is_err());
        assert!(b.open_dir(Path::new(".B/cur")).is_err());
        assert!(b.open_dir(Path::new(".A/cur")).is_ok());
        assert!(b.open_dir(Path::new("")).is_ok());
        // Creating through a linked directory is refused too.
        assert!(b
            .open_file(Path::new(".Evil/new"), How::CreateNew(0o600))
            .is_err());
        assert!(b.mkdir(Path::new(".Evil/dir"), 0o700).is_err());
        assert!(b
            .rename(Path::new(".A/cur/msg"), Path::new(".Evil/stolen"))
            .is_err());
        // A link is stat'ed, renamed and removed as a link.
        assert!(b.lstat(Path::new(".A/cur/link")).unwrap().is_symlink());
    }
    assert!(!_o.path().join("new").exists() && !_o.path().join("stolen").exists());
    assert_eq!(std::fs::read(_o.path().join("secret")).unwrap(), b"shadow");
}

#[test]
fn the_root_itself_may_be_a_link() {
    let (d, _o) = setup();
    let l = tempfile::tempdir().unwrap();
    let link = l.path().join("mail");
    symlink(d.path(), &link).unwrap();
    let b = Beneath::open(&link).unwrap();
    assert_eq!(b.root(), std::fs::canonicalize(d.path()).unwrap());
    assert!(b.open_file(&b.root().join(".A/cur/msg"), How::Read).is_ok());
    // A path spelled through the link is not beneath the resolved root.
    assert!(b.open_file(&link.join(".A/cur/msg"), How::Read).is_err());
}

#[test]
fn creates_with_exact_modes_whatever_the_umask() {
    for umask in [0o000, 0o022] {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o750)).unwrap();
        for b in both(d.path()) {
            // SAFETY: umask only changes this process's creation mask.
            let old = unsafe { libc::umask(umask) };
            let tag = format!("{:?}{umask:o}", b.resolver());
            b.mkdir_beside(Path::new(&tag)).unwrap();
            let mode = b.file_mode_in(Path::new(&tag)).unwrap();
            b.open_file(&Path::new(&tag).join("f"), How::CreateNew(mode))
                .unwrap();
            b.open_file(&Path::new(&tag).join("g"), How::OpenOrCreate(mode))
                .unwrap();
            unsafe { libc::umask(old) };
            let m = |p: &str| {
                std::fs::metadata(d.path().join(p))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o7777
            };
            assert_eq!(m(&tag), 0o750, "{tag}");
            assert_eq!(m(&format!("{tag}/f")), 0o640, "{tag}");
            assert_eq!(m(&format!("{tag}/g")), 0o640, "{tag}");
            b.remove_tree(Path::new(&tag)).unwrap();
            assert!(!d.path().join(&tag).exists());
        }
    }
}

#[test]
fn remove_tree_removes_links_not_their_targets() {
    let (d, o) = setup();
    for b in both(d.path()) {
        std::fs::create_dir_all(d.path().join("t/cur")).unwrap();
        symlink(o.path(), d.path().join("t/cur/l")).unwrap();
        symlink(o.path().join("secret"), d.path().join("t/l2")).unwrap();
        b.remove_tree(Path::new("t")).unwrap();
        assert!(!d.path().join("t").exists());
        assert!(o.path().join("secret").exists());
    }
}

#[test]
fn nofollow_refuses_a_final_link() {
    let (d, _o) = setup();
    assert!(open_nofollow(&d.path().join(".A/cur/link"), How::Read).is_err());
    assert!(open_nofollow(&d.path().join(".A/cur/msg"), How::Read).is_ok());
}

/// Cost of one message open, plain `open` against both resolvers (run by hand:
/// `cargo test --lib beneath::tests::open_cost -- --ignored --nocapture`).
#[test]
#[ignore]
fn open_cost() {
    let (d, _o) = setup();
    let path = std::fs::canonicalize(d.path()).unwrap().join(".A/cur/msg");
    let n = 50_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        drop(std::fs::File::open(&path).unwrap());
    }
    let plain = t.elapsed();
    for b in both(d.path()) {
        let t = std::time::Instant::now();
        for _ in 0..n {
            drop(b.open_file(&path, How::Read).unwrap());
        }
        let e = t.elapsed();
        let dir = b.open_dir(Path::new(".A/cur")).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..n {
            drop(b.open_in(&dir, OsStr::new("msg"), How::Read).unwrap());
        }
        let e_in = t.elapsed();
        eprintln!(
            "open x{n}: {:?} open_in (from cur/ fd) {:.2} us",
            b.resolver(),
            e_in.as_secs_f64() * 1e6 / n as f64
        );
        eprintln!(
            "open x{n}: plain {:.2} us, {:?} {:.2} us",
            plain.as_secs_f64() * 1e6 / n as f64,
            b.resolver(),
            e.as_secs_f64() * 1e6 / n as f64
        );
    }
}

#[test]
fn canonical_paths_stay_behind_a_directory_descriptor() {
    let (d, o) = setup();
    let dir = File::open(d.path()).unwrap();
    let via = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    assert_eq!(
        split_fd_path(&via.join(".A/cur")),
        Some((via.clone(), Path::new(".A/cur")))
    );
    assert_eq!(split_fd_path(Path::new("/proc/self/fd")), None);
    assert_eq!(split_fd_path(Path::new("/proc/self/fd/x1/a")), None);
    assert_eq!(split_fd_path(Path::new("/proc/self/fdx/1")), None);
    // Inside the directory (links inside it resolved) the path keeps the descriptor.
    assert_eq!(canonicalize(&via).unwrap(), via);
    assert_eq!(
        canonicalize(&via.join(".A/cur")).unwrap(),
        via.join(".A/cur")
    );
    assert_eq!(canonicalize(&via.join(".Other")).unwrap(), via.join(".A"));
    assert_eq!(canonicalize(&via.join(".A/../.B")).unwrap(), via.join(".B"));
    // Out of it: the real path, as realpath(3) gives it.
    let out = std::fs::canonicalize(o.path()).unwrap();
    assert_eq!(canonicalize(&via.join(".Evil")).unwrap(), out);
    assert_eq!(
        canonicalize(&via.join("..")).unwrap(),
        std::fs::canonicalize(d.path().join("..")).unwrap()
    );
    assert!(canonicalize(&via.join("missing")).is_err());
    // A Beneath opened that way has the descriptor path as its root.
    let b = Beneath::open(&via.join(".A")).unwrap();
    assert_eq!(b.root(), via.join(".A"));
    let mut s = String::new();
    let mut f = b.open_file(&via.join(".A/cur/msg"), How::Read).unwrap();
    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
    assert_eq!(s, "mail");
    // Ordinary paths are untouched.
    assert_eq!(
        canonicalize(d.path()).unwrap(),
        std::fs::canonicalize(d.path()).unwrap()
    );
}

/// A FIFO where a file is expected opens at once (and reads nothing) instead of
/// blocking until a writer comes: by path, beneath the root, and relative to a directory.
#[test]
fn a_fifo_never_blocks_an_open() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("loft-uidvalidity");
    let c = cstr(fifo.as_os_str()).unwrap();
    // SAFETY: `c` is NUL-terminated and outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut buf = Vec::new();
    let mut f = open_nofollow(&fifo, How::Read).unwrap();
    assert_eq!(std::io::Read::read_to_end(&mut f, &mut buf).unwrap(), 0);
    for b in both(d.path()) {
        let root = b.root().to_path_buf();
        let mut f = b
            .open_file(&root.join("loft-uidvalidity"), How::Read)
            .unwrap();
        assert_eq!(std::io::Read::read_to_end(&mut f, &mut buf).unwrap(), 0);
        let dir = b.open_dir(Path::new("")).unwrap();
        b.open_in(&dir, OsStr::new("loft-uidvalidity"), How::Read)
            .unwrap();
    }
}

/// A kept directory descriptor lists the directory as it is at each call (more entries
/// than one `getdents64` answer holds, long names, entries added and removed between
/// listings), never `.` or `..`, with each entry's type.
#[test]
fn a_kept_directory_lists_what_is_there_now() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(255);
    let mut want: std::collections::BTreeSet<Vec<u8>> = (0..3000)
        .map(|i| format!("{i}.M{i}P1.host,S=100:2,S").into_bytes())
        .collect();
    for n in &want {
        std::fs::write(dir.path().join(std::str::from_utf8(n).unwrap()), b"x").unwrap();
    }
    std::fs::create_dir(dir.path().join(&long)).unwrap();
    want.insert(long.clone().into_bytes());
    let fd = open_dir_nofollow(dir.path()).unwrap();
    // Lists `fd`, checks the names against `want`, and returns each name's type.
    let list = |fd: &OwnedFd, want: &std::collections::BTreeSet<Vec<u8>>| {
        let mut got = std::collections::BTreeMap::new();
        each_entry_in(fd, |n, t| {
            assert!(got.insert(n.to_vec(), t).is_none(), "listed twice");
        })
        .unwrap();
        assert!(got.keys().eq(want.iter()), "listed other names");
        got
    };
    let got = list(&fd, &want);
    assert_eq!(got[long.as_bytes()], libc::DT_DIR);
    std::fs::remove_file(dir.path().join("7.M7P1.host,S=100:2,S")).unwrap();
    std::fs::write(dir.path().join("new-one"), b"x").unwrap();
    want.remove(&b"7.M7P1.host,S=100:2,S"[..]);
    want.insert(b"new-one".to_vec());
    let got = list(&fd, &want);
    assert_eq!(got[&b"new-one"[..]], libc::DT_REG);
}

/// Malformed `getdents64` records (which the kernel does not write) end the walk
/// instead of reading out of bounds.
#[test]
fn dirent_records_are_read_with_bounds() {
    let rec = |name: &[u8], reclen: u16| {
        let mut r = vec![0u8; 19];
        r[16..18].copy_from_slice(&reclen.to_ne_bytes());
        r[18] = libc::DT_REG;
        r.extend_from_slice(name);
        r.push(0);
        r.resize(usize::from(reclen).max(r.len()), 0);
        r
    };
    let good = rec(b"a", 24);
    assert_eq!(
        Dirents(&good).collect::<Vec<_>>(),
        vec![(&b"a"[..], libc::DT_REG)]
    );
    for bad in [
        rec(b"a", 0),
        rec(b"a", 400),
        rec(b"abc", 19),
        good[..10].to_vec(),
    ] {
        assert!(Dirents(&bad).count() <= 1);
    }
    let mut no_nul = rec(b"abcd", 24);
    no_nul[19..24].copy_from_slice(b"abcde");
    assert_eq!(Dirents(&no_nul).count(), 0);
}

/// A whole file, whatever size it was expected to have (none, exact, too small, too
/// big, across the growth step), and positioned reads that stop at its end.
#[test]
fn read_sized_reads_the_whole_file_whatever_was_expected() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("f");
    for len in [0usize, 1, 5, 4096, (64 << 10) + 3] {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let f = File::open(&p).unwrap();
        for expected in [0, len as u64, len as u64 / 2, len as u64 * 3 + 7] {
            assert_eq!(read_sized(&f, expected).unwrap(), bytes, "{len} {expected}");
        }
        let mut buf = vec![0u8; 10];
        let at = len.saturating_sub(4) as u64;
        assert_eq!(read_full_at(&f, &mut buf, at).unwrap(), len.min(4));
    }
}

/// A file made with its content appears whole under its name, never over a name taken
/// (a link there included, its target untouched).
#[test]
fn a_filled_file_appears_whole_and_never_over_a_taken_name() {
    let d = tempfile::tempdir().unwrap();
    let dir = OwnedFd::from(File::open(d.path()).unwrap());
    let f = create_filled_at(&dir, OsStr::new("x.lock"), 0o600, b"123\n").unwrap();
    assert_eq!(std::fs::read(d.path().join("x.lock")).unwrap(), b"123\n");
    assert_eq!(
        std::fs::metadata(d.path().join("x.lock"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        fstat(&f).unwrap().ino,
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(d.path().join("x.lock")).unwrap())
    );
    let again = create_filled_at(&dir, OsStr::new("x.lock"), 0o600, b"456\n").unwrap_err();
    assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    symlink(d.path().join("target"), d.path().join("y.lock")).unwrap();
    let e = create_filled_at(&dir, OsStr::new("y.lock"), 0o600, b"1\n").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert!(!d.path().join("target").exists());
    assert_eq!(
        std::fs::read_dir(d.path()).unwrap().count(),
        2,
        "no unnamed file left behind"
    );
}

/// `copy_range` copies the asked bytes between offsets of two files and leaves the rest
/// (the kernel's copy and the buffer fallback alike).
#[test]
fn copy_range_copies_exactly_the_range() {
    let d = tempfile::tempdir().unwrap();
    let src: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.path().join("a"), &src).unwrap();
    std::fs::write(d.path().join("b"), vec![7u8; 100]).unwrap();
    let a = File::open(d.path().join("a")).unwrap();
    let b = File::options()
        .read(true)
        .write(true)
        .open(d.path().join("b"))
        .unwrap();
    copy_range(&a, 1000, &b, 50, 200_000).unwrap();
    let got = std::fs::read(d.path().join("b")).unwrap();
    assert_eq!(got.len(), 200_050);
    assert_eq!(&got[..50], &[7u8; 50][..]);
    assert_eq!(&got[50..], &src[1000..201_000]);
    copy_by_buffer(&a, 0, &b, 0, 10).unwrap();
    assert_eq!(
        &std::fs::read(d.path().join("b")).unwrap()[..10],
        &src[..10]
    );
    // Past the end of the source: an error, not a short copy taken for whole.
    assert!(copy_range(&a, 299_990, &b, 0, 100).is_err());
}
