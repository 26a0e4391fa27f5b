//! A small POP3 client for the tests: single-line and multi-line responses (with
//! un-stuffing), STLS, and a server started with POP3 listeners on ephemeral ports.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::*;

pub struct Pop3Server {
    pub srv: TestServer,
    pub pop3: SocketAddr,
    pub pop3s: SocketAddr,
}

impl Pop3Server {
    pub async fn start() -> Pop3Server {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut loft::config::Config)) -> Pop3Server {
        let srv = TestServer::start_with(|cfg| {
            cfg.pop3.listen = vec!["127.0.0.1:0".parse().unwrap()];
            cfg.pop3.listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
            tweak(cfg);
        })
        .await;
        let s = srv.server.as_ref().expect("running");
        let pop3 = s.pop3_addrs[0];
        let pop3s = s.pop3s_addrs[0];
        Pop3Server { srv, pop3, pop3s }
    }

    /// alice's INBOX Maildir (Maildir-only tests).
    pub fn inbox(&self) -> std::path::PathBuf {
        self.srv.maildir(USER)
    }

    /// Mail for alice's INBOX delivered by an MTA, either format.
    pub fn deliver(&self, body: &str) {
        self.srv.deliver(USER, "INBOX", body);
    }

    pub async fn connect(&self) -> Pop {
        Pop::new(Box::new(
            TcpStream::connect(self.pop3).await.expect("connect"),
        ))
        .await
    }

    pub async fn connect_tls(&self) -> Pop {
        let tcp = TcpStream::connect(self.pop3s).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(&self.srv.dir.path().join("tls/cert.pem"))
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        Pop::new(Box::new(tls)).await
    }

    /// Connected and logged in as alice with USER/PASS.
    pub async fn login(&self) -> Pop {
        let mut p = self.connect().await;
        p.ok(&format!("USER {USER}")).await;
        p.ok(&format!("PASS {PASS}")).await;
        p
    }

    /// How many messages alice's INBOX holds on disk (either format).
    pub fn stored(&self) -> usize {
        self.srv.stored_count(USER, "INBOX")
    }
}

pub struct Pop {
    pub io: Box<dyn Io>,
    buf: Vec<u8>,
    pub greeting: String,
}

impl Pop {
    pub async fn new(io: Box<dyn Io>) -> Pop {
        let mut p = Pop {
            io,
            buf: Vec::new(),
            greeting: String::new(),
        };
        p.greeting = p.line().await;
        assert!(p.greeting.starts_with("+OK "), "greeting {:?}", p.greeting);
        p
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

    /// One raw line with its CRLF.
    pub async fn raw_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return self.buf.drain(..pos + 2).collect();
            }
            assert!(
                self.fill().await,
                "connection closed; partial {:?}",
                s(&self.buf)
            );
        }
    }

    /// One line without CRLF, as text.
    pub async fn line(&mut self) -> String {
        let l = self.raw_line().await;
        s(&l[..l.len() - 2])
    }

    /// True when the server closed the connection.
    pub async fn closed(&mut self) -> bool {
        !self.fill().await && self.buf.is_empty()
    }

    pub async fn cmd(&mut self, c: &str) -> String {
        self.send(format!("{c}\r\n").as_bytes()).await;
        self.line().await
    }

    pub async fn ok(&mut self, c: &str) -> String {
        let r = self.cmd(c).await;
        assert!(r.starts_with("+OK"), "{c} -> {r}");
        r
    }

    pub async fn err(&mut self, c: &str) -> String {
        let r = self.cmd(c).await;
        assert!(r.starts_with("-ERR"), "{c} -> {r}");
        r
    }

    /// The body of a multi-line response (after its +OK line): the raw bytes up to the
    /// terminating ".\r\n" line, still byte-stuffed.
    pub async fn body_raw(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let l = self.raw_line().await;
            if l == b".\r\n" {
                return out;
            }
            out.extend_from_slice(&l);
        }
    }

    /// A multi-line command: the +OK line and the un-stuffed body.
    pub async fn multi(&mut self, c: &str) -> (String, Vec<u8>) {
        let first = self.ok(c).await;
        let raw = self.body_raw().await;
        (first, unstuff(&raw))
    }

    /// A multi-line answer as text lines.
    pub async fn lines(&mut self, c: &str) -> Vec<String> {
        let (_, body) = self.multi(c).await;
        s(&body).lines().map(str::to_string).collect()
    }

    /// STLS then the TLS handshake on the same connection.
    pub async fn stls(mut self, cert: &std::path::Path) -> Pop {
        self.ok("STLS").await;
        assert!(self.buf.is_empty());
        let io = std::mem::replace(&mut self.io, Box::new(tokio::io::duplex(1).0));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(cert)
            .connect(name, io)
            .await
            .expect("STLS handshake");
        self.io = Box::new(tls);
        self
    }
}

/// What a client does to a multi-line body (RFC 1939 §3).
pub fn unstuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

/// The messages the identity tests use: bare LF, dot lines, no final newline, a NUL,
/// a header-only message, CRLF already.
pub fn tricky_messages() -> Vec<String> {
    vec![
        "Subject: bare LF\nFrom: a@example.org\n\nline one\n.starts with dot\n..two dots\n.\nend\n"
            .to_string(),
        "Subject: no final newline\r\n\r\nlast line without newline".to_string(),
        "Subject: crlf\r\n\r\n.\r\n.\r\n..\r\nbody\r\n".to_string(),
        "Subject: header only\nX-A: b\n".to_string(),
        "Subject: nul\n\nbefore\0after\n".to_string(),
    ]
}
