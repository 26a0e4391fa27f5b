//! Links under the mail root: skipped, never followed, and logged once per path (not per
//! command).

use std::os::unix::fs::symlink;
use std::sync::{Arc, Mutex};

use super::*;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_skipped_link_is_logged_once_per_path() {
    let d = tempfile::tempdir().unwrap();
    let secret = d.path().join("secret");
    std::fs::write(&secret, b"Subject: secret\r\n\r\nshadow\r\n").unwrap();
    let log = Log::default();
    let sub = tracing_subscriber::fmt()
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(sub, || {
        let (s, root) = store(d.path());
        append(&*s, "INBOX", b"a\r\n", Flags::default(), None);
        symlink(&secret, root.join("cur/100.M1P1.host:2,S")).unwrap();
        symlink(&secret, root.join("new/200.M2P2.host")).unwrap();
        symlink(d.path(), root.join(".Elsewhere")).unwrap();
        for _ in 0..3 {
            let mut m = s.open("INBOX", false).unwrap();
            for _ in 0..3 {
                let snap = m.sync().unwrap().snapshot;
                assert_eq!(snap.messages.len(), 1, "a link was taken as a message");
                let data = m.fetch_message(snap.messages.get(0).unwrap().uid).unwrap();
                assert_eq!(&data[..], b"a\r\n");
            }
            assert_eq!(s.status("INBOX").unwrap().messages, 1);
            assert!(!names(&*s).iter().any(|(n, _, _)| n == "Elsewhere"));
            assert!(s.status("Elsewhere").is_err());
        }
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    for name in ["cur/100.M1P1.host:2,S", "new/200.M2P2.host", ".Elsewhere"] {
        let n = text
            .lines()
            .filter(|l| l.contains("symbolic link not followed") && l.contains(name))
            .count();
        assert_eq!(n, 1, "{name} logged {n} times:\n{text}");
    }
}

/// A failed index commit (the disk filled up between the rename into `cur/` and the log
/// append) leaves no message behind that a later scan would show after the NO.
#[test]
fn a_failed_commit_leaves_no_message_behind() {
    use crate::mailbox::ErrorKind;
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"first\r\n", Flags::default(), None);
    s.create("Trash", None).unwrap();
    super::super::save::FAIL_COMMIT.with(|f| f.set(true));
    let mut sink = s.append("INBOX").unwrap();
    sink.write(b"second\r\n").unwrap();
    let r = sink.commit(&Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    let copied = m.sync().map(|_| m.copy_to(&[1], "Trash"));
    super::super::save::FAIL_COMMIT.with(|f| f.set(false));
    assert_eq!(r.unwrap_err().kind, ErrorKind::OverQuota);
    assert_eq!(copied.unwrap().unwrap_err().kind, ErrorKind::OverQuota);
    assert_eq!(
        files_in(&root.join("cur")).len(),
        1,
        "{:?}",
        files_in(&root.join("cur"))
    );
    assert!(files_in(&root.join("tmp")).is_empty());
    assert_eq!(s.status("INBOX").unwrap().messages, 1);
    assert_eq!(s.status("Trash").unwrap().messages, 0);
}

/// Index files replaced by links to files outside the store (here: copies of the real
/// ones, so that they would be accepted) are never read or written through: the index
/// is rebuilt beside them, the outside files stay as they were.
#[test]
fn index_file_links_are_not_written_through() {
    use crate::mailbox::StoreOp;
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"a\r\n", Flags::default(), None);
    drop(s);
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let mut before = Vec::new();
    for f in ["loft.index", "loft.index.log", "loft.index.cache"] {
        let Ok(bytes) = std::fs::read(root.join(f)) else {
            continue;
        };
        std::fs::write(outside.join(f), &bytes).unwrap();
        std::fs::remove_file(root.join(f)).unwrap();
        symlink(outside.join(f), root.join(f)).unwrap();
        before.push((f, bytes));
    }
    assert!(before.len() >= 2);
    let (s, _) = store(d.path());
    let mut m = s.open("INBOX", false).unwrap();
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(snap.messages.len(), 1);
    m.store(&[snap.messages.get(0).unwrap().uid], StoreOp::Add, &seen())
        .unwrap();
    append(&*s, "INBOX", b"b\r\n", Flags::default(), None);
    assert_eq!(m.sync().unwrap().snapshot.messages.len(), 2);
    drop(m);
    for (f, bytes) in before {
        assert_eq!(
            std::fs::read(outside.join(f)).unwrap(),
            bytes,
            "{f} was written through a link"
        );
    }
}

/// The same refusals with the fallback resolver (`openat` + `O_NOFOLLOW`, component by
/// component), which kernels without `openat2` (or seccomp filters) get.
#[test]
fn the_fallback_resolver_refuses_links_too() {
    use crate::beneath::{Beneath, Resolver};
    let d = tempfile::tempdir().unwrap();
    let secret = d.path().join("secret");
    std::fs::write(&secret, b"Subject: secret\r\n\r\nshadow\r\n").unwrap();
    let elsewhere = d.path().join("elsewhere");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(elsewhere.join(sub)).unwrap();
    }
    let root = d.path().join("mail/bob");
    std::fs::create_dir_all(&root).unwrap();
    let fs = Beneath::with_resolver(&root, Resolver::Walk).unwrap();
    let ctx = super::super::ctx_in(&super::super::StorageCtx::new(&cfg(d.path())), fs).unwrap();
    let s: Arc<dyn Store> = Arc::new(super::super::layout::MaildirStore::new(ctx));
    append(&*s, "INBOX", b"a\r\n", Flags::default(), None);
    s.create("Real/Child", None).unwrap();
    append(&*s, "Real/Child", b"c\r\n", seen(), None);
    s.rename("Real", "Moved").unwrap();
    s.delete("Moved/Child").unwrap();
    symlink(&secret, root.join("cur/100.M1P1.host:2,S")).unwrap();
    symlink(&elsewhere, root.join(".Elsewhere")).unwrap();
    s.create("Half", None).unwrap();
    std::fs::remove_dir(root.join(".Half/tmp")).unwrap();
    symlink(elsewhere.join("tmp"), root.join(".Half/tmp")).unwrap();

    let mut m = s.open("INBOX", false).unwrap();
    let snap = m.sync().unwrap().snapshot;
    assert_eq!(snap.messages.len(), 1);
    assert_eq!(
        &m.fetch_message(snap.messages.get(0).unwrap().uid).unwrap()[..],
        b"a\r\n"
    );
    let listed: Vec<String> = names(&*s).into_iter().map(|(n, _, _)| n).collect();
    assert!(!listed.contains(&"Elsewhere".to_string()), "{listed:?}");
    assert!(listed.contains(&"Moved".to_string()), "{listed:?}");
    assert!(s.status("Elsewhere").is_err());
    assert!(s.open("Elsewhere", true).is_err());
    assert!(s.append("Elsewhere").is_err());
    assert!(s.append("Half").is_err());
    assert!(m
        .copy_to(&[snap.messages.get(0).unwrap().uid], "Elsewhere")
        .is_err());
    for sub in ["cur", "new", "tmp"] {
        assert!(files_in(&elsewhere.join(sub)).is_empty(), "{sub}");
    }
}

/// Directories a crash left in the middle of CREATE or DELETE are removed once they are
/// an hour old; fresh ones (a command in progress) are left alone.
#[test]
fn crash_leftovers_of_create_and_delete_are_removed_when_old() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    let old = ["loft-creating.1.M1P1.host", "loft-deleting.2.M2P2.host"];
    for n in old {
        std::fs::create_dir_all(root.join(n).join("cur")).unwrap();
        std::fs::write(root.join(n).join("cur/1.M1.host:2,"), b"x").unwrap();
        let f = std::fs::File::open(root.join(n)).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .unwrap();
    }
    std::fs::create_dir(root.join("loft-creating.3.M3P3.host")).unwrap();
    s.list().unwrap();
    let left = files_in(&root);
    for n in old {
        assert!(!left.iter().any(|f| f == n), "{n} kept: {left:?}");
    }
    assert!(
        left.iter().any(|f| f == "loft-creating.3.M3P3.host"),
        "{left:?}"
    );
}

/// Moves the folder `w` to `away` and puts a new folder with one message, `body`, in
/// its place (as a restore from a backup would).
fn replace_folder(w: &std::path::Path, away: &std::path::Path, body: &[u8]) {
    std::fs::rename(w, away).unwrap();
    for sub in ["", "cur", "new", "tmp"] {
        std::fs::create_dir(w.join(sub)).unwrap();
    }
    std::fs::write(w.join("maildirfolder"), b"").unwrap();
    std::fs::write(w.join("new/400.M4P4.host"), body).unwrap();
}

/// The bodies of every message of a mailbox as a sync shows them.
fn bodies(m: &mut Box<dyn crate::mailbox::Mailbox>) -> Vec<Vec<u8>> {
    let snap = m.sync().unwrap().snapshot;
    let uids: Vec<u32> = (0..snap.messages.len())
        .map(|i| snap.messages.get(i).unwrap().uid)
        .collect();
    uids.iter()
        .map(|u| m.fetch_message(*u).unwrap().to_vec())
        .collect()
}

/// Listings read the descriptors of `cur/`, `new/` and the folder kept from the last
/// listing only while those are still the directories at their paths: a `cur/` renamed
/// away and replaced, or a whole folder replaced while a session holds it open, is
/// listed anew (never the old directory, wherever it went).
#[test]
fn directories_replaced_under_an_open_mailbox_are_listed_anew() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"old\r\n", Flags::default(), None);
    s.create("Work", None).unwrap();
    append(&*s, "Work", b"old work\r\n", Flags::default(), None);
    let mut inbox = s.open("INBOX", false).unwrap();
    assert_eq!(bodies(&mut inbox), vec![b"old\r\n".to_vec()]);
    let mut work = s.open("Work", false).unwrap();
    assert_eq!(bodies(&mut work), vec![b"old work\r\n".to_vec()]);

    std::fs::rename(root.join("cur"), d.path().join("cur-moved-out")).unwrap();
    std::fs::create_dir(root.join("cur")).unwrap();
    std::fs::write(root.join("cur/300.M3P3.host:2,"), b"new\r\n").unwrap();
    assert_eq!(bodies(&mut inbox), vec![b"new\r\n".to_vec()]);

    replace_folder(
        &root.join(".Work"),
        &d.path().join("work-moved-out"),
        b"new work\r\n",
    );
    // `work` still holds the folder's shared state (and its descriptors).
    let mut again = s.open("Work", false).unwrap();
    assert_eq!(bodies(&mut again), vec![b"new work\r\n".to_vec()]);
    drop(work);
}

/// A folder replaced under a session that keeps it selected (an admin restoring it from
/// a backup: renamed away, a copy put at its path) is served from its path again: the
/// session's next sync sees the new folder's messages (under a new UIDVALIDITY), never
/// the old directory's.
#[test]
fn a_folder_replaced_under_a_selected_session_is_seen() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    s.create("Work", None).unwrap();
    append(&*s, "Work", b"old work\r\n", Flags::default(), None);
    let mut work = s.open("Work", false).unwrap();
    // Long enough after the last change that the folder's fingerprint proves something.
    std::thread::sleep(std::time::Duration::from_millis(250));
    assert_eq!(bodies(&mut work), vec![b"old work\r\n".to_vec()]);
    assert_eq!(bodies(&mut work), vec![b"old work\r\n".to_vec()]);
    let validity = work.sync().unwrap().snapshot.uid_validity;
    replace_folder(
        &root.join(".Work"),
        &d.path().join("work-moved-out"),
        b"restored\r\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert_eq!(bodies(&mut work), vec![b"restored\r\n".to_vec()]);
    assert_ne!(
        work.sync().unwrap().snapshot.uid_validity,
        validity,
        "other messages under the same UIDVALIDITY"
    );
    // Nothing was written into the folder that moved out of the mail root.
    let out = d.path().join("work-moved-out");
    assert_eq!(files_in(&out.join("cur")).len(), 1);
    assert!(files_in(&out.join("new")).is_empty());
}
