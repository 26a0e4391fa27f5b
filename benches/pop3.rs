//! POP3 benchmark (issue 4): Loft in-process against Debian's Dovecot pop3 on the same
//! data, in the same run.
//!
//! * login + STAT + UIDL on an N-message INBOX (default N = 100,000; `LOFT_BENCH_POP3_N`),
//!   first (cold: the server builds its UID list / index) and warm (median of 5);
//! * RETR throughput of 10 concurrent clients, each retrieving its own share of the
//!   messages with one RETR at a time (MB/s of message octets and messages/s).
//!
//! Run: `cargo bench --bench pop3`. Dovecot is started by `benches/dovecot-pop3.sh` on a
//! loopback port with a temporary config; without it (not installed) only Loft runs.
//! Messages are written as an MTA would (LF line ends, new/), 1-6 KiB.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const USER: &str = "bench";
const PASS: &str = "benchpw";
const CLIENTS: usize = 10;

fn message(i: usize) -> String {
    let mut m = format!(
        "Return-Path: <s{i}@example.org>\nFrom: Sender {i} <s{i}@example.org>\nTo: {USER}@example.com\n\
         Subject: Benchmark message {i}\nDate: Mon, 2 Jan 2006 15:04:05 -0700\n\
         Message-ID: <bench-{i}@example.org>\nMIME-Version: 1.0\nContent-Type: text/plain\n\n"
    );
    let lines = 10 + (i * 7919) % 90;
    for k in 0..lines {
        if k % 17 == 5 {
            m.push_str(".a line starting with a dot\n");
        } else {
            m.push_str(&format!(
                "Line {k} of message {i}: the quick brown fox jumps over the dog\n"
            ));
        }
    }
    m
}

fn populate(maildir: &Path, n: usize) -> u64 {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let mut bytes = 0;
    for i in 1..=n {
        let m = message(i);
        bytes += m.len() as u64;
        std::fs::write(
            maildir
                .join("new")
                .join(format!("{}.M{i}P1.bench", 1_700_000_000 + i)),
            m,
        )
        .unwrap();
    }
    bytes
}

/// A blocking POP3 client.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    line: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
        let mut c = Client {
            r: BufReader::with_capacity(256 * 1024, s.try_clone().unwrap()),
            w: s,
            line: Vec::new(),
        };
        c.read_ok("greeting");
        c
    }

    fn read_line(&mut self) -> &[u8] {
        self.line.clear();
        let n = self.r.read_until(b'\n', &mut self.line).expect("read");
        assert!(n > 0, "connection closed");
        &self.line
    }

    fn read_ok(&mut self, what: &str) -> String {
        let l = String::from_utf8_lossy(self.read_line()).into_owned();
        assert!(l.starts_with("+OK"), "{what}: {l}");
        l
    }

    fn cmd(&mut self, c: &str) -> String {
        self.w.write_all(format!("{c}\r\n").as_bytes()).unwrap();
        self.read_ok(c)
    }

    /// Reads a multi-line body; returns (lines, octets before stuffing removal).
    fn body(&mut self) -> (usize, u64) {
        let (mut lines, mut octets) = (0, 0);
        loop {
            let l = self.read_line();
            if l == b".\r\n" {
                return (lines, octets);
            }
            lines += 1;
            octets += l.len() as u64 - u64::from(l.first() == Some(&b'.'));
        }
    }

    fn login(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr);
        c.cmd(&format!("USER {USER}"));
        c.cmd(&format!("PASS {PASS}"));
        c
    }
}

/// login + STAT + UIDL + QUIT; returns (elapsed, message count, time to the PASS reply).
fn login_stat_uidl(addr: SocketAddr) -> (Duration, usize, Duration) {
    let t = Instant::now();
    let mut c = Client::login(addr);
    let logged_in = t.elapsed();
    let stat = c.cmd("STAT");
    let n: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    c.cmd("UIDL");
    let (lines, _) = c.body();
    assert_eq!(lines, n);
    c.cmd("QUIT");
    (t.elapsed(), n, logged_in)
}

/// 10 clients, client k RETRs messages k+1, k+1+10, ... up to `per_client` each.
fn retr_throughput(addr: SocketAddr, n: usize, per_client: usize) -> (Duration, u64, usize) {
    let t = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|k| {
            std::thread::spawn(move || {
                let mut c = Client::login(addr);
                let (mut bytes, mut msgs) = (0u64, 0usize);
                let mut i = k + 1;
                while i <= n && msgs < per_client {
                    c.cmd(&format!("RETR {i}"));
                    bytes += c.body().1;
                    msgs += 1;
                    i += CLIENTS;
                }
                c.w.write_all(b"RSET\r\nQUIT\r\n").unwrap();
                (bytes, msgs)
            })
        })
        .collect();
    let (mut bytes, mut msgs) = (0, 0);
    for h in handles {
        let (b, m) = h.join().expect("client thread");
        bytes += b;
        msgs += m;
    }
    (t.elapsed(), bytes, msgs)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn run_suite(name: &str, addr: SocketAddr, n: usize, per_client: usize) {
    let (cold, count, _) = login_stat_uidl(addr);
    assert_eq!(count, n, "{name}: STAT count");
    let runs: Vec<(Duration, usize, Duration)> = (0..5).map(|_| login_stat_uidl(addr)).collect();
    let warm = median(runs.iter().map(|r| r.0).collect());
    let login = median(runs.iter().map(|r| r.2).collect());
    let (t, bytes, msgs) = retr_throughput(addr, n, per_client);
    let secs = t.as_secs_f64();
    println!(
        "| {name} | {} | {} (login {}) | {:.1} MB/s | {:.0} msg/s | {msgs} msgs, {:.1} MB in {:.2} s |",
        ms(cold),
        ms(warm),
        ms(login),
        bytes as f64 / 1e6 / secs,
        msgs as f64 / secs,
        bytes as f64 / 1e6,
        secs
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn main() {
    // `cargo bench` passes --bench; nothing else is understood.
    let n: usize = std::env::var("LOFT_BENCH_POP3_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let per_client: usize = std::env::var("LOFT_BENCH_POP3_RETR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let loft_md = dir.path().join("mail").join(USER);
    let t = Instant::now();
    let bytes = populate(&loft_md, n);
    println!(
        "generated {n} messages ({:.1} MB as LF) in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let dove_md: PathBuf = dir.path().join("dovecot-mail");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&loft_md)
        .arg(&dove_md)
        .status();
    assert!(cp.map(|s| s.success()).unwrap_or(false), "copy for dovecot");

    println!("\n| server | login+STAT+UIDL, first (cold) | login+STAT+UIDL, warm (median of 5) | RETR, {CLIENTS} clients | RETR msg/s | detail |");
    println!("| --- | --- | --- | --- | --- | --- |");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    std::fs::write(
        dir.path().join("users"),
        format!("{USER}:{{PLAIN}}{PASS}\n"),
    )
    .unwrap();
    let mut cfg = loft::config::Config::for_tests(dir.path());
    cfg.pop3.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.pop3.lock_mailbox = false; // 10 concurrent clients on one maildrop, as Dovecot allows
    cfg.storage.fsync = loft::config::FsyncMode::Never;
    cfg.storage.autocreate_special_use = false;
    let server = rt.block_on(loft::server::start(cfg)).expect("loft starts");
    let addr = server.pop3_addrs[0];
    run_suite("Loft", addr, n, per_client);
    rt.block_on(server.shutdown());

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/dovecot-pop3.sh");
    let dv = dir.path().join("dovecot");
    let port = free_port();
    let started = Command::new(script)
        .arg("start")
        .arg(&dv)
        .arg(port.to_string())
        .arg(&dove_md)
        .args([USER, PASS])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if started {
        run_suite(
            "Dovecot",
            SocketAddr::from(([127, 0, 0, 1], port)),
            n,
            per_client,
        );
        let _ = Command::new(script).arg("stop").arg(&dv).status();
    } else {
        println!("| Dovecot | not available (install dovecot-pop3d) | | | | |");
    }
}
