//! Scale measurement on a generated Maildir (ignored: run by hand, debug numbers are
//! only comparable with each other):
//! `LOFT_SCALE_MESSAGES=100000 cargo test --lib scale -- --ignored --nocapture`.
//! Prints the time of the first and second SELECT (open + sync), STATUS, a STORE of
//! `+FLAGS (\Flagged)` on every message, the sync after it, and the RSS growth of 100
//! sessions holding the folder open.

use std::io::Write;
use std::time::Instant;

use super::store;
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

#[test]
#[ignore]
fn scale() {
    let n: usize = std::env::var("LOFT_SCALE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
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

    let t = Instant::now();
    let mut mb = s.open("INBOX", false).unwrap();
    let r = mb.sync().unwrap();
    println!(
        "first SELECT: {:?} ({} messages)",
        t.elapsed(),
        r.snapshot.messages.len()
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
    let t = Instant::now();
    drop(mb);
    drop(mb2);
    let st = s.status("INBOX").unwrap();
    println!("STATUS (folder closed): {:?}", t.elapsed());
    assert_eq!(st.messages as usize, n);
}
