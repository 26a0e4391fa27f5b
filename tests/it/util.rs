//! Test harness: a real Loft server on ephemeral loopback ports with a temporary mail
//! directory, and a small IMAP client that checks every response against imap-codec's
//! strict RFC 3501 grammar.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use imap_codec::decode::Decoder;
use imap_codec::{GreetingCodec, ResponseCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use loft::config::{Config, StorageFormat};
use loft::server::Server;

pub const USER: &str = "alice";
pub const PASS: &str = "secret";

/// The storage format a run of the suite serves: `LOFT_TEST_FORMAT=maildir` (default) or
/// `mbox`. Every test runs on it; a test about one format's files returns early on the
/// other (`// Maildir-only: <reason>` at its top).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Maildir,
    Mbox,
}

/// The format of this run, read once from `LOFT_TEST_FORMAT`.
pub fn format() -> Format {
    static FORMAT: OnceLock<Format> = OnceLock::new();
    *FORMAT.get_or_init(|| match std::env::var("LOFT_TEST_FORMAT") {
        Err(_) => Format::Maildir,
        Ok(v) => match v.to_ascii_lowercase().as_str() {
            "" | "maildir" => Format::Maildir,
            "mbox" => Format::Mbox,
            other => panic!("LOFT_TEST_FORMAT={other:?}: expected \"maildir\" or \"mbox\""),
        },
    })
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub server: Option<Server>,
    pub addr: SocketAddr,
    pub tls_addr: SocketAddr,
    pub cfg: Config,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("users"),
            "# test users\nalice:{PLAIN}secret::::::\nbob:{PLAIN}hunter2\n",
        )
        .expect("users file");
        let mut cfg = Config::for_tests(dir.path());
        cfg.storage.format = match format() {
            Format::Maildir => StorageFormat::Maildir,
            Format::Mbox => StorageFormat::Mbox,
        };
        cfg.imap.listen = vec!["127.0.0.1:0".parse().unwrap()];
        cfg.imap.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
        cfg.imap.idle_poll = Duration::from_millis(200);
        tweak(&mut cfg);
        let server = loft::server::start(cfg.clone())
            .await
            .expect("server starts");
        let addr = server.imap_addrs[0];
        let tls_addr = server.imaps_addrs.first().copied().unwrap_or(addr);
        TestServer {
            dir,
            server: Some(server),
            addr,
            tls_addr,
            cfg,
        }
    }

    /// Another server on this one's mail (a restart: stop this one first): the same
    /// `[storage]` settings, everything else fresh.
    pub async fn restart_on(&self) -> TestServer {
        let storage = self.cfg.storage.clone();
        TestServer::start_with(|cfg| cfg.storage = storage).await
    }

    /// The user's mail directory, either format: the `location` directory (the Maildir
    /// root, or the directory of mbox folder files with `.loft-index/` in it).
    pub fn mail_root(&self, user: &str) -> PathBuf {
        PathBuf::from(self.cfg.storage.location.replace("%u", user))
    }

    /// Where the store keeps its store-wide file `name` (`subscriptions`,
    /// `loft-uidvalidity`, `loft-special-use`): the Maildir root, or the mbox store's own
    /// directory `<location>/.loft-index/` (names starting with "." are never folders).
    pub fn store_file(&self, user: &str, name: &str) -> PathBuf {
        match format() {
            Format::Maildir => self.mail_root(user).join(name),
            Format::Mbox => self.mail_root(user).join(".loft-index").join(name),
        }
    }

    /// The Maildir root of a user (Maildir-only tests; panics in an mbox run).
    pub fn maildir(&self, user: &str) -> PathBuf {
        assert_eq!(
            format(),
            Format::Maildir,
            "a Maildir path asked for in an mbox run: the test must be Maildir-only"
        );
        self.mail_root(user)
    }

    /// Where a mailbox's mail lives: its Maildir directory (`.A.B` under the root; INBOX
    /// is the root), or its mbox file (INBOX: `[storage] inbox` or `<location>/INBOX`;
    /// `A/B`: the file `B` in the directory `A`).
    pub fn mailbox_path(&self, user: &str, mailbox: &str) -> PathBuf {
        let root = self.mail_root(user);
        let inbox = mailbox.eq_ignore_ascii_case("INBOX");
        assert!(
            mailbox.is_ascii() && !mailbox.contains('.'),
            "test mailbox names are plain ASCII: {mailbox:?}"
        );
        match format() {
            Format::Maildir if inbox => root,
            Format::Maildir => root.join(format!(".{}", mailbox.replace('/', "."))),
            Format::Mbox if inbox => match &self.cfg.storage.inbox {
                Some(t) => PathBuf::from(t.replace("%u", user)),
                None => root.join("INBOX"),
            },
            Format::Mbox => root.join(mailbox),
        }
    }

    /// Mail delivered by an MTA into `mailbox` of `user`, for either format: into a
    /// Maildir as `util::deliver` does (tmp/, then renamed into new/ under a unique name
    /// that sorts in delivery order); onto the end of an mbox file as Postfix local(8)
    /// writes it (see [`mbox_delivery`]), under an fcntl lock, parent directories made.
    pub fn deliver(&self, user: &str, mailbox: &str, raw: &str) {
        let path = self.mailbox_path(user, mailbox);
        match format() {
            Format::Maildir => {
                static SEQ: AtomicU64 = AtomicU64::new(0);
                let n = SEQ.fetch_add(1, Ordering::Relaxed);
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let name = format!("{secs}.M{n:08}P{}.loft-test", std::process::id());
                deliver(&path, &name, raw);
            }
            Format::Mbox => append_locked(&path, &mbox_delivery(raw.as_bytes())),
        }
    }

    /// How many messages `mailbox` holds on disk: files in new/ and cur/, or messages
    /// in the mbox file (0 when it does not exist).
    pub fn stored_count(&self, user: &str, mailbox: &str) -> usize {
        let path = self.mailbox_path(user, mailbox);
        match format() {
            Format::Maildir => ["new", "cur"]
                .iter()
                .filter_map(|sub| std::fs::read_dir(path.join(sub)).ok())
                .map(|rd| rd.flatten().count())
                .sum(),
            Format::Mbox => mbox_messages(&std::fs::read(&path).unwrap_or_default())
                .iter()
                .filter(|m| !is_pseudo_message(m))
                .count(),
        }
    }

    /// Every stored byte of `mailbox`'s messages: the Maildir files (new/ then cur/,
    /// sorted by name) one after the other, or the mbox file (empty when missing).
    pub fn stored_bytes(&self, user: &str, mailbox: &str) -> Vec<u8> {
        let path = self.mailbox_path(user, mailbox);
        match format() {
            Format::Maildir => {
                let mut out = Vec::new();
                for sub in ["new", "cur"] {
                    let mut files: Vec<PathBuf> = std::fs::read_dir(path.join(sub))
                        .map(|rd| rd.flatten().map(|e| e.path()).collect())
                        .unwrap_or_default();
                    files.sort();
                    for f in files {
                        out.extend(std::fs::read(f).unwrap_or_default());
                    }
                }
                out
            }
            Format::Mbox => std::fs::read(&path).unwrap_or_default(),
        }
    }

    /// Another program (mutt) changes the flags of the `nth` message (0-based, delivery
    /// order) of `mailbox` to `letters` (Maildir info letters: `S` seen, `F` flagged,
    /// `R` answered, `D` draft, `T` deleted): renaming its file in cur/, or rewriting
    /// the mbox file with `Status:`/`X-Status:` in that message's header.
    pub fn set_flags_externally(&self, user: &str, mailbox: &str, nth: usize, letters: &str) {
        let path = self.mailbox_path(user, mailbox);
        match format() {
            Format::Maildir => {
                let cur = path.join("cur");
                let mut files: Vec<_> = std::fs::read_dir(&cur)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                files.sort();
                let f = files[nth].clone();
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                let base = name.split(":2,").next().unwrap();
                let mut l: Vec<char> = letters.chars().collect();
                l.sort_unstable();
                let l: String = l.into_iter().collect();
                std::fs::rename(&f, cur.join(format!("{base}:2,{l}"))).unwrap();
            }
            Format::Mbox => {
                let status = if letters.contains('S') { "RO" } else { "O" };
                let x: String = [('R', 'A'), ('F', 'F'), ('D', 'T'), ('T', 'D')]
                    .iter()
                    .filter(|(m, _)| letters.contains(*m))
                    .map(|(_, x)| *x)
                    .collect();
                rewrite_locked(&path, |file| {
                    let mut msgs: Vec<Vec<u8>> = mbox_messages(file)
                        .into_iter()
                        .map(<[u8]>::to_vec)
                        .collect();
                    let real: Vec<usize> = (0..msgs.len())
                        .filter(|&i| !is_pseudo_message(&msgs[i]))
                        .collect();
                    let m = &mut msgs[real[nth]];
                    let mut fields = vec![format!("Status: {status}")];
                    if !x.is_empty() {
                        fields.push(format!("X-Status: {x}"));
                    }
                    *m = mbox_set_fields(m, &["Status", "X-Status"], &fields);
                    msgs.concat()
                });
            }
        }
    }

    pub async fn connect(&self) -> Client {
        Client::plain(self.addr).await
    }

    /// Connected and logged in as alice.
    pub async fn login(&self) -> Client {
        let mut c = self.connect().await;
        c.ok(&format!("LOGIN {USER} {PASS}")).await;
        c
    }

    pub async fn connect_tls(&self) -> Client {
        Client::tls(self.tls_addr, &self.dir.path().join("tls/cert.pem")).await
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    pub io: Box<dyn Io>,
    buf: Vec<u8>,
    next_tag: u32,
    pub greeting: String,
    /// Check every response with imap-codec (off for extensions it does not know).
    pub strict: bool,
}

pub fn tls_connector(cert: &Path) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert).expect("cert file") {
        roots.add(c.expect("cert")).expect("add root");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

impl Client {
    pub async fn plain(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self::from_io(Box::new(tcp)).await
    }

    pub async fn tls(addr: SocketAddr, cert: &Path) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(cert)
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        Self::from_io(Box::new(tls)).await
    }

    pub async fn from_io(io: Box<dyn Io>) -> Client {
        let mut c = Client {
            io,
            buf: Vec::new(),
            next_tag: 1,
            greeting: String::new(),
            strict: true,
        };
        let g = c.read_unit().await;
        GreetingCodec::default()
            .decode(&g)
            .unwrap_or_else(|e| panic!("bad greeting {:?}: {e:?}", s(&g)));
        c.greeting = s(&g);
        c
    }

    /// Replaces the transport (after STARTTLS).
    pub async fn starttls(mut self, cert: &Path) -> Client {
        self.ok("STARTTLS").await;
        assert!(self.buf.is_empty());
        let io = std::mem::replace(&mut self.io, Box::new(tokio::io::duplex(1).0));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(cert)
            .connect(name, io)
            .await
            .expect("STARTTLS handshake");
        self.io = Box::new(tls);
        self
    }

    pub async fn send(&mut self, raw: &[u8]) {
        self.io.write_all(raw).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    async fn fill(&mut self) -> bool {
        self.buf.reserve(65536);
        let n = tokio::time::timeout(Duration::from_secs(20), self.io.read_buf(&mut self.buf))
            .await
            .expect("server answered within 20 s")
            .unwrap_or(0);
        n > 0
    }

    /// One response unit: a line and any literals it announces, CRLF included.
    pub async fn read_unit(&mut self) -> Vec<u8> {
        let mut unit = Vec::new();
        loop {
            while !self.buf.windows(2).any(|w| w == b"\r\n") {
                if !self.fill().await {
                    panic!("connection closed; partial unit {:?}", s(&unit));
                }
            }
            let pos = self.buf.windows(2).position(|w| w == b"\r\n").unwrap();
            let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
            unit.extend_from_slice(&line);
            let body = &line[..line.len() - 2];
            if let Some(n) = literal_len(body) {
                while self.buf.len() < n {
                    assert!(self.fill().await, "connection closed inside a literal");
                }
                unit.extend(self.buf.drain(..n));
                continue;
            }
            return unit;
        }
    }

    /// Reads a unit and checks it against the RFC 3501 grammar.
    pub async fn read_checked(&mut self) -> String {
        let unit = self.read_unit().await;
        if self.strict {
            check_response(&unit);
        }
        s(&unit)
    }

    /// True when the server closed the connection (after BYE).
    pub async fn closed(&mut self) -> bool {
        !self.fill().await && self.buf.is_empty()
    }

    pub fn tag(&mut self) -> String {
        let t = format!("a{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Sends a command and collects the untagged responses and the tagged one (last).
    pub async fn cmd(&mut self, command: &str) -> Vec<String> {
        let tag = self.tag();
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.collect(&tag).await
    }

    pub async fn collect(&mut self, tag: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let unit = self.read_checked().await;
            let done = unit.starts_with(&format!("{tag} "));
            out.push(unit);
            if done {
                return out;
            }
        }
    }

    /// Runs a command that must succeed; returns its untagged responses.
    pub async fn ok(&mut self, command: &str) -> Vec<String> {
        let mut r = self.cmd(command).await;
        let last = r.pop().unwrap();
        assert!(
            last.split(' ').nth(1) == Some("OK"),
            "{command} failed: {last} (after {r:?})"
        );
        r
    }

    /// Runs a command and returns the tagged status line.
    pub async fn status(&mut self, command: &str) -> String {
        self.cmd(command).await.pop().unwrap()
    }
}

pub fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&c| c == b'{')?;
    std::str::from_utf8(&inner[open + 1..]).ok()?.parse().ok()
}

/// Panics unless `unit` is exactly one valid IMAP response.
pub fn check_response(unit: &[u8]) {
    match ResponseCodec::default().decode(unit) {
        Ok(([], _)) => {}
        Ok((rest, _)) => panic!("response {:?} has trailing bytes {:?}", s(unit), s(rest)),
        Err(e) => panic!("response {:?} is not valid IMAP: {e:?}", s(unit)),
    }
}

/// Writes a message the way an MTA delivers into Maildir: tmp/ then rename into new/.
pub fn deliver(maildir: &Path, name: &str, body: &str) {
    let tmp = maildir.join("tmp").join(name);
    std::fs::create_dir_all(maildir.join("tmp")).unwrap();
    std::fs::create_dir_all(maildir.join("new")).unwrap();
    std::fs::create_dir_all(maildir.join("cur")).unwrap();
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, maildir.join("new").join(name)).unwrap();
}

pub fn sample_message(i: usize) -> String {
    format!(
        "From: Sender {i} <sender{i}@example.org>\r\nTo: alice@example.com\r\nSubject: Message number {i}\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <m{i}@example.org>\r\n\r\nHello {i}, this is the body.\r\n"
    )
}

/// The bytes Postfix local(8) appends to an mbox file for `raw` (its default flags
/// `FB>`): `From sender@example.org  <asctime date>`, the message with LF line ends and
/// every line beginning with "From " written ">From ", a line end if the last line had
/// none, then one blank line.
pub fn mbox_delivery(raw: &[u8]) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut out = format!("From sender@example.org  {}\n", asctime(now)).into_bytes();
    out.extend(as_stored_mbox(raw));
    out.push(b'\n');
    out
}

/// The message as an mbox delivery (`mbox_delivery`) stores it, without its `From ` line
/// and the blank line after it: LF line ends, "From " lines quoted, a final line end.
fn as_stored_mbox(raw: &[u8]) -> Vec<u8> {
    let mut lf = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        lf.push(raw[i]);
        i += 1;
    }
    let mut out = Vec::with_capacity(lf.len() + 16);
    for line in lf.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// The message a reader of the store finds after `TestServer::deliver(raw)`: `raw` for
/// Maildir; for mbox with LF line ends, "From " lines quoted and a final line end.
/// (Compare it with CRLF made of every line end.)
pub fn as_delivered(raw: &str) -> String {
    match format() {
        Format::Maildir => raw.to_string(),
        Format::Mbox => String::from_utf8(as_stored_mbox(raw.as_bytes())).unwrap(),
    }
}

/// `Mon Dec  7 16:49:14 2026` (C's asctime, UTC) for seconds since the epoch.
pub fn asctime(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let date = loft::mailbox::date::Date::from_days(days);
    let (y, m, d) = (date.year, i64::from(date.month), date.day);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        tod / 3600,
        tod / 60 % 60,
        tod % 60,
        y
    )
}

/// The messages of an mbox file, each from its `From ` line to the next one (the blank
/// line before that included). Splits at every line beginning with "From " (the tests'
/// writers quote body lines that would).
pub fn mbox_messages(file: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    if file.starts_with(b"From ") {
        starts.push(0);
    }
    for (i, w) in file.windows(6).enumerate() {
        if w == b"\nFrom " {
            starts.push(i + 1);
        }
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let e = starts.get(k + 1).copied().unwrap_or(file.len());
        out.push(&file[s..e]);
    }
    out
}

/// The header of one mbox message (from `mbox_messages`), without its `From ` line, up
/// to the empty line that ends it (LF or CRLF).
pub fn mbox_header(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg);
    let after_from = text.split_once('\n').map_or("", |(_, r)| r);
    let mut out = String::new();
    for line in after_from.split_inclusive('\n') {
        if line == "\n" || line == "\r\n" {
            break;
        }
        out.push_str(line);
    }
    out
}

/// The values of header field `name` (case-insensitive, unfolded) in a message's header.
pub fn header_values(header: &str, name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in header.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((n, v)) if n.eq_ignore_ascii_case(name) => out.push(v.trim().to_string()),
            _ => {}
        }
    }
    out
}

/// UW-IMAP's pseudo message (`X-IMAP:` in its header) is folder data, not mail.
pub fn is_pseudo_message(msg: &[u8]) -> bool {
    !header_values(&mbox_header(msg), "X-IMAP").is_empty()
}

/// `msg` (an mbox message) with every header line of the fields `remove` (and their
/// continuation lines) taken out and `add` (whole lines, without line ends) put at the
/// end of its header, as mutt writes the status fields.
pub fn mbox_set_fields(msg: &[u8], remove: &[&str], add: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 64);
    let mut lines = msg.split_inclusive(|&b| b == b'\n');
    out.extend_from_slice(lines.next().unwrap_or_default()); // the From line
    let mut skipping = false;
    let mut in_header = true;
    for line in lines {
        if in_header {
            if line == b"\n" || line == b"\r\n" {
                for f in add {
                    out.extend_from_slice(f.as_bytes());
                    out.push(b'\n');
                }
                in_header = false;
                out.extend_from_slice(line);
                continue;
            }
            if line.starts_with(b" ") || line.starts_with(b"\t") {
                if !skipping {
                    out.extend_from_slice(line);
                }
                continue;
            }
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            skipping = remove
                .iter()
                .any(|r| r.as_bytes().eq_ignore_ascii_case(name));
            if !skipping {
                out.extend_from_slice(line);
            }
        } else {
            out.extend_from_slice(line);
        }
    }
    if in_header {
        for f in add {
            out.extend_from_slice(f.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// An open-file-description fcntl write lock on the whole of `f` (what Postfix, procmail
/// and mutt take; it excludes Loft's fcntl locks, in this process too), waited for up to
/// 30 s. Released when `f` is closed.
fn lock_file(f: &std::fs::File, path: &Path) {
    use std::os::fd::AsRawFd;
    let started = std::time::Instant::now();
    loop {
        // SAFETY: a plain struct for fcntl; zeroed is a valid value (l_pid must be 0).
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: a valid descriptor and a valid flock for F_OFD_SETLK.
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        if r == 0 {
            return;
        }
        let e = std::io::Error::last_os_error();
        assert!(
            matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)),
            "fcntl lock on {}: {e}",
            path.display()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} stayed locked for 30 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Appends `bytes` to the file at `path` (made, with its parent directories, when
/// missing) under an fcntl write lock, as a delivery agent does.
pub fn append_locked(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    lock_file(&f, path);
    f.write_all(bytes).unwrap();
    f.sync_data().unwrap();
}

/// Rewrites the file at `path` in place (same inode) with `change(old bytes)` under an
/// fcntl write lock, as mutt rewrites an mbox folder.
pub fn rewrite_locked(path: &Path, change: impl FnOnce(&[u8]) -> Vec<u8>) {
    use std::io::{Read, Seek, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    lock_file(&f, path);
    let mut old = Vec::new();
    f.read_to_end(&mut old).unwrap();
    let new = change(&old);
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.write_all(&new).unwrap();
    f.set_len(new.len() as u64).unwrap();
    f.sync_data().unwrap();
}

/// The harness's own mbox writing, checked against what C and Postfix write.
#[test]
fn mbox_delivery_is_written_as_postfix_writes_it() {
    assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
    assert_eq!(asctime(1_796_670_767), "Mon Dec  7 19:12:47 2026");
    assert_eq!(asctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    let d = mbox_delivery(b"Subject: x\r\n\r\nFrom me\r\n>From you\r\nlast");
    let text = s(&d);
    let (from, rest) = text.split_once('\n').unwrap();
    assert!(from.starts_with("From sender@example.org  "), "{from}");
    assert_eq!(rest, "Subject: x\n\n>From me\n>From you\nlast\n\n");
    let two = [d.clone(), d].concat();
    let msgs = mbox_messages(&two);
    assert_eq!(msgs.len(), 2);
    assert_eq!(mbox_header(msgs[1]), "Subject: x\n");
    let m = mbox_set_fields(msgs[0], &["Subject"], &["Status: RO".to_string()]);
    assert!(
        s(&m).ends_with("\nStatus: RO\n\n>From me\n>From you\nlast\n\n"),
        "{}",
        s(&m)
    );
}
