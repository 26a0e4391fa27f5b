//! Line I/O over one client connection, for every protocol: the read buffer, line reads
//! with a length limit, octet counts streamed to a sink in chunks (literals, message
//! bodies), the output queue written in large writes, and the TLS half of
//! STARTTLS/STLS. Nothing here knows a protocol's syntax: IMAP's literal framing is
//! `imap::session::wire`, POP3's commands are read with [`Conn::read_line`].
//!
//! Only what the caller asked for is held in memory: a line is bounded by the caller's
//! limit, and octet counts go to the caller's sink chunk by chunk.

use std::io;

use memchr::memchr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::Stream;

/// Read buffer growth step; also the largest chunk handed to a sink at once.
const READ_CHUNK: usize = 16 * 1024;

/// One connection's buffers and counters.
pub struct Conn {
    pub stream: Stream,
    rbuf: Vec<u8>,
    /// Responses not yet written.
    pub out: Vec<u8>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Conn {
    pub fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            out: Vec::with_capacity(256),
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Bytes the client sent that no read has consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.rbuf
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

    /// Reads more bytes from the client into the buffer. Ok(false) at end of stream.
    pub async fn fill(&mut self) -> io::Result<bool> {
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
    /// (a message read into memory) instead of copying it into `out`.
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
    pub fn take_line(&mut self) -> Option<Vec<u8>> {
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
    pub async fn skip_line(&mut self) -> io::Result<()> {
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

    /// Hands the next `n` octets to `sink` in chunks (a literal, or octets to discard);
    /// once `sink` returns false the rest is read and dropped. Returns false if the stream ended first.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// A connection whose client side has already sent `input` and closed.
    async fn conn_reading(input: &'static [u8]) -> Conn {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(input).await.unwrap();
        });
        let (tcp, _) = l.accept().await.unwrap();
        client.await.unwrap();
        Conn::new(Stream::Plain(tcp))
    }

    #[tokio::test]
    async fn lines_over_the_limit_are_consumed_and_refused() {
        let long = b"0123456789abcdef0123456789\r\nnext\nlast";
        let mut c = conn_reading(long).await;
        let e = c.read_line(10).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            c.read_line(10).await.unwrap().as_deref(),
            Some(&b"next"[..])
        );
        // Input ends without a line end: no line, end of stream.
        assert_eq!(c.read_line(10).await.unwrap(), None);
        assert_eq!(c.bytes_in, long.len() as u64);
    }

    #[tokio::test]
    async fn literal_octets_go_to_the_sink_in_order_and_the_rest_stays() {
        let mut c = conn_reading(b"hello worldTAIL\r\n").await;
        let mut got = Vec::new();
        assert!(c
            .stream_literal(11, |chunk| {
                got.extend_from_slice(chunk);
                true
            })
            .await
            .unwrap());
        assert_eq!(got, b"hello world");
        assert_eq!(
            c.read_line(100).await.unwrap().as_deref(),
            Some(&b"TAIL"[..])
        );
        assert!(
            !c.stream_literal(1, |_| true).await.unwrap(),
            "stream ended"
        );
    }
}
