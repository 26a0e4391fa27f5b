//! Lazy flag sync: STORE is durable in the index at once and reaches file names later;
//! scans tell a dirty record's old file name from a change by another program.

use super::*;
use crate::mailbox::{Flags, StoreOp, SysFlags};

fn flagged() -> Flags {
    Flags {
        sys: SysFlags::FLAGGED,
        keywords: vec![],
    }
}

fn sys_of(s: &crate::mailbox::Snapshot, uid: u32) -> SysFlags {
    s.messages.iter().find(|m| m.uid == uid).unwrap().flags.sys
}

#[test]
fn store_renames_nothing_until_the_last_close() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    for _ in 0..3 {
        append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    }
    let mut a = s.open("INBOX", false).unwrap();
    let mut b = s.open("INBOX", false).unwrap();
    a.sync().unwrap();
    b.sync().unwrap();
    let before = files_in(&root.join("cur"));
    let out = a.store(&[1, 2, 3], StoreOp::Add, &flagged()).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(files_in(&root.join("cur")), before, "STORE renamed files");
    // The other session sees the flags (from the index), and so does another process
    // (another storage context; its session stays open: its last close would flush).
    assert!(sys_of(&b.sync().unwrap().snapshot, 2).contains(SysFlags::FLAGGED));
    let (s2, _) = store(d.path());
    let mut c = s2.open("INBOX", false).unwrap();
    assert!(sys_of(&c.sync().unwrap().snapshot, 3).contains(SysFlags::FLAGGED));
    // A scan does not take the old names for an external change.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(root.join("new/1.M9P9.mta"), b"y\r\n").unwrap();
    let snap = b.sync().unwrap().snapshot;
    assert_eq!(snap.messages.len(), 4);
    assert!(sys_of(&snap, 1).contains(SysFlags::FLAGGED));
    drop(a);
    assert!(
        !files_in(&root.join("cur"))
            .iter()
            .any(|n| n.ends_with(":2,F")),
        "flushed while a session is open"
    );
    drop(b);
    let names = files_in(&root.join("cur"));
    assert_eq!(
        names.iter().filter(|n| n.ends_with(":2,F")).count(),
        3,
        "{names:?}"
    );
    assert!(crate::index::Index::verify(&root).is_empty());
    drop(c);
}

#[test]
fn external_change_on_a_clean_record_is_taken_in() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    let name = files_in(&root.join("cur")).pop().unwrap();
    let (base, _) = name.split_once(":2,").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::rename(
        root.join("cur").join(&name),
        root.join("cur").join(format!("{base}:2,S")),
    )
    .unwrap();
    let snap = m.sync().unwrap().snapshot;
    assert!(sys_of(&snap, 1).contains(SysFlags::SEEN));
    // And it is in the index: a new process sees it without the file name's help.
    drop(m);
    let (s2, _) = store(d.path());
    let st = s2.status("INBOX").unwrap();
    assert_eq!(st.unseen, 0);
}

#[test]
fn expunge_uses_deleted_from_the_index() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    append(&*s, "INBOX", b"y\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    let del = Flags {
        sys: SysFlags::DELETED,
        keywords: vec![],
    };
    m.store(&[2], StoreOp::Add, &del).unwrap();
    assert_eq!(m.expunge(None).unwrap(), vec![2]);
    assert_eq!(files_in(&root.join("cur")).len(), 1);
    assert_eq!(m.sync().unwrap().snapshot.messages.len(), 1);
}

#[test]
fn cache_lookup_and_offer_reach_the_index_cache() {
    let d = tempfile::tempdir().unwrap();
    let (s, _root) = store(d.path());
    append(
        &*s,
        "INBOX",
        b"Subject: a\r\n\r\nx\r\n",
        Flags::default(),
        None,
    );
    append(
        &*s,
        "INBOX",
        b"Subject: b\r\n\r\ny\r\n",
        Flags::default(),
        None,
    );
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    let get = |m: &dyn crate::mailbox::Mailbox, uid: u32| {
        let mut got = None;
        m.cache_lookup(&[uid], "test.field", &mut |i, v| {
            assert_eq!(i, 0);
            got = v.map(|b| b.to_vec());
        });
        got
    };
    // First use: a miss; a use for an old message makes the field cached for all.
    assert_eq!(get(&*m, 1), None);
    assert_eq!(get(&*m, 1), None);
    m.cache_offer(1, "test.field", b"value one");
    m.sync().unwrap();
    assert_eq!(get(&*m, 1).as_deref(), Some(&b"value one"[..]));
    // Written to disk at sync/close: a new process finds it.
    drop(m);
    let (s2, _) = store(d.path());
    let mut m2 = s2.open("INBOX", false).unwrap();
    m2.sync().unwrap();
    assert_eq!(get(&*m2, 1).as_deref(), Some(&b"value one"[..]));
    assert_eq!(get(&*m2, 2), None);
}

#[test]
fn file_names_follow_within_seconds_without_further_commands() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    m.store(&[1], StoreOp::Add, &flagged()).unwrap();
    assert!(files_in(&root.join("cur"))[0].ends_with(":2,"));
    let deadline = std::time::Instant::now()
        + crate::mailbox::maildir::flagsync::FLUSH_AFTER
        + std::time::Duration::from_secs(3);
    while !files_in(&root.join("cur"))[0].ends_with(":2,F") {
        assert!(std::time::Instant::now() < deadline, "not flushed in time");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The session goes on, and the index agrees with the file name.
    assert!(sys_of(&m.sync().unwrap().snapshot, 1).contains(SysFlags::FLAGGED));
    drop(m);
    assert!(crate::index::Index::verify(&root).is_empty());
}
