//! Where the memory of a big folder goes (ignored: run by hand):
//! `LOFT_SCALE_MESSAGES=100000 cargo test --lib maildir::tests::memory -- --ignored --nocapture`.
//! Prints the live heap (glibc's `mallinfo2`, bytes in use: not what the allocator keeps
//! cached) after each step of one session on MTA-named files (no `W=`): first SELECT,
//! every size computed, a STORE on every message, and after the session closed.
#![allow(unsafe_code)] // mallinfo2 has no safe wrapper; the block has a SAFETY comment

use std::io::Write;

use super::store;
use crate::mailbox::{Flags, StoreOp, SysFlags};

fn live_mb() -> f64 {
    // SAFETY: mallinfo2 only reads the allocator's counters and returns them by value.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as f64 / 1048576.0
}

#[test]
#[ignore]
fn memory() {
    let (n, dir) = super::scale::setup();
    let (s, root) = store(dir.path());
    for i in 0..n {
        let body = format!("From: a{i}@example.org\nSubject: message {i}\n\nBody {i}.\n");
        let name = format!(
            "{}.M{i}P4242.mx1.example.net,S={}:2,S",
            1_700_000_000 + i,
            body.len()
        );
        let mut f = std::fs::File::create(root.join("cur").join(name)).unwrap();
        f.write_all(body.as_bytes()).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let base = live_mb();
    let step = |what: &str| println!("{what:<40} live heap {:>8.1} MB", live_mb() - base);
    let mut mb = s.open("INBOX", false).unwrap();
    let snap = mb.sync().unwrap().snapshot;
    step("first SELECT");
    let uids: Vec<u32> = snap.messages.iter().map(|m| m.uid).collect();
    drop(snap);
    let sizes = mb.sizes(&uids);
    assert!(sizes.iter().all(Option::is_some));
    drop(sizes);
    step("every size computed");
    let f = Flags {
        sys: SysFlags::FLAGGED,
        keywords: vec![],
    };
    mb.store(&uids, StoreOp::Add, &f).unwrap();
    mb.sync().unwrap();
    step("STORE +FLAGS on every message");
    mb.store(&uids, StoreOp::Remove, &f).unwrap();
    mb.sync().unwrap();
    step("STORE -FLAGS on every message");
    drop(mb);
    step("session closed");
    drop(s);
    step("store dropped");
}
