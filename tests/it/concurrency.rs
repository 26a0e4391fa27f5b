//! Several sessions on one mailbox, mail delivered behind the server's back, IDLE.

use std::time::Duration;

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_see_each_others_changes() {
    let srv = TestServer::start().await;
    let mut a = srv.login().await;
    let mut b = srv.login().await;
    a.ok("SELECT INBOX").await;
    b.ok("SELECT INBOX").await;
    let m = sample_message(1);
    a.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
        .await;
    let r = a.collect("x").await;
    assert!(
        r.iter().any(|l| l == "* 1 EXISTS\r\n"),
        "appender sees EXISTS: {r:?}"
    );
    let r = b.ok("NOOP").await;
    assert!(r.iter().any(|l| l == "* 1 EXISTS\r\n"), "{r:?}");
    a.ok("STORE 1 +FLAGS (\\Flagged)").await;
    let r = b.ok("NOOP").await;
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 1 FETCH (FLAGS (\\Flagged")),
        "{r:?}"
    );
    // No EXPUNGE during FETCH/STORE/SEARCH (RFC 3501 §7.4.1)
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    a.ok("EXPUNGE").await;
    let r = b.ok("FETCH 1 FLAGS").await;
    assert!(r.iter().all(|l| !l.contains("EXPUNGE")), "{r:?}");
    let r = b.ok("SEARCH ALL").await;
    assert!(r.iter().all(|l| !l.contains("EXPUNGE")), "{r:?}");
    let r = b.ok("NOOP").await;
    assert!(r.iter().any(|l| l == "* 1 EXPUNGE\r\n"), "{r:?}");
    let r = b.ok("SEARCH ALL").await;
    assert_eq!(r.last().unwrap(), "* SEARCH\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mta_delivery_is_announced_during_idle() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    c.ok("SELECT INBOX").await;
    c.send(b"i1 IDLE\r\n").await;
    assert!(c.read_checked().await.starts_with("+ "));
    srv.deliver(USER, "INBOX", &sample_message(7));
    let started = std::time::Instant::now();
    let mut saw_exists = false;
    while started.elapsed() < Duration::from_secs(3) {
        let line = c.read_checked().await;
        if line == "* 1 EXISTS\r\n" {
            saw_exists = true;
            break;
        }
    }
    assert!(saw_exists, "EXISTS during IDLE");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "announced within about a second"
    );
    // DONE and the next command in one packet (iOS Mail)
    c.send(b"DONE\r\ni2 FETCH 1 (UID FLAGS)\r\n").await;
    let r = c.collect("i1").await;
    assert!(r.last().unwrap().starts_with("i1 OK"), "{r:?}");
    let r = c.collect("i2").await;
    assert!(
        r[0].starts_with("* 1 FETCH (UID 1 FLAGS (\\Recent))"),
        "{r:?}"
    );
    // Maildir: the message moved from new/ to cur/
    if format() == Format::Maildir {
        assert_eq!(
            std::fs::read_dir(srv.maildir(USER).join("new"))
                .unwrap()
                .count(),
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reports_expunge_and_flags_from_other_session() {
    let srv = TestServer::start().await;
    let mut a = srv.login().await;
    for i in 0..2 {
        let m = sample_message(i);
        a.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
            .await;
        a.collect("x").await;
    }
    a.ok("SELECT INBOX").await;
    let mut b = srv.login().await;
    b.ok("SELECT INBOX").await;
    b.send(b"i IDLE\r\n").await;
    assert!(b.read_checked().await.starts_with("+ "));
    a.ok("STORE 2 +FLAGS (\\Seen)").await;
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    a.ok("EXPUNGE").await;
    let mut got = Vec::new();
    while !got.iter().any(|l: &String| l.contains("EXPUNGE")) {
        got.push(b.read_checked().await);
    }
    assert!(got.contains(&"* 1 EXPUNGE\r\n".to_string()), "{got:?}");
    b.send(b"DONE\r\n").await;
    b.collect("i").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uids_survive_restart_and_external_rename() {
    let mut srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 0..3 {
        let m = sample_message(i);
        c.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
            .await;
        c.collect("x").await;
    }
    c.ok("SELECT INBOX").await;
    let before = c.ok("UID FETCH 1:* (UID RFC822.SIZE)").await;
    let validity = c.ok("STATUS INBOX (UIDVALIDITY)").await;
    drop(c);
    srv.stop().await;
    // mutt marks message 2 as seen and flagged: renames its file (Maildir), or rewrites
    // the file with its Status/X-Status fields (mbox)
    srv.set_flags_externally(USER, "INBOX", 1, "FS");

    let srv2 = srv.restart_on().await;
    let mut c = srv2.login().await;
    assert_eq!(c.ok("STATUS INBOX (UIDVALIDITY)").await, validity);
    c.ok("SELECT INBOX").await;
    assert_eq!(c.ok("UID FETCH 1:* (UID RFC822.SIZE)").await, before);
    let r = c.ok("UID FETCH 1:* FLAGS").await;
    let flagged: Vec<_> = r
        .iter()
        .filter(|l| l.contains("\\Flagged \\Seen"))
        .collect();
    assert_eq!(flagged.len(), 1, "{r:?}");
    // new UIDs continue after the old ones
    let m = sample_message(9);
    c.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
        .await;
    let st = c.collect("x").await.pop().unwrap();
    assert!(st.contains(" 4] "), "{st}");
}

/// RFC 3501 §2.3.1.1: when UIDs cannot be kept the UIDVALIDITY changes; a session that
/// has the mailbox selected holds meaningless UIDs and is ended with BYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uidvalidity_change_ends_the_selected_session() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    let m = sample_message(1);
    c.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
        .await;
    c.collect("x").await;
    c.ok("CREATE Other").await;
    let o = sample_message(2);
    c.send(format!("y APPEND Other {{{}+}}\r\n{o}\r\n", o.len()).as_bytes())
        .await;
    c.collect("y").await;
    c.ok("SELECT INBOX").await;
    match format() {
        // Index files of another folder put in place of INBOX's (new inodes, as a
        // program replacing files does; a copy over the same inodes is damage the
        // running process repairs from memory instead): its UIDs cannot be trusted.
        Format::Maildir => {
            let root = srv.maildir(USER);
            for f in ["loft.index", "loft.index.log"] {
                let tmp = root.join(format!("{f}.copy"));
                std::fs::copy(root.join(".Other").join(f), &tmp).unwrap();
                std::fs::rename(&tmp, root.join(f)).unwrap();
            }
        }
        // Another program (a restore from a backup, another server) rewrites the file
        // under another UIDVALIDITY in its X-IMAPbase: its UIDs are not the known ones.
        Format::Mbox => {
            let path = srv.mailbox_path(USER, "INBOX");
            rewrite_locked(&path, |file| {
                let msgs = mbox_messages(file);
                let first = msgs[0];
                let old = header_values(&mbox_header(first), "X-IMAPbase");
                let (validity, next) = match old.first() {
                    Some(v) => {
                        let mut w = v.split_whitespace();
                        let validity: u32 = w.next().unwrap().parse().unwrap();
                        (validity, w.next().unwrap_or("2").to_string())
                    }
                    None => (1, "2".to_string()),
                };
                let field = format!("X-IMAPbase: {} {next}", validity.wrapping_add(1000));
                let mut out = mbox_set_fields(first, &["X-IMAPbase"], &[field]);
                for m in &msgs[1..] {
                    out.extend_from_slice(m);
                }
                out
            });
        }
    }
    let r = c.cmd("NOOP").await;
    assert!(r.iter().any(|l| l.starts_with("* BYE ")), "{r:?}");
    assert!(c.closed().await);
    let mut d = srv.login().await;
    let r = d.cmd("SELECT INBOX").await;
    assert!(r.last().unwrap().contains("OK"), "{r:?}");
}

/// Issue 10: under mixed load (10 clients fetching, storing, expunging and appending in
/// one mailbox) a FETCH of a message nobody expunged never fails. Maildir, with flags
/// carried into file names at once: every STORE on the whole mailbox renames 1,500 files
/// while the fetching sessions open them by the names they knew: the file must be found
/// under its new name (before: `NO [EXPUNGEISSUED]` whenever the directory listing that
/// looks for it raced with the renames). mbox: the same load on one file, which expunges
/// rewrite. Messages really expunged meanwhile may only lack content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_under_renames_and_expunges_never_fails_for_live_messages() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const KEEP: usize = 1500;
    let srv = TestServer::start_with(|cfg| {
        cfg.storage.maildir_flag_sync = loft::config::MaildirFlagSync::Immediate;
    })
    .await;
    for i in 1..=KEEP {
        srv.deliver(USER, "INBOX", &sample_message(i));
    }
    let mut c = srv.login().await;
    let r = c.ok("SELECT INBOX").await;
    assert!(r.contains(&format!("* {KEEP} EXISTS\r\n")), "{r:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for role in 0..10usize {
        let mut c = srv.login().await;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            c.ok("SELECT INBOX").await;
            let mut failures = Vec::new();
            let mut n = 0usize;
            let mut gone = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match role {
                    // Fetchers: kept messages, content and metadata.
                    0..=4 => {
                        let k = 1 + (n * 397 + role * 131) % KEEP;
                        let cmd = if n % 4 == 0 {
                            format!("UID FETCH {k}:{} (UID FLAGS BODY.PEEK[HEADER])", k + 20)
                        } else {
                            format!("UID FETCH {k} (UID RFC822.SIZE BODY.PEEK[])")
                        };
                        let r = c.cmd(&cmd).await;
                        let last = r.last().unwrap();
                        if !last.contains(" OK ") {
                            failures.push(format!("{cmd} -> {last}"));
                        }
                        if n % 3 == 0 {
                            // The short-lived messages, content included, while another
                            // session expunges them: answered with what is left, and OK
                            // (RFC 2180 §4.1; `OK [EXPUNGEISSUED]` when some are gone).
                            let cmd = format!("UID FETCH {}:* (UID FLAGS BODY.PEEK[])", KEEP + 1);
                            let r = c.cmd(&cmd).await;
                            let last = r.last().unwrap();
                            if !last.contains(" OK ") {
                                failures.push(format!("{cmd} -> {last}"));
                            }
                            if last.contains("EXPUNGEISSUED") {
                                gone += 1;
                            }
                        }
                    }
                    // Storers: each STORE renames every kept message's file.
                    5 | 6 => {
                        let op = if n % 2 == 0 { "+" } else { "-" };
                        let flag = if role == 5 { "\\Flagged" } else { "$Work" };
                        c.ok(&format!("UID STORE 1:{KEEP} {op}FLAGS.SILENT ({flag})"))
                            .await;
                    }
                    // Appenders: short-lived messages.
                    7 | 8 => {
                        let m = format!(
                            "From: t@example.org\r\nSubject: temp {role} {n}\r\n\r\ntemporary\r\n"
                        );
                        c.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
                            .await;
                        c.collect("x").await;
                    }
                    // Expunger: removes the short-lived ones.
                    _ => {
                        let r = c
                            .ok(&format!("UID SEARCH UID {}:* SUBJECT temp", KEEP + 1))
                            .await;
                        let uids: Vec<String> = r
                            .iter()
                            .filter_map(|l| l.strip_prefix("* SEARCH"))
                            .flat_map(|l| l.split_whitespace().map(str::to_string))
                            .collect();
                        if !uids.is_empty() {
                            c.ok(&format!(
                                "UID STORE {} +FLAGS.SILENT (\\Deleted)",
                                uids.join(",")
                            ))
                            .await;
                            c.ok("EXPUNGE").await;
                        }
                    }
                }
                if n % 5 == 0 {
                    c.ok("NOOP").await;
                }
            }
            c.ok("LOGOUT").await;
            (role, n, gone, failures)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    let mut rounds = Vec::new();
    for t in tasks {
        let (role, n, g, f) = t.await.expect("client task");
        rounds.push((role, n, g));
        failures.extend(f);
    }
    eprintln!("(role, rounds, FETCHes that met an expunged message): {rounds:?}");
    assert!(
        failures.is_empty(),
        "{} failures ((role, rounds, expunged met) {rounds:?}): {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}

/// With the poll set to a minute, IDLE still announces an MTA delivery and another
/// session's APPEND and STORE at once: it is woken by the mailbox's change signal
/// (inotify on the Maildir; for mbox, the file changing), not by the poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_is_woken_by_changes_not_by_the_poll() {
    let srv = TestServer::start_with(|c| c.imap.idle_poll = Duration::from_secs(60)).await;
    let mut a = srv.login().await;
    a.ok("SELECT INBOX").await;
    a.send(b"i IDLE\r\n").await;
    assert!(a.read_checked().await.starts_with("+ "));
    let mut b = srv.login().await;

    srv.deliver(USER, "INBOX", &sample_message(1));
    idle_sees(&mut a, "MTA delivery", |l| l == "* 1 EXISTS\r\n").await;

    let m = sample_message(2);
    b.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
        .await;
    b.collect("x").await;
    idle_sees(&mut a, "APPEND", |l| l == "* 2 EXISTS\r\n").await;

    b.ok("SELECT INBOX").await;
    b.ok("STORE 1 +FLAGS (\\Flagged)").await;
    idle_sees(&mut a, "STORE", |l| {
        l.starts_with("* 1 FETCH") && l.contains("\\Flagged")
    })
    .await;
    a.send(b"DONE\r\n").await;
    a.collect("i").await;
}

/// Reads untagged lines until one matches, failing after 10 s (the poll is 60 s).
async fn idle_sees(c: &mut Client, what: &str, want: impl Fn(&str) -> bool) {
    let t = std::time::Instant::now();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while !want(&c.read_checked().await) {}
    })
    .await;
    assert!(seen.is_ok(), "{what} not announced during IDLE within 10 s");
    eprintln!("IDLE announced the {what} after {:?}", t.elapsed());
}
