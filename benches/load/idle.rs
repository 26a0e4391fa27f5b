//! Memory per idle connection: open K connections that LOGIN, SELECT INBOX and IDLE, and
//! compare the server's memory before and after. For the in-process Loft that is this
//! process's VmRSS/Pss (the client side keeps only bare sockets); for an external server,
//! the sum of VmRSS and Pss (`/proc/PID/smaps_rollup`) over the master process and all its
//! descendants, and separately over its `imap` processes.
//!
//! Bounded: stops opening at the time limit or when the server grew by more than the RSS
//! cap, and reports per-connection figures from what it opened.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::procfs::sample;
use crate::report::Results;
use crate::Target;

pub fn run(t: &Target, want: usize, time_limit: Duration, rss_cap: u64, r: &mut Results) {
    std::thread::sleep(Duration::from_secs(3));
    let before = sample(t.server_pid);
    let start = Instant::now();
    let mut open: Vec<TcpStream> = Vec::with_capacity(want);
    let mut stopped = String::new();
    // The first connections also bring the mailbox's shared state into memory (file map,
    // snapshot, background date fill): memory is sampled again after them, and the
    // per-connection figure is the slope from there.
    let base = (want / 10).max(10).min(want.saturating_sub(1));
    let mut mid: Option<(usize, crate::procfs::Mem)> = None;
    let mut paused = Duration::ZERO;
    while open.len() < want {
        if mid.is_none() && open.len() == base && base > 0 {
            let p = Instant::now();
            std::thread::sleep(Duration::from_secs(3));
            mid = Some((open.len(), sample(t.server_pid)));
            paused = p.elapsed();
        }
        if start.elapsed() > time_limit {
            stopped = format!("time limit {} s reached", time_limit.as_secs());
            break;
        }
        if open.len() % 25 == 0 && !open.is_empty() {
            let now = sample(t.server_pid);
            if now.rss.saturating_sub(before.rss) > rss_cap {
                stopped = format!("RSS cap {} MB reached", rss_cap >> 20);
                break;
            }
        }
        let res = Client::connect(t.addr, Duration::from_secs(120))
            .and_then(|mut c| c.login(&t.user, &t.pass).map(|_| c))
            .and_then(|mut c| c.run_ok("SELECT INBOX", |_| {}).map(|_| c))
            .and_then(|c| c.into_idle());
        match res {
            Ok(s) => open.push(s),
            Err(e) => {
                stopped = format!("connection {} failed: {e}", open.len() + 1);
                r.problems.push(format!("idle: {stopped}"));
                break;
            }
        }
    }
    let opening = start.elapsed().saturating_sub(paused);
    std::thread::sleep(Duration::from_secs(3));
    let after = sample(t.server_pid);
    let n = open.len().max(1) as f64;
    if !stopped.is_empty() {
        eprintln!("  idle: stopped at {} connections: {stopped}", open.len());
    }
    r.info(
        "idle_conns",
        &format!(
            "idle: connections opened (of {want}){}",
            if stopped.is_empty() {
                String::new()
            } else {
                format!(", stopped: {stopped}")
            }
        ),
        open.len() as f64,
        "",
    );
    r.info(
        "idle_open_s",
        "idle: time to open them (LOGIN+SELECT+IDLE, one by one)",
        opening.as_secs_f64(),
        "s",
    );
    r.info(
        "idle_rss_before",
        "idle: server RSS before",
        before.rss as f64 / 1048576.0,
        "MiB",
    );
    r.info(
        "idle_rss_after",
        "idle: server RSS after",
        after.rss as f64 / 1048576.0,
        "MiB",
    );
    r.info(
        "idle_rss_per_conn",
        "idle: RSS per idle connection",
        (after.rss as f64 - before.rss as f64) / n,
        "B",
    );
    r.info(
        "idle_pss_per_conn",
        "idle: PSS per idle connection",
        (after.pss as f64 - before.pss as f64) / n,
        "B",
    );
    if let Some((k, m)) = mid.filter(|(k, _)| open.len() > *k) {
        let extra = (open.len() - k) as f64;
        r.info(
            "idle_rss_slope",
            &format!("idle: RSS per connection beyond the first {k} (mailbox state excluded)"),
            (after.rss as f64 - m.rss as f64) / extra,
            "B",
        );
        r.info(
            "idle_pss_slope",
            &format!("idle: PSS per connection beyond the first {k}"),
            (after.pss as f64 - m.pss as f64) / extra,
            "B",
        );
    }
    if t.server_pid.is_some() {
        r.info(
            "idle_procs",
            "idle: server processes after",
            after.procs as f64,
            "",
        );
        r.info(
            "idle_imap_procs",
            "idle: imap processes after",
            after.imap_procs as f64,
            "",
        );
        r.info(
            "idle_imap_rss_per_conn",
            "idle: RSS of imap processes per connection",
            (after.imap_rss as f64 - before.imap_rss as f64) / n,
            "B",
        );
        r.info(
            "idle_imap_pss_per_conn",
            "idle: PSS of imap processes per connection",
            (after.imap_pss as f64 - before.imap_pss as f64) / n,
            "B",
        );
    }
    drop(open);
    std::thread::sleep(Duration::from_secs(2));
}
