//! The mixed workload: C concurrent clients (threads with blocking sockets) for S seconds.
//! Each logs in, selects INBOX, then loops over random operations until the deadline:
//! header FETCH, full-body FETCH, a SEARCH over a 500-UID window, a one-message STORE and
//! NOOP. Reports ops/s and latency percentiles per operation.
//!
//! This module knows nothing about which server it talks to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::corpus::Rng;
use crate::report::Results;
use crate::Target;

const OPS: [(&str, u64); 5] = [
    ("fetch_header", 35),
    ("fetch_body", 20),
    ("search", 5),
    ("store", 15),
    ("noop", 25),
];

#[derive(Default)]
struct ThreadLog {
    setup: Option<Duration>,
    select_retries: u64,
    lat: Vec<Vec<u32>>,
    errors: Vec<String>,
}

pub fn run(t: &Target, max_uid: u64, clients: usize, secs: u64, r: &mut Results) {
    let start = Instant::now();
    let cpu0 = crate::procfs::cpu_seconds(t.server_pid);
    let failures = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for id in 0..clients {
        let t = t.clone();
        let failures = Arc::clone(&failures);
        handles.push(std::thread::spawn(move || {
            one_client(&t, id as u64, max_uid.max(1), secs, &failures)
        }));
    }
    let logs: Vec<ThreadLog> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_default())
        .collect();
    let wall = start.elapsed();
    let cpu = crate::procfs::cpu_seconds(t.server_pid) - cpu0;

    let mut setups: Vec<u32> = logs
        .iter()
        .filter_map(|l| l.setup.map(|d| d.as_micros() as u32))
        .collect();
    let mut all: Vec<u32> = Vec::new();
    let mut per_op: Vec<Vec<u32>> = vec![Vec::new(); OPS.len()];
    for l in &logs {
        for (k, v) in l.lat.iter().enumerate() {
            per_op[k].extend_from_slice(v);
            all.extend_from_slice(v);
        }
    }
    let errors: Vec<&String> = logs.iter().flat_map(|l| l.errors.iter()).collect();
    let total = all.len() as f64;
    r.info(
        "mixed_clients",
        &format!("mixed: clients connected (of {clients})"),
        setups.len() as f64,
        "",
    );
    r.info(
        "mixed_ops",
        &format!("mixed: operations completed in {secs} s"),
        total,
        "ops",
    );
    r.info(
        "mixed_ops_per_s",
        "mixed: throughput",
        total / secs as f64,
        "ops/s",
    );
    pct(
        r,
        "mixed_setup",
        "mixed: LOGIN+SELECT per client",
        &mut setups,
    );
    pct(r, "mixed_all", "mixed: all operations", &mut all);
    for (k, (name, _)) in OPS.iter().enumerate() {
        r.info(
            &format!("mixed_{name}_n"),
            &format!("mixed: {name} count"),
            per_op[k].len() as f64,
            "ops",
        );
        pct(
            r,
            &format!("mixed_{name}"),
            &format!("mixed: {name}"),
            &mut per_op[k],
        );
    }
    let retries: u64 = logs.iter().map(|l| l.select_retries).sum();
    r.info(
        "mixed_select_retries",
        "mixed: LOGINs and SELECTs answered NO [UNAVAILABLE] and retried",
        retries as f64,
        "",
    );
    r.info(
        "mixed_errors",
        "mixed: failed operations (NO/BAD/IO)",
        errors.len() as f64,
        "",
    );
    r.info(
        "mixed_cpu",
        "mixed: server CPU time, setup and drain included",
        cpu,
        "s",
    );
    r.info(
        "mixed_wall",
        "mixed: wall time including setup and drain",
        wall.as_secs_f64(),
        "s",
    );
    for e in errors.iter().take(5) {
        r.problems.push(format!("mixed: {e}"));
    }
    if errors.len() > 5 {
        r.problems
            .push(format!("mixed: ... {} more failures", errors.len() - 5));
    }
}

fn pct(r: &mut Results, key: &str, label: &str, v: &mut [u32]) {
    v.sort_unstable();
    let at = |p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i.min(v.len() - 1)] as f64 / 1000.0
    };
    r.info(
        &format!("{key}_p50"),
        &format!("{label} p50"),
        at(0.5),
        "ms",
    );
    r.info(
        &format!("{key}_p90"),
        &format!("{label} p90"),
        at(0.9),
        "ms",
    );
    r.info(
        &format!("{key}_p99"),
        &format!("{label} p99"),
        at(0.99),
        "ms",
    );
    r.info(
        &format!("{key}_max"),
        &format!("{label} max"),
        at(1.0),
        "ms",
    );
}

fn one_client(t: &Target, id: u64, max_uid: u64, secs: u64, failures: &AtomicU64) -> ThreadLog {
    let mut log = ThreadLog {
        lat: vec![Vec::new(); OPS.len()],
        ..ThreadLog::default()
    };
    let t0 = Instant::now();
    // LOGIN, retried like SELECT below while the answer is a temporary NO [UNAVAILABLE]
    // (Loft's password pool full when 50 clients log in at once).
    let mut c = loop {
        match Client::connect(t.addr, Duration::from_secs(60))
            .and_then(|mut c| c.login(&t.user, &t.pass).map(|_| c))
        {
            Ok(c) => break c,
            Err(e)
                if e.to_string().contains("[UNAVAILABLE]")
                    && t0.elapsed() < Duration::from_secs(60) =>
            {
                log.select_retries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                log.errors.push(format!("client {id} setup: {e}"));
                return log;
            }
        }
    };
    // SELECT, retried (like a patient client) while the server answers a temporary
    // failure such as NO [UNAVAILABLE], for at most 60 s.
    loop {
        match c.run("SELECT INBOX", |_| {}) {
            Ok(d) if d.ok() => break,
            Ok(d) if d.line.contains("[UNAVAILABLE]") && t0.elapsed() < Duration::from_secs(60) => {
                log.select_retries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(d) => {
                log.errors
                    .push(format!("client {id} setup: SELECT INBOX -> {}", d.line));
                return log;
            }
            Err(e) => {
                log.errors
                    .push(format!("client {id} setup: SELECT INBOX -> {e}"));
                return log;
            }
        }
    }
    log.setup = Some(t0.elapsed());
    // Everyone starts the timed loop together-ish: the deadline counts from setup end.
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rng = Rng::new(0xC0FFEE ^ (id << 32));
    let total_weight: u64 = OPS.iter().map(|(_, w)| w).sum();
    let mut seen_toggle = false;
    while Instant::now() < deadline {
        let mut pick = rng.next_u64() % total_weight;
        let mut op = 0;
        for (k, (_, w)) in OPS.iter().enumerate() {
            if pick < *w {
                op = k;
                break;
            }
            pick -= w;
        }
        let uid = rng.range(1, max_uid);
        let cmd = match OPS[op].0 {
            "fetch_header" => format!("UID FETCH {uid} (UID FLAGS BODY.PEEK[HEADER])"),
            "fetch_body" => format!("UID FETCH {uid} (BODY.PEEK[])"),
            "search" => {
                let lo = uid.saturating_sub(499).max(1);
                format!(
                    "UID SEARCH UID {lo}:{uid} FROM \"{}\"",
                    rng.pick(&["Weber", "Rossi", "Tanaka", "Quinn"])
                )
            }
            "store" => {
                seen_toggle = !seen_toggle;
                let sign = if seen_toggle { '+' } else { '-' };
                format!("UID STORE {uid} {sign}FLAGS.SILENT (\\Seen)")
            }
            _ => "NOOP".to_string(),
        };
        let started = Instant::now();
        match c.run(&cmd, |_| {}) {
            Ok(d) if d.ok() => log.lat[op].push(started.elapsed().as_micros() as u32),
            Ok(d) => {
                failures.fetch_add(1, Ordering::Relaxed);
                log.errors.push(format!("client {id}: {cmd} -> {}", d.line));
            }
            Err(e) => {
                failures.fetch_add(1, Ordering::Relaxed);
                log.errors.push(format!("client {id}: {cmd} -> {e}"));
                break;
            }
        }
    }
    let _ = c.set_timeout(Duration::from_secs(10));
    let _ = c.run("LOGOUT", |_| {});
    log
}
