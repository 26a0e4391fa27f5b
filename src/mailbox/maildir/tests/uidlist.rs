//! The uid list under faults seen through a session: a list copied from another folder
//! is recognised, while mail deleted and delivered by other programs is not mistaken for
//! one.

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
    std::fs::copy(root.join(".Other/loft-uidlist"), root.join("loft-uidlist")).unwrap();
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
    std::fs::remove_file(root.join("loft-uidlist")).unwrap();
    let st = s.status("INBOX").unwrap();
    assert!(st.uid_validity > v);
    assert_eq!(st.messages, 1);
}
