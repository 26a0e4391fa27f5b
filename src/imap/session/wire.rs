//! Framing (RFC 3501 §2.2, §4.3; RFC 7888 LITERAL+): turns the client's byte stream into
//! complete commands (line + inline literals), answers synchronizing literals with a
//! continuation request, enforces the line/literal limits, and streams APPEND message
//! literals to the caller instead of buffering them.
//!
//! Only the bytes of one command are ever held in memory (bounded by `max_line`), except the
//! APPEND literal, which the caller consumes in chunks.

use std::io;

use memchr::memchr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::Stream;
use crate::imap::command::{parse_append_head, AppendHead};

/// Read buffer growth step; also the largest chunk handed to an APPEND sink at once.
const READ_CHUNK: usize = 16 * 1024;

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

/// One connection's buffers and counters.
pub struct Conn {
    pub stream: Stream,
    rbuf: Vec<u8>,
    /// Responses not yet written.
    pub out: Vec<u8>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub max_line: usize,
}

impl Conn {
    pub fn new(stream: Stream, max_line: usize) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            out: Vec::with_capacity(256),
            bytes_in: 0,
            bytes_out: 0,
            max_line,
        }
    }

    /// Bytes the client sent that no command has consumed yet.
    pub fn has_buffered_input(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// Forgets buffered input (after STARTTLS: anything pipelined before the handshake must
    /// not be taken as coming from inside TLS — the STARTTLS command injection attack).
    pub fn discard_buffered_input(&mut self) {
        self.rbuf = Vec::new();
    }

    /// The TLS half of STARTTLS/STLS, after the protocol's "go ahead" response was queued:
    /// flushes that response, drops whatever the client pipelined after the command (it
    /// came in the clear and must not be taken as sent inside TLS: RFC 3207 §4.2, RFC 2595
    /// §4), and performs the handshake, which must end by `deadline` and is abandoned when
    /// `stop` fires (shutdown). An abandoned handshake leaves the stream unusable: the
    /// caller closes the connection.
    pub async fn start_tls(
        &mut self,
        acceptor: &tokio_rustls::TlsAcceptor,
        deadline: tokio::time::Instant,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> io::Result<()> {
        self.flush().await?;
        self.discard_buffered_input();
        tokio::select! {
            r = tokio::time::timeout_at(deadline, self.stream.upgrade(acceptor)) => match r {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
            },
            _ = stop.wait_for(|s| *s) => {
                Err(io::Error::new(io::ErrorKind::Interrupted, "server shutdown during the TLS handshake"))
            }
        }
    }

    /// Releases buffer memory after a large command so idle sessions stay small.
    pub fn shrink(&mut self) {
        if self.rbuf.capacity() > READ_CHUNK * 2 && self.rbuf.len() < READ_CHUNK {
            self.rbuf.shrink_to(READ_CHUNK);
        }
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::with_capacity(256);
        }
    }

    /// Reads more bytes from the client. Ok(false) at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(if self.rbuf.is_empty() {
                2048
            } else {
                READ_CHUNK
            });
        }
        let n = self.stream.read_buf(&mut self.rbuf).await?;
        self.bytes_in += n as u64;
        Ok(n > 0)
    }

    /// Writes out everything queued in `out`.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.bytes_out += self.out.len() as u64;
            self.out.clear();
        }
        self.stream.flush().await
    }

    /// Queues `data` and, when it is large, writes it straight from the caller's buffer
    /// (a mapped message file) instead of copying it into `out`.
    pub async fn write_bytes(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() < 8192 {
            self.out.extend_from_slice(data);
            return self.write_if_full().await;
        }
        self.flush_out().await?;
        self.stream.write_all(data).await?;
        self.bytes_out += data.len() as u64;
        Ok(())
    }

    /// Writes the queued responses once they fill a large write (64 KiB), so long answers
    /// built straight into `out` go out in big writes, not one syscall per line.
    pub async fn write_if_full(&mut self) -> io::Result<()> {
        if self.out.len() > 64 * 1024 {
            self.flush_out().await?;
        }
        Ok(())
    }

    async fn flush_out(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.bytes_out += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    /// Takes one line (without CR LF) out of the read buffer if a whole one is there.
    fn take_line(&mut self) -> Option<Vec<u8>> {
        let lf = memchr(b'\n', &self.rbuf)?;
        let mut line: Vec<u8> = self.rbuf.drain(..=lf).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }

    /// Reads one line of at most `limit` octets. `Ok(None)` at end of stream; an over-long
    /// line is consumed and reported as `Err(InvalidData)`.
    pub async fn read_line(&mut self, limit: usize) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(line) = self.take_line() {
                if line.len() > limit {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
                }
                return Ok(Some(line));
            }
            if self.rbuf.len() > limit {
                self.skip_line().await?;
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Throws away input up to and including the next LF.
    async fn skip_line(&mut self) -> io::Result<()> {
        loop {
            if let Some(lf) = memchr(b'\n', &self.rbuf) {
                self.rbuf.drain(..=lf);
                return Ok(());
            }
            self.rbuf.clear();
            if !self.fill().await? {
                return Ok(());
            }
        }
    }

    /// Hands the next `n` octets to `sink` in chunks (an APPEND literal, or octets to
    /// discard). Returns false if the stream ended first.
    pub async fn stream_literal<F>(&mut self, mut n: u64, mut sink: F) -> io::Result<bool>
    where
        F: FnMut(&[u8]) -> bool,
    {
        let mut sink_ok = true;
        while n > 0 {
            if self.rbuf.is_empty() && !self.fill().await? {
                return Ok(false);
            }
            let take = (self.rbuf.len() as u64).min(n) as usize;
            if sink_ok {
                sink_ok = sink(&self.rbuf[..take]);
            }
            self.rbuf.drain(..take);
            n -= take as u64;
        }
        Ok(true)
    }

    /// Reads one whole command. `Ok(None)` at end of stream.
    pub async fn read_frame(&mut self, append_limit: u64) -> io::Result<Option<Frame>> {
        let mut cmd: Vec<u8> = Vec::new();
        loop {
            let line = match self.take_line() {
                Some(line) => line,
                None => {
                    if cmd.len() + self.rbuf.len() > self.max_line {
                        let tag = tag_of(if cmd.is_empty() { &self.rbuf } else { &cmd });
                        self.skip_line().await?;
                        return Ok(Some(Frame::Refused {
                            tag,
                            message: "Command line too long".into(),
                            fatal: false,
                        }));
                    }
                    if !self.fill().await? {
                        return Ok(None);
                    }
                    continue;
                }
            };
            if cmd.len() + line.len() > self.max_line {
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
                        if n > append_limit || !self.stream_literal(n, |_| true).await? {
                            return Ok(Some(Frame::Refused {
                                tag: e.tag,
                                message,
                                fatal: true,
                            }));
                        }
                        self.skip_line().await?;
                    }
                    return Ok(Some(Frame::Refused {
                        tag: e.tag,
                        message,
                        fatal: false,
                    }));
                }
                None => {}
            }
            if cmd.len() as u64 + n > self.max_line as u64 {
                // RFC 7888 §4: a too-large non-synchronizing literal cannot be refused
                // without losing sync, so the connection is closed.
                return Ok(Some(Frame::Refused {
                    tag: tag_of(&cmd),
                    message: "Literal too large".into(),
                    fatal: non_sync,
                }));
            }
            if !non_sync {
                self.out.extend_from_slice(b"+ OK\r\n");
                self.flush().await?;
            }
            cmd.extend_from_slice(b"\r\n");
            let mut literal = Vec::with_capacity(n as usize);
            if !self
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
