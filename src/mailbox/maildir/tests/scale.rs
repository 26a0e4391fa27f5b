//! Scale measurement on a generated Maildir (ignored: run by hand, debug numbers are
//! only comparable with each other):
//! `LOFT_SCALE_MESSAGES=100000 cargo test --lib scale -- --ignored --nocapture`.
//! Prints the time of the first and second SELECT (open + sync), STATUS, a STORE of
//! `+FLAGS (\Flagged)` on every message, the sync after it, and the RSS growth of 100
//! sessions holding the folder open.

use std::io::Write;
use std::time::Instant;

use super::{append, store};
use crate::mailbox::{Flags, StoreOp, SysFlags};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `LOFT_SCALE_MESSAGES` (100,000) and a fresh directory for a store.
pub(super) fn setup() -> (usize, tempfile::TempDir) {
    let n = std::env::var("LOFT_SCALE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    (n, tempfile::tempdir().unwrap())
}

#[test]
#[ignore]
fn scale() {
    let (n, dir) = setup();
    let (s, root) = store(dir.path());
    let t = Instant::now();
    for i in 0..n {
        let body = format!(
            "From: a{i}@example.org\r\nTo: b@example.org\r\nSubject: message {i}\r\nMessage-ID: <{i}@example.org>\r\n\r\nBody of message {i}.\r\n"
        );
        let name = format!(
            "{}.M{i}P1.bench,S={},W={}:2,",
            1_700_000_000 + i,
            body.len(),
            body.len()
        );
        let mut f = std::fs::File::create(root.join("cur").join(name)).unwrap();
        f.write_all(body.as_bytes()).unwrap();
    }
    // Old enough that the directory fingerprint is not racy.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    println!("generated {n} messages in {:?}", t.elapsed());

    let rss0 = rss_kb();
    let t = Instant::now();
    let mut mb = s.open("INBOX", false).unwrap();
    let r = mb.sync().unwrap();
    println!(
        "first SELECT: {:?} ({} messages), RSS +{} kB (shared folder state + snapshot)",
        t.elapsed(),
        r.snapshot.messages.len(),
        rss_kb().saturating_sub(rss0)
    );
    assert_eq!(r.snapshot.messages.len(), n);
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let t = Instant::now();
    let mut mb2 = s.open("INBOX", false).unwrap();
    let r2 = mb2.sync().unwrap();
    println!("second SELECT: {:?}", t.elapsed());
    assert_eq!(r2.snapshot.messages.len(), n);

    let t = Instant::now();
    let st = s.status("INBOX").unwrap();
    println!("STATUS (folder open): {:?}", t.elapsed());
    assert_eq!(st.messages as usize, n);

    let before = rss_kb();
    let mut sessions = Vec::new();
    let t = Instant::now();
    for _ in 0..100 {
        let mut m = s.open("INBOX", false).unwrap();
        let r = m.sync().unwrap();
        sessions.push((m, r));
    }
    println!(
        "100 more sessions SELECT: {:?}, RSS growth {} kB",
        t.elapsed(),
        rss_kb().saturating_sub(before)
    );

    let uids: Vec<u32> = r.snapshot.messages.iter().map(|m| m.uid).collect();
    let flagged = Flags {
        sys: SysFlags::FLAGGED,
        keywords: vec![],
    };
    let t = Instant::now();
    let out = mb.store(&uids, StoreOp::Add, &flagged).unwrap();
    println!("STORE 1:* +FLAGS (\\Flagged): {:?}", t.elapsed());
    assert_eq!(out.len(), n);
    let t = Instant::now();
    let r3 = mb2.sync().unwrap();
    println!("sync of another session after it: {:?}", t.elapsed());
    assert!(r3
        .snapshot
        .messages
        .iter()
        .all(|m| m.flags.sys.contains(SysFlags::FLAGGED)));
    drop(sessions);
    drop(mb2);
    let t = Instant::now();
    drop(mb);
    println!("last close (flag flush: {n} renames): {:?}", t.elapsed());
    let t = Instant::now();
    let st = s.status("INBOX").unwrap();
    println!(
        "STATUS (folder closed, first after the flush): {:?}",
        t.elapsed()
    );
    assert_eq!(st.messages as usize, n);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let t = Instant::now();
    let st = s.status("INBOX").unwrap();
    println!("STATUS (folder closed, after a scan): {:?}", t.elapsed());
    assert_eq!(st.messages as usize, n);
    let t = Instant::now();
    let st = s.status("INBOX").unwrap();
    println!("STATUS (folder closed, again): {:?}", t.elapsed());
    assert_eq!(st.unseen as usize, n);
}

/// The cost of one APPEND (and the sync after it) into a folder of
/// `LOFT_APPEND_FOLDER` (10,000) messages held open by a session (ignored: run by hand;
/// `strace -f -c` around it counts the system calls, setup included, so run it once
/// with `LOFT_APPEND_N=0` for the baseline).
#[test]
#[ignore]
fn append_cost() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (folder, n) = (env("LOFT_APPEND_FOLDER", 10_000), env("LOFT_APPEND_N", 200));
    let dir = tempfile::tempdir().unwrap();
    let (s, root) = store(dir.path());
    for i in 0..folder {
        let body = format!("Subject: m{i}\r\n\r\nbody {i}\r\n");
        let name = format!(
            "{}.M{i}P1.h,S={},W={}:2,S",
            1_600_000_000 + i,
            body.len(),
            body.len()
        );
        std::fs::write(root.join("cur").join(name), body).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let mut mb = s.open("INBOX", false).unwrap();
    mb.sync().unwrap();
    let t = Instant::now();
    for i in 0..n {
        let msg = format!("Subject: new {i}\r\n\r\nhello\r\n");
        append(&*s, "INBOX", msg.as_bytes(), Flags::default(), None);
        assert_eq!(mb.sync().unwrap().snapshot.messages.len(), folder + i + 1);
    }
    if n > 0 {
        println!(
            "APPEND + sync into {folder}: {:?} each",
            t.elapsed() / n as u32
        );
    }
}
