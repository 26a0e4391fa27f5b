//! Auth socket benchmark: requests per second with ARGON2ID and SHA512-CRYPT hashes, and
//! the latency of a good login while another address floods bad passwords.
//! Run: `cargo bench --bench auth` (results go to docs/performance.md, section "Auth socket", by hand).

use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use loft::auth::{hash_password, Scheme};
use loft::config::Config;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Conn {
    rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    wr: tokio::net::unix::OwnedWriteHalf,
}

impl Conn {
    async fn open(sock: &std::path::Path) -> Conn {
        let (rd, wr) = UnixStream::connect(sock).await.unwrap().into_split();
        let mut c = Conn {
            rd: BufReader::new(rd),
            wr,
        };
        loop {
            let mut l = String::new();
            c.rd.read_line(&mut l).await.unwrap();
            if l == "DONE\n" {
                break;
            }
        }
        c.wr.write_all(b"VERSION\t1\t2\nCPID\t1\n").await.unwrap();
        c
    }

    async fn auth(&mut self, id: u32, user: &str, pw: &str, rip: &str) -> String {
        let resp = B64.encode(format!("\0{user}\0{pw}"));
        let line = format!("AUTH\t{id}\tPLAIN\tservice=smtp\tsecured\trip={rip}\tresp={resp}\n");
        self.wr.write_all(line.as_bytes()).await.unwrap();
        let mut l = String::new();
        self.rd.read_line(&mut l).await.unwrap();
        l
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let users = format!(
        "argon:{}\nsha:{}\n",
        hash_password(Scheme::Argon2id, "pw-argon").unwrap(),
        hash_password(Scheme::Sha512Crypt, "pw-sha").unwrap()
    );
    std::fs::write(dir.path().join("users"), users).unwrap();
    let sock = dir.path().join("auth");
    let mut cfg = Config::for_tests(dir.path());
    cfg.imap.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.imap.listen_tls = vec![];
    cfg.auth.socket = Some(sock.clone());
    cfg.auth.failure_delay = Duration::from_millis(2000);
    // Throughput runs come from many "clients": keep the limiter out of the way there.
    cfg.auth.rate_limit.ip_burst = 1_000_000;
    cfg.auth.rate_limit.user_burst = 1_000_000;
    let server = loft::server::start(cfg).await.unwrap();
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    for (user, pw) in [("sha", "pw-sha"), ("argon", "pw-argon")] {
        let secs = 4.0;
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..8u32 {
            let sock = sock.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::open(&sock).await;
                let mut n = 0u32;
                while t0.elapsed().as_secs_f64() < secs {
                    let a = conn.auth(n, user, pw, &format!("10.0.0.{c}")).await;
                    assert!(a.starts_with("OK"), "{a}");
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        let el = t0.elapsed().as_secs_f64();
        println!(
            "throughput {user:>5}: {total} good logins in {el:.1}s = {:.0}/s (8 connections)",
            total as f64 / el
        );
    }

    // Latency of a good login (SHA512-CRYPT) alone, then under a flood of bad passwords
    // from another address (64 in flight, each answered after the failure delay or a
    // refusal from the limiter).
    let mut good = Conn::open(&sock).await;
    let mut base = Vec::new();
    for i in 0..40 {
        let t = Instant::now();
        assert!(good
            .auth(i, "sha", "pw-sha", "192.0.2.1")
            .await
            .starts_with("OK"));
        base.push(t.elapsed());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for c in 0..64u32 {
        let (sock, stop) = (sock.clone(), stop.clone());
        flood.push(tokio::spawn(async move {
            let mut conn = Conn::open(&sock).await;
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.auth(n, "sha", &format!("guess{c}-{n}"), "198.51.100.66")
                    .await;
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut loaded = Vec::new();
    for i in 0..40 {
        let t = Instant::now();
        let a = good.auth(1000 + i, "sha", "pw-sha", "192.0.2.1").await;
        assert!(a.starts_with("OK"), "{a}");
        loaded.push(t.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut attempts = 0;
    for f in flood {
        attempts += f.await.unwrap();
    }
    println!(
        "good login latency alone:       p50 {:?} p99 {:?}",
        pct(&mut base, 0.5),
        pct(&mut base, 0.99)
    );
    println!(
        "good login latency under flood: p50 {:?} p99 {:?} ({attempts} flood attempts answered)",
        pct(&mut loaded, 0.5),
        pct(&mut loaded, 0.99)
    );
    server.shutdown().await;
}
