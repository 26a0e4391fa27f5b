//! Fault-injection tests against the real `loft` binary on a real Maildir:
//!
//! * `kill -9` while clients APPEND (synchronizing and non-synchronizing literals, sent in
//!   slow chunks so the kill lands mid-literal), then restart and check that every
//!   acknowledged message is there, byte-identical, under its acknowledged UID, that no
//!   partial message is visible and that UIDNEXT never goes down;
//! * `kill -9` while clients change flags and expunge;
//! * `kill -9` at random moments of mbox rewrites (EXPUNGE of messages spread over a file
//!   of messages from 1 KB to 2 MB, flags written back into the file at CLOSE): after each
//!   restart every message not expunged is there byte for byte under its UID, and no
//!   rewrite file is left beside the mbox;
//! * storage faults made behind the running server's back (uid list deleted, truncated,
//!   garbled or swapped, keywords file deleted, unreadable or renamed message files, junk
//!   in `cur/`): the server stays up, sessions keep working, UIDs are kept where the
//!   Maildir module promises it, and the log names the file (every fault, including a
//!   deleted or swapped uid list, leaves a log line).
//!
//! The invariant checked after every fault: for one UIDVALIDITY a UID never names two
//! different messages, and a new UID is never below a UIDNEXT a client has seen.
//!
//! Every wait has a deadline and every server is killed when its handle is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    fsync: &'static str,
    /// `[storage] format`.
    format: &'static str,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Server {
    fn new(fsync: &'static str) -> Server {
        Server::with_format(fsync, "maildir")
    }

    fn with_format(fsync: &'static str, format: &'static str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("users"), "alice:{PLAIN}secret\n").expect("users");
        let mut s = Server {
            dir,
            child: None,
            port: 0,
            fsync,
            format,
        };
        s.start();
        s
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail").join("alice")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("loft.log")
    }

    /// Everything the server processes wrote to stderr so far, ANSI colours removed.
    fn log(&self) -> String {
        let raw = std::fs::read(self.log_path()).unwrap_or_default();
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == 0x1b && raw.get(i + 1) == Some(&b'[') {
                i += 2;
                while i < raw.len() && !raw[i].is_ascii_alphabetic() {
                    i += 1;
                }
                i += 1;
                continue;
            }
            out.push(raw[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Starts the server on a fresh free port and waits until it greets.
    fn start(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.port = free_port();
        let d = self.dir.path();
        let conf = format!(
            "[server]\nhostname = \"localhost\"\nallow_root = true\n\
             [imap]\nlisten = [\"127.0.0.1:{}\"]\nlisten_tls = []\n\
             [pop3]\nlisten = []\nlisten_tls = []\n\
             [auth]\npasswd_file = \"users\"\nfailure_delay = \"0s\"\n\
             [storage]\nformat = \"{}\"\nlocation = \"{}/mail/%u\"\nfsync = \"{}\"\nautocreate_special_use = false\n\
             [log]\nlevel = \"info\"\n",
            self.port,
            self.format,
            d.display(),
            self.fsync
        );
        std::fs::write(d.join("loft.toml"), conf).expect("config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_loft"))
            .arg("serve")
            .arg("--config")
            .arg(d.join("loft.toml"))
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn loft");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(c) = Client::connect(self.port) {
                drop(c);
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("loft exited at start ({st}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "loft did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn assert_alive(&mut self) {
        let c = self.child.as_mut().expect("server running");
        if let Ok(Some(st)) = c.try_wait() {
            panic!("loft died ({st}):\n{}", self.log());
        }
    }

    fn login(&self) -> Client {
        let mut c = Client::connect(self.port).expect("connect");
        c.ok("LOGIN alice secret");
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test shows what the server said (a panic in a session ends its
        // connection: the test sees only the end of file).
        if std::thread::panicking() {
            eprintln!("server log:\n{}", self.log());
        }
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------
// A small blocking IMAP client
// ---------------------------------------------------------------------------------------

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    tag: u32,
}

/// `{n}` or `{n+}` at the end of a response line.
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Reply {
    untagged: Vec<Vec<u8>>,
    status: String,
}

impl Reply {
    fn is_ok(&self) -> bool {
        self.status.starts_with("OK")
    }
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_write_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        let mut c = Client {
            s,
            buf: Vec::new(),
            tag: 0,
        };
        let g = c.read_unit()?;
        if !g.starts_with(b"* OK") {
            return Err(std::io::Error::other(format!("bad greeting {}", text(&g))));
        }
        Ok(c)
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 65536];
        let n = self.s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(self.buf.drain(..p + 2).collect());
            }
            self.fill()?;
        }
    }

    /// One response: a line and the literals it announces.
    fn read_unit(&mut self) -> std::io::Result<Vec<u8>> {
        let mut unit = Vec::new();
        loop {
            let line = self.read_line()?;
            unit.extend_from_slice(&line);
            match literal_len(&line[..line.len() - 2]) {
                Some(n) => {
                    while self.buf.len() < n {
                        self.fill()?;
                    }
                    unit.extend(self.buf.drain(..n));
                }
                None => return Ok(unit),
            }
        }
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("t{}", self.tag)
    }

    /// Reads until the tagged reply of `tag`.
    fn finish(&mut self, tag: &str) -> std::io::Result<Reply> {
        let mut untagged = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let unit = self.read_unit()?;
            if unit.starts_with(prefix.as_bytes()) {
                let status = text(&unit[prefix.len()..]).trim_end().to_string();
                return Ok(Reply { untagged, status });
            }
            untagged.push(unit);
        }
    }

    fn try_cmd(&mut self, cmd: &str) -> std::io::Result<Reply> {
        let tag = self.next_tag();
        self.s.write_all(format!("{tag} {cmd}\r\n").as_bytes())?;
        self.finish(&tag)
    }

    fn ok(&mut self, cmd: &str) -> Reply {
        let r = self
            .try_cmd(cmd)
            .unwrap_or_else(|e| panic!("{cmd}: connection error {e}"));
        assert!(r.is_ok(), "{cmd}: {}", r.status);
        r
    }

    /// APPEND `msg`, in `chunk`-byte pieces with `pause` between them. `Ok(Some((v, u)))`
    /// only for a tagged OK with APPENDUID.
    fn append(
        &mut self,
        mailbox: &str,
        msg: &[u8],
        non_sync: bool,
        chunk: usize,
        pause: Duration,
    ) -> std::io::Result<Option<(u32, u32)>> {
        let tag = self.next_tag();
        let plus = if non_sync { "+" } else { "" };
        self.s.write_all(
            format!(
                "{tag} APPEND {mailbox} (\\Seen) {{{}{plus}}}\r\n",
                msg.len()
            )
            .as_bytes(),
        )?;
        if !non_sync {
            let l = self.read_line()?;
            if !l.starts_with(b"+") {
                return Ok(None);
            }
        }
        for piece in msg.chunks(chunk.max(1)) {
            self.s.write_all(piece)?;
            std::thread::sleep(pause);
        }
        self.s.write_all(b"\r\n")?;
        let r = self.finish(&tag)?;
        Ok(appenduid(&r.status))
    }

    /// UID → (Message-ID, full bytes) of every message in the selected mailbox.
    fn bodies(&mut self) -> BTreeMap<u32, Vec<u8>> {
        let r = self.ok("UID FETCH 1:* (UID BODY.PEEK[])");
        let mut out = BTreeMap::new();
        for u in &r.untagged {
            if !u.windows(6).any(|w| w == b" FETCH") {
                continue;
            }
            let (body, rest) = literal_after(u, b"BODY[] ").expect("BODY[] in FETCH");
            // Look for UID outside the literal: message text may contain "UID ".
            let uid = num_after(&rest, b"UID ").expect("UID in FETCH");
            out.insert(uid, body);
        }
        out
    }

    /// UID → flags (sorted, `\Recent` left out).
    fn flags(&mut self) -> BTreeMap<u32, Vec<String>> {
        let r = self.ok("UID FETCH 1:* (UID FLAGS)");
        let mut out = BTreeMap::new();
        for u in &r.untagged {
            if !u.windows(6).any(|w| w == b" FETCH") {
                continue;
            }
            let uid = num_after(u, b"UID ").expect("UID");
            let t = text(u);
            let start = t.find("FLAGS (").expect("FLAGS") + 7;
            let end = start + t[start..].find(')').expect(")");
            let mut f: Vec<String> = t[start..end]
                .split(' ')
                .filter(|s| !s.is_empty() && *s != "\\Recent")
                .map(str::to_string)
                .collect();
            f.sort();
            out.insert(uid, f);
        }
        out
    }

    /// (UIDVALIDITY, UIDNEXT, MESSAGES) of a mailbox.
    fn status(&mut self, mailbox: &str) -> (u32, u32, u32) {
        let r = self.ok(&format!("STATUS {mailbox} (UIDVALIDITY UIDNEXT MESSAGES)"));
        let u = r
            .untagged
            .iter()
            .find(|u| u.starts_with(b"* STATUS"))
            .expect("STATUS");
        (
            num_after(u, b"UIDVALIDITY ").expect("UIDVALIDITY"),
            num_after(u, b"UIDNEXT ").expect("UIDNEXT"),
            num_after(u, b"MESSAGES ").expect("MESSAGES"),
        )
    }
}

fn appenduid(status: &str) -> Option<(u32, u32)> {
    let rest = status.strip_prefix("OK [APPENDUID ")?;
    let mut w = rest.split([' ', ']']);
    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
}

fn num_after(hay: &[u8], key: &[u8]) -> Option<u32> {
    let p = hay.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = hay[p..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    text(&digits).parse().ok()
}

/// The literal after `key`, and the response without it.
fn literal_after(hay: &[u8], key: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let p = hay.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = hay.get(p..)?.strip_prefix(b"{")?;
    let close = rest.iter().position(|&b| b == b'}')?;
    let n: usize = text(&rest[..close]).parse().ok()?;
    let lit = rest.get(close + 3..close + 3 + n)?.to_vec();
    let mut outside = hay[..p].to_vec();
    outside.extend_from_slice(&rest[close + 3 + n..]);
    Some((lit, outside))
}

/// The Message-ID header value of a message we generated.
fn msg_id(body: &[u8]) -> Option<String> {
    let p = body.windows(12).position(|w| w == b"Message-ID: ")? + 12;
    let end = p + body[p..].windows(2).position(|w| w == b"\r\n")?;
    Some(text(&body[p..end]))
}

/// A message of `size` bytes (about), CRLF line ends, with a unique Message-ID.
fn make_message(rng: &mut StdRng, id: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: crash@example.org\r\nTo: alice@example.org\r\nSubject: crash test {id}\r\n\
         Message-ID: {id}\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n"
    )
    .into_bytes();
    while m.len() < size {
        let n = rng.gen_range(20..76);
        m.extend((0..n).map(|_| rng.gen_range(b' '..=b'~')));
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// 1 KB to 2 MB, evenly spread on a log scale.
fn random_size(rng: &mut StdRng) -> usize {
    let e: f64 = rng.gen_range(10.0..21.0);
    2f64.powf(e) as usize
}

fn tmp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("tmp"))
        .map(|rd| rd.flatten().count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// kill -9 during APPEND
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct AppendLog {
    /// Message-ID → bytes of every APPEND that was started.
    sent: HashMap<String, Vec<u8>>,
    /// (Message-ID, UIDVALIDITY, UID) of every tagged OK [APPENDUID].
    acked: Vec<(String, u32, u32)>,
}

fn append_loop(port: u16, seed: u64, round: u32, worker: u32, stop: Arc<AtomicBool>) -> AppendLog {
    let mut rng = StdRng::seed_from_u64(seed ^ (u64::from(round) << 32) ^ u64::from(worker));
    let mut log = AppendLog::default();
    let Ok(mut c) = Client::connect(port) else {
        return log;
    };
    match c.try_cmd("LOGIN alice secret") {
        Ok(r) if r.is_ok() => {}
        _ => return log,
    }
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("<r{round}w{worker}n{n}@crash>");
        let size = random_size(&mut rng);
        let msg = make_message(&mut rng, &id, size);
        log.sent.insert(id.clone(), msg.clone());
        let chunk = rng.gen_range(4096..131072);
        let pause = Duration::from_micros(rng.gen_range(200..3000));
        let non_sync = rng.gen_bool(0.5);
        match c.append("INBOX", &msg, non_sync, chunk, pause) {
            Ok(Some((v, u))) => log.acked.push((id, v, u)),
            Ok(None) => panic!("APPEND refused while the server was up"),
            Err(_) => break, // killed
        }
    }
    log
}

#[test]
fn kill_during_append() {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x10f7_c4a5);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut srv = Server::new("always");
    let root = srv.maildir();
    let mut sent: HashMap<String, Vec<u8>> = HashMap::new();
    // Message-ID → (UIDVALIDITY, UID) of everything acknowledged so far.
    let mut acked: HashMap<String, (u32, u32)> = HashMap::new();
    let mut uidnext_seen = 0u32;
    let mut validity: Option<u32> = None;
    let mut leftovers = 0;
    for round in 0..5u32 {
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let stop = stop.clone();
                let port = srv.port;
                std::thread::spawn(move || append_loop(port, seed, round, w, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1500)));
        srv.kill();
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            let log = w.join().expect("append worker");
            for (id, v, u) in &log.acked {
                assert_eq!(acked.insert(id.clone(), (*v, *u)), None, "{id} acked twice");
                uidnext_seen = uidnext_seen.max(u + 1);
            }
            sent.extend(log.sent);
        }
        leftovers += tmp_files(&root);
        if round == 2 {
            // A half-written message of our own in tmp/: must never be visible.
            let id = "<planted-partial@crash>";
            let m = make_message(&mut rng, id, 5000);
            std::fs::write(root.join("tmp").join("1.M1P1Q1.crash"), &m[..2500]).unwrap();
        }
        srv.start();
        let mut c = srv.login();
        let (v, next, count) = c.status("INBOX");
        if let Some(old) = validity {
            assert_eq!(v, old, "UIDVALIDITY changed after a crash");
        }
        validity = Some(v);
        assert!(
            next >= uidnext_seen,
            "round {round}: UIDNEXT went down: {next} < {uidnext_seen}"
        );
        uidnext_seen = next;
        c.ok("EXAMINE INBOX");
        let bodies = c.bodies();
        assert_eq!(bodies.len() as u32, count);
        let mut seen_ids = HashSet::new();
        for (uid, body) in &bodies {
            let id = msg_id(body).unwrap_or_else(|| panic!("UID {uid}: not one of ours"));
            assert!(seen_ids.insert(id.clone()), "{id} is there twice");
            let orig = sent
                .get(&id)
                .unwrap_or_else(|| panic!("UID {uid}: {id} was never sent completely"));
            assert!(
                orig == body,
                "UID {uid}: {id} differs from what was sent (partial?)"
            );
            if let Some(&(av, au)) = acked.get(&id) {
                assert_eq!((av, au), (v, *uid), "{id} changed its UID");
            }
            assert!(*uid < next);
        }
        for (id, (_, u)) in &acked {
            assert!(seen_ids.contains(id), "acknowledged {id} (UID {u}) is lost");
        }
        eprintln!(
            "round {round}: {} messages, {} acknowledged in all, UIDNEXT {next}, tmp files {}",
            bodies.len(),
            acked.len(),
            tmp_files(&root)
        );
        srv.assert_alive();
    }
    assert!(
        acked.len() >= 5,
        "too few APPENDs got through to test anything"
    );
    eprintln!("temp files left by kills: {leftovers}");
}

// ---------------------------------------------------------------------------------------
// kill -9 during STORE and EXPUNGE
// ---------------------------------------------------------------------------------------

/// Appends `n` small messages to INBOX; returns UID → Message-ID.
fn fill_inbox(srv: &Server, n: usize, tag: &str) -> BTreeMap<u32, String> {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let mut c = srv.login();
    let mut out = BTreeMap::new();
    for i in 0..n {
        let id = format!("<{tag}{i}@crash>");
        let m = make_message(&mut rng, &id, 600);
        let (_, u) = c
            .append("INBOX", &m, true, m.len(), Duration::ZERO)
            .expect("append")
            .expect("APPENDUID");
        out.insert(u, id);
    }
    out
}

/// Everything in INBOX as a fresh session sees it.
struct State {
    validity: u32,
    uidnext: u32,
    ids: BTreeMap<u32, String>,
}

fn state(srv: &Server) -> State {
    let mut c = srv.login();
    let (validity, uidnext, _) = c.status("INBOX");
    c.ok("EXAMINE INBOX");
    let ids = c
        .bodies()
        .into_iter()
        .map(|(u, b)| {
            (
                u,
                msg_id(&b).unwrap_or_else(|| format!("<foreign {}>", b.len())),
            )
        })
        .collect();
    State {
        validity,
        uidnext,
        ids,
    }
}

/// For one UIDVALIDITY a UID never names two messages and new UIDs are at or above the
/// UIDNEXT seen before; no message is lost (`lost` lists those allowed to vanish).
fn check_uid_rules(before: &State, after: &State, lost: &[&str], what: &str) {
    let after_ids: HashSet<&String> = after.ids.values().collect();
    for id in before.ids.values() {
        assert!(
            after_ids.contains(id) || lost.contains(&id.as_str()),
            "{what}: {id} is lost"
        );
    }
    assert_eq!(
        after_ids.len(),
        after.ids.len(),
        "{what}: duplicate messages"
    );
    if after.validity != before.validity {
        return;
    }
    for (uid, id) in &after.ids {
        match before.ids.get(uid) {
            Some(old) => assert_eq!(old, id, "{what}: UID {uid} now names another message"),
            None => assert!(
                *uid >= before.uidnext,
                "{what}: new UID {uid} for {id} is below the old UIDNEXT {} (same UIDVALIDITY)",
                before.uidnext
            ),
        }
    }
    assert!(after.uidnext >= before.uidnext, "{what}: UIDNEXT went down");
}

#[test]
fn kill_during_store_and_expunge() {
    let mut rng = StdRng::seed_from_u64(0x5707e);
    let mut srv = Server::new("always");
    let orig = fill_inbox(&srv, 150, "f");
    let mut expunged: HashSet<u32> = HashSet::new();
    // UIDs whose EXPUNGE was cut off by a kill: present or gone, either is right.
    let mut doomed_all: HashSet<u32> = HashSet::new();
    let mut before = state(&srv);
    let set_flags = vec!["$Work".to_string(), "\\Flagged".to_string()];
    for round in 0..4u64 {
        let port = srv.port;
        let worker_seed = rng.gen::<u64>();
        let live: Vec<u32> = orig
            .keys()
            .copied()
            .filter(|u| !expunged.contains(u))
            .collect();
        let worker = std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(worker_seed);
            // (acknowledged expunges, UIDs whose \Deleted or EXPUNGE was in flight)
            let mut acked = Vec::new();
            let mut doomed = Vec::new();
            let Ok(mut c) = Client::connect(port) else {
                return (acked, doomed);
            };
            if c.try_cmd("LOGIN alice secret").is_err() || c.try_cmd("SELECT INBOX").is_err() {
                return (acked, doomed);
            }
            for i in 0.. {
                let op = if i % 2 == 0 { "+" } else { "-" };
                if c.try_cmd(&format!("UID STORE 1:* {op}FLAGS.SILENT (\\Flagged $Work)"))
                    .is_err()
                {
                    break;
                }
                if i % 3 == 2 && live.len() > 1 {
                    let u = live[rng.gen_range(0..live.len())];
                    doomed.push(u);
                    let ok = c
                        .try_cmd(&format!("UID STORE {u} +FLAGS.SILENT (\\Deleted)"))
                        .and_then(|_| c.try_cmd(&format!("UID EXPUNGE {u}")));
                    match ok {
                        Ok(r) if r.is_ok() => acked.push(u),
                        Ok(r) => panic!("UID EXPUNGE {u}: {}", r.status),
                        Err(_) => break,
                    }
                }
            }
            (acked, doomed)
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..900)));
        srv.kill();
        let (acked, doomed) = worker.join().expect("store worker");
        srv.start();
        let after = state(&srv);
        expunged.extend(acked.iter().copied());
        doomed_all.extend(doomed.iter().copied());
        let may_vanish: Vec<&str> = doomed
            .iter()
            .filter_map(|u| orig.get(u).map(String::as_str))
            .collect();
        check_uid_rules(&before, &after, &may_vanish, &format!("round {round}"));
        assert_eq!(
            after.validity, before.validity,
            "UIDVALIDITY changed after a kill"
        );
        for (uid, id) in &orig {
            let present = after.ids.get(uid);
            if expunged.contains(uid) {
                assert!(present.is_none(), "expunged UID {uid} ({id}) came back");
            } else if !doomed_all.contains(uid) {
                assert_eq!(present, Some(id), "UID {uid} lost or changed");
            }
        }
        let mut c = srv.login();
        c.ok("EXAMINE INBOX");
        for (uid, mut flags) in c.flags() {
            flags.retain(|f| f != "\\Seen");
            let had_deleted = flags.iter().any(|f| f == "\\Deleted");
            assert!(
                !had_deleted || doomed_all.contains(&uid),
                "UID {uid}: stray \\Deleted"
            );
            flags.retain(|f| f != "\\Deleted");
            assert!(
                flags.is_empty() || flags == set_flags,
                "round {round}: UID {uid} has flags {flags:?}: neither old nor new"
            );
        }
        eprintln!(
            "round {round}: {} messages, {} expunged in all",
            after.ids.len(),
            expunged.len()
        );
        before = after;
    }
    assert!(!expunged.is_empty(), "no EXPUNGE was acknowledged");
}

// ---------------------------------------------------------------------------------------
// Storage faults behind the running server's back
// ---------------------------------------------------------------------------------------

/// A server with `n` messages in INBOX and a session that has INBOX selected.
fn fault_setup(n: usize) -> (Server, Client, State) {
    let srv = Server::new("always");
    fill_inbox(&srv, n, "s");
    let mut live = srv.login();
    live.ok("SELECT INBOX");
    let st = state(&srv);
    (srv, live, st)
}

/// The long-lived session still answers, the server is up; returns what a new session sees.
///
/// The one allowed exception: when a fault forces a new UIDVALIDITY, the selected session's
/// UIDs are meaningless and the server ends it with `* BYE` (RFC 3501 §2.3.1.1); the client
/// reconnects, as real clients do, and the checks go on in the new session.
fn after_fault(srv: &mut Server, live: &mut Client, what: &str) -> State {
    let first = live
        .try_cmd("NOOP")
        .unwrap_or_else(|e| panic!("{what}: NOOP: session dropped without BYE: {e}"));
    if first
        .untagged
        .iter()
        .any(|l| l.starts_with(b"* BYE Mailbox UIDVALIDITY changed"))
    {
        *live = srv.login();
        live.ok("SELECT INBOX");
    } else {
        assert!(first.is_ok(), "{what}: NOOP: {}", first.status);
    }
    for cmd in ["UID SEARCH ALL", "FETCH 1:* (UID FLAGS)", "NOOP"] {
        let r = live
            .try_cmd(cmd)
            .unwrap_or_else(|e| panic!("{what}: {cmd}: session dropped: {e}"));
        assert!(r.is_ok(), "{what}: {cmd}: {}", r.status);
    }
    srv.assert_alive();
    state(srv)
}

/// Some log line written after byte `from` mentions `needle`.
fn assert_logged(srv: &Server, from: usize, needle: &str, what: &str) {
    let log = srv.log();
    let new = log.get(from..).unwrap_or("");
    assert!(
        new.lines().any(|l| l.contains(needle)),
        "{what}: no log line names {needle}; log since the fault:\n{new}"
    );
}

fn index_file(srv: &Server, name: &str) -> PathBuf {
    srv.maildir().join(name)
}

const INDEX_FILES: [&str; 3] = ["loft.index", "loft.index.log", "loft.index.cache"];

/// Lines written since `from` that contain `needle`.
fn count_logged(srv: &Server, from: usize, needle: &str) -> usize {
    srv.log()
        .get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// After damage to index files: the live session goes on, a new session sees exactly
/// the messages and UIDs of before (what a rebuild keeping UIDs gives), and at most one
/// `index corrupted` line was written (none when the damage was harmless or healed
/// silently, e.g. a torn log tail). Returns the number of such lines.
fn check_index_fault(
    srv: &mut Server,
    live: &mut Client,
    before: &State,
    log_at: usize,
    what: &str,
) -> usize {
    let after = after_fault(srv, live, what);
    check_uid_rules(before, &after, &[], what);
    assert_eq!(
        after.validity, before.validity,
        "{what}: UIDVALIDITY changed"
    );
    assert_eq!(after.ids, before.ids, "{what}: UIDs not kept");
    assert_eq!(after.uidnext, before.uidnext, "{what}: UIDNEXT changed");
    let n = count_logged(srv, log_at, "index corrupted");
    assert!(
        n <= 1,
        "{what}: {n} 'index corrupted' lines:\n{}",
        srv.log().get(log_at..).unwrap_or("")
    );
    n
}

fn cur_files(srv: &Server) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(srv.maildir().join("cur"))
        .expect("cur/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Waits until file-system timestamps have moved on so change detection cannot miss an
/// edit made within the same clock tick as the last scan.
fn settle() {
    std::thread::sleep(Duration::from_millis(30));
}

#[test]
fn fault_index_files_deleted() {
    let (mut srv, mut live, before) = fault_setup(6);
    for victims in [
        &["loft.index"][..],
        &["loft.index.log"][..],
        &["loft.index.cache"][..],
        &["loft.index", "loft.index.log", "loft.index.cache"][..],
    ] {
        let what = format!("deleted {victims:?}");
        settle();
        let log_at = srv.log().len();
        for v in victims {
            let _ = std::fs::remove_file(index_file(&srv, v));
        }
        let n = check_index_fault(&mut srv, &mut live, &before, log_at, &what);
        if victims.len() > 1 || victims[0] != "loft.index.cache" {
            assert_eq!(n, 1, "{what}: no 'index corrupted' line:\n{}", srv.log());
        }
        assert!(
            index_file(&srv, "loft.index").is_file(),
            "{what}: not rebuilt"
        );
    }
}

#[test]
fn fault_index_files_truncated() {
    let (mut srv, mut live, before) = fault_setup(12);
    // A flag change and an expunge-free log tail beyond the header.
    live.ok("UID STORE 3 +FLAGS.SILENT (\\Seen)");
    let before = State { ..before };
    for name in INDEX_FILES {
        for frac in [0usize, 1, 3, 7] {
            let what = format!("{name} truncated at {frac}/8");
            let len = std::fs::metadata(index_file(&srv, name))
                .map(|m| m.len() as usize)
                .unwrap_or(0);
            if len == 0 {
                continue;
            }
            let at = len * frac / 8;
            settle();
            let log_at = srv.log().len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(index_file(&srv, name))
                .unwrap();
            f.set_len(at as u64).unwrap();
            drop(f);
            check_index_fault(&mut srv, &mut live, &before, log_at, &what);
        }
    }
}

#[test]
fn fault_index_files_garbled() {
    let (mut srv, mut live, before) = fault_setup(10);
    let mut rng = StdRng::seed_from_u64(0x1dec5);
    for name in INDEX_FILES {
        for round in 0..3 {
            let what = format!("{name} garbled, round {round}");
            let path = index_file(&srv, name);
            let Ok(mut content) = std::fs::read(&path) else {
                continue;
            };
            if content.is_empty() {
                continue;
            }
            for _ in 0..4 {
                let i = rng.gen_range(0..content.len());
                content[i] ^= rng.gen_range(1u8..=0xff);
            }
            settle();
            let log_at = srv.log().len();
            std::fs::write(&path, &content).unwrap();
            check_index_fault(&mut srv, &mut live, &before, log_at, &what);
        }
    }
    // Zeroed pages.
    let what = "loft.index zeroed";
    let path = index_file(&srv, "loft.index");
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    settle();
    let log_at = srv.log().len();
    std::fs::write(&path, vec![0u8; len]).unwrap();
    let n = check_index_fault(&mut srv, &mut live, &before, log_at, what);
    assert_eq!(n, 1, "{what}: no 'index corrupted' line");
    assert_logged(&srv, log_at, "loft.index", what);

    // The log zeroed in place at the same length: a running server keeps serving what
    // it knows; the next start finds the damage (one line) and rebuilds. The log held
    // the appends, so UIDs at or above the header's UIDNEXT may be lost: either all
    // UIDs are kept or UIDVALIDITY changes, never a UID reused.
    let what = "loft.index.log zeroed, then restart";
    let path = index_file(&srv, "loft.index.log");
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    drop(live);
    srv.kill();
    std::fs::write(&path, vec![0u8; len]).unwrap();
    let log_at = srv.log().len();
    srv.start();
    let after = state(&srv);
    check_uid_rules(&before, &after, &[], what);
    assert_eq!(after.ids.len(), before.ids.len(), "{what}: messages lost");
    assert_eq!(
        count_logged(&srv, log_at, "index corrupted"),
        1,
        "{what}:\n{}",
        srv.log()
    );
}

#[test]
fn fault_index_replaced_by_another_mailbox() {
    let (mut srv, mut live, before) = fault_setup(6);
    live.ok("CREATE Other");
    let mut rng = StdRng::seed_from_u64(9);
    let m = make_message(&mut rng, "<other@crash>", 800);
    live.append("Other", &m, false, 8192, Duration::ZERO)
        .unwrap()
        .expect("APPENDUID");
    let (other_validity, _, _) = live.status("Other");
    settle();
    let log_at = srv.log().len();
    // Put in place as a program replacing files does (new inodes). A copy over the same
    // inodes is damage to files the server has read: it rewrites them from memory
    // instead (tests/index_faults.rs).
    for name in ["loft.index", "loft.index.log"] {
        let tmp = index_file(&srv, &format!("{name}.copy"));
        std::fs::copy(srv.maildir().join(".Other").join(name), &tmp).unwrap();
        std::fs::rename(&tmp, index_file(&srv, name)).unwrap();
    }
    let after = after_fault(&mut srv, &mut live, "swapped index");
    check_uid_rules(&before, &after, &[], "swapped index");
    // The foreign index is recognised, not used: a new UIDVALIDITY, neither this folder's
    // nor the other folder's (whose UIDs must never name these messages), and a log line.
    assert_ne!(
        after.validity, before.validity,
        "swapped index: UIDVALIDITY kept"
    );
    assert_ne!(
        after.validity, other_validity,
        "swapped index: messages renumbered under the other folder's UIDVALIDITY"
    );
    assert_eq!(
        after.ids.keys().copied().collect::<Vec<_>>(),
        (1..=6).collect::<Vec<u32>>(),
        "swapped index: rebuilt index must number from 1 in delivery order"
    );
    assert_logged(&srv, log_at, "another folder", "swapped index");
}

#[test]
fn fault_keywords_file_deleted() {
    let (mut srv, mut live, before) = fault_setup(4);
    live.ok("UID STORE 1 +FLAGS.SILENT ($Work)");
    // The last close writes the flags into the file names (lazy flag sync).
    live.ok("UNSELECT");
    live.ok("SELECT INBOX");
    settle();
    let log_at = srv.log().len();
    std::fs::remove_file(srv.maildir().join("dovecot-keywords")).unwrap();
    let after = after_fault(&mut srv, &mut live, "deleted keywords");
    check_uid_rules(&before, &after, &[], "deleted keywords");
    assert_eq!(after.ids, before.ids);
    // A keyword stored now must not show up on the message whose letter lost its name.
    live.ok("UID STORE 2 +FLAGS.SILENT ($Other)");
    let mut c = srv.login();
    c.ok("EXAMINE INBOX");
    let flags = c.flags();
    assert!(
        !flags[&1].contains(&"$Other".to_string()),
        "UID 1 got $Other it never had: {:?}",
        flags[&1]
    );
    assert!(flags[&2].contains(&"$Other".to_string()));
    assert_logged(&srv, log_at, "dovecot-keywords", "deleted keywords");
}

#[test]
fn fault_unreadable_message() {
    use std::os::unix::fs::PermissionsExt;
    let (mut srv, mut live, before) = fault_setup(3);
    let name = cur_files(&srv).into_iter().next().unwrap();
    let p = srv.maildir().join("cur").join(&name);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&p).is_ok() {
        eprintln!("running as root: chmod 000 does not stop reads, case skipped");
        return;
    }
    let log_at = srv.log().len();
    let r = live
        .try_cmd("UID FETCH 1:* (BODY.PEEK[])")
        .expect("session alive");
    eprintln!("FETCH of an unreadable file: {}", r.status);
    let mut ids = before.ids.clone();
    ids.retain(|_, id| !r.untagged.iter().any(|u| msg_id(u).as_deref() == Some(id)));
    live.ok("NOOP");
    srv.assert_alive();
    assert_logged(&srv, log_at, &name, "unreadable message");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let after = state(&srv);
    assert_eq!(after.ids, before.ids, "UIDs not kept");
}

#[test]
fn fault_message_renamed_by_another_program() {
    let (mut srv, mut live, before) = fault_setup(4);
    let name = cur_files(&srv).into_iter().next().unwrap();
    let (base, flags) = name.split_once(":2,").expect("cur name");
    let renamed = format!("{base}:2,F{flags}");
    settle();
    std::fs::rename(
        srv.maildir().join("cur").join(&name),
        srv.maildir().join("cur").join(&renamed),
    )
    .unwrap();
    let r = live.ok("NOOP");
    assert!(
        r.untagged.iter().any(|u| text(u).contains("\\Flagged")),
        "no FETCH FLAGS for the flag change: {:?}",
        r.untagged.iter().map(|u| text(u)).collect::<Vec<_>>()
    );
    let after = after_fault(&mut srv, &mut live, "mutt rename");
    assert_eq!(after.validity, before.validity);
    assert_eq!(after.ids, before.ids, "a renamed file must keep its UID");
    let mut c = srv.login();
    c.ok("EXAMINE INBOX");
    let flagged: Vec<u32> = c
        .flags()
        .into_iter()
        .filter(|(_, f)| f.contains(&"\\Flagged".to_string()))
        .map(|(u, _)| u)
        .collect();
    assert_eq!(flagged.len(), 1);
}

#[test]
fn fault_junk_in_cur() {
    use std::os::unix::ffi::OsStrExt;
    let (mut srv, mut live, before) = fault_setup(3);
    let cur = srv.maildir().join("cur");
    settle();
    let log_at = srv.log().len();
    std::fs::create_dir(cur.join("junkdir")).unwrap();
    std::fs::write(cur.join(".hidden-notes"), b"not mail").unwrap();
    std::fs::write(
        cur.join(std::ffi::OsStr::from_bytes(b"bad\xffname:2,S")),
        b"Subject: x\r\n\r\nnot UTF-8 named\r\n",
    )
    .unwrap();
    let after = after_fault(&mut srv, &mut live, "junk in cur/");
    assert_eq!(after.validity, before.validity);
    assert_eq!(
        after.ids, before.ids,
        "junk must not become a message or move UIDs"
    );
    assert_logged(&srv, log_at, "junkdir", "directory in cur/");
    assert_logged(&srv, log_at, "bad", "non-UTF-8 name in cur/");
}

// ---------------------------------------------------------------------------------------
// kill -9 during mbox rewrites
// ---------------------------------------------------------------------------------------

/// The mbox file and what may lie beside it: nothing of an interrupted rewrite after the
/// restarted server has synced.
fn rewrite_leftovers(srv: &Server) -> Vec<String> {
    std::fs::read_dir(srv.maildir())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("loft-rewrite") || n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default()
}

/// What a worker of `kill_during_mbox_rewrites` got answered before the kill.
#[derive(Default)]
struct RewriteLog {
    /// UIDs whose EXPUNGE was acknowledged.
    expunged: Vec<u32>,
    /// The UID flagged \Deleted whose EXPUNGE (or the CLOSE after) was cut off.
    in_flight: Option<u32>,
    /// Flag changes and expunges acknowledged.
    cycles: u32,
}

/// Until the connection dies: flags changed on every message and written into the file
/// (CLOSE), then one message expunged (the rest of the file moves), again and again.
fn rewrite_loop(port: u16, live: Vec<u32>, seed: u64) -> RewriteLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = RewriteLog::default();
    let mut live = live;
    let Ok(mut c) = Client::connect(port) else {
        return log;
    };
    if c.try_cmd("LOGIN alice secret").is_err() {
        return log;
    }
    for i in 0.. {
        let op = if i % 2 == 0 { "+" } else { "-" };
        let ok = c.try_cmd("SELECT INBOX").is_ok()
            && c.try_cmd(&format!("UID STORE 1:* {op}FLAGS.SILENT (\\Flagged $Work)"))
                .is_ok();
        if !ok {
            return log;
        }
        if i % 3 != 2 || live.len() < 40 {
            if c.try_cmd("CLOSE").is_err() {
                return log;
            }
            log.cycles += 1;
            continue;
        }
        let u = live.swap_remove(rng.gen_range(0..live.len()));
        log.in_flight = Some(u);
        let store = c.try_cmd(&format!("UID STORE {u} +FLAGS.SILENT (\\Deleted)"));
        let expunge = store.and_then(|_| c.try_cmd("EXPUNGE"));
        match expunge {
            Ok(r) if r.is_ok() => log.expunged.push(u),
            Ok(r) => panic!("EXPUNGE: {}", r.status),
            Err(_) => return log,
        }
        log.in_flight = None;
        // The last session's close writes the flags into the file.
        if c.try_cmd("CLOSE").is_err() {
            return log;
        }
        log.cycles += 1;
    }
    log
}

#[test]
fn kill_during_mbox_rewrites() {
    let mut rng = StdRng::seed_from_u64(0x3b0c);
    let mut srv = Server::with_format("always", "mbox");
    // Messages from 1 KB to 2 MB; no body line starts with "From " (make_message), so
    // BODY[] is the message as appended.
    let mut orig: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    {
        let mut c = srv.login();
        for i in 0..80 {
            let size = random_size(&mut rng);
            let m = make_message(&mut rng, &format!("<mbox{i}@crash>"), size);
            let (_, u) = c
                .append("INBOX", &m, true, m.len(), Duration::ZERO)
                .expect("append")
                .expect("APPENDUID");
            orig.insert(u, m);
        }
    }
    let mut gone: HashSet<u32> = HashSet::new();
    // Flagged \Deleted when a kill came: gone now, or later by any CLOSE.
    let mut maybe: HashSet<u32> = HashSet::new();
    let mut cycles = 0;
    let mut mid = 0;
    for round in 0..10u64 {
        let port = srv.port;
        let live: Vec<u32> = (orig.keys().copied())
            .filter(|u| !gone.contains(u) && !maybe.contains(u))
            .collect();
        let seed = rng.gen::<u64>();
        let worker = std::thread::spawn(move || rewrite_loop(port, live, seed));
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..1500)));
        srv.kill();
        // Killed in the middle of a rewrite: its files are still there.
        if !rewrite_leftovers(&srv).is_empty() {
            mid += 1;
        }
        let log = worker.join().expect("worker");
        cycles += log.cycles;
        gone.extend(log.expunged.iter().copied());
        maybe.extend(log.in_flight);
        srv.start();
        let mut c = srv.login();
        c.ok("EXAMINE INBOX");
        let bodies = c.bodies();
        for (uid, m) in &orig {
            match bodies.get(uid) {
                Some(b) => {
                    assert!(
                        !gone.contains(uid),
                        "round {round}: expunged UID {uid} came back"
                    );
                    assert_eq!(
                        b, m,
                        "round {round}: UID {uid} is not byte for byte as appended"
                    );
                }
                None => assert!(
                    gone.contains(uid) || maybe.contains(uid),
                    "round {round}: UID {uid} ({} bytes) is lost",
                    m.len()
                ),
            }
        }
        for u in maybe.iter().copied().collect::<Vec<_>>() {
            if !bodies.contains_key(&u) {
                maybe.remove(&u);
                gone.insert(u);
            }
        }
        assert_eq!(
            bodies.len(),
            orig.len() - gone.len(),
            "round {round}: messages out of nowhere"
        );
        drop(c);
        let left = rewrite_leftovers(&srv);
        assert!(
            left.is_empty(),
            "round {round}: left beside the file: {left:?}"
        );
        srv.assert_alive();
    }
    eprintln!(
        "10 kills ({mid} in the middle of a rewrite) after {cycles} acknowledged cycles; {} messages expunged",
        gone.len()
    );
}
