//! The UID store (the index files) under faults seen through a session: index files
//! copied from another folder are recognised, while mail deleted and delivered by other
//! programs is not mistaken for that; an old `loft-uidlist` is imported once.

use super::*;
use crate::mailbox::Flags;

fn deliver(root: &Path, name: &str) {
    std::fs::write(root.join("new").join(name), b"Subject: x\r\n\r\nbody\r\n").unwrap();
}

#[test]
fn list_of_another_folder_is_rebuilt_under_a_new_uidvalidity() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    s.create("Other", None).unwrap();
    for _ in 0..4 {
        append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    }
    append(&*s, "Other", b"y\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    let inbox_v = m.sync().unwrap().snapshot.uid_validity;
    let other_v = s.status("Other").unwrap().uid_validity;
    std::thread::sleep(std::time::Duration::from_millis(20));
    // Put in place as a program replacing files does (new inodes): a copy over the
    // same inodes is damage to files this process read, see the next test.
    for f in ["loft.index", "loft.index.log"] {
        let tmp = root.join(format!("{f}.copy"));
        std::fs::copy(root.join(".Other").join(f), &tmp).unwrap();
        std::fs::rename(&tmp, root.join(f)).unwrap();
    }
    let snap = m.sync().unwrap().snapshot;
    assert_ne!(snap.uid_validity, inbox_v);
    assert!(
        snap.uid_validity > other_v,
        "{} vs {other_v}",
        snap.uid_validity
    );
    let uids: Vec<u32> = snap.messages.iter().map(|x| x.uid).collect();
    assert_eq!(uids, vec![1, 2, 3, 4]);
    // The rebuilt list is this folder's now: the next scan keeps it.
    append(&*s, "INBOX", b"z\r\n", Flags::default(), None);
    let again = m.sync().unwrap().snapshot;
    assert_eq!(again.uid_validity, snap.uid_validity);
    assert_eq!(again.messages.len(), 5);
}

/// `cp` of another folder's index files over this folder's (same inodes, written in
/// place): the log this process read lost its committed transactions, so the files are
/// rewritten from what the process knows; UIDs and UIDVALIDITY stay.
#[test]
fn in_place_copy_of_another_folders_index_is_healed_from_memory() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    s.create("Other", None).unwrap();
    for _ in 0..4 {
        append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    }
    append(&*s, "Other", b"y\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    let before = m.sync().unwrap().snapshot;
    std::thread::sleep(std::time::Duration::from_millis(20));
    for f in ["loft.index", "loft.index.log"] {
        std::fs::copy(root.join(".Other").join(f), root.join(f)).unwrap();
    }
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(snap.uid_validity, before.uid_validity);
    let uids: Vec<u32> = snap.messages.iter().map(|x| x.uid).collect();
    assert_eq!(uids, vec![1, 2, 3, 4]);
    // The files hold this folder's state again: a new process reads the same.
    drop(m);
    drop(s);
    let (s, _) = store(d.path());
    let mut m = s.open("INBOX", false).unwrap();
    let again = m.sync().unwrap().snapshot;
    assert_eq!(again.uid_validity, before.uid_validity);
    assert_eq!(again.messages.len(), 4);
}

#[test]
fn mail_deleted_and_delivered_by_others_keeps_uidvalidity() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    let before = m.sync().unwrap().snapshot;
    // Another program expunges both and delivers three new ones before Loft looks again.
    for f in files_in(&root.join("cur")) {
        std::fs::remove_file(root.join("cur").join(f)).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    for i in 0..3 {
        deliver(&root, &format!("17000000{i}.procmail.host"));
    }
    let after = m.sync().unwrap().snapshot;
    assert_eq!(after.uid_validity, before.uid_validity);
    let uids: Vec<u32> = after.messages.iter().map(|x| x.uid).collect();
    assert_eq!(uids, vec![3, 4, 5]);
}

#[test]
fn lost_list_in_folder_with_mail_gets_new_uidvalidity() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let v = s.status("INBOX").unwrap().uid_validity;
    // UIDVALIDITY is time-based: a new one is greater once a second has passed.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for f in ["loft.index", "loft.index.log", "loft.index.cache"] {
        let _ = std::fs::remove_file(root.join(f));
    }
    let st = s.status("INBOX").unwrap();
    assert!(st.uid_validity > v);
    assert_eq!(st.messages, 1);
}

#[test]
fn loft_uidlist_imported_once_and_left_in_place() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    std::fs::write(root.join("cur/1.M1P1.host:2,S"), b"a\r\n").unwrap();
    std::fs::write(root.join("cur/2.M2P2.host:2,"), b"b\r\n").unwrap();
    std::fs::write(
        root.join("loft-uidlist"),
        "loft-uidlist 1 V4242 N30 R20\n7 :1.M1P1.host\n25 S3 :2.M2P2.host\n",
    )
    .unwrap();
    let mut m = s.open("INBOX", false).unwrap();
    let r = m.sync().unwrap();
    assert_eq!(r.snapshot.uid_validity, 4242);
    assert_eq!(r.snapshot.uid_next, 30);
    let uids: Vec<u32> = r.snapshot.messages.iter().map(|x| x.uid).collect();
    assert_eq!(uids, vec![7, 25]);
    assert!(r
        .snapshot
        .messages
        .get(0)
        .unwrap()
        .flags
        .sys
        .contains(crate::mailbox::SysFlags::SEEN));
    drop(m);
    // The old file stays, unused: changing it changes nothing.
    std::fs::write(
        root.join("loft-uidlist"),
        "loft-uidlist 1 V9 N2 R0\n1 :1.M1P1.host\n",
    )
    .unwrap();
    let st = s.status("INBOX").unwrap();
    assert_eq!((st.uid_validity, st.uid_next, st.messages), (4242, 30, 2));
}
