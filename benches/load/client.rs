//! A minimal blocking IMAP client over plain TCP: tagged commands, response units with
//! literals, byte counting. Enough to drive a server; it does not validate grammar (the
//! integration tests do that).
//!
//! This module knows nothing about which server it talks to.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    next_tag: u32,
    /// Bytes received so far.
    pub bytes_in: u64,
}

/// The tagged completion of a command.
#[derive(Debug)]
pub struct Done {
    /// `OK`, `NO` or `BAD`.
    pub status: String,
    /// The whole tagged line, for error messages.
    pub line: String,
    /// Untagged units seen.
    pub untagged: u64,
}

impl Done {
    pub fn ok(&self) -> bool {
        self.status == "OK"
    }
}

fn err(msg: String) -> io::Error {
    io::Error::other(msg)
}

impl Client {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut c = Client {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            pos: 0,
            next_tag: 1,
            bytes_in: 0,
        };
        let g = c.read_unit()?;
        if !g.starts_with(b"* OK") {
            return Err(err(format!(
                "bad greeting {:?}",
                String::from_utf8_lossy(&g)
            )));
        }
        Ok(c)
    }

    pub fn set_timeout(&self, t: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t))
    }

    pub fn login(&mut self, user: &str, pass: &str) -> io::Result<()> {
        let d = self.run(&format!("LOGIN {user} {pass}"), |_| {})?;
        if !d.ok() {
            return Err(err(format!("LOGIN refused: {}", d.line)));
        }
        Ok(())
    }

    /// Sends `command` with a fresh tag; calls `each` on every untagged unit.
    pub fn run(&mut self, command: &str, mut each: impl FnMut(&[u8])) -> io::Result<Done> {
        let tag = format!("b{}", self.next_tag);
        self.next_tag += 1;
        self.stream
            .write_all(format!("{tag} {command}\r\n").as_bytes())?;
        let prefix = format!("{tag} ");
        let mut untagged = 0;
        loop {
            let unit = self.read_unit()?;
            if unit.starts_with(prefix.as_bytes()) {
                let line = String::from_utf8_lossy(&unit).trim_end().to_string();
                let status = line.split(' ').nth(1).unwrap_or("").to_ascii_uppercase();
                return Ok(Done {
                    status,
                    line,
                    untagged,
                });
            }
            if unit.starts_with(b"* BYE") {
                return Err(err(format!(
                    "server said BYE during {command}: {}",
                    String::from_utf8_lossy(&unit).trim_end()
                )));
            }
            untagged += 1;
            each(&unit);
        }
    }

    /// Like [`run`](Self::run) but an answer other than OK is an error.
    pub fn run_ok(&mut self, command: &str, each: impl FnMut(&[u8])) -> io::Result<Done> {
        let d = self.run(command, each)?;
        if !d.ok() {
            return Err(err(format!("{command}: {}", d.line)));
        }
        Ok(d)
    }

    /// Starts IDLE and waits for the continuation; returns the bare socket (the client's
    /// buffers are dropped so they do not count as server memory).
    pub fn into_idle(mut self) -> io::Result<TcpStream> {
        let tag = format!("b{}", self.next_tag);
        self.stream
            .write_all(format!("{tag} IDLE\r\n").as_bytes())?;
        loop {
            let unit = self.read_unit()?;
            if unit.starts_with(b"+") {
                return Ok(self.stream);
            }
            if unit.starts_with(tag.as_bytes()) {
                return Err(err(format!(
                    "IDLE refused: {}",
                    String::from_utf8_lossy(&unit).trim_end()
                )));
            }
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 1 << 20 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + 256 * 1024, 0);
        let n = match self.stream.read(&mut self.buf[old..]) {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(old);
                return Err(e);
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            return Err(err("connection closed by the server".into()));
        }
        self.bytes_in += n as u64;
        Ok(())
    }

    /// One response unit: a line plus the literals it announces, CRLF included.
    fn read_unit(&mut self) -> io::Result<Vec<u8>> {
        let mut unit = Vec::new();
        loop {
            let nl = loop {
                if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..]) {
                    break i;
                }
                // keep what we have; fill appends
                self.fill()?;
            };
            let line = &self.buf[self.pos..self.pos + nl + 1];
            unit.extend_from_slice(line);
            self.pos += nl + 1;
            let body = line.strip_suffix(b"\r\n").unwrap_or(line);
            match literal_len(body) {
                Some(n) => {
                    while self.buf.len() - self.pos < n {
                        self.fill()?;
                    }
                    unit.extend_from_slice(&self.buf[self.pos..self.pos + n]);
                    self.pos += n;
                }
                None => return Ok(unit),
            }
        }
    }
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&c| c == b'{')?;
    let digits = inner.get(open + 1..)?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The numbers of a `* SEARCH n n n` unit.
pub fn search_hits(unit: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(unit).ok()?;
    let rest = s.strip_prefix("* SEARCH")?;
    Some(rest.split_ascii_whitespace().count() as u64)
}

/// `* N EXISTS` → N.
pub fn exists(unit: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(unit).ok()?.trim_end();
    let rest = s.strip_prefix("* ")?.strip_suffix(" EXISTS")?;
    rest.parse().ok()
}

/// `* OK [UIDNEXT n] ...` → n.
pub fn uidnext(unit: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(unit).ok()?;
    let i = s.find("[UIDNEXT ")?;
    let rest = &s[i + 9..];
    rest[..rest.find(']')?].parse().ok()
}
