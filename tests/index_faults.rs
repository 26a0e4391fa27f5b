//! Index files under faults, against the real `loft` binary:
//!
//! * `loft index rebuild|verify|show` on a real Maildir: verify exits 0 on a healthy
//!   index and 1 (naming each problem) on damage or on mail files changed behind Loft's
//!   back; rebuild keeps every UID; show prints the header, counts and cache decisions.
//! * A hostile disk under a running server (issue 10): every index file and some
//!   message files truncated, extended and rewritten in place hundreds of times while
//!   sessions FETCH and SEARCH over TCP; the server stays up, answers stay exactly what
//!   they were, and repairs are logged once each, not per command.
//! * A damaged `loft.index.log` or `loft.index.scan` is reported once, and flags stored
//!   right after the damage survive a kill -9 and a restart.
//!
//! `LOFT_FAULTS_BIN=/path/to/loft` runs the server tests against another build (to see
//! them fail on one that maps files: SIGBUS).

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn loft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loft"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn setup(d: &Path) -> (String, std::path::PathBuf) {
    let conf = d.join("loft.toml");
    std::fs::write(
        &conf,
        "[imap]\nlisten = \"127.0.0.1:2143\"\nlisten_tls = []\n[auth]\npasswd_file = \"pw\"\n[storage]\nlocation = \"mail/%u\"\nfsync = \"never\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "alice:{PLAIN}x\n").unwrap();
    let root = d.join("mail/alice");
    std::fs::create_dir_all(root.join("cur")).unwrap();
    std::fs::create_dir_all(root.join("new")).unwrap();
    for i in 0..5 {
        std::fs::write(
            root.join("cur")
                .join(format!("17000000{i}.M{i}P1.host:2,S")),
            format!("Subject: {i}\r\n\r\nbody {i}\r\n"),
        )
        .unwrap();
    }
    (conf.to_string_lossy().into_owned(), root)
}

#[test]
fn rebuild_verify_show() {
    let d = tempfile::tempdir().unwrap();
    let (conf, root) = setup(d.path());
    // The first rebuild creates the index (fresh UIDs 1..5).
    let out = loft(&["index", "rebuild", "alice", "--config", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("INBOX: rebuilt, 5 messages"),
        "{}",
        text(&out.stdout)
    );
    let out = loft(&["index", "verify", "alice", "INBOX", "--config", &conf]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "index OK\n");

    let out = loft(&["index", "show", "alice", "INBOX", "--config", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let show = text(&out.stdout);
    assert!(show.contains("UIDNEXT 6"), "{show}");
    assert!(show.contains("5 messages, 0 unseen"), "{show}");
    assert!(show.contains("cache fields:"), "{show}");
    assert!(show.contains("loft.index.log"), "{show}");
    let validity = show
        .split("UIDVALIDITY ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_string();

    // A mail file removed behind Loft's back and a garbled index: verify exits 1 with both.
    let gone = std::fs::read_dir(root.join("cur"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .min()
        .unwrap();
    std::fs::remove_file(&gone).unwrap();
    let out = loft(&["index", "verify", "alice", "--config", &conf]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("UID 1 names"),
        "{}",
        text(&out.stdout)
    );
    let mut bytes = std::fs::read(root.join("loft.index")).unwrap();
    bytes[12] ^= 0xff;
    std::fs::write(root.join("loft.index"), &bytes).unwrap();
    let out = loft(&["index", "verify", "alice", "INBOX", "--config", &conf]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("INBOX: "),
        "{}",
        text(&out.stdout)
    );

    // Rebuild: same UIDVALIDITY, UIDs 2..5 kept, verify clean again.
    let out = loft(&["index", "rebuild", "alice", "INBOX", "--config", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains(&format!("4 messages, UIDVALIDITY {validity}, UIDNEXT 6")),
        "{line}"
    );
    let out = loft(&["index", "verify", "alice", "INBOX", "--config", &conf]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

// =======================================================================================
// A hostile disk under a running server (issue 10): every index file and message file is
// truncated, extended and rewritten in place by "another program" while sessions FETCH
// and SEARCH over TCP. The server must stay up, answer exactly what it answered before
// the faults (the messages never change), and log each repair once, not per command.
// =======================================================================================

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A `loft serve` child process on a free loopback port; stderr goes to a file.
struct Server {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Server {
    /// A server whose mail root is prepared by `fill(alice's Maildir)` first.
    fn new(fill: impl FnOnce(&Path)) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("users"), "alice:{PLAIN}secret\n").expect("users");
        let root = dir.path().join("mail").join("alice");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).expect("maildir");
        }
        fill(&root);
        let mut s = Server {
            dir,
            child: None,
            port: 0,
        };
        s.start();
        s
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail").join("alice")
    }

    /// What the server wrote to stderr so far.
    fn log(&self) -> String {
        text(&std::fs::read(self.dir.path().join("loft.log")).unwrap_or_default())
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.port = free_port();
        let d = self.dir.path();
        let conf = format!(
            "[server]\nhostname = \"localhost\"\nallow_root = true\n\
             [imap]\nlisten = [\"127.0.0.1:{}\"]\nlisten_tls = []\n\
             [pop3]\nlisten = []\nlisten_tls = []\n\
             [auth]\npasswd_file = \"users\"\nfailure_delay = \"0s\"\n\
             [storage]\nlocation = \"{}/mail/%u\"\nfsync = \"never\"\nautocreate_special_use = false\n\
             [log]\nlevel = \"info\"\n",
            self.port,
            d.display(),
        );
        std::fs::write(d.join("loft.toml"), conf).expect("config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("loft.log"))
            .expect("log file");
        // LOFT_FAULTS_BIN: run these tests against another build (an older one, to see
        // them fail there).
        let bin = std::env::var_os("LOFT_FAULTS_BIN")
            .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_loft")), PathBuf::from);
        let child = Command::new(bin)
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
        while Client::connect(self.port).is_err() {
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "loft did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap: nothing is flushed on the way out.
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
        self.kill();
    }
}

/// A small blocking IMAP client.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    tag: u32,
}

struct Reply {
    untagged: Vec<Vec<u8>>,
    status: String,
}

/// `{n}` at the end of a response line.
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        let mut c = Client {
            s,
            buf: Vec::new(),
            tag: 0,
        };
        let g = c.read_unit()?;
        if !g.starts_with(b"* OK") {
            return Err(std::io::Error::other(format!("greeting {}", text(&g))));
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

    /// One response: a line and the literals it announces.
    fn read_unit(&mut self) -> std::io::Result<Vec<u8>> {
        let mut unit = Vec::new();
        loop {
            let line = loop {
                if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break self.buf.drain(..p + 2).collect::<Vec<u8>>();
                }
                self.fill()?;
            };
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

    fn try_cmd(&mut self, cmd: &str) -> std::io::Result<Reply> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.s.write_all(format!("{tag} {cmd}\r\n").as_bytes())?;
        let prefix = format!("{tag} ");
        let mut untagged = Vec::new();
        loop {
            let unit = self.read_unit()?;
            if unit.starts_with(prefix.as_bytes()) {
                let status = text(&unit[prefix.len()..]).trim_end().to_string();
                return Ok(Reply { untagged, status });
            }
            untagged.push(unit);
        }
    }

    fn ok(&mut self, cmd: &str) -> Reply {
        let r = self
            .try_cmd(cmd)
            .unwrap_or_else(|e| panic!("{cmd}: connection error {e}"));
        assert!(r.status.starts_with("OK"), "{cmd}: {}", r.status);
        r
    }
}

/// The answers a command is compared on: FETCH responses carrying a UID (unsolicited
/// flag updates carry none in this test: nothing changes flags) and SEARCH/STATUS lines.
fn answers(r: &Reply) -> Vec<Vec<u8>> {
    r.untagged
        .iter()
        .filter(|u| {
            let t = text(&u[..u.len().min(200)]);
            // Flag updates of the writer's STOREs come unasked: no checked command
            // fetches FLAGS.
            (t.contains(" FETCH (") && t.contains("UID ") && !t.contains("FLAGS ("))
                || t.starts_with("* SEARCH")
                || t.starts_with("* STATUS")
        })
        .cloned()
        .collect()
}

/// Message `i`: plain, or multipart with a text part and an attachment (part sections
/// go through the cached part map), some bigger than the 8 KiB literal threshold.
fn message(i: usize) -> String {
    let pad = "All work and no play makes a dull mailbox. ".repeat(i % 7 * 40);
    if i % 3 == 0 {
        format!(
            "From: Sender {i} <s{i}@example.org>\r\nTo: alice@example.com\r\nSubject: Number {i}z with parts\r\n\
             Date: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <m{i}@example.org>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\npreamble\r\n--b{i}\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\r\nHello word{i}x here.\r\n{pad}\r\n--b{i}\r\n\
             Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n--b{i}--\r\n"
        )
    } else {
        format!(
            "From: Sender {i} <s{i}@example.org>\r\nTo: alice@example.com\r\nSubject: Number {i}z\r\n\
             Date: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <m{i}@example.org>\r\n\r\n\
             Hello word{i}x, this is the body.\r\n{pad}\r\n"
        )
    }
}

/// Messages of INBOX whose answers are checked (their files are never touched).
const CHECKED: usize = 40;
/// Messages after those whose files are damaged too: their answers are not checked.
const VICTIMS: usize = 8;

fn fill_mail(root: &Path) {
    for i in 1..=CHECKED + VICTIMS {
        std::fs::write(
            root.join("cur")
                .join(format!("17000{i:05}.M{i}P1.host:2,S")),
            message(i),
        )
        .unwrap();
    }
    let arch = root.join(".Archive");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(arch.join(sub)).unwrap();
    }
    for i in 1..=5 {
        std::fs::write(
            arch.join("cur").join(format!("17001{i:05}.M{i}P2.host:2,")),
            message(100 + i),
        )
        .unwrap();
    }
}

/// The commands the sessions run, with `{u}` a checked UID.
fn workload(rng: &mut StdRng) -> String {
    let u = rng.gen_range(1..=CHECKED);
    match rng.gen_range(0..9) {
        0 => format!("UID FETCH 1:{CHECKED} (UID ENVELOPE)"),
        1 => format!("UID FETCH 1:{CHECKED} (UID BODYSTRUCTURE RFC822.SIZE)"),
        2 => format!("UID FETCH {u} (UID BODY.PEEK[])"),
        3 => format!("UID FETCH {u} (UID BODY.PEEK[1] BODY.PEEK[1.MIME])"),
        4 => {
            format!("UID FETCH {u} (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<0.20>)")
        }
        5 => format!("UID SEARCH SUBJECT \"Number {u}z\""),
        6 => format!("UID SEARCH BODY \"word{u}x\""),
        7 => "STATUS Archive (MESSAGES UNSEEN)".into(),
        _ => format!(
            "UID FETCH {}:{} (UID RFC822.SIZE ENVELOPE)",
            u,
            (u + 7).min(CHECKED)
        ),
    }
}

/// Every command of [`workload`], for the expected answers.
fn all_commands() -> Vec<String> {
    let mut v = vec![
        format!("UID FETCH 1:{CHECKED} (UID ENVELOPE)"),
        format!("UID FETCH 1:{CHECKED} (UID BODYSTRUCTURE RFC822.SIZE)"),
        "STATUS Archive (MESSAGES UNSEEN)".to_string(),
    ];
    for u in 1..=CHECKED {
        v.push(format!("UID FETCH {u} (UID BODY.PEEK[])"));
        v.push(format!(
            "UID FETCH {u} (UID BODY.PEEK[1] BODY.PEEK[1.MIME])"
        ));
        v.push(format!(
            "UID FETCH {u} (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<0.20>)"
        ));
        v.push(format!("UID SEARCH SUBJECT \"Number {u}z\""));
        v.push(format!("UID SEARCH BODY \"word{u}x\""));
        v.push(format!(
            "UID FETCH {}:{} (UID RFC822.SIZE ENVELOPE)",
            u,
            (u + 7).min(CHECKED)
        ));
    }
    v
}

/// One change another program might make to `path`, in place (same inode).
fn damage(path: &Path, rng: &mut StdRng, original: Option<&[u8]>) {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    use std::os::unix::fs::FileExt;
    match rng.gen_range(0..6) {
        // Truncated at a random offset.
        0 | 1 => {
            let _ = f.set_len(rng.gen_range(0..=len));
        }
        // Random bytes written over a random stretch.
        2 => {
            let at = rng.gen_range(0..=len);
            let junk: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
            let _ = f.write_all_at(&junk, at);
        }
        // Extended: zeros or garbage.
        3 => {
            let junk: Vec<u8> = if rng.gen_bool(0.5) {
                vec![0; rng.gen_range(1..5000)]
            } else {
                (0..rng.gen_range(1..5000)).map(|_| rng.gen()).collect()
            };
            let _ = f.write_all_at(&junk, len);
        }
        // Rewritten whole: shorter, with garbage, or (message files) as it was.
        _ => match original {
            Some(o) => {
                let _ = f.set_len(0);
                let _ = f.write_all_at(o, 0);
            }
            None => {
                let keep = rng.gen_range(0..=len) as usize;
                let mut b = std::fs::read(path).unwrap_or_default();
                b.truncate(keep);
                b.extend((0..rng.gen_range(0..256)).map(|_| rng.gen::<u8>()));
                let _ = f.set_len(0);
                let _ = f.write_all_at(&b, 0);
            }
        },
    }
}

/// Warnings and errors in the server's log.
fn warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect()
}

#[test]
fn disk_changes_under_sessions_never_kill_the_server() {
    let mut srv = Server::new(fill_mail);
    let root = srv.maildir();

    // Expected answers from the undamaged files; this also fills the cache (ENVELOPE
    // and BODYSTRUCTURE asked twice become "yes", part maps are cached).
    let mut c = srv.login();
    c.ok("SELECT INBOX");
    let mut expected: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for _ in 0..2 {
        for cmd in all_commands() {
            let got = answers(&c.ok(&cmd));
            assert!(!got.is_empty(), "{cmd}: no answer");
            if let Some(e) = expected.get(&cmd) {
                assert_eq!(e, &got, "{cmd}: answers differ without any damage");
            }
            expected.insert(cmd, got);
        }
    }
    c.ok("LOGOUT");
    let victims: Vec<(PathBuf, Vec<u8>)> = (CHECKED + 1..=CHECKED + VICTIMS)
        .map(|i| {
            let p = root
                .join("cur")
                .join(format!("17000{i:05}.M{i}P1.host:2,S"));
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let index_files: Vec<PathBuf> = ["loft.index", "loft.index.log", "loft.index.cache"]
        .iter()
        .map(|n| root.join(n))
        .chain(
            [
                "loft.index",
                "loft.index.log",
                "loft.index.cache",
                "loft.index.scan",
            ]
            .iter()
            .map(|n| root.join(".Archive").join(n)),
        )
        .collect();
    for f in &index_files {
        assert!(f.exists(), "{} missing before the faults", f.display());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let commands = Arc::new(AtomicUsize::new(0));
    let mut sessions = Vec::new();
    for n in 0..3u64 {
        let (stop, commands, expected) = (stop.clone(), commands.clone(), expected.clone());
        let port = srv.port;
        sessions.push(std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(1000 + n);
            let mut c = Client::connect(port).expect("connect");
            c.ok("LOGIN alice secret");
            c.ok("SELECT INBOX");
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let cmd = workload(&mut rng);
                let r = match c.try_cmd(&cmd) {
                    Ok(r) => r,
                    Err(e) => panic!("{cmd}: connection lost: {e}"),
                };
                commands.fetch_add(1, Ordering::Relaxed);
                let got = answers(&r);
                if !r.status.starts_with("OK") || expected.get(&cmd) != Some(&got) {
                    let want = expected.get(&cmd).map(|w| w.concat()).unwrap_or_default();
                    let got = got.concat();
                    // Around the first difference.
                    let at = (got.iter().zip(&want))
                        .position(|(a, b)| a != b)
                        .unwrap_or(got.len().min(want.len()))
                        .saturating_sub(100);
                    let short = |b: &[u8]| text(&b[at.min(b.len())..(at + 300).min(b.len())]);
                    failures.push(format!(
                        "{cmd}: {}\n got: {}\nwant: {}",
                        r.status,
                        short(&got),
                        short(&want)
                    ));
                }
                // Victims are read too, their answers unchecked.
                let v = CHECKED + 1 + rng.gen_range(0..VICTIMS);
                let _ = c
                    .try_cmd(&format!(
                        "UID FETCH {v} (UID ENVELOPE BODY.PEEK[] BODY.PEEK[1])"
                    ))
                    .unwrap_or_else(|e| panic!("victim fetch: connection lost: {e}"));
            }
            failures
        }));
    }

    // One session changes flags meanwhile (writes to the log under damage): what it was
    // told OK must be what a new session sees at the end. A NO leaves that message
    // unknown (the write may have been lost with a damaged log, and was reported).
    let writer = {
        let (stop, port) = (stop.clone(), srv.port);
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(99);
            let mut c = Client::connect(port).expect("connect");
            c.ok("LOGIN alice secret");
            c.ok("SELECT INBOX");
            let mut want: BTreeMap<u32, Option<bool>> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let u = rng.gen_range(1..=CHECKED as u32);
                let on = rng.gen_bool(0.5);
                let sign = if on { "+" } else { "-" };
                let r = c
                    .try_cmd(&format!("UID STORE {u} {sign}FLAGS.SILENT ($Work)"))
                    .unwrap_or_else(|e| panic!("STORE: connection lost: {e}"));
                let known = r.status.starts_with("OK").then_some(on);
                want.insert(u, known);
                std::thread::sleep(Duration::from_millis(5));
            }
            want
        })
    };

    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut faults = 0usize;
    while started.elapsed() < Duration::from_secs(10) {
        if rng.gen_bool(0.7) {
            let f = &index_files[rng.gen_range(0..index_files.len())];
            damage(f, &mut rng, None);
        } else {
            let (p, orig) = &victims[rng.gen_range(0..victims.len())];
            damage(p, &mut rng, Some(orig));
        }
        faults += 1;
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..40)));
        srv.assert_alive();
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for s in sessions {
        failures.extend(s.join().expect("session thread"));
    }
    let stored = writer.join().expect("writer thread");
    srv.assert_alive();
    let commands = commands.load(Ordering::Relaxed);
    assert!(faults >= 200, "only {faults} faults");
    assert!(
        failures.is_empty(),
        "{} of {commands} answers wrong or failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // After the damage stops, a new session still gets the undamaged answers, and the
    // flags the writer was told were stored.
    let mut c = srv.login();
    c.ok("SELECT INBOX");
    let now = flags(&mut c);
    let mut unknown = 0;
    for (u, want) in &stored {
        let Some(on) = want else {
            unknown += 1;
            continue;
        };
        let has = now
            .get(u)
            .is_some_and(|f| f.split(' ').any(|x| x == "$Work"));
        assert_eq!(
            has,
            *on,
            "UID {u}: $Work acknowledged {on}, now {:?}",
            now.get(u)
        );
    }
    eprintln!(
        "{} messages with acknowledged flags, {unknown} left unknown by a NO",
        stored.len() - unknown
    );
    for cmd in all_commands() {
        assert_eq!(
            expected.get(&cmd),
            Some(&answers(&c.ok(&cmd))),
            "{cmd} after the faults"
        );
    }
    srv.assert_alive();
    // What the files hold now (a kill -9 flushes nothing): the same flags.
    let log_before_restart = srv.log().len();
    srv.kill();
    srv.start();
    let mut c = srv.login();
    c.ok("SELECT INBOX");
    assert_eq!(
        flags(&mut c),
        now,
        "flags changed across a kill -9 and a restart"
    );
    // The pair was repaired while running. (Cache records nobody read since their
    // damage are found by the scan at open, which is fine: values can be computed again.)
    let after_restart = &srv.log()[log_before_restart..];
    let inbox = |f: &str| format!("{}: ", root.join(f).display());
    assert!(
        !after_restart.contains(&inbox("loft.index"))
            && !after_restart.contains(&inbox("loft.index.log")),
        "damage to INBOX's pair left unrepaired before the restart:\n{after_restart}"
    );

    // Repairs are logged, once each: never more lines than faults (a flood logs per
    // command or per record), and every kind of index file was reported at least once.
    let log = srv.log();
    let warn = warnings(&log);
    eprintln!(
        "{faults} faults, {commands} checked commands, {} warnings",
        warn.len()
    );
    if let Ok(p) = std::env::var("LOFT_FAULTS_LOG") {
        let _ = std::fs::write(p, &log);
    }
    assert!(
        warn.len() <= faults,
        "{} warnings for {faults} faults ({commands} commands):\n{}",
        warn.len(),
        warn[..warn.len().min(40)].join("\n")
    );
    // Copies of unreadable files set aside do not pile up.
    for dir in [root.clone(), root.join(".Archive")] {
        for name in ["loft.index", "loft.index.log"] {
            let prefix = format!("{name}.broken-");
            let n = std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count();
            assert!(
                n <= 3,
                "{n} copies of {name} set aside in {}",
                dir.display()
            );
        }
    }
    for name in [
        "loft.index:",
        "loft.index.log",
        "loft.index.cache",
        "loft.index.scan",
    ] {
        assert!(
            warn.iter().any(|l| l.contains(name)),
            "no repair of {name} logged:\n{}",
            warn[..warn.len().min(40)].join("\n")
        );
    }
}

/// UID → flags (sorted, `\Recent` left out) of the selected mailbox.
fn flags(c: &mut Client) -> BTreeMap<u32, String> {
    let r = c.ok("UID FETCH 1:* (UID FLAGS)");
    let mut out = BTreeMap::new();
    for u in &r.untagged {
        let t = text(u);
        let Some(p) = t.find("UID ") else { continue };
        let uid: u32 = t[p + 4..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap();
        let start = t.find("FLAGS (").expect("FLAGS") + 7;
        let end = start + t[start..].find(')').expect(")");
        let mut f: Vec<&str> = t[start..end]
            .split(' ')
            .filter(|s| !s.is_empty() && *s != "\\Recent")
            .collect();
        f.sort();
        out.insert(uid, f.join(" "));
    }
    out
}

/// A damaged `loft.index.log` (or `loft.index.scan`) is reported once, and flags stored
/// right after the damage survive a kill -9 and a restart on the same mail root (the
/// Maildir file names do not show them yet: `maildir_flag_sync = "lazy"`).
fn store_after_damage(what: &str, file: &str, spoil: impl Fn(&Path)) {
    let mut srv = Server::new(|root| {
        for i in 1..=6 {
            std::fs::write(
                root.join("cur").join(format!("17000{i:05}.M{i}P1.host:2,")),
                message(i),
            )
            .unwrap();
        }
    });
    let root = srv.maildir();
    let mut c = srv.login();
    c.ok("SELECT INBOX");
    // Past the window in which a directory stamp is too fresh to prove anything, so
    // that the scan stamp stays as the last listing wrote it.
    std::thread::sleep(Duration::from_millis(300));
    c.ok("NOOP");
    c.ok("UID STORE 1 +FLAGS (\\Flagged)");
    c.ok("UID STORE 2 +FLAGS (\\Seen $Label1)");
    c.ok("NOOP");
    assert!(root.join(file).exists(), "{file} missing");
    spoil(&root.join(file));
    // The writes right after the damage.
    c.ok("UID STORE 3 +FLAGS (\\Answered)");
    c.ok("UID STORE 1 +FLAGS (\\Seen)");
    c.ok("STATUS INBOX (MESSAGES)");
    let before = flags(&mut c);
    assert_eq!(
        before.get(&1).map(String::as_str),
        Some("\\Flagged \\Seen"),
        "{what}"
    );
    assert_eq!(
        before.get(&3).map(String::as_str),
        Some("\\Answered"),
        "{what}"
    );
    srv.kill();
    srv.start();
    let mut c = srv.login();
    // Before any SELECT: STATUS may answer from the index and the scan stamp.
    let status = c.ok("STATUS INBOX (MESSAGES)");
    assert!(text(&status.untagged[0]).contains("MESSAGES 6"), "{what}");
    c.ok("SELECT INBOX");
    let after = flags(&mut c);
    assert_eq!(before, after, "{what}: flags changed across the restart");
    let log = srv.log();
    let reports: Vec<&str> = warnings(&log)
        .into_iter()
        .filter(|l| l.contains(file))
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "{what}: want one report naming {file}:\n{log}"
    );
}

#[test]
fn damaged_log_is_reported_and_later_stores_survive() {
    use std::os::unix::fs::FileExt;
    let garble = |at: u64| {
        move |p: &Path| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.write_all_at(b"\xde\xad\xbe\xef\xde\xad\xbe\xef", at)
                .unwrap();
        }
    };
    // The header (generation / pair id) rewritten.
    store_after_damage("log header garbled", "loft.index.log", garble(16));
    // A committed record in the middle garbled (the first transaction after the header).
    store_after_damage("log record garbled", "loft.index.log", garble(44));
    // Committed transactions cut off (the same inode, shorter).
    store_after_damage("log truncated", "loft.index.log", |p: &Path| {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - 20).unwrap();
    });
}

#[test]
fn damaged_scan_stamp_is_reported_and_later_stores_survive() {
    store_after_damage("scan stamp garbled", "loft.index.scan", |p: &Path| {
        std::fs::write(p, "12 garbage\n").unwrap();
    });
}
