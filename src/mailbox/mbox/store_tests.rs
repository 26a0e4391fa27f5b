//! The mbox store on real files: names and layout, and a shared file kept in step with
//! the index while other programs change it (mutt's rewrites, a replaced or removed
//! file), flags written lazily, UIDs never given twice.

use std::path::Path;
use std::sync::Arc;

use super::store::{MboxStore, StorageCtx, LOFT_DIR};
use crate::config::{Config, StorageFormat};
use crate::mailbox::{ErrorKind, Flags, Store, StoreOp, SysFlags};

const D: &str = "Mon Dec  7 16:49:14 2026";

fn storage(dir: &Path, write_headers: bool) -> Arc<StorageCtx> {
    let mut cfg = Config::for_tests(dir).storage;
    cfg.format = StorageFormat::Mbox;
    cfg.location = dir.join("mail/%u").to_string_lossy().into_owned();
    cfg.autocreate_special_use = false;
    cfg.mbox.write_headers = write_headers;
    StorageCtx::new(&cfg)
}

fn store(dir: &Path) -> MboxStore {
    MboxStore::open(&storage(dir, true), "alice", None).unwrap()
}

fn mail(subject: &str) -> String {
    format!("From bob@example.org  {D}\nSubject: {subject}\n\nbody of {subject}\n\n")
}

fn inbox(dir: &Path) -> std::path::PathBuf {
    dir.join("mail/alice/INBOX")
}

fn uids(st: &super::state::FileState) -> Vec<u32> {
    st.refresh(false).unwrap().0.messages.uids().collect()
}

fn seen() -> Flags {
    Flags {
        sys: SysFlags::SEEN,
        keywords: vec!["$Work".into()],
    }
}

#[test]
fn names_files_and_directories() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    s.create("Work/2026/Q4", None).unwrap();
    s.create("Entwürfe", None).unwrap();
    let root = d.path().join("mail/alice");
    assert!(root.join("Work/2026/Q4").is_file());
    assert!(
        root.join("Entw&APw-rfe").is_file(),
        "modified UTF-7 as Dovecot"
    );
    // Loft's directory, dotlocks beside their file and dot files are not mailboxes.
    std::fs::write(root.join("Entw&APw-rfe.lock"), "1\n").unwrap();
    std::fs::write(root.join(".hidden"), "").unwrap();
    std::os::unix::fs::symlink("/etc", root.join("Evil")).unwrap();
    let mut list: Vec<(String, bool)> = (s.list().unwrap().into_iter())
        .map(|e| (e.name, e.noselect))
        .collect();
    list.sort();
    let want = [
        ("Entwürfe", false),
        ("INBOX", false),
        ("Work", true),
        ("Work/2026", true),
        ("Work/2026/Q4", false),
    ];
    let want: Vec<(String, bool)> = want.iter().map(|(n, b)| (n.to_string(), *b)).collect();
    assert_eq!(list, want);
    // A file cannot have children; hidden and dotlock names are refused.
    assert_eq!(
        s.create("Work/2026/Q4/x", None).unwrap_err().kind,
        ErrorKind::NoPerm
    );
    for bad in [".x", "a/..", "Inbox.lock", "a//b"] {
        assert_eq!(
            s.create(bad, None).unwrap_err().kind,
            ErrorKind::BadName,
            "{bad}"
        );
    }
    assert_eq!(
        s.create(LOFT_DIR, None).unwrap_err().kind,
        ErrorKind::BadName
    );
    // A link in a mailbox's place is neither opened nor deleted.
    assert!(s.open("Evil", false).is_err());
    assert!(s.delete("Evil").is_err());
    assert!(Path::new("/etc/passwd").exists());
    // A directory with children is not deleted; an emptied one is.
    assert_eq!(
        s.delete("Work/2026").unwrap_err().kind,
        ErrorKind::HasChildren
    );
    s.rename("Work/2026/Q4", "Done").unwrap();
    s.delete("Work/2026").unwrap();
    assert!(root.join("Done").is_file());
}

/// mutt rewrites the file (a flag changed by the reader, a message deleted): the others
/// keep their UIDs and the index takes the file's flags, except where a client's change
/// is not in the file yet.
#[test]
fn a_rewrite_by_another_program_keeps_uids_and_brings_its_flags() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    std::fs::write(inbox(d.path()), mail("a") + &mail("b") + &mail("c")).unwrap();
    let st = s.state("INBOX").unwrap();
    assert_eq!(uids(&st), [1, 2, 3]);
    // A client flags message 3; not yet in the file.
    st.store(&[3], StoreOp::Add, &seen()).unwrap();
    // The reader drops "b" and marks "a" read (its own Status line).
    let text = std::fs::read_to_string(inbox(d.path())).unwrap();
    let a_end = text
        .find("From bob@example.org  Mon Dec  7 16:49:14 2026\nSubject: b")
        .unwrap();
    let c_start = text.rfind("From bob").unwrap();
    let a = text[..a_end].replacen("Subject: a\n", "Subject: a\nStatus: RO\n", 1);
    std::fs::write(inbox(d.path()), a + &text[c_start..]).unwrap();
    let snap = st.refresh(false).unwrap().0;
    assert_eq!(snap.messages.uids().collect::<Vec<_>>(), [1, 3]);
    let flags: Vec<Flags> = snap.messages.iter().map(|m| m.flags).collect();
    assert_eq!(flags[0].sys, SysFlags::SEEN, "the file's flag taken");
    assert_eq!(flags[1], seen(), "the client's change kept over the file's");
    // Written lazily: after the flush the file says it, with the UIDs.
    st.flush_if(|_| true).unwrap();
    let text = std::fs::read_to_string(inbox(d.path())).unwrap();
    assert!(
        text.contains("X-UID: 3\n") && text.contains("X-Keywords: $Work"),
        "{text}"
    );
    // A new process (new context) finds the same UIDs and flags.
    let s2 = MboxStore::open(&storage(d.path(), true), "alice", None).unwrap();
    let st2 = s2.state("INBOX").unwrap();
    let snap2 = st2.refresh(false).unwrap().0;
    assert_eq!(snap2.uid_validity, snap.uid_validity);
    assert_eq!(snap2.messages.get(1).unwrap().flags, seen());
}

/// The last message expunged and the file emptied, removed and made again by a
/// delivery: UIDs go on above every UID handed out.
#[test]
fn uids_are_never_given_twice() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    std::fs::write(inbox(d.path()), mail("a") + &mail("b")).unwrap();
    let st = s.state("INBOX").unwrap();
    assert_eq!(uids(&st), [1, 2]);
    let del = Flags {
        sys: SysFlags::DELETED,
        keywords: vec![],
    };
    st.store(&[2], StoreOp::Add, &del).unwrap();
    assert_eq!(st.expunge(None).unwrap(), [2]);
    assert_eq!(uids(&st), [1]);
    let (_, uid) = st
        .append(b"Subject: new\r\n\r\nx\r\n", &Flags::default(), 0)
        .unwrap();
    assert_eq!(uid, 3);
    std::fs::remove_file(inbox(d.path())).unwrap();
    assert!(uids(&st).is_empty(), "a removed file is an empty mailbox");
    std::fs::write(inbox(d.path()), mail("d")).unwrap();
    assert_eq!(uids(&st), [4]);
}

/// With `mbox_write_headers = false` the file is never given Loft's fields: flags live
/// in the index; an expunge still removes the message.
#[test]
fn never_writing_headers_leaves_the_messages_as_delivered() {
    let d = tempfile::tempdir().unwrap();
    let s = MboxStore::open(&storage(d.path(), false), "alice", None).unwrap();
    let original = mail("a") + &mail("b");
    std::fs::write(inbox(d.path()), &original).unwrap();
    let st = s.state("INBOX").unwrap();
    st.store(&[1], StoreOp::Add, &seen()).unwrap();
    st.flush_if(|_| true).unwrap();
    assert_eq!(std::fs::read_to_string(inbox(d.path())).unwrap(), original);
    let del = Flags {
        sys: SysFlags::DELETED,
        keywords: vec![],
    };
    st.store(&[2], StoreOp::Add, &del).unwrap();
    st.expunge(None).unwrap();
    assert_eq!(std::fs::read_to_string(inbox(d.path())).unwrap(), mail("a"));
    assert_eq!(
        st.refresh(false).unwrap().0.messages.get(0).unwrap().flags,
        seen()
    );
    // An APPEND is stored as given: flags and UID in the index only.
    let (_, uid) = st.append(b"Subject: new\r\n\r\nx\r\n", &seen(), 0).unwrap();
    let text = std::fs::read_to_string(inbox(d.path())).unwrap();
    for field in [
        "Status:",
        "X-Status:",
        "X-Keywords:",
        "X-UID:",
        "X-IMAPbase:",
        "Content-Length:",
    ] {
        assert!(!text.contains(field), "{field} in\n{text}");
    }
    let snap = st.refresh(false).unwrap().0;
    let last = snap.messages.last().unwrap();
    assert_eq!((last.uid, last.flags.clone()), (uid, seen()));
    assert_eq!(
        st.read(uid, super::state::Part::Whole).unwrap(),
        b"Subject: new\n\nx\n"
    );
}

/// A damaged index is rebuilt from the file, logged once, the UIDs kept (the file's
/// `X-UID`s).
#[test]
fn a_damaged_index_is_rebuilt_keeping_uids() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    std::fs::write(inbox(d.path()), mail("a") + &mail("b") + &mail("c")).unwrap();
    let st = s.state("INBOX").unwrap();
    let del = Flags {
        sys: SysFlags::DELETED,
        keywords: vec![],
    };
    st.store(&[1], StoreOp::Add, &del).unwrap();
    st.expunge(None).unwrap();
    let before = st.refresh(false).unwrap().0;
    drop(st);
    let ix = d.path().join("mail/alice").join(LOFT_DIR).join("m.INBOX");
    for f in ["loft.index", "loft.index.log"] {
        std::fs::write(
            ix.join(f),
            b"garbage garbage garbage garbage garbage garbage",
        )
        .unwrap();
    }
    let s2 = MboxStore::open(&storage(d.path(), true), "alice", None).unwrap();
    let after = s2.state("INBOX").unwrap().refresh(false).unwrap().0;
    assert_eq!(after.uid_validity, before.uid_validity);
    assert_eq!(
        after.messages.uids().collect::<Vec<_>>(),
        before.messages.uids().collect::<Vec<_>>()
    );
    assert!(s2.index_verify(None).unwrap().is_empty());
}

/// The last close saves the sync; the next process (or session after the last one let
/// go) reads only what changed since: nothing for an unchanged file, the last known and
/// the new message after a delivery; a damaged save is ignored (the file scanned).
/// Three messages, the second `\Seen`, written into the file and the sync saved (as
/// at a last close); the INBOX state of a new store (as of a new process), and the
/// save's path.
fn saved_three(
    d: &Path,
) -> (
    impl Fn() -> Arc<super::state::FileState> + '_,
    std::path::PathBuf,
) {
    let s = store(d);
    std::fs::write(inbox(d), mail("a") + &mail("b") + &mail("c")).unwrap();
    let st = s.state("INBOX").unwrap();
    assert_eq!(uids(&st), [1, 2, 3]);
    assert_eq!(st.scanned(), 3);
    st.store(&[2], StoreOp::Add, &seen()).unwrap();
    st.flush_if(|_| true).unwrap();
    st.save();
    let open = move || {
        let s = MboxStore::open(&storage(d, true), "alice", None).unwrap();
        s.state("INBOX").unwrap()
    };
    let saved = (d.join("mail/alice").join(LOFT_DIR)).join("m.INBOX/loft.mbox-scan");
    (open, saved)
}

#[test]
fn a_saved_sync_spares_the_next_one_the_scan() {
    let d = tempfile::tempdir().unwrap();
    let (open, saved) = saved_three(d.path());
    let st = open();
    assert_eq!(uids(&st), [1, 2, 3]);
    assert_eq!(st.scanned(), 0, "the saved sync was used");
    assert_eq!(
        st.read(2, super::state::Part::Whole).unwrap(),
        b"Subject: b\n\nbody of b\n"
    );
    drop(st);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(inbox(d.path()))
        .unwrap();
    std::io::Write::write_all(&mut f, mail("d").as_bytes()).unwrap();
    let st = open();
    assert_eq!(uids(&st), [1, 2, 3, 4]);
    assert_eq!(st.scanned(), 2, "the last known message and the new one");
    drop(st);
    std::fs::write(&saved, b"LOFTMBS2 damaged").unwrap();
    let st = open();
    assert_eq!(uids(&st), [1, 2, 3, 4]);
    assert_eq!(st.scanned(), 4, "a damaged save: the whole file read");
}

/// A restart on an unchanged file reads only the save's header (UIDs checked against the
/// index by their CRC); the messages are read when something needs them (a body). A save
/// whose messages turn out damaged then costs a scan of the file, never a wrong answer.
#[test]
fn an_unchanged_file_opens_from_the_saves_header_alone() {
    let d = tempfile::tempdir().unwrap();
    let (open, saved) = saved_three(d.path());
    let st = open();
    assert_eq!(uids(&st), [1, 2, 3]);
    assert!(st.messages_on_disk(), "only the header read");
    let b = |st: &super::state::FileState, uid| st.read(uid, super::state::Part::Whole).unwrap();
    assert_eq!(b(&st, 2), b"Subject: b\n\nbody of b\n");
    assert!(!st.messages_on_disk());
    assert_eq!(st.scanned(), 0, "the saved messages were used");
    drop(st);
    let mut bytes = std::fs::read(&saved).unwrap();
    let at = bytes.len() - 20; // the last message's record, not the header
    bytes[at] ^= 0x40;
    std::fs::write(&saved, &bytes).unwrap();
    let st = open();
    assert_eq!(uids(&st), [1, 2, 3]);
    assert!(st.messages_on_disk(), "the header is whole");
    assert_eq!(b(&st, 3), b"Subject: c\n\nbody of c\n");
    assert_eq!(st.scanned(), 3, "the damaged save: the file scanned");
    assert_eq!(uids(&st), [1, 2, 3]);
    let snap = st.snapshot();
    let flags = |uid| {
        snap.messages
            .get(snap.messages.find(uid).unwrap())
            .unwrap()
            .flags
            .sys
    };
    assert!(flags(2).contains(SysFlags::SEEN) && !flags(1).contains(SysFlags::SEEN));
}

/// Flags written into the room of fields written before read back only the changed
/// headers (no scan of the file), and the saved sync is then used whole.
#[test]
fn flags_in_place_need_no_scan() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    let text: String = (0..50).map(|i| mail(&format!("m{i}"))).collect();
    std::fs::write(inbox(d.path()), text).unwrap();
    let st = s.state("INBOX").unwrap();
    assert_eq!(uids(&st).len(), 50);
    let flagged = Flags {
        sys: SysFlags::FLAGGED,
        keywords: vec![],
    };
    st.store(&[3], StoreOp::Add, &flagged).unwrap();
    st.flush_if(|_| true).unwrap();
    let len = std::fs::metadata(inbox(d.path())).unwrap().len();
    let before = st.scanned();
    st.store(&[10, 20, 30], StoreOp::Add, &flagged).unwrap();
    st.flush_if(|_| true).unwrap();
    assert_eq!(
        std::fs::metadata(inbox(d.path())).unwrap().len(),
        len,
        "in place"
    );
    assert_eq!(uids(&st).len(), 50);
    assert_eq!(st.scanned(), before, "nothing scanned");
    st.save();
    drop(st);
    let s2 = MboxStore::open(&storage(d.path(), true), "alice", None).unwrap();
    let st2 = s2.state("INBOX").unwrap();
    assert_eq!(uids(&st2).len(), 50);
    assert_eq!(st2.scanned(), 0, "the saved sync used");
}

/// The last session's close keeps the state a while (the next SELECT reads nothing);
/// DELETE lets go of it, and a mailbox made again under the name is a new one.
#[test]
fn the_last_close_keeps_the_state_until_delete() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    s.create("Box", None).unwrap();
    let path = d.path().join("mail/alice/Box");
    std::fs::write(&path, mail("a") + &mail("b")).unwrap();
    let mut mb = s.open("Box", false).unwrap();
    let v1 = mb.sync().unwrap().snapshot.uid_validity;
    mb.close();
    drop(mb);
    let st = s.state("Box").unwrap();
    assert_eq!(st.scanned(), 2, "the kept state, synced already");
    drop(st);
    s.delete("Box").unwrap();
    s.create("Box", None).unwrap();
    std::fs::write(&path, mail("c")).unwrap();
    let st = s.state("Box").unwrap();
    let snap = st.refresh(false).unwrap().0;
    assert_eq!(snap.messages.uids().collect::<Vec<_>>(), [1]);
    assert!(snap.uid_validity > v1, "{} after {v1}", snap.uid_validity);
}

/// Dovecot's `.subscriptions` is the list until Loft writes its own (carrying it over);
/// a `.` is part of an mbox name, also in the list read back.
#[test]
fn subscriptions_from_dovecot_and_dotted_names() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    let root = d.path().join("mail/alice");
    std::fs::write(
        root.join(".subscriptions"),
        "V\t2\n\nlists.debian\nArchiv\tEntw&APw-rfe\n",
    )
    .unwrap();
    assert_eq!(
        s.subscriptions().unwrap(),
        ["lists.debian", "Archiv/Entwürfe"]
    );
    s.set_subscribed("a.b", true).unwrap();
    assert_eq!(
        s.subscriptions().unwrap(),
        ["lists.debian", "Archiv/Entwürfe", "a.b"]
    );
    assert!(root.join(LOFT_DIR).join("subscriptions").exists());
}

#[test]
fn a_session_opening_during_a_flag_write_back_is_answered_at_once() {
    let d = tempfile::tempdir().unwrap();
    let s = store(d.path());
    std::fs::create_dir_all(inbox(d.path()).parent().unwrap()).unwrap();
    std::fs::write(inbox(d.path()), [mail("a"), mail("b"), mail("c")].concat()).unwrap();
    let st = s.state("INBOX").unwrap();
    assert_eq!(uids(&st), vec![1, 2, 3]);
    st.store(&[2], StoreOp::Add, &seen()).unwrap();
    st.while_writing(|| {
        // Another session's SELECT and NOOP: the snapshot the write-back began with,
        // nothing claimed as \Recent, no wait for the file.
        let (snap, recent) = st.refresh(true).unwrap();
        assert_eq!(snap.messages.uids().collect::<Vec<_>>(), vec![1, 2, 3]);
        let two = snap.messages.get(1).unwrap();
        assert!(two.flags.sys.contains(SysFlags::SEEN), "the index's flags");
        assert!(recent.is_empty());
        assert_eq!(st.recent_threshold(), snap.uid_next);
        assert!(st.index().is_some(), "the cache stays reachable");
        // Its own close does not wait for the write-back either.
        st.flush_if(|_| true).unwrap();
    });
    // Afterwards the state is worked on as before: the flag reaches the file.
    st.flush_if(|_| true).unwrap();
    let file = std::fs::read_to_string(inbox(d.path())).unwrap();
    assert!(file.contains("Status: RO"), "{file}");
    let (_, recent) = st.refresh(true).unwrap();
    assert_eq!(
        recent,
        vec![1, 2, 3],
        "still unclaimed, for the next session"
    );
}
