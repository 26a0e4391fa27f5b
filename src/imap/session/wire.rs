//! Framing (RFC 3501 §2.2, §4.3; RFC 7888 LITERAL+): turns the client's byte stream into
//! complete commands (line + inline literals), answers synchronizing literals with a
//! continuation request, enforces the line/literal limits, and hands APPEND message
//! literals back to the session, which streams them to the store instead of buffering them.
//!
//! Only the bytes of one command are ever held in memory (bounded by `max_line`), except the
//! APPEND literal, which the caller consumes in chunks. The byte-level line I/O is
//! [`crate::net::Conn`]; this file is the IMAP part.

use std::io;

use memchr::memchr;

use crate::imap::command::{parse_append_head, AppendHead};
use crate::net::Conn;

/// A literal announced at the end of a line: `{n}` or `{n+}`.
pub fn literal_marker(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&c| c == b'{')?;
    let mut digits = &inner[open + 1..];
    let non_sync = digits.last() == Some(&b'+');
    if non_sync {
        digits = &digits[..digits.len() - 1];
    }
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, non_sync))
}

/// The tag of a (possibly malformed) command line, when it looks like one.
pub fn tag_of(line: &[u8]) -> Option<String> {
    let end = memchr(b' ', line).unwrap_or(line.len());
    let tag = &line[..end];
    if tag.is_empty() || tag.len() > 256 || tag == b"*" {
        return None;
    }
    let ok = tag
        .iter()
        .all(|&c| crate::imap::response::is_astring_char(c) && c != b'+');
    ok.then(|| String::from_utf8_lossy(tag).into_owned())
}

/// What the framer produced.
pub enum Frame {
    /// A complete command: the line with its literals inline, without the final CRLF.
    Command(Vec<u8>),
    /// An APPEND whose message literal comes next. The continuation request has NOT been
    /// sent; the caller decides (it may refuse with NO [TRYCREATE] / [TOOBIG] first).
    Append(AppendHead),
    /// The command was refused before it was complete. Answer `tag BAD message` (or
    /// `* BAD` without tag); when `fatal`, say BYE and close (the client is sending octets
    /// we cannot resynchronise with).
    Refused {
        tag: Option<String>,
        message: String,
        fatal: bool,
    },
}

/// Reads one whole command of at most `max_line` octets (line and inline literals).
/// `Ok(None)` at end of stream.
pub async fn read_frame(
    conn: &mut Conn,
    max_line: usize,
    append_limit: u64,
) -> io::Result<Option<Frame>> {
    let mut cmd: Vec<u8> = Vec::new();
    loop {
        let line = match conn.take_line() {
            Some(line) => line,
            None => {
                if cmd.len() + conn.buffered().len() > max_line {
                    let tag = tag_of(if cmd.is_empty() {
                        conn.buffered()
                    } else {
                        &cmd
                    });
                    conn.skip_line().await?;
                    return Ok(Some(Frame::Refused {
                        tag,
                        message: "Command line too long".into(),
                        fatal: false,
                    }));
                }
                if !conn.fill().await? {
                    return Ok(None);
                }
                continue;
            }
        };
        if cmd.len() + line.len() > max_line {
            return Ok(Some(Frame::Refused {
                tag: tag_of(if cmd.is_empty() { &line } else { &cmd }),
                message: "Command line too long".into(),
                fatal: false,
            }));
        }
        cmd.extend_from_slice(&line);
        let Some((n, non_sync)) = literal_marker(&line) else {
            return Ok(Some(Frame::Command(cmd)));
        };
        match parse_append_head(&cmd) {
            Some(Ok(head)) => return Ok(Some(Frame::Append(head))),
            Some(Err(e)) => {
                let message = e.message;
                if non_sync {
                    // The client sends the octets anyway: swallow them if that is cheap.
                    if n > append_limit || !conn.stream_literal(n, |_| true).await? {
                        return Ok(Some(Frame::Refused {
                            tag: e.tag,
                            message,
                            fatal: true,
                        }));
                    }
                    conn.skip_line().await?;
                }
                return Ok(Some(Frame::Refused {
                    tag: e.tag,
                    message,
                    fatal: false,
                }));
            }
            None => {}
        }
        if cmd.len() as u64 + n > max_line as u64 {
            // RFC 7888 §4: a too-large non-synchronizing literal cannot be refused
            // without losing sync, so the connection is closed.
            return Ok(Some(Frame::Refused {
                tag: tag_of(&cmd),
                message: "Literal too large".into(),
                fatal: non_sync,
            }));
        }
        if !non_sync {
            conn.out.extend_from_slice(b"+ OK\r\n");
            conn.flush().await?;
        }
        cmd.extend_from_slice(b"\r\n");
        let mut literal = Vec::with_capacity(n as usize);
        if !conn
            .stream_literal(n, |chunk| {
                literal.extend_from_slice(chunk);
                true
            })
            .await?
        {
            return Ok(None);
        }
        cmd.extend_from_slice(&literal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert_eq!(literal_marker(b"a LOGIN {5}"), Some((5, false)));
        assert_eq!(literal_marker(b"a LOGIN {12+}"), Some((12, true)));
        assert_eq!(literal_marker(b"a LOGIN {}"), None);
        assert_eq!(literal_marker(b"a LOGIN {+}"), None);
        assert_eq!(literal_marker(b"a LOGIN {1x}"), None);
        assert_eq!(literal_marker(b"}"), None);
        assert_eq!(literal_marker(b"{99999999999999999999}"), None);
    }

    #[test]
    fn tags() {
        assert_eq!(tag_of(b"a1 NOOP").as_deref(), Some("a1"));
        assert_eq!(tag_of(b"* NOOP"), None);
        assert_eq!(tag_of(b"a+ NOOP"), None);
        assert_eq!(tag_of(b""), None);
    }
}
