//! passwd-file parsing and reloading tests.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use super::*;

#[test]
fn parses_fields_comments_and_problems() {
    let text = b"# comment\n\
\n\
alice:{PLAIN}pw:1000:1000:Alice A:/home/alice:/bin/sh:userdb_quota=1G\n\
bob:{SHA512-CRYPT}$6$abc$def\n\
   # indented comment\n\
nocolon\n\
carol:{PLAIN}x:notanumber\n\
alice:{PLAIN}again\n\
dave:{SSHA}zzz\n\
erin:\n\
fr ank:{PLAIN}x\n\
gil:{PLAIN}y:::::\r\n";
    let (t, p) = parse(text);
    assert_eq!(t.len(), 5, "{t:?}");
    let a = t.get("alice").unwrap();
    assert_eq!(a.password, "{PLAIN}pw");
    assert_eq!((a.uid, a.gid), (Some(1000), Some(1000)));
    assert_eq!(a.home.as_deref(), Some(Path::new("/home/alice")));
    assert_eq!(a.line, 3);
    assert_eq!(t.get("bob").unwrap().uid, None);
    assert_eq!(t.get("gil").unwrap().password, "{PLAIN}y");
    assert!(t.get("Alice").is_none(), "names are case-sensitive");
    let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![6, 7, 8, 9, 10, 11], "{p:#?}");
    assert!(p[1].message.contains("uid"));
    assert!(p[2].message.contains("line 3"));
    assert!(p[3].message.contains("SSHA"));
    assert!(p[4].message.contains("no password"));
    // The most common scheme's hash is the decoy.
    assert!(t.decoy.as_deref().unwrap().starts_with("{PLAIN}"));
}

#[test]
fn invalid_utf8_line_is_skipped() {
    let (t, p) = parse(b"a:{PLAIN}x\nb\xff:{PLAIN}y\n");
    assert_eq!(t.len(), 1);
    assert_eq!(p[0].line, 2);
}

#[test]
fn reloads_when_the_file_changes() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("users");
    std::fs::write(&path, "a:{PLAIN}x\n").unwrap();
    let db = PasswdDb::open(&path).unwrap();
    assert_eq!(db.current().len(), 1);

    // Atomic replacement (new inode), as editors and `mv` do.
    let tmp = d.path().join("users.new");
    std::fs::write(&tmp, "a:{PLAIN}x\nb:{PLAIN}y\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    // Within the first second the old table may still be served...
    db.reload_if_changed();
    assert_eq!(db.current().len(), 2);

    // In-place rewrite with a different size.
    std::fs::write(&path, "c:{PLAIN}z\n").unwrap();
    db.reload_if_changed();
    let t = db.current();
    assert!(t.get("c").is_some() && t.get("a").is_none());

    // Vanished file: the previous users stay.
    std::fs::remove_file(&path).unwrap();
    db.reload_if_changed();
    assert!(db.current().get("c").is_some());
}

#[test]
fn rate_limited_check_picks_up_changes_after_a_second() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("users");
    std::fs::write(&path, "a:{PLAIN}x\n").unwrap();
    let db = PasswdDb::open(&path).unwrap();
    std::fs::write(&path, "a:{PLAIN}x\nb:{PLAIN}y\n").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(db.current().len(), 2);
}

#[test]
fn unreadable_file_is_an_error_at_open() {
    let e = PasswdDb::open(Path::new("/nonexistent/users"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("cannot read /nonexistent/users: "), "{e}");
}

#[test]
fn foreign_uid_and_gid_fields_are_listed_with_their_columns() {
    let (t, problems) = parse(
        b"# c\nalice:{PLAIN}x:5000:5000::/home/a\nbob:{PLAIN}yy:65534:12\ncarol:{PLAIN}z\ndan:{PLAIN}w::7\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let f = t.foreign_ids(65534, 65534);
    let got: Vec<(&str, usize, usize, &str, u32)> = f
        .iter()
        .map(|f| (f.user.as_str(), f.line, f.col, f.field, f.value))
        .collect();
    assert_eq!(
        got,
        vec![
            ("alice", 2, 16, "uid", 5000),
            ("alice", 2, 21, "gid", 5000),
            ("bob", 3, 21, "gid", 12),
            ("dan", 5, 15, "gid", 7),
        ]
    );
    assert!(f[0].to_string().contains("uid 5000 differs"), "{}", f[0]);
    assert!(t.foreign_ids(5000, 5000).iter().all(|f| f.user != "alice"));
}

#[test]
fn a_foreign_uid_is_warned_about_once_per_user_at_login() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("users");
    std::fs::write(&p, "alice:{PLAIN}x:4000000001:4000000001\n").unwrap();
    let db = PasswdDb::open(&p).unwrap();
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert!(db.note_login("alice", Some(4_000_000_001), Some(4_000_000_001)));
    assert!(!db.note_login("alice", Some(4_000_000_001), Some(4_000_000_001)));
    assert!(db.note_login("bob", Some(4_000_000_001), None));
    // The service account's own ids, or none, are nothing to report.
    assert!(!db.note_login("carol", Some(uid), Some(gid)));
    assert!(!db.note_login("dan", None, None));
}
