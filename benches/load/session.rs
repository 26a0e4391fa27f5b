//! The memory one session leaves behind (`LOFT_BENCH_PHASES=session`): one client works
//! on the whole mailbox as a mail client's first visit does — SELECT, `UID FETCH 1:*
//! (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)`, a SEARCH, `STORE 1:* +FLAGS` and back —
//! and, still logged in, the server's resident memory is read: Loft's process (for Loft
//! in this process, the bench's own client included), Dovecot's `imap` process (the one
//! serving this session) and its whole process tree.
//!
//! This module knows nothing about which server it talks to.

use std::io;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::corpus::RARE_SENDER;
use crate::procfs;
use crate::report::Results;
use crate::Target;

pub fn run(t: &Target, r: &mut Results) -> io::Result<()> {
    let before = procfs::sample(t.server_pid);
    let mut c = Client::connect(t.addr, Duration::from_secs(900))?;
    c.login(&t.user, &t.pass)?;
    let t0 = Instant::now();
    for cmd in [
        "SELECT INBOX".to_string(),
        "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)".to_string(),
        format!("UID SEARCH FROM \"{RARE_SENDER}\""),
        "STORE 1:* +FLAGS.SILENT (\\Flagged)".to_string(),
        "STORE 1:* -FLAGS.SILENT (\\Flagged)".to_string(),
    ] {
        let cpu0 = procfs::server_cpu_seconds(t.server_pid);
        let c0 = Instant::now();
        c.run_ok(&cmd, |_| {})?;
        eprintln!(
            "  {cmd}: {} ms wall, {:.0} ms server CPU",
            c0.elapsed().as_millis(),
            (procfs::server_cpu_seconds(t.server_pid) - cpu0) * 1000.0
        );
    }
    r.ms(
        "session_work",
        "one session's work (SELECT, FETCH 1:*, SEARCH, STORE 1:* twice)",
        t0.elapsed(),
    );
    // What is kept after the commands, not what they needed meanwhile: a moment for
    // background work (index writes, date fills) to settle.
    std::thread::sleep(Duration::from_secs(2));
    let after = procfs::sample(t.server_pid);
    let mb = |b: u64| b as f64 / 1048576.0;
    r.info(
        "session_rss_before",
        "server RSS before the session",
        mb(before.rss),
        "MB",
    );
    r.info(
        "session_rss",
        "server RSS after the session (still logged in)",
        mb(after.rss),
        "MB",
    );
    if after.imap_procs > 0 {
        r.info(
            "session_imap_rss",
            "  of which imap processes",
            mb(after.imap_rss),
            "MB",
        );
    }
    if t.server_pid.is_none() {
        // Loft in this process: what of it is live heap, and what the allocator keeps
        // of freed memory (given back by malloc_trim).
        r.info(
            "session_live_heap",
            "  live heap (mallinfo2)",
            mb(procfs::live_heap()),
            "MB",
        );
        procfs::trim();
        let trimmed = procfs::sample(None);
        r.info(
            "session_rss_trimmed",
            "  RSS after malloc_trim",
            mb(trimmed.rss),
            "MB",
        );
    }
    let _ = c.run("LOGOUT", |_| {});
    Ok(())
}
