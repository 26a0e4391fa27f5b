//! A tiny blocking IMAP client for the test side of the interop tests: it sets up and
//! inspects the server's state (APPEND, STORE, UID FETCH) independently of the client
//! under test. Plaintext on loopback only; every read has a timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

/// One response: its first line and the literals it carried, in order.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The whole response with literals inlined, as sent.
    pub raw: Vec<u8>,
    pub literals: Vec<Vec<u8>>,
}

impl Unit {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"\r\n").unwrap_or(line);
    let inner = body.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&c| c == b'{')?;
    let digits = inner.get(open + 1..)?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Imap {
    /// Connects to 127.0.0.1:`port` and logs in.
    pub fn login(port: u16, user: &str, pass: &str) -> Imap {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to loft");
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut c = Imap {
            reader: BufReader::new(tcp.try_clone().unwrap()),
            writer: tcp,
            tag: 0,
        };
        let greeting = c.read_unit();
        assert!(
            greeting.text().starts_with("* OK"),
            "greeting {:?}",
            greeting.text()
        );
        c.ok(&format!("LOGIN {user} {pass}"));
        c
    }

    fn read_unit(&mut self) -> Unit {
        let mut raw = Vec::new();
        let mut literals = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .expect("read from loft");
            assert!(
                n > 0,
                "loft closed the connection; partial {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&line);
            match literal_len(&line) {
                Some(len) => {
                    let mut lit = vec![0u8; len];
                    self.reader.read_exact(&mut lit).expect("read literal");
                    raw.extend_from_slice(&lit);
                    literals.push(lit);
                }
                None => return Unit { raw, literals },
            }
        }
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("t{}", self.tag)
    }

    /// Sends `command` and returns every response up to and including the tagged one.
    pub fn cmd(&mut self, command: &str) -> Vec<Unit> {
        let tag = self.next_tag();
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .expect("write to loft");
        self.collect(&tag)
    }

    fn collect(&mut self, tag: &str) -> Vec<Unit> {
        let mut out = Vec::new();
        loop {
            let u = self.read_unit();
            let done = u.raw.starts_with(format!("{tag} ").as_bytes());
            out.push(u);
            if done {
                return out;
            }
        }
    }

    /// Runs a command that must end in a tagged OK; returns the untagged responses.
    pub fn ok(&mut self, command: &str) -> Vec<Unit> {
        let mut r = self.cmd(command);
        let last = r.pop().expect("tagged response").text();
        assert!(
            last.split(' ').nth(1) == Some("OK"),
            "`{command}` failed: {last} after {:?}",
            r.iter().map(Unit::text).collect::<Vec<_>>()
        );
        r
    }

    /// APPEND with a synchronizing literal; returns the tagged OK line (APPENDUID).
    pub fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> String {
        let tag = self.next_tag();
        self.writer
            .write_all(
                format!("{tag} APPEND {mailbox} ({flags}) {{{}}}\r\n", message.len()).as_bytes(),
            )
            .expect("write APPEND");
        let cont = self.read_unit().text();
        assert!(
            cont.starts_with('+'),
            "APPEND got {cont:?} instead of a continuation"
        );
        self.writer.write_all(message).expect("write literal");
        self.writer.write_all(b"\r\n").expect("write CRLF");
        let mut r = self.collect(&tag);
        let last = r.pop().expect("tagged").text();
        assert!(
            last.split(' ').nth(1) == Some("OK"),
            "APPEND failed: {last}"
        );
        last
    }

    /// `(uid, flags, message-id header line)` of every message in the selected mailbox,
    /// from `UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])`.
    pub fn uid_flags_ids(&mut self) -> Vec<(u32, Vec<String>, String)> {
        let units = self.ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
        let mut out = Vec::new();
        for u in units {
            let text = u.text();
            if !text.contains(" FETCH ") {
                continue;
            }
            let uid = text
                .split("UID ")
                .nth(1)
                .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no UID in {text:?}"));
            let flags = text
                .split("FLAGS (")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .unwrap_or_else(|| panic!("no FLAGS in {text:?}"))
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let id = u
                .literals
                .first()
                .map(|l| message_id(&String::from_utf8_lossy(l)))
                .unwrap_or_default();
            out.push((uid, flags, id));
        }
        out.sort();
        out
    }

    pub fn logout(mut self) {
        let _ = self.cmd("LOGOUT");
    }
}

/// The Message-ID value in a header block (case-insensitive name), trimmed; "" if none.
pub fn message_id(headers: &str) -> String {
    for line in headers.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("message-id") {
                return value.trim().to_string();
            }
        }
    }
    String::new()
}
