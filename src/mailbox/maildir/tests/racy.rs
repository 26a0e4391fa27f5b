//! Syncs inside the racy window of the directory timestamps: a listing that shows only
//! the files we know settles them without a full rescan; a change by another program in
//! the same window is still found.

use super::*;
use crate::mailbox::maildir::sync::FolderState;
use crate::mailbox::maildir::StorageCtx;

/// A store with its storage context (to look at the folder's shared state).
fn store_ctx(dir: &Path) -> (Arc<StorageCtx>, Arc<dyn Store>, PathBuf) {
    let ctx = StorageCtx::new(&cfg(dir));
    let s = super::super::open_store(&ctx, "bob", None, crate::mailbox::userlock::Mode::Session)
        .unwrap();
    (ctx, s, dir.join("mail/bob"))
}

fn rescans(ctx: &StorageCtx, root: &Path) -> u64 {
    let path = root.canonicalize().unwrap();
    let state = FolderState::existing(ctx, &path).expect("folder open");
    state.with(|c| c.rescans)
}

#[test]
fn racy_syncs_of_an_unchanged_folder_do_not_rescan() {
    let d = tempfile::tempdir().unwrap();
    let (ctx, s, root) = store_ctx(d.path());
    append_n(&*s, 3);
    let mut m = s.open("INBOX", false).unwrap();
    assert_eq!(m.sync().unwrap().snapshot.messages.len(), 3);
    let before = rescans(&ctx, &root);
    // Right after the appends the directories' timestamps are racy: each sync must
    // check the folder, and a listing equal to the file map is enough.
    for _ in 0..5 {
        assert_eq!(m.sync().unwrap().snapshot.messages.len(), 3);
    }
    assert_eq!(
        rescans(&ctx, &root),
        before,
        "racy syncs of an unchanged folder rescanned"
    );
}

#[test]
fn a_foreign_rename_in_the_racy_window_is_found() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append_n(&*s, 1);
    let mut m = s.open("INBOX", false).unwrap();
    let first = m.sync().unwrap().snapshot;
    assert!(!is_seen(&first, 0));
    // mutt marks it seen: a rename in cur/ within the same clock tick, as likely as not.
    let cur = root.join("cur");
    let name = files_in(&cur).pop().unwrap();
    let base = name.split(":2,").next().unwrap().to_string();
    std::fs::rename(cur.join(&name), cur.join(format!("{base}:2,S"))).unwrap();
    let after = m.sync().unwrap().snapshot;
    assert!(is_seen(&after, 0));
}

/// EXPUNGE takes the records out of the index with the files, under the folder lock:
/// no full rescan afterwards, and another process (a new store) finds the same.
#[test]
fn expunge_drops_records_without_a_rescan() {
    use crate::mailbox::StoreOp;
    let d = tempfile::tempdir().unwrap();
    let (ctx, s, root) = store_ctx(d.path());
    append_n(&*s, 4);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    let deleted = Flags {
        sys: SysFlags::DELETED,
        keywords: vec![],
    };
    m.store(&[2, 3], StoreOp::Add, &deleted).unwrap();
    m.sync().unwrap();
    let before = rescans(&ctx, &root);
    assert_eq!(m.expunge(None).unwrap(), vec![2, 3]);
    let uids = |snap: &crate::mailbox::Snapshot| -> Vec<u32> {
        snap.messages.iter().map(|x| x.uid).collect()
    };
    assert_eq!(uids(&m.sync().unwrap().snapshot), vec![1, 4]);
    assert_eq!(rescans(&ctx, &root), before, "EXPUNGE rescanned the folder");
    drop(m);
    let (other, _) = store(d.path());
    let mut m2 = other.open("INBOX", true).unwrap();
    assert_eq!(uids(&m2.sync().unwrap().snapshot), vec![1, 4]);
    assert_eq!(files_in(&root.join("cur")).len(), 2);
}

/// Once a sync found the folder exact, syncs with no inotify event since skip the look
/// and the listing even while the stamps are racy (no catch-up, no listing: `scans`
/// stays); a foreign rename, delivery or unlink right after, in the same clock tick as
/// likely as not, is still found by the very next sync.
#[test]
fn quiet_syncs_skip_the_look_and_foreign_changes_are_still_found() {
    let d = tempfile::tempdir().unwrap();
    let (ctx, s, root) = store_ctx(d.path());
    append_n(&*s, 2);
    let mut m = s.open("INBOX", false).unwrap();
    let scans = |ctx: &StorageCtx| {
        let state = FolderState::existing(ctx, &root.canonicalize().unwrap()).unwrap();
        state.with(|c| c.scans)
    };
    let cur = root.join("cur");
    let mut expected = 2;
    for round in 0..20 {
        m.sync().unwrap();
        m.sync().unwrap();
        let settled = scans(&ctx);
        for _ in 0..3 {
            assert_eq!(m.sync().unwrap().snapshot.messages.len(), expected);
        }
        assert_eq!(
            scans(&ctx),
            settled,
            "round {round}: a quiet sync looked again"
        );
        // mutt toggles \Seen on the first message (the oldest name: deliveries below are
        // named after it, and the newest of them is what is removed).
        let name = files_in(&cur).into_iter().min().unwrap();
        let base = name.split(":2,").next().unwrap().to_string();
        let seen = name.ends_with('S');
        let to = if seen {
            format!("{base}:2,")
        } else {
            format!("{base}:2,S")
        };
        std::fs::rename(cur.join(&name), cur.join(to)).unwrap();
        let snap = m.sync().unwrap().snapshot;
        assert_eq!(
            is_seen(&snap, 0),
            !seen,
            "round {round}: foreign rename missed"
        );
        // An MTA delivers, or a mail reader removes the newest.
        if round % 2 == 0 {
            std::fs::write(
                root.join(format!("new/{}.M{round}P1.mx", 1_900_000_000 + round)),
                b"x\r\n",
            )
            .unwrap();
            expected += 1;
        } else {
            let newest = files_in(&cur).into_iter().max().unwrap();
            std::fs::remove_file(cur.join(newest)).unwrap();
            expected -= 1;
        }
        assert_eq!(
            m.sync().unwrap().snapshot.messages.len(),
            expected,
            "round {round}: foreign delivery or unlink missed"
        );
    }
}

/// After this process's own changes (a flag stored, a message appended, one expunged)
/// the events name exactly the files the file map already has: the next sync needs no
/// listing. A foreign change among them still makes it list, and is found.
#[test]
fn own_changes_need_no_listing_and_foreign_ones_still_do() {
    use crate::mailbox::{Flags, StoreOp, SysFlags};
    let d = tempfile::tempdir().unwrap();
    let (ctx, s, root) = store_ctx(d.path());
    append_n(&*s, 3);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    m.sync().unwrap();
    let listings = |ctx: &StorageCtx| {
        let state = FolderState::existing(ctx, &root.canonicalize().unwrap()).unwrap();
        state.with(|c| c.listings)
    };
    let seen = Flags {
        sys: SysFlags::SEEN,
        keywords: Vec::new(),
    };
    let before = listings(&ctx);
    append_n(&*s, 1);
    assert_eq!(m.sync().unwrap().snapshot.messages.len(), 4);
    assert_eq!(listings(&ctx), before, "our own APPEND needed a listing");
    let uids: Vec<_> = m.sync().unwrap().snapshot.messages.uids().collect();
    m.store(&uids[..1], StoreOp::Add, &seen).unwrap();
    // The flag reaches the file name now (a rename in cur/), not at the last close.
    let state = FolderState::existing(&ctx, &root.canonicalize().unwrap()).unwrap();
    let renamed = files_in(&root.join("cur"));
    crate::mailbox::maildir::flagsync::flush(&state, crate::index::FsyncMode::Never).unwrap();
    assert_ne!(
        files_in(&root.join("cur")),
        renamed,
        "the flush renamed nothing"
    );
    let snap = m.sync().unwrap().snapshot;
    assert!(is_seen(&snap, 0));
    assert_eq!(
        listings(&ctx),
        before,
        "our own flag flush needed a listing"
    );
    // mutt removes the second message's file behind our back.
    let cur = root.join("cur");
    let mut names = files_in(&cur);
    names.sort();
    std::fs::remove_file(cur.join(&names[1])).unwrap();
    assert_eq!(
        m.sync().unwrap().snapshot.messages.len(),
        3,
        "foreign unlink missed"
    );
    assert!(
        listings(&ctx) > before,
        "a foreign change was taken in without a listing"
    );
}

/// The file map keeps a name only when it cannot be made again from the base and the
/// flags (a letter Loft does not know, letters out of order, another info part): such
/// messages read back, a flag stored on one keeps its unknown letter, our own rename of
/// it needs no listing afterwards, and a foreign rename of another is found.
#[test]
fn names_not_made_from_their_flags_are_kept_whole() {
    use crate::mailbox::{StoreOp, SysFlags};
    let d = tempfile::tempdir().unwrap();
    let (ctx, s, root) = store_ctx(d.path());
    append_n(&*s, 1);
    let cur = root.join("cur");
    let odd = [
        "1700000001.M1P1.host,S=40:2,PS",
        "1700000002.M1P1.host:2,SF",
        "1700000003.M1P1.host:1,x",
    ];
    for (i, n) in odd.iter().enumerate() {
        std::fs::write(cur.join(n), format!("Subject: odd {i}\r\n\r\nbody {i}\r\n")).unwrap();
    }
    let mut m = s.open("INBOX", false).unwrap();
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(snap.messages.len(), 4);
    let uids: Vec<_> = snap.messages.uids().collect();
    for (i, &u) in uids[1..].iter().enumerate() {
        let body = m.fetch_message(u).unwrap().to_vec();
        assert_eq!(
            body,
            format!("Subject: odd {i}\r\n\r\nbody {i}\r\n").into_bytes()
        );
    }
    let listings = || {
        let state = FolderState::existing(&ctx, &root.canonicalize().unwrap()).unwrap();
        state.with(|c| c.listings)
    };
    m.sync().unwrap();
    let before = listings();
    let flagged = crate::mailbox::Flags {
        sys: SysFlags::FLAGGED,
        keywords: Vec::new(),
    };
    m.store(&uids[1..2], StoreOp::Add, &flagged).unwrap();
    let state = FolderState::existing(&ctx, &root.canonicalize().unwrap()).unwrap();
    crate::mailbox::maildir::flagsync::flush(&state, crate::index::FsyncMode::Never).unwrap();
    let names = files_in(&cur);
    assert!(
        names.contains(&"1700000001.M1P1.host,S=40:2,FPS".to_string()),
        "unknown letter lost: {names:?}"
    );
    m.sync().unwrap();
    assert_eq!(
        listings(),
        before,
        "our own rename of an odd name needed a listing"
    );
    let body = m.fetch_message(uids[1]).unwrap().to_vec();
    assert_eq!(body, b"Subject: odd 0\r\n\r\nbody 0\r\n".to_vec());
    // mutt marks the third one seen and answered, its letters in its own order.
    std::fs::rename(
        cur.join("1700000003.M1P1.host:1,x"),
        cur.join("1700000003.M1P1.host:2,SR"),
    )
    .unwrap();
    let snap = m.sync().unwrap().snapshot;
    let i = snap.messages.find(uids[3]).unwrap();
    let meta = snap.messages.get(i).unwrap();
    assert!(meta.flags.sys.contains(SysFlags::SEEN) && meta.flags.sys.contains(SysFlags::ANSWERED));
    let body = m.fetch_message(uids[3]).unwrap().to_vec();
    assert_eq!(body, b"Subject: odd 2\r\n\r\nbody 2\r\n".to_vec());
}
