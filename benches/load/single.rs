//! The one-client measurements, in order: LOGIN, first SELECT, second SELECT on a new
//! connection, two full `UID FETCH` of the message list, two `FETCH BODYSTRUCTURE`, two
//! SEARCHes whose answers are checked against the corpus manifest, a `UID STORE` on every
//! message, and STATUS.
//!
//! This module knows nothing about which server it talks to.

use std::io;
use std::time::{Duration, Instant};

use crate::client::{self, Client};
use crate::corpus::{Manifest, RARE_SENDER, RARE_WORD};
use crate::procfs::server_cpu_seconds;
use crate::report::Results;
use crate::Target;

/// Runs everything; returns the highest UID (for the mixed workload).
pub fn run(t: &Target, m: &Manifest, r: &mut Results) -> io::Result<u64> {
    let timeout = Duration::from_secs(900);
    let connect = || Client::connect(t.addr, timeout);

    // LOGIN: median of 20 fresh connections (connect + greeting not included).
    let mut logins = Vec::new();
    for _ in 0..20 {
        let mut c = connect()?;
        let t0 = Instant::now();
        c.login(&t.user, &t.pass)?;
        logins.push(t0.elapsed());
        let _ = c.run("LOGOUT", |_| {});
    }
    logins.sort();
    r.ms(
        "login_median",
        "LOGIN (median of 20)",
        logins[logins.len() / 2],
    );

    let mut c = connect()?;
    c.login(&t.user, &t.pass)?;
    let (mut n, mut next) = (0, 0);
    let t0 = Timer::start(t.server_pid);
    c.run_ok("SELECT INBOX", |u| {
        n = client::exists(u).unwrap_or(n);
        next = client::uidnext(u).unwrap_or(next);
    })?;
    t0.done(
        r,
        "select_first",
        "first SELECT INBOX (cold: no index/uid list)",
    );
    check(
        n == m.messages,
        format!("SELECT said {n} EXISTS, corpus has {}", m.messages),
        r,
    );

    let mut c2 = connect()?;
    c2.login(&t.user, &t.pass)?;
    let t0 = Timer::start(t.server_pid);
    c2.run_ok("SELECT INBOX", |_| {})?;
    t0.done(r, "select_second", "second SELECT INBOX (new connection)");
    let _ = c2.run("LOGOUT", |_| {});

    for (key, label) in [
        (
            "fetch_env_1",
            "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE) #1",
        ),
        (
            "fetch_env_2",
            "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE) #2",
        ),
    ] {
        let before = c.bytes_in;
        let t0 = Timer::start(t.server_pid);
        let d = c.run_ok(
            "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)",
            |_| {},
        )?;
        t0.done(r, key, label);
        r.info(
            &format!("{key}_bytes"),
            "  bytes received",
            (c.bytes_in - before) as f64,
            "B",
        );
        check(
            d.untagged == m.messages,
            format!(
                "{label}: {} FETCH responses, expected {}",
                d.untagged, m.messages
            ),
            r,
        );
    }

    // The second run is served from the index cache where the server keeps one.
    for (key, label) in [
        ("fetch_bodystructure", "FETCH 1:* BODYSTRUCTURE #1"),
        ("fetch_bodystructure_2", "FETCH 1:* BODYSTRUCTURE #2"),
    ] {
        let before = c.bytes_in;
        let t0 = Timer::start(t.server_pid);
        let d = c.run_ok("FETCH 1:* BODYSTRUCTURE", |_| {})?;
        t0.done(r, key, label);
        r.info(
            &format!("{key}_bytes"),
            "  bytes received",
            (c.bytes_in - before) as f64,
            "B",
        );
        check(
            d.untagged == m.messages,
            format!("{label}: {} responses, expected {}", d.untagged, m.messages),
            r,
        );
    }

    let mut hits = 0;
    let t0 = Timer::start(t.server_pid);
    c.run_ok(&format!("UID SEARCH FROM \"{RARE_SENDER}\""), |u| {
        hits += client::search_hits(u).unwrap_or(0)
    })?;
    t0.done(r, "search_from", "UID SEARCH FROM (~1% match)");
    r.info("search_from_hits", "  hits", hits as f64, "");
    check(
        hits == m.from_matches,
        format!("SEARCH FROM found {hits}, corpus has {}", m.from_matches),
        r,
    );

    let mut hits = 0;
    let t0 = Timer::start(t.server_pid);
    c.run_ok(&format!("UID SEARCH BODY \"{RARE_WORD}\""), |u| {
        hits += client::search_hits(u).unwrap_or(0)
    })?;
    t0.done(r, "search_body", "UID SEARCH BODY (rare word, 0.1%)");
    r.info("search_body_hits", "  hits", hits as f64, "");
    check(
        hits == m.body_matches,
        format!("SEARCH BODY found {hits}, corpus has {}", m.body_matches),
        r,
    );

    let t0 = Timer::start(t.server_pid);
    c.run_ok("UID STORE 1:* +FLAGS.SILENT (\\Flagged)", |_| {})?;
    t0.done(r, "store_all", "UID STORE 1:* +FLAGS.SILENT (\\Flagged)");

    let mut c3 = connect()?;
    c3.login(&t.user, &t.pass)?;
    let t0 = Timer::start(t.server_pid);
    c3.run_ok("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)", |_| {})?;
    t0.done(
        r,
        "status",
        "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN), other connection",
    );
    let _ = c3.run("LOGOUT", |_| {});
    let _ = c.run("LOGOUT", |_| {});
    Ok(next.saturating_sub(1).max(n))
}

fn check(ok: bool, what: String, r: &mut Results) {
    if !ok {
        eprintln!("WRONG ANSWER: {what}");
        r.problems.push(what);
    }
}

/// Wall time and server CPU time of one measured command.
struct Timer {
    at: Instant,
    cpu: f64,
    pid: Option<u32>,
}

impl Timer {
    fn start(pid: Option<u32>) -> Timer {
        Timer {
            cpu: server_cpu_seconds(pid),
            at: Instant::now(),
            pid,
        }
    }

    /// Records `key` (wall ms) and `key_cpu` (server CPU ms: contention-independent; for
    /// Loft in this process, without the client thread's CPU).
    fn done(&self, r: &mut Results, key: &str, label: &str) {
        let wall = self.at.elapsed();
        let cpu = (server_cpu_seconds(self.pid) - self.cpu) * 1000.0;
        r.ms(key, label, wall);
        r.info(&format!("{key}_cpu"), "  server CPU time", cpu, "ms");
    }
}
