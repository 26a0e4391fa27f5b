//! passwd-file parsing and reloading tests.

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
        .unwrap();
    assert!(e.contains("/nonexistent/users"), "{e}");
}
