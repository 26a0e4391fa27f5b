//! Issue 10, "every path stays inside the user's mail root": symbolic links under a mail
//! root are never followed (message files, folders, cur/new/tmp), files Loft creates
//! take the mode of the mail beside them, and with the disk full a mutating command
//! either completes or changes nothing, and says the disk is full.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::pop3::client::Pop3Server;
use crate::util::*;

const SECRET: &str = "TOP-SECRET-SHADOW-LINE";

/// A file outside every mail root, as `/etc/shadow` would be.
fn secret_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("shadow");
    std::fs::write(&p, format!("root:{SECRET}:19000:0:99999:7:::\n")).unwrap();
    p
}

/// APPEND with a non-synchronizing literal (RFC 7888), whatever the answer.
async fn append(c: &mut Client, mailbox: &str, msg: &str) -> String {
    let tag = c.tag();
    c.send(format!("{tag} APPEND {mailbox} {{{}+}}\r\n{msg}\r\n", msg.len()).as_bytes())
        .await;
    c.collect(&tag).await.pop().unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_file_link_is_never_served_by_fetch() {
    // Maildir-only: links in place of message files in cur/ and new/ (an mbox folder has
    // no message files; its folder-level links are in folder_links_are_...).
    if format() != Format::Maildir {
        return;
    }
    let srv = TestServer::start().await;
    let secret = secret_file(srv.dir.path());
    let mut c = srv.login().await;
    let root = srv.maildir(USER);
    deliver(&root, "1000.M1P1.host", &sample_message(1));
    c.ok("SELECT INBOX").await;
    c.ok("FETCH 1 FLAGS").await; // new/ -> cur/
                                 // Replace the (known) message file by a link to the secret, and drop a second
                                 // link that looks like new mail.
    let cur = entries(&root.join("cur"));
    assert_eq!(cur.len(), 1, "{cur:?}");
    let file = root.join("cur").join(&cur[0]);
    std::fs::remove_file(&file).unwrap();
    symlink(&secret, &file).unwrap();
    symlink(&secret, root.join("new/2000.M2P2.host")).unwrap();
    symlink(&secret, root.join("cur/3000.M3P3.host:2,S")).unwrap();
    let r = c.cmd("FETCH 1:* (BODY[] RFC822.SIZE)").await.join("\n");
    assert!(!r.contains(SECRET), "served a linked file: {r}");
    c.ok("NOOP").await;
    let r = c.cmd("UID FETCH 1:* BODY.PEEK[HEADER]").await.join("\n");
    assert!(!r.contains(SECRET), "{r}");
    // A fresh session lists no link as a message.
    let mut d = srv.login().await;
    let sel = d.ok("SELECT INBOX").await.join("\n");
    assert!(
        sel.contains("* 0 EXISTS") || sel.contains("* 1 EXISTS"),
        "{sel}"
    );
    let r = d.cmd("FETCH 1:* BODY[]").await.join("\n");
    assert!(!r.contains(SECRET), "{r}");
    let st = d.ok("STATUS INBOX (MESSAGES)").await.join("\n");
    assert!(
        !st.contains("MESSAGES 2") && !st.contains("MESSAGES 3"),
        "{st}"
    );
    // The links are left where they were, the secret untouched.
    assert!(std::fs::symlink_metadata(root.join("new/2000.M2P2.host")).is_ok());
    assert!(std::fs::read_to_string(&secret).unwrap().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_file_link_is_never_served_by_pop3_retr() {
    // Maildir-only: links in place of message files in cur/ and new/.
    if format() != Format::Maildir {
        return;
    }
    let p3 = Pop3Server::start().await;
    let secret = secret_file(p3.srv.dir.path());
    p3.deliver(&sample_message(1));
    let inbox = p3.inbox();
    symlink(&secret, inbox.join("new/2000.M2P2.host")).unwrap();
    symlink(&secret, inbox.join("cur/3000.M3P3.host:2,")).unwrap();
    let mut p = p3.login().await;
    let stat = p.ok("STAT").await;
    assert!(
        stat.starts_with("+OK 1 "),
        "links counted as messages: {stat}"
    );
    for n in 1..=3 {
        let r = p.cmd(&format!("RETR {n}")).await;
        if r.starts_with("+OK") {
            let body = p.body_raw().await;
            assert!(!s(&body).contains(SECRET), "RETR {n} served the link");
        }
    }
    p.ok("QUIT").await;
}

/// Everything under `dir`, links not followed: relative name -> the file's bytes, `<dir>`
/// for a directory, `-> target` for a link.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, rel: &str, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.file_type().is_symlink() {
                let to = std::fs::read_link(e.path()).unwrap();
                out.insert(name, format!("-> {}", to.display()).into_bytes());
            } else if md.is_dir() {
                out.insert(name.clone(), b"<dir>".to_vec());
                walk(&e.path(), &format!("{name}/"), out);
            } else {
                out.insert(name, std::fs::read(e.path()).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_links_are_neither_listed_nor_opened_nor_written() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    let root = srv.mail_root(USER);
    // bob's mail, next to alice's.
    let bob = srv.mail_root("bob");
    srv.deliver("bob", "INBOX", &format!("Subject: bob\r\n\r\n{SECRET}\r\n"));
    // Mail elsewhere on the machine.
    let elsewhere = srv.dir.path().join("elsewhere");
    // Folders that are links (not listed, not opened), folders APPEND must refuse, and
    // COPY/MOVE commands into linked folders; the link that CREATE/DELETE/RENAME "Evil"
    // must leave alone.
    let (linked, unopenable, unwritable, copies, evil): (&[&str], &[&str], &[&str], &[&str], _) =
        match format() {
            Format::Maildir => {
                symlink("../bob", root.join(".Other")).unwrap();
                // A Maildir elsewhere.
                for d in ["cur", "new", "tmp"] {
                    std::fs::create_dir_all(elsewhere.join(d)).unwrap();
                }
                symlink(&elsewhere, root.join(".Evil")).unwrap();
                // A real folder whose cur/ and tmp/ are links.
                c.ok("CREATE Half").await;
                std::fs::remove_dir(root.join(".Half/cur")).unwrap();
                symlink(bob.join("cur"), root.join(".Half/cur")).unwrap();
                c.ok("CREATE Tmpl").await;
                std::fs::remove_dir(root.join(".Tmpl/tmp")).unwrap();
                symlink(elsewhere.join("tmp"), root.join(".Tmpl/tmp")).unwrap();
                (
                    &["Other", "Evil"],
                    &["Other", "Evil", "Half"],
                    &["Evil", "Half", "Tmpl"],
                    &["COPY 1 Evil", "MOVE 1 Evil", "COPY 1 Tmpl", "MOVE 1 Other"],
                    root.join(".Evil"),
                )
            }
            Format::Mbox => {
                std::fs::create_dir_all(&root).unwrap();
                // A folder file linked to bob's INBOX, one linked to an mbox file
                // elsewhere, and a folder directory linked to a directory elsewhere that
                // holds an mbox file.
                symlink("../bob/INBOX", root.join("Other")).unwrap();
                std::fs::create_dir_all(elsewhere.join("dir")).unwrap();
                std::fs::write(elsewhere.join("mbox"), "").unwrap();
                append_locked(
                    &elsewhere.join("dir/x"),
                    &mbox_delivery(format!("Subject: x\r\n\r\n{SECRET}\r\n").as_bytes()),
                );
                symlink(elsewhere.join("mbox"), root.join("Evil")).unwrap();
                symlink(elsewhere.join("dir"), root.join("Deep")).unwrap();
                (
                    &["Other", "Evil", "Deep"],
                    &["Other", "Evil", "Deep/x"],
                    &["Other", "Evil", "Deep/x"],
                    &[
                        "COPY 1 Evil",
                        "MOVE 1 Evil",
                        "COPY 1 Deep/x",
                        "MOVE 1 Other",
                    ],
                    root.join("Evil"),
                )
            }
        };
    let bob_before = tree(&bob);
    let elsewhere_before = tree(&elsewhere);
    assert!(!bob_before.is_empty() && !elsewhere_before.is_empty());

    let list = c.ok("LIST \"\" *").await.join("\n");
    for name in linked {
        assert!(!list.contains(name), "{name} listed: {list}");
    }
    for name in unopenable {
        for cmd in [
            format!("SELECT {name}"),
            format!("EXAMINE {name}"),
            format!("STATUS {name} (MESSAGES UIDNEXT)"),
        ] {
            let mut r = c.cmd(&cmd).await;
            let last = r.pop().unwrap();
            assert!(!r.join("").contains(SECRET), "{cmd}: {r:?}");
            assert!(last.contains(" NO "), "{cmd} answered {last} after {r:?}");
        }
    }
    for name in unwritable {
        let r = append(&mut c, name, &sample_message(7)).await;
        assert!(r.contains(" NO "), "APPEND {name}: {r}");
    }
    // COPY and MOVE into a linked folder.
    append(&mut c, "INBOX", &sample_message(8)).await;
    c.ok("SELECT INBOX").await;
    for cmd in copies {
        let r = c.status(cmd).await;
        assert!(r.contains(" NO "), "{cmd}: {r}");
    }
    let exists = c.ok("NOOP").await.join("\n");
    assert!(
        !exists.contains("EXPUNGE"),
        "MOVE removed the source: {exists}"
    );
    // Nothing was written outside alice's root: bob's mail and the mail elsewhere are
    // exactly as they were.
    assert_eq!(tree(&elsewhere), elsewhere_before);
    assert_eq!(tree(&bob), bob_before);
    // CREATE, RENAME and DELETE do not go through the links either.
    assert!(c.status("CREATE Evil").await.contains(" NO "));
    assert!(c.status("DELETE Evil").await.contains(" NO "));
    assert!(c.status("RENAME Evil Good").await.contains(" NO "));
    assert_eq!(tree(&elsewhere), elsewhere_before);
    assert!(std::fs::symlink_metadata(&evil)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Modes of everything under `dir` (relative name -> permission bits).
fn modes(dir: &Path, rel: &str, out: &mut Vec<(String, u32, bool)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let md = e.metadata().unwrap();
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        out.push((name.clone(), md.permissions().mode() & 0o7777, md.is_dir()));
        if md.is_dir() {
            modes(&e.path(), &format!("{name}/"), out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_files_take_the_mode_of_the_maildir_whatever_the_umask() {
    for umask in [0o000, 0o022] {
        let srv = TestServer::start().await;
        let root = srv.mail_root(USER);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        // SAFETY: the umask is process-wide; other tests of this binary may create files
        // more permissive meanwhile, which none of them checks.
        let old = unsafe { libc::umask(umask) };
        let mut c = srv.login().await;
        c.ok("CREATE Work").await;
        c.ok("SUBSCRIBE Work").await;
        append(&mut c, "Work", &sample_message(1)).await;
        append(&mut c, "INBOX", &sample_message(2)).await;
        c.ok("SELECT Work").await;
        c.ok("STORE 1 +FLAGS (Seen $Label1)").await;
        c.ok("FETCH 1 (BODY[] ENVELOPE BODYSTRUCTURE)").await;
        c.ok("COPY 1 INBOX").await;
        c.ok("SELECT INBOX").await;
        c.ok("FETCH 1:* (BODY[] ENVELOPE)").await;
        c.ok("LOGOUT").await;
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let mut all = Vec::new();
        modes(&root, "", &mut all);
        // The folder and its index were made (mbox: index files under .loft-index/).
        let made = |want: &dyn Fn(&str) -> bool| all.iter().any(|(n, _, _)| want(n));
        match format() {
            Format::Maildir => assert!(made(&|n| n == ".Work/loft.index"), "{all:?}"),
            Format::Mbox => {
                assert!(made(&|n| n == "Work"), "{all:?}");
                assert!(made(&|n| n.starts_with(".loft-index/")), "{all:?}");
            }
        }
        for (name, mode, dir) in &all {
            let want = if *dir { 0o700 } else { 0o600 };
            assert_eq!(*mode, want, "umask {umask:o}: {name} has mode {mode:o}");
        }
    }
}

/// A tmpfs of `size` mounted at `at`, unmounted on drop (root only).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` until a write fails with ENOSPC.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    // Small remainders too.
    while f.write(b"x").is_ok_and(|n| n > 0) {}
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_disk_full_commands_change_nothing_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("fs");
    let Some(_fs) = Tmpfs::mount(&mnt, "4m") else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run"
        );
        return;
    };
    let location = mnt.join("%u").to_string_lossy().into_owned();
    let srv = TestServer::start_with(|cfg| cfg.storage.location = location).await;
    let root = mnt.join(USER);
    let mut c = srv.login().await;
    c.ok("CREATE Keep").await;
    append(&mut c, "Keep", &sample_message(1)).await;
    let before = c.ok("LIST \"\" *").await;
    let filler = fill(&mnt);

    // Folder commands: a Maildir folder is made of new files (refused); an mbox folder is
    // one file, and making, renaming or removing one may need no new block (tmpfs counts
    // data pages only), so a full disk need not refuse them there.
    if format() == Format::Maildir {
        let r = c.status("CREATE Fresh/Child").await;
        assert!(r.contains(" NO [OVERQUOTA]"), "{r}");
        assert!(r.to_lowercase().contains("disk full"), "{r}");
        let r = c.status("RENAME Trash Bin").await;
        assert!(r.contains(" NO [OVERQUOTA]"), "{r}");
        let r = c.status("RENAME Keep Moved/Deeper").await;
        assert!(r.contains(" NO "), "{r}");
    }
    let r = append(&mut c, "Keep", &sample_message(2).repeat(50)).await;
    assert!(r.contains(" NO [OVERQUOTA]"), "{r}");
    if format() == Format::Maildir {
        let r = c.status("DELETE Junk").await;
        assert!(r.contains(" NO [OVERQUOTA]"), "{r}");
    }
    let subs = c.ok("LSUB \"\" *").await;
    let r = c.status("SUBSCRIBE Keep").await;
    assert!(r.contains(" NO [OVERQUOTA]"), "{r}");
    assert_eq!(c.ok("LSUB \"\" *").await, subs);
    assert_eq!(c.ok("LIST \"\" *").await, before, "the folder list changed");
    let leftovers: Vec<String> = entries(&root)
        .into_iter()
        .filter(|n| match format() {
            Format::Maildir => {
                n.starts_with("loft-creating")
                    || n.starts_with(".Fresh")
                    || n.starts_with(".Bin")
                    || n.starts_with(".Moved")
            }
            // Rewrite files or a dotlock left behind.
            Format::Mbox => n.contains("loft-rewrite") || n.ends_with(".lock"),
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    match format() {
        Format::Maildir => assert!(entries(&root.join(".Keep/tmp")).is_empty()),
        Format::Mbox => {
            let keep = std::fs::read(root.join("Keep")).unwrap();
            assert_eq!(mbox_messages(&keep).len(), 1, "{:?}", s(&keep));
        }
    }
    let st = c.ok("STATUS Keep (MESSAGES)").await.join("\n");
    assert!(st.contains("MESSAGES 1"), "{st}");
    store_copy_expunge_on_a_full_disk(&mut c).await;

    // With room again, the same commands work.
    std::fs::remove_file(filler).unwrap();
    c.ok("CREATE Fresh/Child").await;
    c.ok("RENAME Trash Bin").await;
    c.ok("DELETE Junk").await;
    c.ok("SUBSCRIBE Keep").await;
    let list = c.ok("LIST \"\" *").await.join("\n");
    assert!(
        list.contains("Bin") && list.contains("Fresh/Child"),
        "{list}"
    );
    eprintln!("disk-full test ran to the end");
}

/// STORE, COPY and EXPUNGE with no space left: each completes or changes nothing, and
/// a refusal says the disk is full. (STORE and EXPUNGE may still complete: an index
/// transaction can fit in a block the log already has.)
async fn store_copy_expunge_on_a_full_disk(c: &mut Client) {
    c.ok("SELECT Keep").await;
    let flags = |l: Vec<String>| l.join("\n");
    let before = flags(c.ok("FETCH 1 (FLAGS)").await);
    let r = c.status("STORE 1 +FLAGS (\\Flagged)").await;
    eprintln!("disk full: STORE -> {r}");
    let after = flags(c.ok("FETCH 1 (FLAGS)").await);
    if r.contains(" OK") {
        assert!(after.contains("\\Flagged"), "STORE said OK: {after}");
    } else {
        assert!(r.contains(" NO [OVERQUOTA]"), "{r}");
        assert_eq!(after, before, "a refused STORE changed the flags");
    }
    // COPY hard-links (no data block needed), so it may complete.
    let r = c.status("COPY 1 Keep").await;
    let n = messages(c).await;
    assert!(
        (r.contains(" OK") && n == 2) || (r.contains(" NO [OVERQUOTA]") && n == 1),
        "{r} -> {n} messages"
    );
    c.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)").await;
    let r = c.status("EXPUNGE").await;
    eprintln!("disk full: EXPUNGE -> {r}");
    let left = messages(c).await;
    assert!(
        (r.contains(" OK") && left == 0) || (r.contains(" NO [OVERQUOTA]") && left == n),
        "{r} -> {left} of {n} messages"
    );
    c.ok("UNSELECT").await;
}

/// MESSAGES of Keep, from STATUS.
async fn messages(c: &mut Client) -> u32 {
    let st = c.ok("STATUS Keep (MESSAGES)").await.join("\n");
    let at = st.find("MESSAGES ").expect("MESSAGES") + "MESSAGES ".len();
    st[at..]
        .split(|ch: char| !ch.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// FETCH BODY[] of 2000 small messages over loopback, timed (run by hand with
/// `cargo test --test it containment::fetch_cost -- --ignored --nocapture`; numbers in
/// docs/performance.md, "Issue 10: containment cost").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn fetch_cost() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start().await;
    for i in 0..2000 {
        srv.deliver(USER, "INBOX", &sample_message(i));
    }
    let mut c = srv.login().await;
    c.ok("SELECT INBOX").await;
    let mut times = Vec::new();
    for round in 0..15 {
        let t = std::time::Instant::now();
        let tag = format!("t{round}");
        c.io.write_all(format!("{tag} FETCH 1:* BODY.PEEK[]\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 1 << 16];
        let end = format!("\r\n{tag} OK");
        loop {
            let n = c.io.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
            if buf.ends_with(b"\r\n") && memchr::memmem::find(&buf, end.as_bytes()).is_some() {
                break;
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    eprintln!(
        "FETCH 1:2000 BODY.PEEK[]: median {:.1} ms, min {:.1} ms (15 rounds, {})",
        times[7],
        times[0],
        std::env::var("LOFT_BENEATH").unwrap_or_else(|_| "auto".into())
    );
}
