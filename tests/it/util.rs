//! Test harness: a real Loft server on ephemeral loopback ports with a temporary mail
//! directory, and a small IMAP client that checks every response against imap-codec's
//! strict RFC 3501 grammar.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use imap_codec::decode::Decoder;
use imap_codec::{GreetingCodec, ResponseCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use loft::config::Config;
use loft::server::Server;

pub const USER: &str = "alice";
pub const PASS: &str = "secret";

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

    /// Another server on this one's mail (a restart: stop this one first).
    pub async fn restart_on(&self) -> TestServer {
        let mail = self
            .dir
            .path()
            .join("mail/%u")
            .to_string_lossy()
            .into_owned();
        TestServer::start_with(|cfg| cfg.storage.location = mail).await
    }

    /// The Maildir root of a user.
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user)
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
