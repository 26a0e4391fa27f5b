//! The Dovecot authentication protocol's lines, as Loft speaks them (see
//! docs/auth-protocol.md): TAB-separated fields with `\x01` escaping, the client's
//! VERSION / CPID / AUTH / CONT lines, and the server's answers. Pure functions over
//! bytes, no I/O, never panics: this is what the fuzz target drives. Knows nothing of
//! users or passwords beyond carrying the SASL data.

use std::net::IpAddr;

/// Longest line accepted, terminator excluded. Dovecot's clients expect lines to fit in
/// 16384 bytes; SASL data is the largest part.
pub const MAX_LINE: usize = 16 * 1024;
/// Protocol version we speak; clients must share the major number.
pub const MAJOR: u32 = 1;
pub const MINOR: u32 = 2;

/// Decodes one field's escaping: `\x01` followed by `0` NUL, `1` `\x01`, `t` TAB,
/// `r` CR, `n` or `l` LF; anything else stands for itself.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut it = field.iter();
    while let Some(&b) = it.next() {
        if b != 1 {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'0') => out.push(0),
            Some(b'1') => out.push(1),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n' | b'l') => out.push(b'\n'),
            Some(&other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Escapes a value for a server line (so a user name can never break the framing).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\0' => out.push_str("\x010"),
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\r' => out.push_str("\x01r"),
            '\n' => out.push_str("\x01n"),
            c => out.push(c),
        }
    }
    out
}

/// An `AUTH` request's parameters that Loft uses; unknown ones are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthCmd {
    pub id: u32,
    pub mech: String,
    pub service: String,
    /// Initial response, still base64 (`resp=`; always the last parameter).
    pub resp: Option<String>,
    /// The client's connection to the MTA is protected (TLS, or local).
    pub secured: bool,
    pub rip: Option<IpAddr>,
    pub lip: Option<IpAddr>,
}

/// One client line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientLine {
    Version {
        major: u32,
        minor: u32,
    },
    Cpid(String),
    Auth(AuthCmd),
    /// `CONT <id> <base64>`.
    Cont {
        id: u32,
        data: String,
    },
}

/// A line we cannot act on. `id` is set when the request id could be read, so the
/// request can be answered with FAIL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub id: Option<u32>,
    pub why: String,
}

fn bad(id: Option<u32>, why: impl Into<String>) -> BadLine {
    BadLine {
        id,
        why: why.into(),
    }
}

fn text(field: &[u8]) -> Option<String> {
    String::from_utf8(unescape(field)).ok()
}

fn number(field: Option<&[u8]>) -> Option<u32> {
    let f = field?;
    if f.is_empty() || f.len() > 10 || !f.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(f).ok()?.parse().ok()
}

fn ip(value: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(value).ok()?;
    // `[::1]` is sometimes written with brackets.
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

/// The request id of a line that is otherwise unusable (too long, bad encoding…), if
/// it starts like `AUTH<TAB>id` or `CONT<TAB>id`.
pub fn readable_id(line: &[u8]) -> Option<u32> {
    let mut f = line.splitn(3, |&b| b == b'\t');
    match f.next()? {
        b"AUTH" | b"CONT" => number(f.next()),
        _ => None,
    }
}

/// Parses one line (without its LF; a trailing CR is tolerated).
pub fn parse_line(line: &[u8]) -> Result<ClientLine, BadLine> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE {
        return Err(bad(readable_id(line), "line too long"));
    }
    let mut fields = line.split(|&b| b == b'\t');
    let cmd = fields.next().unwrap_or_default();
    match cmd {
        b"VERSION" => {
            let major = number(fields.next()).ok_or_else(|| bad(None, "bad VERSION"))?;
            let minor = number(fields.next()).unwrap_or(0);
            Ok(ClientLine::Version { major, minor })
        }
        b"CPID" => {
            let pid = fields
                .next()
                .and_then(text)
                .ok_or_else(|| bad(None, "bad CPID"))?;
            Ok(ClientLine::Cpid(pid))
        }
        b"AUTH" => parse_auth(fields),
        b"CONT" => {
            let id = number(fields.next()).ok_or_else(|| bad(None, "CONT without an id"))?;
            // The data may be absent (an empty response).
            let data = match fields.next() {
                None => String::new(),
                Some(f) => text(f).ok_or_else(|| bad(Some(id), "CONT data not UTF-8"))?,
            };
            Ok(ClientLine::Cont { id, data })
        }
        other => {
            let shown: String = String::from_utf8_lossy(other).chars().take(20).collect();
            Err(bad(None, format!("unknown command {shown:?}")))
        }
    }
}

fn parse_auth<'a>(mut fields: impl Iterator<Item = &'a [u8]>) -> Result<ClientLine, BadLine> {
    let id = number(fields.next()).ok_or_else(|| bad(None, "AUTH without a valid id"))?;
    let mech = fields
        .next()
        .and_then(text)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad(Some(id), "AUTH without a mechanism"))?;
    let mut cmd = AuthCmd {
        id,
        mech: mech.to_ascii_uppercase(),
        ..AuthCmd::default()
    };
    let mut service = None;
    for f in fields {
        let (name, value) = match f.iter().position(|&b| b == b'=') {
            Some(i) => (f.get(..i).unwrap_or_default(), f.get(i + 1..)),
            None => (f, None),
        };
        match (name, value) {
            (b"service", Some(v)) => service = text(v),
            (b"resp", Some(v)) => {
                cmd.resp = Some(text(v).ok_or_else(|| bad(Some(id), "resp is not valid base64"))?);
                // resp= must be last; anything after it is ignored (the protocol's rule,
                // so client data cannot smuggle in parameters).
                break;
            }
            (b"secured", _) => cmd.secured = true,
            (b"rip", Some(v)) => cmd.rip = ip(v),
            (b"lip", Some(v)) => cmd.lip = ip(v),
            _ => {} // unknown parameters are ignored
        }
    }
    cmd.service = service
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(Some(id), "AUTH without service="))?;
    Ok(ClientLine::Auth(cmd))
}

/// The server handshake, sent as soon as a client connects (Exim reads all of it
/// before writing anything).
pub fn handshake(mechs: &[(&str, &str)], spid: u32, cuid: u64, cookie: &str) -> String {
    let mut s = format!("VERSION\t{MAJOR}\t{MINOR}\n");
    for (name, flags) in mechs {
        if flags.is_empty() {
            s.push_str(&format!("MECH\t{name}\n"));
        } else {
            s.push_str(&format!("MECH\t{name}\t{flags}\n"));
        }
    }
    s.push_str(&format!(
        "SPID\t{spid}\nCUID\t{cuid}\nCOOKIE\t{cookie}\nDONE\n"
    ));
    s
}

pub fn ok(id: u32, user: &str) -> String {
    format!("OK\t{id}\tuser={}\n", escape(user))
}

pub fn cont(id: u32, base64: &str) -> String {
    format!("CONT\t{id}\t{base64}\n")
}

/// A FAIL answer. `temp` marks a temporary failure (both the old `temp` flag and
/// `code=temp_fail`, so older and newer clients understand it).
pub fn fail(id: u32, user: Option<&str>, reason: Option<&str>, temp: bool) -> String {
    let mut s = format!("FAIL\t{id}");
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        s.push_str(&format!("\tuser={}", escape(u)));
    }
    if temp {
        s.push_str("\tcode=temp_fail\ttemp");
    }
    if let Some(r) = reason {
        s.push_str(&format!("\treason={}", escape(r)));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
