//! A hash flood (issue 10): 250 addresses send wrong ARGON2ID passwords in parallel over
//! IMAP while a real user logs in. The server's memory growth stays under 100 MB, comes
//! back near its baseline afterwards, and the real login gets through within seconds.
//!
//! Its own test binary so that the process's memory is the server's alone (the server
//! runs in-process; the clients are small). Prints the numbers recorded in
//! docs/performance.md ("Issue 10: login flood"); `LOFT_FLOOD_SECS` lengthens the flood.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use loft::auth::{hash_password, Scheme};
use loft::config::Config;

const ADDRESSES: u8 = 250;

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn connect_from(last: u8, addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0)))
        .unwrap();
    sock.connect(addr).await.unwrap()
}

/// Logs in over a fresh connection from 127.0.0.`from`; the tagged answer's status.
async fn login(addr: SocketAddr, from: u8, user: &str, pass: &str) -> String {
    let tcp = connect_from(from, addr).await;
    let (rd, mut wr) = tcp.into_split();
    let mut rd = BufReader::new(rd);
    let mut l = String::new();
    rd.read_line(&mut l).await.unwrap();
    wr.write_all(format!("a LOGIN {user} {pass}\r\n").as_bytes())
        .await
        .unwrap();
    loop {
        l.clear();
        if rd.read_line(&mut l).await.unwrap_or(0) == 0 {
            return "closed".into();
        }
        if let Some(rest) = l.strip_prefix("a ") {
            return rest.split(' ').next().unwrap_or("").to_string();
        }
    }
}

/// One attacking address: wrong passwords, one after the other, on one connection.
async fn attacker(addr: SocketAddr, from: u8, stop: Arc<AtomicBool>, tries: Arc<AtomicU64>) {
    let tcp = connect_from(from, addr).await;
    let (rd, mut wr) = tcp.into_split();
    let mut rd = BufReader::new(rd);
    let mut l = String::new();
    let _ = rd.read_line(&mut l).await;
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let cmd = format!("t{n} LOGIN user{} wrong{n}\r\n", n % 20);
        if wr.write_all(cmd.as_bytes()).await.is_err() {
            return;
        }
        loop {
            l.clear();
            if rd.read_line(&mut l).await.unwrap_or(0) == 0 {
                return;
            }
            if l.starts_with(&format!("t{n} ")) {
                break;
            }
        }
        tries.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_flood_keeps_memory_bounded_and_lets_a_real_user_in() {
    let dir = tempfile::tempdir().unwrap();
    let hash = hash_password(Scheme::Argon2id, "good-pass").unwrap();
    let mut users = format!("good:{hash}\n");
    for i in 0..20 {
        users.push_str(&format!("user{i}:{hash}\n"));
    }
    std::fs::write(dir.path().join("users"), users).unwrap();
    let mut cfg = Config::for_tests(dir.path());
    cfg.imap.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.auth.failure_delay = Duration::from_secs(2);
    cfg.auth.allow_plaintext_auth = true;
    // The memory bound is hash_workers × 19 MiB: pin it to this project's 2 cores so that
    // the test means the same on a bigger machine.
    cfg.auth.hash_workers = 2;
    let server = loft::server::start(cfg).await.unwrap();
    let addr = server.imap_addrs[0];

    // Warm up (one real check: the first ARGON2ID allocation), then the baseline.
    assert_eq!(login(addr, 1, "good", "good-pass").await, "OK");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = rss();
    let t = Instant::now();
    assert_eq!(login(addr, 1, "good", "good-pass").await, "OK");
    let calm = t.elapsed();

    let stop = Arc::new(AtomicBool::new(false));
    let tries = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut attackers = Vec::new();
    for i in 0..ADDRESSES {
        attackers.push(tokio::spawn(attacker(
            addr,
            2 + i,
            stop.clone(),
            tries.clone(),
        )));
    }
    let secs: u64 = std::env::var("LOFT_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A real user, from an address with no failures, in the middle of the flood.
    let t = Instant::now();
    let answer = login(addr, 1, "good", "good-pass").await;
    let during = t.elapsed();
    tokio::time::sleep(Duration::from_secs(secs.saturating_sub(2))).await;
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = tokio::time::timeout(Duration::from_secs(30), a).await;
    }
    let _ = sampler.await;
    let peak = peak.load(Ordering::Relaxed).max(rss());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss();
    let mb = |b: u64| b as f64 / 1048576.0;
    println!(
        "flood: {ADDRESSES} addresses, {secs} s, {} wrong logins answered; good login {calm:?} calm, \
         {during:?} during the flood ({answer}); RSS baseline {:.1} MiB, peak {:.1} MiB \
         (+{:.1}), 2 s after {:.1} MiB (+{:.1})",
        tries.load(Ordering::Relaxed),
        mb(baseline),
        mb(peak),
        mb(peak.saturating_sub(baseline)),
        mb(after),
        mb(after.saturating_sub(baseline)),
    );
    assert_eq!(answer, "OK", "the real user was refused during the flood");
    assert!(
        during < Duration::from_secs(4),
        "good login took {during:?}"
    );
    assert!(
        peak.saturating_sub(baseline) < 100 << 20,
        "memory grew by {:.1} MiB",
        mb(peak - baseline)
    );
    assert!(
        after.saturating_sub(baseline) < 25 << 20,
        "memory stayed {:.1} MiB above its baseline",
        mb(after - baseline)
    );
    server.shutdown().await;
}
