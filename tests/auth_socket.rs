//! The auth socket over its UNIX socket with a raw client: handshake, PLAIN and LOGIN,
//! CONT steps, pipelined interleaved requests, garbage and oversized lines, clients that
//! vanish mid-request, the brute-force limiter (also through IMAP), app passwords, and
//! the socket file's handling (mode, stale file replaced).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use loft::auth::{app_passwords, Service};
use loft::config::Config;
use loft::server::Server;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const T: Duration = Duration::from_secs(10);

struct Env {
    dir: tempfile::TempDir,
    server: Option<Server>,
    sock: PathBuf,
}

async fn start_with(tweak: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users"),
        "alice:{PLAIN}secret\nbob:{PLAIN}hunter2\n",
    )
    .unwrap();
    let mut cfg = Config::for_tests(dir.path());
    cfg.imap.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.imap.listen_tls = vec![];
    let sock = dir.path().join("run/auth-client");
    cfg.auth.socket = Some(sock.clone());
    cfg.auth.failure_delay = Duration::from_millis(50);
    cfg.auth.rate_limit.max_delay = Duration::from_millis(100);
    tweak(&mut cfg);
    let server = loft::server::start(cfg).await.expect("server starts");
    Env {
        dir,
        server: Some(server),
        sock,
    }
}

async fn start() -> Env {
    start_with(|_| {}).await
}

struct Client {
    rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    wr: tokio::net::unix::OwnedWriteHalf,
}

impl Client {
    /// Connects and reads the handshake, which must arrive before we write anything.
    async fn connect(env: &Env) -> (Client, Vec<String>) {
        let s = UnixStream::connect(&env.sock).await.unwrap();
        let (rd, wr) = s.into_split();
        let mut c = Client {
            rd: BufReader::new(rd),
            wr,
        };
        let mut hs = Vec::new();
        loop {
            let l = c.line().await;
            let done = l == "DONE";
            hs.push(l);
            if done {
                break;
            }
        }
        c.send("VERSION\t1\t2\nCPID\t4242\n").await;
        (c, hs)
    }

    async fn send(&mut self, s: &str) {
        self.wr.write_all(s.as_bytes()).await.unwrap();
    }

    async fn line(&mut self) -> String {
        let mut l = String::new();
        let n = tokio::time::timeout(T, self.rd.read_line(&mut l))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(n > 0, "connection closed");
        l.trim_end_matches('\n').to_string()
    }

    /// Sends an AUTH PLAIN and returns the answer line.
    async fn plain(&mut self, id: u32, user: &str, pw: &str, extra: &str) -> String {
        let resp = B64.encode(format!("\0{user}\0{pw}"));
        self.send(&format!(
            "AUTH\t{id}\tPLAIN\tservice=smtp{extra}\tresp={resp}\n"
        ))
        .await;
        self.line().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_is_sent_first_and_complete() {
    let env = start().await;
    let (_c, hs) = Client::connect(&env).await;
    assert_eq!(hs[0], "VERSION\t1\t2");
    assert!(hs.contains(&"MECH\tPLAIN\tplaintext".to_string()), "{hs:?}");
    assert!(hs.contains(&"MECH\tLOGIN\tplaintext".to_string()), "{hs:?}");
    assert!(hs.iter().any(|l| l.starts_with("SPID\t")));
    assert!(hs.iter().any(|l| l.starts_with("CUID\t")));
    let cookie = hs.iter().find_map(|l| l.strip_prefix("COOKIE\t")).unwrap();
    assert_eq!(cookie.len(), 32);
    assert!(cookie.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(hs.last().unwrap(), "DONE");
    let mode = std::fs::metadata(&env.sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_login_success_and_failure() {
    let env = start().await;
    let (mut c, _) = Client::connect(&env).await;
    let rip = "\trip=127.0.0.1\tlip=127.0.0.1";
    assert_eq!(
        c.plain(1, "alice", "secret", rip).await,
        "OK\t1\tuser=alice"
    );
    assert_eq!(
        c.plain(2, "alice", "nope", rip).await,
        "FAIL\t2\tuser=alice"
    );
    assert_eq!(
        c.plain(3, "ghost", "nope", rip).await,
        "FAIL\t3\tuser=ghost"
    );

    // PLAIN without an initial response: an empty CONT first.
    c.send("AUTH\t4\tPLAIN\tservice=smtp\tsecured\n").await;
    assert_eq!(c.line().await, "CONT\t4\t");
    c.send(&format!("CONT\t4\t{}\n", B64.encode("\0bob\0hunter2")))
        .await;
    assert_eq!(c.line().await, "OK\t4\tuser=bob");

    // LOGIN: Username:, Password: prompts.
    c.send("AUTH\t5\tLOGIN\tservice=smtp\tsecured\n").await;
    assert_eq!(
        c.line().await,
        format!("CONT\t5\t{}", B64.encode("Username:"))
    );
    c.send(&format!("CONT\t5\t{}\n", B64.encode("alice"))).await;
    assert_eq!(
        c.line().await,
        format!("CONT\t5\t{}", B64.encode("Password:"))
    );
    c.send(&format!("CONT\t5\t{}\n", B64.encode("secret")))
        .await;
    assert_eq!(c.line().await, "OK\t5\tuser=alice");

    // LOGIN with the user name as initial response, wrong password.
    c.send(&format!(
        "AUTH\t6\tLOGIN\tservice=smtp\tsecured\tresp={}\n",
        B64.encode("bob")
    ))
    .await;
    assert_eq!(
        c.line().await,
        format!("CONT\t6\t{}", B64.encode("Password:"))
    );
    c.send(&format!("CONT\t6\t{}\n", B64.encode("wrong"))).await;
    assert_eq!(c.line().await, "FAIL\t6\tuser=bob");

    // Unsupported mechanism, bad base64.
    c.send("AUTH\t7\tDIGEST-MD5\tservice=smtp\tsecured\n").await;
    assert!(c.line().await.starts_with("FAIL\t7\t"));
    c.send("AUTH\t8\tPLAIN\tservice=smtp\tsecured\tresp=!!!\n")
        .await;
    assert!(c.line().await.starts_with("FAIL\t8\treason="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_needs_secured_or_loopback() {
    let env = start().await;
    let (mut c, _) = Client::connect(&env).await;
    let a = c.plain(1, "alice", "secret", "\trip=192.0.2.9").await;
    assert!(a.starts_with("FAIL\t1\treason=Plaintext"), "{a}");
    let a = c
        .plain(2, "alice", "secret", "\trip=192.0.2.9\tsecured")
        .await;
    assert_eq!(a, "OK\t2\tuser=alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_with_interleaved_ids() {
    let env = start_with(|c| c.auth.failure_delay = Duration::from_millis(300)).await;
    let (mut c, _) = Client::connect(&env).await;
    let p = |u: &str, pw: &str| B64.encode(format!("\0{u}\0{pw}"));
    // One write: a slow failure first, then successes that must not wait for it.
    let batch = format!(
        "AUTH\t10\tLOGIN\tservice=smtp\tsecured\n\
         AUTH\t11\tPLAIN\tservice=smtp\tsecured\tresp={}\n\
         AUTH\t12\tPLAIN\tservice=smtp\tsecured\tresp={}\n\
         CONT\t10\t{}\n\
         AUTH\t13\tPLAIN\tservice=smtp\tsecured\tresp={}\n",
        p("alice", "bad"),
        p("alice", "secret"),
        B64.encode("bob"),
        p("bob", "hunter2"),
    );
    let t0 = Instant::now();
    c.send(&batch).await;
    let mut answers: HashMap<String, String> = HashMap::new();
    let mut order = Vec::new();
    let mut conts = Vec::new();
    while answers.len() < 4 {
        let l = c.line().await;
        let id = l.split('\t').nth(1).unwrap().to_string();
        if l.starts_with("CONT\t10\t") {
            conts.push(l.clone());
            if conts.len() == 2 {
                c.send(&format!("CONT\t10\t{}\n", B64.encode("hunter2")))
                    .await;
            }
            continue;
        }
        order.push(id.clone());
        answers.insert(id, l);
    }
    // The first CONT for 10 was Username:, the second Password:.
    assert!(conts[0].ends_with(&B64.encode("Username:")), "{conts:?}");
    assert!(conts[1].ends_with(&B64.encode("Password:")), "{conts:?}");
    let fin = answers["10"].clone();
    assert_eq!(fin, "OK\t10\tuser=bob");
    assert_eq!(answers["11"], "FAIL\t11\tuser=alice");
    assert_eq!(answers["12"], "OK\t12\tuser=alice");
    assert_eq!(answers["13"], "OK\t13\tuser=bob");
    // The good ones were not held up behind 11's failure delay.
    let pos = |id: &str| order.iter().position(|x| x == id).unwrap();
    assert!(pos("12") < pos("11"), "{order:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_lines_do_not_disturb_others() {
    let env = start().await;
    let (mut c, _) = Client::connect(&env).await;
    c.send("AUTH\t30\tLOGIN\tservice=smtp\tsecured\n").await;
    assert!(c.line().await.starts_with("CONT\t30\t"));
    // Lines without a readable id: logged, not answered.
    c.wr.write_all(b"HELLO\tthere\n\x00\x01\x02\xff\xfe\nAUTH\tnotanumber\tPLAIN\n\n")
        .await
        .unwrap();
    // Readable ids: answered with FAIL.
    c.send("AUTH\t31\tPLAIN\n").await;
    let a = c.line().await;
    assert!(a.starts_with("FAIL\t31\treason="), "{a}");
    c.send("CONT\t999\tAAAA\n").await;
    assert!(c.line().await.starts_with("FAIL\t999\t"));
    // Oversized line (well past 16 KiB).
    let big = format!(
        "AUTH\t32\tPLAIN\tservice=smtp\tsecured\tresp={}\n",
        "A".repeat(100_000)
    );
    c.send(&big).await;
    assert_eq!(c.line().await, "FAIL\t32\treason=Line too long");
    // Request 30 is still alive, and new ones work.
    c.send(&format!("CONT\t30\t{}\n", B64.encode("alice")))
        .await;
    assert!(c.line().await.starts_with("CONT\t30\t"));
    c.send(&format!("CONT\t30\t{}\n", B64.encode("secret")))
        .await;
    assert_eq!(c.line().await, "OK\t30\tuser=alice");
    assert_eq!(
        c.plain(33, "bob", "hunter2", "\tsecured").await,
        "OK\t33\tuser=bob"
    );
    // A wrong major version closes the connection.
    c.send("VERSION\t2\t0\n").await;
    let mut rest = String::new();
    let n = tokio::time::timeout(T, c.rd.read_to_string(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_request_are_harmless() {
    let env = start_with(|c| c.auth.failure_delay = Duration::from_millis(200)).await;
    for i in 0..20 {
        let (mut c, _) = Client::connect(&env).await;
        let resp = B64.encode("\0alice\0wrong");
        match i % 3 {
            // Mid-check (the failure delay is running).
            0 => {
                c.send(&format!(
                    "AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp={resp}\n"
                ))
                .await
            }
            // Mid-exchange (waiting for CONT).
            1 => c.send("AUTH\t1\tLOGIN\tservice=smtp\tsecured\n").await,
            // Mid-line.
            _ => c.send("AUTH\t1\tPLAIN\tservice=sm").await,
        }
        drop(c);
    }
    // A client that shuts its write side still gets its answer.
    let (mut c, _) = Client::connect(&env).await;
    let resp = B64.encode("\0alice\0secret");
    c.send(&format!(
        "AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp={resp}\n"
    ))
    .await;
    c.wr.shutdown().await.unwrap();
    assert_eq!(c.line().await, "OK\t2\tuser=alice");
    // The server is fine.
    let (mut c, _) = Client::connect(&env).await;
    assert_eq!(
        c.plain(3, "alice", "secret", "\tsecured").await,
        "OK\t3\tuser=alice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_from_one_address_is_slowed_then_refused_but_the_user_gets_in_elsewhere() {
    let env = start_with(|c| {
        c.auth.failure_delay = Duration::from_millis(20);
        c.auth.rate_limit.ip_burst = 6;
        c.auth.rate_limit.user_burst = 4;
        c.auth.rate_limit.ip_interval = Duration::from_secs(60);
        c.auth.rate_limit.user_interval = Duration::from_secs(60);
        c.auth.rate_limit.max_delay = Duration::from_millis(400);
    })
    .await;
    let (mut c, _) = Client::connect(&env).await;
    let attacker = "\trip=198.51.100.7\tsecured";
    let mut times = Vec::new();
    let mut answers = Vec::new();
    for i in 0..10 {
        let t = Instant::now();
        answers.push(c.plain(100 + i, "alice", "guess", attacker).await);
        times.push(t.elapsed());
    }
    let refused: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.contains("\ttemp"))
        .map(|(i, _)| i)
        .collect();
    assert!(!refused.is_empty(), "{answers:?}");
    assert!(refused[0] >= 3, "some plain failures first: {answers:?}");
    assert!(
        answers[0] == "FAIL\t100\tuser=alice",
        "first is a plain failure: {answers:?}"
    );
    // Slowed before refused: later failures take longer than the first.
    assert!(
        times[3] > times[0] + Duration::from_millis(100),
        "{times:?}"
    );
    // Even the right password is refused from the attacking address now …
    let a = c.plain(200, "alice", "secret", attacker).await;
    assert!(a.contains("code=temp_fail"), "{a}");
    // … but alice from her own address logs in.
    let a = c
        .plain(201, "alice", "secret", "\trip=203.0.113.5\tsecured")
        .await;
    assert_eq!(a, "OK\t201\tuser=alice");
    // And bob from yet another address is unaffected.
    let a = c
        .plain(202, "bob", "hunter2", "\trip=203.0.113.6\tsecured")
        .await;
    assert_eq!(a, "OK\t202\tuser=bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_login_is_refused_with_unavailable_after_a_burst() {
    let env = start_with(|c| {
        c.auth.failure_delay = Duration::from_millis(10);
        c.auth.rate_limit.ip_burst = 3;
        c.auth.rate_limit.ip_interval = Duration::from_secs(60);
        c.auth.rate_limit.max_delay = Duration::from_millis(50);
    })
    .await;
    let addr = env.server.as_ref().unwrap().imap_addrs[0];
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);
    let mut l = String::new();
    rd.read_line(&mut l).await.unwrap();
    let mut last = String::new();
    for i in 0..5 {
        wr.write_all(format!("a{i} LOGIN alice wrong\r\n").as_bytes())
            .await
            .unwrap();
        last.clear();
        tokio::time::timeout(T, rd.read_line(&mut last))
            .await
            .unwrap()
            .unwrap();
        if i == 0 {
            assert!(last.contains("[AUTHENTICATIONFAILED]"), "{last}");
        }
    }
    assert!(last.starts_with("a4 NO [UNAVAILABLE]"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_passwords_are_per_service_and_revocable() {
    let env = start().await;
    let apps = app_passwords::path_for(&env.dir.path().join("users"));
    let pw = app_passwords::add(&apps, "alice", "phone", &[Service::Imap]).unwrap();
    let smtp_pw = app_passwords::add(&apps, "alice", "mta", &[Service::Smtp]).unwrap();
    let (mut c, _) = Client::connect(&env).await;
    let resp = |p: &str| B64.encode(format!("\0alice\0{p}"));
    c.send(&format!(
        "AUTH\t1\tPLAIN\tservice=imap\tsecured\tresp={}\n",
        resp(&pw)
    ))
    .await;
    assert_eq!(c.line().await, "OK\t1\tuser=alice");
    assert_eq!(
        c.plain(2, "alice", &pw, "\tsecured").await,
        "FAIL\t2\tuser=alice"
    );
    assert_eq!(
        c.plain(3, "alice", &smtp_pw, "\tsecured").await,
        "OK\t3\tuser=alice"
    );
    assert!(app_passwords::revoke(&apps, "alice", "mta").unwrap());
    assert_eq!(
        c.plain(4, "alice", &smtp_pw, "\tsecured").await,
        "FAIL\t4\tuser=alice"
    );
    // The main password still works everywhere.
    assert_eq!(
        c.plain(5, "alice", "secret", "\tsecured").await,
        "OK\t5\tuser=alice"
    );
    // Last use was recorded (asynchronously).
    let mut used = false;
    for _ in 0..50 {
        let (all, _) = app_passwords::read(&apps).unwrap();
        if all
            .iter()
            .any(|e| e.name == "phone" && e.last_used.is_some())
        {
            used = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(used);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_is_replaced_and_removed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("auth");
    // A socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let mut cfg = Config::for_tests(dir.path());
    cfg.imap.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.imap.listen_tls = vec![];
    cfg.auth.socket = Some(sock.clone());
    cfg.auth.socket_mode = 0o600;
    let server = loft::server::start(cfg.clone())
        .await
        .expect("replaces stale");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second server refuses to steal a live socket.
    let mut cfg2 = cfg.clone();
    cfg2.auth.passwd_file = dir.path().join("users");
    let err = loft::server::start(cfg2).await.err().unwrap().to_string();
    assert!(err.contains("another server"), "{err}");
    server.shutdown().await;
    assert!(!sock.exists(), "socket removed at shutdown");
    // A regular file in the way is an error, not deleted.
    std::fs::write(&sock, "keep me").unwrap();
    let err = loft::server::start(cfg).await.err().unwrap().to_string();
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "keep me");
}

#[path = "it/scram_client.rs"]
mod scram_client;

fn unb64(s: &str) -> String {
    String::from_utf8(B64.decode(s).unwrap()).unwrap()
}

/// Reads a `CONT <id> <data>` line and returns the decoded data.
async fn cont(c: &mut Client, id: u32) -> String {
    let l = c.line().await;
    let data = l
        .strip_prefix(&format!("CONT\t{id}\t"))
        .unwrap_or_else(|| panic!("expected CONT {id}: {l:?}"));
    unb64(data)
}

async fn cram(c: &mut Client, id: u32, user: &str, secret: &str, extra: &str) -> String {
    c.send(&format!("AUTH\t{id}\tCRAM-MD5\tservice=smtp{extra}\n"))
        .await;
    let ch = cont(c, id).await;
    assert!(ch.starts_with('<') && ch.ends_with('>'), "{ch}");
    let d = loft::auth::md5::hex(&loft::auth::cram::hmac_md5(
        secret.as_bytes(),
        ch.as_bytes(),
    ));
    c.send(&format!(
        "CONT\t{id}\t{}\n",
        B64.encode(format!("{user} {d}"))
    ))
    .await;
    c.line().await
}

async fn scram(c: &mut Client, id: u32, user: &str, pw: &str, with_resp: bool) -> String {
    let mut sc = scram_client::Scram::new("n,,", user, pw, "0123456789abcdef");
    let first = B64.encode(sc.first_message());
    if with_resp {
        c.send(&format!(
            "AUTH\t{id}\tSCRAM-SHA-256\tservice=smtp\trip=192.0.2.9\tresp={first}\n"
        ))
        .await;
    } else {
        c.send(&format!(
            "AUTH\t{id}\tSCRAM-SHA-256\tservice=smtp\trip=192.0.2.9\n"
        ))
        .await;
        assert_eq!(c.line().await, format!("CONT\t{id}\t"));
        c.send(&format!("CONT\t{id}\t{first}\n")).await;
    }
    let sf = cont(c, id).await;
    let fin = B64.encode(sc.final_message(&sf));
    c.send(&format!("CONT\t{id}\t{fin}\n")).await;
    let l = c.line().await;
    let Some(v) = l.strip_prefix(&format!("CONT\t{id}\t")) else {
        return l;
    };
    assert_eq!(Some(unb64(v)), sc.expected_v, "server signature");
    c.send(&format!("CONT\t{id}\t\n")).await;
    c.line().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cram_md5_and_scram_cont_flows() {
    let env = start().await;
    let (mut c, hs) = Client::connect(&env).await;
    assert!(
        hs.contains(&"MECH\tCRAM-MD5\tdictionary\tactive".to_string()),
        "{hs:?}"
    );
    assert!(
        hs.contains(&"MECH\tSCRAM-SHA-256\tmutual-auth".to_string()),
        "{hs:?}"
    );
    // CRAM-MD5 is not plaintext: accepted from a non-secured, non-loopback client where
    // PLAIN is refused.
    let r = c.plain(1, "alice", "secret", "\trip=192.0.2.9").await;
    assert!(r.starts_with("FAIL\t1") && r.contains("Plaintext"), "{r}");
    assert_eq!(
        cram(&mut c, 2, "alice", "secret", "\trip=192.0.2.9").await,
        "OK\t2\tuser=alice"
    );
    let r = cram(&mut c, 3, "alice", "wrong", "").await;
    assert!(r.starts_with("FAIL\t3") && r.contains("user=alice"), "{r}");
    let r = cram(&mut c, 4, "nobody", "x", "").await;
    assert!(r.starts_with("FAIL\t4"), "{r}");
    // SCRAM with and without resp=.
    assert_eq!(
        scram(&mut c, 5, "bob", "hunter2", true).await,
        "OK\t5\tuser=bob"
    );
    assert_eq!(
        scram(&mut c, 6, "bob", "hunter2", false).await,
        "OK\t6\tuser=bob"
    );
    let r = scram(&mut c, 7, "bob", "nope", true).await;
    assert!(r.starts_with("FAIL\t7"), "{r}");
    let r = scram(&mut c, 8, "nobody", "nope", false).await;
    assert!(r.starts_with("FAIL\t8"), "{r}");
    // Malformed: channel binding asked for, bad base64, data instead of the empty ack.
    let bad = B64.encode("p=tls-unique,,n=bob,r=abc");
    c.send(&format!(
        "AUTH\t9\tSCRAM-SHA-256\tservice=smtp\tresp={bad}\n"
    ))
    .await;
    let r = c.line().await;
    assert!(r.starts_with("FAIL\t9") && r.contains("reason="), "{r}");
    c.send("AUTH\t10\tCRAM-MD5\tservice=smtp\n").await;
    cont(&mut c, 10).await;
    c.send("CONT\t10\t!!!\n").await;
    assert!(c.line().await.starts_with("FAIL\t10"));
    c.send("AUTH\t11\tCRAM-MD5\tservice=smtp\tresp=dGlt\n")
        .await;
    assert!(c.line().await.starts_with("FAIL\t11"));
    // Interleaved: two exchanges open at once on one connection.
    c.send("AUTH\t20\tCRAM-MD5\tservice=smtp\n").await;
    c.send("AUTH\t21\tCRAM-MD5\tservice=smtp\n").await;
    let mut ch = HashMap::new();
    for _ in 0..2 {
        let l = c.line().await;
        let mut f = l.split('\t');
        assert_eq!(f.next(), Some("CONT"));
        let id: u32 = f.next().unwrap().parse().unwrap();
        ch.insert(id, unb64(f.next().unwrap()));
    }
    for (id, user, pw) in [(21, "bob", "hunter2"), (20, "alice", "secret")] {
        let d = loft::auth::md5::hex(&loft::auth::cram::hmac_md5(
            pw.as_bytes(),
            ch[&id].as_bytes(),
        ));
        c.send(&format!(
            "CONT\t{id}\t{}\n",
            B64.encode(format!("{user} {d}"))
        ))
        .await;
        assert_eq!(c.line().await, format!("OK\t{id}\tuser={user}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_response_mechs_only_when_usable_or_allowed() {
    let env = start().await;
    let sha = loft::auth::hash_password(loft::auth::Scheme::Sha512Crypt, "pw").unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(env.dir.path().join("users"), format!("erin:{sha}\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_c, hs) = Client::connect(&env).await;
    let mechs: Vec<&String> = hs.iter().filter(|l| l.starts_with("MECH")).collect();
    assert_eq!(mechs, ["MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext"]);
    let env = start_with(|c| c.auth.mechanisms = vec!["SCRAM-SHA-256".into()]).await;
    let (mut c, hs) = Client::connect(&env).await;
    let mechs: Vec<&String> = hs.iter().filter(|l| l.starts_with("MECH")).collect();
    assert_eq!(mechs, ["MECH\tSCRAM-SHA-256\tmutual-auth"]);
    let r = c.plain(1, "alice", "secret", "\tsecured").await;
    assert!(r.contains("Unsupported"), "{r}");
    assert_eq!(
        scram(&mut c, 2, "alice", "secret", true).await,
        "OK\t2\tuser=alice"
    );
}
