//! Store-level tests: layout, names, subscriptions, special use, migration.

use super::*;
use crate::mailbox::{ErrorKind, Flags, Mailbox, SpecialUse};

#[test]
fn open_creates_root() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    for sub in ["cur", "new", "tmp"] {
        assert!(root.join(sub).is_dir());
    }
    assert_eq!(names(&*s), vec![("INBOX".to_string(), false, false)]);
}

#[test]
fn create_list_rename_delete() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    s.create("A/B/", None).unwrap();
    assert!(root.join(".A/maildirfolder").is_file());
    assert!(root.join(".A.B/cur").is_dir());
    assert_eq!(
        s.create("A/B", None).unwrap_err().kind,
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        s.create("inbox", None).unwrap_err().kind,
        ErrorKind::AlreadyExists
    );
    s.create("Entw\u{fc}rfe", Some(SpecialUse::Drafts)).unwrap();
    assert!(root.join(".Entw&APw-rfe").is_dir());
    assert_eq!(
        names(&*s),
        vec![
            ("A".into(), false, true),
            ("A/B".into(), false, false),
            ("Entw\u{fc}rfe".into(), false, false),
            ("INBOX".into(), false, false),
        ]
    );
    let drafts = s
        .list()
        .unwrap()
        .into_iter()
        .find(|e| e.name == "Entw\u{fc}rfe")
        .unwrap();
    assert_eq!(drafts.special_use, Some(SpecialUse::Drafts));

    append(&*s, "A", b"Subject: x\r\n\r\nbody\r\n", seen(), None);
    // Rename with children.
    s.rename("A", "C/D").unwrap();
    assert!(root.join(".C.D.B/cur").is_dir());
    assert!(!root.join(".A").exists());
    assert_eq!(s.status("C/D").unwrap().messages, 1);
    assert_eq!(
        s.rename("C/D", "Entw\u{fc}rfe").unwrap_err().kind,
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        s.rename("Nope", "X").unwrap_err().kind,
        ErrorKind::NonExistent
    );

    // Delete with children: becomes a \Noselect parent.
    s.delete("C/D").unwrap();
    let l = names(&*s);
    assert!(l.contains(&("C/D".into(), true, true)), "{l:?}");
    assert!(l.contains(&("C/D/B".into(), false, false)));
    assert_eq!(s.delete("C/D").unwrap_err().kind, ErrorKind::HasChildren);
    assert_eq!(
        s.open("C/D", false).err().map(|e| e.kind),
        Some(ErrorKind::NonExistent)
    );
    s.delete("C/D/B").unwrap();
    assert_eq!(s.delete("INBOX").unwrap_err().kind, ErrorKind::NoPerm);
    assert_eq!(s.delete("Nope").unwrap_err().kind, ErrorKind::NonExistent);
    assert!(files_in(&root)
        .iter()
        .all(|f| !f.starts_with("loft-deleting")));
}

#[test]
fn inbox_rename_moves_messages() {
    let d = tempfile::tempdir().unwrap();
    let (s, _root) = store(d.path());
    s.create("INBOX/Sub", None).unwrap();
    append(&*s, "INBOX", b"a\r\n", Flags::default(), None);
    append(&*s, "INBOX", b"b\r\n", seen(), None);
    s.rename("INBOX", "Old").unwrap();
    assert_eq!(s.status("INBOX").unwrap().messages, 0);
    let st = s.status("Old").unwrap();
    assert_eq!((st.messages, st.unseen), (2, 1));
    assert!(names(&*s).contains(&("INBOX/Sub".into(), false, false)));
}

#[test]
fn bad_names_refused() {
    let d = tempfile::tempdir().unwrap();
    let (s, _root) = store(d.path());
    for n in [
        "../x",
        "/etc",
        "a//b",
        "a.b",
        "a\0b",
        "..",
        "a/../../b",
        "x\ty",
    ] {
        assert_eq!(
            s.create(n, None).unwrap_err().kind,
            ErrorKind::BadName,
            "{n:?}"
        );
        assert_eq!(
            s.open(n, false).err().map(|e| e.kind),
            Some(ErrorKind::BadName)
        );
    }
    for u in ["../bob", "a/b", "..", "", "a\0"] {
        assert!(
            crate::mailbox::maildir::open_store(
                &super::super::StorageCtx::new(&cfg(d.path())),
                u,
                None,
                crate::mailbox::userlock::Mode::Session,
            )
            .is_err(),
            "{u:?}"
        );
    }
    assert!(!d.path().join("bob").exists());
}

#[test]
fn migration_from_courier() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("mail/bob");
    let f = root.join(".Work");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(f.join(sub)).unwrap();
    }
    std::fs::write(f.join("cur/500.M1.host:2,S"), b"x\n").unwrap();
    std::fs::write(f.join("courierimapuiddb"), "1 4242 9\n8 500.M1.host:2,S\n").unwrap();
    std::fs::write(root.join("courierimapsubscribed"), "INBOX.Work\n").unwrap();
    let (s, _) = store(d.path());
    let st = s.status("Work").unwrap();
    assert_eq!(
        (st.uid_validity, st.uid_next, st.messages, st.recent),
        (4242, 9, 1, 0)
    );
    assert_eq!(s.subscriptions().unwrap(), vec!["Work".to_string()]);
    s.set_subscribed("Other", true).unwrap();
    assert_eq!(
        s.subscriptions().unwrap(),
        vec!["Work".to_string(), "Other".to_string()]
    );
    s.set_subscribed("Work", false).unwrap();
    assert_eq!(s.subscriptions().unwrap(), vec!["Other".to_string()]);
}

#[test]
fn ensure_special_use_creates_and_marks() {
    let d = tempfile::tempdir().unwrap();
    let (s, _root) = store(d.path());
    s.create("Sent", None).unwrap();
    s.ensure_special_use().unwrap();
    s.ensure_special_use().unwrap();
    let l = s.list().unwrap();
    for (n, su) in [
        ("Drafts", SpecialUse::Drafts),
        ("Sent", SpecialUse::Sent),
        ("Trash", SpecialUse::Trash),
        ("Junk", SpecialUse::Junk),
        ("Archive", SpecialUse::Archive),
    ] {
        let e = l.iter().find(|e| e.name == n).unwrap();
        assert_eq!(e.special_use, Some(su));
        assert!(!e.noselect);
    }
    s.rename("Sent", "Sent Items").unwrap();
    let l = s.list().unwrap();
    let e = l.iter().find(|e| e.name == "Sent Items").unwrap();
    assert_eq!(e.special_use, Some(SpecialUse::Sent));
}

#[test]
fn mailbox_trait_object_name() {
    let d = tempfile::tempdir().unwrap();
    let (s, _) = store(d.path());
    let m: Box<dyn Mailbox> = s.open("inbox", true).unwrap();
    assert_eq!(m.name(), "INBOX");
    assert!(m.read_only());
}

/// What lets the IMAP session run LIST and STATUS in place: known only once listed or
/// open in this process, and only while small (sizes known when SIZE is asked).
#[test]
fn small_listings_and_statuses_are_known_without_io() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    s.create("A", None).unwrap();
    assert!(!s.list_is_small(200), "nothing listed yet");
    s.list().unwrap();
    assert!(s.list_is_small(2) && !s.list_is_small(1), "INBOX and A");

    assert!(
        !s.status_is_small("A", 10, false),
        "not open in this process"
    );
    // A message as an MTA writes it: no W=, so its RFC822.SIZE is unknown at first.
    std::fs::write(root.join(".A/new/1700000000.M1P1.mx"), b"x\n").unwrap();
    let mut a = s.open("A", false).unwrap();
    a.sync().unwrap();
    assert!(s.status_is_small("A", 10, false));
    assert!(
        !s.status_is_small("A", 0, false),
        "more messages than asked"
    );
    assert!(!s.status_is_small("A", 10, true), "a size to compute first");
    assert_eq!(s.status_sized("A", true).unwrap().size, 3);
    assert!(s.status_is_small("A", 10, true));
    assert!(!s.status_is_small("No/Such", 10, false));
    drop(a);
}
