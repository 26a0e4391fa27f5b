//! Message-level tests: append, fetch, flags, sync, recent, expunge, copy, recovery.

use std::sync::Arc;

use super::*;
use crate::config::StorageConfig;
use crate::mailbox::{ErrorKind, Flags, StoreOp, SysFlags};

#[test]
fn append_fetch_sizes_exact() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    let crlf = b"Subject: a\r\n\r\nline\r\n".to_vec();
    let lf = b"Subject: b\n\nline1\nline2\n".to_vec();
    let (v1, u1) = append(&*s, "INBOX", &crlf, seen(), Some(1_000_000_000));
    let (v2, u2) = append(&*s, "INBOX", &lf, Flags::default(), None);
    assert_eq!(v1, v2);
    assert_eq!((u1, u2), (1, 2));
    let mut m = s.open("INBOX", false).unwrap();
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(snap.messages.len(), 2);
    let a = m.fetch_message(1).unwrap();
    assert_eq!(&a[..], &crlf[..]);
    assert_eq!(snap.messages.get(0).unwrap().size, crlf.len() as u64);
    assert_eq!(snap.messages.get(0).unwrap().internal_date, 1_000_000_000);
    assert!(is_seen(&snap, 0));
    let b = m.fetch_message(2).unwrap();
    assert_eq!(&b[..], b"Subject: b\r\n\r\nline1\r\nline2\r\n");
    assert_eq!(snap.messages.get(1).unwrap().size, b.len() as u64);
    // Big message: mapped path, sizes still exact.
    let big: Vec<u8> = b"0123456789abcdef\n".repeat(20_000);
    let (_, u3) = append(&*s, "INBOX", &big, Flags::default(), None);
    let snap = m.sync().unwrap().snapshot;
    let got = m.fetch_message(u3).unwrap();
    assert_eq!(got.len(), big.len() + 20_000);
    assert_eq!(snap.messages.get(2).unwrap().size, got.len() as u64);
    // Name carries S= and W=.
    let cur = files_in(&root.join("cur"));
    assert!(
        cur.iter()
            .any(|n| n.contains(&format!(",S={},W={}:2,", lf.len(), lf.len() + 4))),
        "{cur:?}"
    );
    assert!(files_in(&root.join("tmp")).is_empty());
    assert_eq!(
        m.fetch_message(99).err().map(|e| e.kind),
        Some(ErrorKind::Expunged)
    );
}

#[test]
fn append_abort_and_missing_mailbox() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    let mut sink = s.append("INBOX").unwrap();
    sink.write(b"partial").unwrap();
    sink.abort();
    assert!(files_in(&root.join("tmp")).is_empty());
    assert_eq!(s.status("INBOX").unwrap().messages, 0);
    assert_eq!(
        s.append("Nope").err().map(|e| e.kind),
        Some(ErrorKind::NonExistent)
    );
}

#[test]
fn flags_and_keywords_in_names() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    let mut change = Flags {
        sys: SysFlags(SysFlags::FLAGGED.0 | SysFlags::ANSWERED.0 | SysFlags::DELETED.0),
        keywords: vec![],
    };
    change.add_keyword("$Work");
    change.add_keyword("Later");
    let out = m.store(&[1], StoreOp::Add, &change).unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].1.has_keyword("later"));
    // Lazy flag sync: the index has the flags at once, the file name after the last close.
    assert!(files_in(&root.join("cur"))[0].ends_with(":2,"));
    drop(m);
    let mut m = s.open("INBOX", false).unwrap();
    let cur = files_in(&root.join("cur"));
    assert_eq!(cur.len(), 1);
    assert!(cur[0].ends_with(":2,FRTab"), "{cur:?}");
    let kw = std::fs::read_to_string(root.join("dovecot-keywords")).unwrap();
    assert_eq!(kw, "0 $Work\n1 Later\n");
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(
        snap.messages.get(0).unwrap().flags.keywords,
        vec!["$Work".to_string(), "Later".to_string()]
    );
    assert_eq!(snap.keywords.len(), 2);
    let rm = Flags {
        sys: SysFlags::ANSWERED,
        keywords: vec!["$work".into()],
    };
    m.store(&[1], StoreOp::Remove, &rm).unwrap();
    drop(m);
    assert!(files_in(&root.join("cur"))[0].ends_with(":2,FTb"));
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    // Read-only sessions cannot store.
    let mut ro = s.open("INBOX", true).unwrap();
    assert_eq!(
        ro.store(&[1], StoreOp::Add, &seen()).unwrap_err().kind,
        ErrorKind::NoPerm
    );
}

#[test]
fn too_many_keywords_refused() {
    let d = tempfile::tempdir().unwrap();
    let (s, _root) = store(d.path());
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    let mut f = Flags::default();
    for i in 0..27 {
        f.add_keyword(&format!("k{i}"));
    }
    assert_eq!(
        m.store(&[1], StoreOp::Add, &f).unwrap_err().kind,
        ErrorKind::Limit
    );
}

#[test]
fn mta_delivery_and_recent() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    let mut a = s.open("INBOX", false).unwrap();
    let mut ro = s.open("INBOX", true).unwrap();
    let first = a.sync().unwrap();
    assert!(first.snapshot.messages.is_empty());
    let r0 = ro.sync().unwrap();
    // Nothing changed: the same Arc.
    let again = a.sync().unwrap();
    assert!(Arc::ptr_eq(&first.snapshot, &again.snapshot));

    std::fs::write(root.join("new/1700000000.M1P1.mta"), b"From: x\n\nhi\n").unwrap();
    let ro1 = ro.sync().unwrap();
    assert_eq!(ro1.snapshot.messages.len(), 1);
    // Read-only: reported as \Recent (claimed by nobody), not claimed.
    assert_eq!(ro1.new_recent, vec![1]);
    assert!(!Arc::ptr_eq(&r0.snapshot, &ro1.snapshot));
    assert!(
        root.join("new/1700000000.M1P1.mta").exists(),
        "EXAMINE must not move new/"
    );
    assert_eq!(s.status("INBOX").unwrap().recent, 1);

    let s1 = a.sync().unwrap();
    assert_eq!(s1.new_recent, vec![1]);
    assert!(ro.sync().unwrap().new_recent.is_empty(), "claimed by a now");
    assert_eq!(s1.snapshot.messages.get(0).unwrap().size, 15);
    assert!(root.join("cur/1700000000.M1P1.mta:2,").exists());
    // A second read-write session does not see it as recent.
    let mut b = s.open("INBOX", false).unwrap();
    let sb = b.sync().unwrap();
    assert_eq!(sb.snapshot.messages.len(), 1);
    assert!(sb.new_recent.is_empty());
    assert_eq!(s.status("INBOX").unwrap().recent, 0);
    let s2 = a.sync().unwrap();
    assert!(s2.new_recent.is_empty());
    assert_eq!(s2.snapshot.messages.get(0).unwrap().uid, 1);
}

#[test]
fn renamed_by_other_program_keeps_uid() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    std::fs::write(root.join("new/100.M1P1.host"), b"a\n").unwrap();
    std::fs::write(root.join("new/200.M1P1.host"), b"b\n").unwrap();
    let mut ro = s.open("INBOX", true).unwrap();
    let snap = ro.sync().unwrap().snapshot;
    assert_eq!(
        snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // mutt marks the second one seen and moves it to cur/.
    std::fs::rename(
        root.join("new/200.M1P1.host"),
        root.join("cur/200.M1P1.host:2,S"),
    )
    .unwrap();
    let snap = ro.sync().unwrap().snapshot;
    assert_eq!(snap.messages.len(), 2);
    assert_eq!(snap.messages.get(1).unwrap().uid, 2);
    assert!(is_seen(&snap, 1));
    assert_eq!(snap.uid_next, 3);
    // Fetch finds the file after another rename it has not synced yet.
    std::fs::rename(
        root.join("cur/200.M1P1.host:2,S"),
        root.join("cur/200.M1P1.host:2,FS"),
    )
    .unwrap();
    assert_eq!(&ro.fetch_message(2).unwrap()[..], b"b\r\n");
}

#[test]
fn two_handles_see_each_other() {
    let d = tempfile::tempdir().unwrap();
    let (s, _root) = store(d.path());
    append(&*s, "INBOX", b"1\r\n", Flags::default(), None);
    append(&*s, "INBOX", b"2\r\n", Flags::default(), None);
    let mut a = s.open("INBOX", false).unwrap();
    let mut b = s.open("INBOX", false).unwrap();
    a.sync().unwrap();
    let before = b.sync().unwrap().snapshot;
    let del = Flags {
        sys: SysFlags::DELETED,
        keywords: vec![],
    };
    a.store(&[1], StoreOp::Add, &del).unwrap();
    let after = b.sync().unwrap().snapshot;
    assert!(!Arc::ptr_eq(&before, &after));
    assert!(after
        .messages
        .get(0)
        .unwrap()
        .flags
        .sys
        .contains(SysFlags::DELETED));
    // b expunges; a sees the message gone.
    assert_eq!(b.expunge(None).unwrap(), vec![1]);
    let sa = a.sync().unwrap().snapshot;
    assert_eq!(
        sa.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(
        a.fetch_message(1).err().map(|e| e.kind),
        Some(ErrorKind::Expunged)
    );
    // New UIDs never reuse old ones.
    let (_, u) = append(&*s, "INBOX", b"3\r\n", Flags::default(), None);
    assert_eq!(u, 3);
    let sa = a.sync().unwrap().snapshot;
    assert_eq!(sa.uid_next, 4);
}

#[test]
fn uid_expunge_only_listed() {
    let d = tempfile::tempdir().unwrap();
    let (s, _root) = store(d.path());
    let del = Flags {
        sys: SysFlags::DELETED,
        keywords: vec![],
    };
    append(&*s, "INBOX", b"1\r\n", del.clone(), None);
    append(&*s, "INBOX", b"2\r\n", del, None);
    let mut a = s.open("INBOX", false).unwrap();
    a.sync().unwrap();
    assert_eq!(a.expunge(Some(&[2])).unwrap(), vec![2]);
    assert_eq!(a.sync().unwrap().snapshot.messages.len(), 1);
}

#[test]
fn copy_assigns_dest_uids() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    s.create("Dest", None).unwrap();
    let mut f = seen();
    f.add_keyword("Important");
    append(&*s, "INBOX", b"one\n", f, Some(1_234_567_890));
    append(&*s, "INBOX", b"two\r\n", Flags::default(), None);
    append(&*s, "Dest", b"zero\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    let r = m.copy_to(&[2, 1, 7], "Dest").unwrap();
    assert_eq!(r.source_uids, vec![1, 2]);
    assert_eq!(r.dest_uids, vec![2, 3]);
    assert_eq!(r.dest_uid_validity, s.status("Dest").unwrap().uid_validity);
    let mut dm = s.open("Dest", true).unwrap();
    let snap = dm.sync().unwrap().snapshot;
    assert_eq!(snap.messages.len(), 3);
    let c = &snap.messages.get(1).unwrap();
    assert!(c.flags.sys.contains(SysFlags::SEEN) && c.flags.has_keyword("important"));
    assert_eq!(c.internal_date, 1_234_567_890);
    assert_eq!(&dm.fetch_message(2).unwrap()[..], b"one\r\n");
    assert_eq!(c.size, 5);
    assert!(files_in(&root.join(".Dest/tmp")).is_empty());
    assert_eq!(
        m.copy_to(&[1], "Nope").unwrap_err().kind,
        ErrorKind::NonExistent
    );
}

#[test]
fn migration_from_dovecot() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("mail/bob");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("cur/100.M1P1.host,S=3,W=4:2,Sb"), b"ab\n").unwrap();
    std::fs::write(root.join("cur/200.M2P2.host:2,"), b"cd\n").unwrap();
    std::fs::write(root.join("new/300.M3P3.host"), b"ef\n").unwrap();
    std::fs::write(
        root.join("dovecot-uidlist"),
        "3 V1111 N50 Gdeadbeef\n17 W4 S3 :100.M1P1.host,S=3,W=4:2,Sb\n23 :200.M2P2.host\n",
    )
    .unwrap();
    std::fs::write(root.join("dovecot-keywords"), "0 $Label1\n1 Project\n").unwrap();
    let (s, _) = store(d.path());
    let mut m = s.open("INBOX", false).unwrap();
    let r = m.sync().unwrap();
    let snap = r.snapshot;
    assert_eq!(snap.uid_validity, 1111);
    assert_eq!(
        snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![17, 23, 50]
    );
    assert_eq!(snap.uid_next, 51);
    assert_eq!(r.new_recent, vec![50]);
    assert!(snap.messages.get(0).unwrap().flags.has_keyword("Project"));
    assert!(is_seen(&snap, 0));
    assert!(root.join("loft.index").is_file());
    assert!(!root.join("loft-uidlist").exists());
}

#[test]
fn tmp_leftovers_ignored_and_cleaned() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    let old = root.join("tmp/1.M1P1.crashed");
    std::fs::write(&old, b"half a mess").unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&old).unwrap();
    crate::mailbox::maildir::save::set_mtime(&f, 1_000_000).unwrap();
    drop(f);
    let fresh = root.join("tmp/2.M2P2.writing");
    std::fs::write(&fresh, b"in progress").unwrap();
    let mut m = s.open("INBOX", false).unwrap();
    assert!(m.sync().unwrap().snapshot.messages.is_empty());
    assert!(!old.exists());
    assert!(fresh.exists());
}

#[test]
fn garbage_index_recovered() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append_n(&*s, 3);
    let uidv = s.status("INBOX").unwrap().uid_validity;
    // The main index's header garbled: the log still names every message.
    let mut bytes = std::fs::read(root.join("loft.index")).unwrap();
    for b in bytes.iter_mut().skip(8).take(24) {
        *b ^= 0x5a;
    }
    std::fs::write(root.join("loft.index"), &bytes).unwrap();
    // An odd file in cur/ and a directory.
    std::fs::write(root.join("cur/.hidden"), b"x").unwrap();
    std::fs::create_dir(root.join("cur/adir")).unwrap();
    let mut m = s.open("INBOX", false).unwrap();
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(snap.uid_validity, uidv);
    assert_eq!(
        snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(crate::index::Index::verify(&root).is_empty());
    drop(m);

    // Every index file unreadable: UIDVALIDITY must change, messages survive.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for f in ["loft.index", "loft.index.log"] {
        std::fs::write(root.join(f), b"\xff\xfe garbage").unwrap();
    }
    let mut m2 = s.open("INBOX", false).unwrap();
    let snap2 = m2.sync().unwrap().snapshot;
    assert_eq!(snap2.messages.len(), 3);
    assert!(snap2.uid_validity > uidv);
}

#[test]
fn other_process_sees_changes_via_disk() {
    // Two stores (as two processes would have) on the same root.
    let d = tempfile::tempdir().unwrap();
    let (s1, _) = store(d.path());
    let (s2, _) = store(d.path());
    let mut m2 = s2.open("INBOX", false).unwrap();
    m2.sync().unwrap();
    append(&*s1, "INBOX", b"hello\r\n", Flags::default(), None);
    let r = m2.sync().unwrap();
    assert_eq!(r.snapshot.messages.len(), 1);
    assert_eq!(r.new_recent, vec![1]);
}

#[test]
fn concurrent_appends_and_syncs() {
    let d = tempfile::tempdir().unwrap();
    let (s, _root) = store(d.path());
    let mut threads = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        threads.push(std::thread::spawn(move || {
            let mut m = s.open("INBOX", t % 2 == 0).unwrap();
            let mut uids = Vec::new();
            for i in 0..10 {
                let body = format!("Subject: {t}-{i}\n\nx\n");
                uids.push(append(&*s, "INBOX", body.as_bytes(), Flags::default(), None).1);
                m.sync().unwrap();
            }
            uids
        }));
    }
    let mut all: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 40, "every append got its own UID");
    let mut m = s.open("INBOX", false).unwrap();
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(snap.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), all);
    for meta in &snap.messages {
        assert_eq!(m.fetch_message(meta.uid).unwrap().len() as u64, meta.size);
    }
}

#[test]
fn copy_into_same_mailbox() {
    let d = tempfile::tempdir().unwrap();
    let (s, _root) = store(d.path());
    append(&*s, "INBOX", b"a\r\n", seen(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    let r = m.copy_to(&[1], "inbox").unwrap();
    assert_eq!(r.dest_uids, vec![2]);
    let res = m.sync().unwrap();
    assert_eq!(res.snapshot.messages.len(), 2);
    // The copy is \Recent (RFC 3501 §6.4.7) for the session that sees it first.
    assert_eq!(res.new_recent, vec![2]);
}

/// The first scan of a big existing Maildir does not `stat` its files: UIDs follow the
/// names' delivery times, dates are unknown until the background fill (no runtime here:
/// it runs inside `sync`) records them; until then `internal_date` asks per message.
#[test]
fn first_scan_of_a_big_folder_fills_dates_afterwards() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    let n = 1200; // above STAT_NOW
    for i in 0..n {
        // Names out of delivery order on disk; mtime = 1,000,000 + i.
        let name = format!("{}.M{i}P1.host:2,S", 1_600_000_000 + (n - i));
        let p = root.join("cur").join(&name);
        std::fs::write(&p, format!("Subject: {i}\r\n\r\nx\r\n")).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        crate::mailbox::maildir::save::set_mtime(&f, 1_000_000 + i as i64).unwrap();
    }
    let mut m = s.open("INBOX", false).unwrap();
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(snap.messages.len(), n);
    assert!(snap
        .messages
        .iter()
        .all(|m| m.internal_date == crate::mailbox::UNKNOWN_DATE));
    // UID 1 is the earliest name time: the last file written (i = n - 1).
    let first = m.fetch_message(1).unwrap();
    assert!(first.starts_with(format!("Subject: {}\r\n", n - 1).as_bytes()));
    // Without a runtime the fill ran inside `sync`: the next sync has every date.
    let snap = m.sync().unwrap().snapshot;
    for (k, meta) in snap.messages.iter().enumerate() {
        let i = n - 1 - k;
        assert_eq!(meta.internal_date, 1_000_000 + i as i64, "uid {}", meta.uid);
        assert_eq!(m.internal_date(meta.uid), Some(1_000_000 + i as i64));
    }
    // The dates are in the index files: a new process (fresh state) sees them at once.
    drop(m);
    let ix = crate::index::Index::open(&root, &crate::index::Options::default()).unwrap();
    let snap = ix.refresh().unwrap();
    assert!(snap
        .records
        .iter()
        .all(|r| r.internal_date != crate::index::UNKNOWN_DATE));
}

/// FETCH serves CRLF whatever the file holds; SEARCH reads the file as stored. A name
/// whose W= claims the raw length of an LF file is trusted (no scan), as for range reads.
#[test]
fn search_reads_stored_line_ends_fetch_converts() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    std::fs::write(root.join("cur/100.M1P1.host:2,"), b"A: b\n\nx\ny\n").unwrap();
    std::fs::write(root.join("cur/200.M1P1.host,W=10:2,"), b"A: b\r\n\r\nz\n").unwrap();
    std::fs::write(root.join("cur/300.M1P1.host,W=11:2,"), b"A: b\r\n\r\nz\n").unwrap();
    let mut m = s.open("INBOX", true).unwrap();
    let snap = m.sync().unwrap().snapshot;
    // No W=: not computed by the scan; computed on request, then in the snapshot.
    assert_eq!(
        snap.messages.get(0).unwrap().size,
        crate::mailbox::UNKNOWN_SIZE
    );
    assert_eq!(m.sizes(&[1, 2, 99]), vec![Some(14), Some(10), None]);
    assert_eq!(m.sync().unwrap().snapshot.messages.get(0).unwrap().size, 14);
    assert_eq!(&m.fetch_message(1).unwrap()[..], b"A: b\r\n\r\nx\r\ny\r\n");
    assert_eq!(&m.fetch_for_search(1).unwrap()[..], b"A: b\n\nx\ny\n");
    // W= equal to the raw length (a wrong name): trusted, served as stored.
    assert_eq!(&m.fetch_message(2).unwrap()[..], b"A: b\r\n\r\nz\n");
    assert_eq!(&m.fetch_for_search(2).unwrap()[..], b"A: b\r\n\r\nz\n");
    // A true W= (the bare LF counted twice): converted.
    assert_eq!(&m.fetch_message(3).unwrap()[..], b"A: b\r\n\r\nz\r\n");
}

/// Our own APPEND hands its new file to the folder's shared state instead of listing the
/// folder again: a session of this process sees the message at its next sync without a
/// listing. Proved with a file slipped into `cur/` behind the fingerprint's back (the
/// directory's mtime put back): a listing finds it, the hand-over does not. Once the
/// racy window of our own change is over, one listing looks again and finds it.
#[test]
fn append_hands_its_file_to_the_folder_state_without_listing() {
    let d = tempfile::tempdir().unwrap();
    // NFS mode: the racy window is 2 s, long enough for a loaded test machine.
    let c = StorageConfig {
        nfs: true,
        ..cfg(d.path())
    };
    let (s, root) = super::store_of(&c, d.path());
    append_n(&*s, 3);
    let mut m = s.open("INBOX", true).unwrap();
    assert_eq!(m.sync().unwrap().snapshot.messages.len(), 3);
    // Past the racy window of the appends above.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(m.sync().unwrap().snapshot.messages.len(), 3);
    let cur = root.join("cur");
    let stamp = std::fs::metadata(&cur).unwrap().modified().unwrap();
    std::fs::write(cur.join("999.M1P1.sneaky:2,"), b"x\r\n").unwrap();
    std::fs::File::open(&cur)
        .unwrap()
        .set_modified(stamp)
        .unwrap();
    let t = std::time::Instant::now();
    let (_, uid) = append(&*s, "INBOX", b"new\r\n", Flags::default(), None);
    let snap = m.sync().unwrap().snapshot;
    let uids: Vec<u32> = snap.messages.iter().map(|x| x.uid).collect();
    if t.elapsed() < std::time::Duration::from_millis(1500) {
        assert_eq!(uids, vec![1, 2, 3, uid], "the folder was listed again");
    }
    assert_eq!(&m.fetch_message(uid).unwrap()[..], b"new\r\n");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(snap.messages.len(), 5, "no listing after the window");
}
