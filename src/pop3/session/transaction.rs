//! The TRANSACTION state (RFC 1939 §5) and UPDATE (§6): the maildrop as this session sees
//! it — message numbers fixed at login, sizes from the store's snapshot (never by opening
//! messages), deletion marks — and STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT.

use std::sync::Arc;

use tracing::warn;

use super::{blocking, Command, Session, State};
use crate::auth::User;
use crate::mailbox::access::Message;
use crate::mailbox::{self, Flags, Mailbox, Snapshot, StoreOp, SysFlags, Uid};
use crate::net::UserIpGuard;
use crate::pop3::registry::MaildropLock;
use crate::pop3::stuff;

/// The open maildrop of a logged-in session.
pub(super) struct Maildrop {
    pub user: User,
    mailbox: Box<dyn Mailbox>,
    /// The messages at login, in UID order: message n is `snapshot.messages.get(n - 1)`.
    snapshot: Arc<Snapshot>,
    deleted: Vec<bool>,
    /// Messages RETR sent, to be flagged \Seen at UPDATE.
    retrieved: Vec<Uid>,
    pub live_count: usize,
    pub live_size: u64,
    lock: Option<MaildropLock>,
    _limit: UserIpGuard,
}

impl Maildrop {
    /// Opens the user's INBOX read-write and takes its snapshot. Blocking.
    pub fn open(
        storage: &mailbox::Storage,
        user: User,
        lock: Option<MaildropLock>,
        limit: UserIpGuard,
    ) -> mailbox::Result<Maildrop> {
        let store = storage.open_store(&user.name, user.home.as_deref())?;
        let mut mailbox = store.open("INBOX", false)?;
        // STAT and LIST need every size (RFC 1939 §5): those not computed yet, now.
        let synced = mailbox.sync()?.snapshot;
        let snapshot = mailbox::with_sizes(mailbox.as_ref(), synced);
        let live_size = snapshot.messages.iter().map(|m| m.size).sum();
        Ok(Maildrop {
            user,
            mailbox,
            deleted: vec![false; snapshot.messages.len()],
            live_count: snapshot.messages.len(),
            live_size,
            snapshot,
            retrieved: Vec::new(),
            lock,
            _limit: limit,
        })
    }

    /// The session is over: the store finishes what it left for the last close.
    pub fn close(&mut self) {
        self.mailbox.close();
    }

    pub fn count(&self) -> usize {
        self.snapshot.messages.len()
    }

    /// The index of message `n`, or why not (RFC 1939 §5: a deleted message may not be
    /// referred to).
    fn index(&self, n: u32) -> Result<usize, Refused> {
        let i = (n as usize).wrapping_sub(1);
        match self.deleted.get(i) {
            None => Err(Refused::NoMessage(n)),
            Some(true) => Err(Refused::Deleted(n)),
            Some(false) => Ok(i),
        }
    }

    fn uidl(&self, fmt: &crate::config::uidl::UidlFormat, i: usize) -> String {
        let uid = self.snapshot.messages.get(i).map(|m| m.uid).unwrap_or(0);
        fmt.render(uid, self.snapshot.uid_validity)
    }

    fn size(&self, i: usize) -> u64 {
        self.snapshot.messages.get(i).map(|m| m.size).unwrap_or(0)
    }
}

/// Why a TRANSACTION command is answered `-ERR`; displays the text after `-ERR `.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum Refused {
    #[error("There's no message {0}.")]
    NoMessage(u32),
    #[error("Message {0} is deleted.")]
    Deleted(u32),
    #[error("Command not valid in this state.")]
    NotValidHere,
}

impl Session {
    fn maildrop(&mut self) -> Option<&mut Maildrop> {
        match &mut self.state {
            State::Transaction(m) => Some(m),
            State::Authorization { .. } => None,
        }
    }

    pub(super) async fn transaction(&mut self, cmd: Command) {
        let fmt = self.ctx.cfg.pop3.uidl_format.clone();
        let Some(m) = self.maildrop() else {
            self.err("Not logged in.");
            return;
        };
        let reply: Result<String, Refused> = match cmd {
            Command::Noop => Ok(String::new()),
            Command::Stat => Ok(format!("{} {}", m.live_count, m.live_size)),
            Command::List(Some(n)) => m.index(n).map(|i| format!("{n} {}", m.size(i))),
            Command::Uidl(Some(n)) => m.index(n).map(|i| format!("{n} {}", m.uidl(&fmt, i))),
            Command::List(None) | Command::Uidl(None) => {
                let uidl = matches!(cmd, Command::Uidl(None));
                self.listing(uidl, &fmt).await;
                return;
            }
            Command::Dele(n) => m.index(n).map(|i| {
                m.deleted[i] = true;
                m.live_count -= 1;
                m.live_size -= m.size(i);
                format!("Message {n} marked for deletion.")
            }),
            Command::Rset => {
                m.deleted.iter_mut().for_each(|d| *d = false);
                m.live_count = m.count();
                m.live_size = m.snapshot.messages.iter().map(|x| x.size).sum();
                Ok(format!(
                    "Maildrop has {} messages ({} octets).",
                    m.live_count, m.live_size
                ))
            }
            Command::Retr(n) => match m.index(n) {
                Ok(i) => return self.send_message(i, None).await,
                Err(e) => Err(e),
            },
            Command::Top { msg, lines } => match m.index(msg) {
                Ok(i) => return self.send_message(i, Some(lines)).await,
                Err(e) => Err(e),
            },
            _ => Err(Refused::NotValidHere),
        };
        match reply {
            Ok(text) if text.is_empty() => self.conn.out.extend_from_slice(b"+OK\r\n"),
            Ok(text) => self.ok(&text),
            Err(why) => self.err(&why.to_string()),
        }
    }

    /// LIST or UIDL without argument: one line per message not marked deleted.
    async fn listing(&mut self, uidl: bool, fmt: &crate::config::uidl::UidlFormat) {
        let Some(m) = self.maildrop() else {
            return;
        };
        let mut body = Vec::with_capacity(m.count().min(100_000) * 24 + 64);
        body.extend_from_slice(if uidl {
            b"+OK Unique-ID listing follows\r\n".as_slice()
        } else {
            b"+OK Scan listing follows\r\n".as_slice()
        });
        for (i, deleted) in m.deleted.iter().enumerate() {
            if *deleted {
                continue;
            }
            let value = if uidl {
                m.uidl(fmt, i)
            } else {
                m.size(i).to_string()
            };
            body.extend_from_slice(format!("{} {value}\r\n", i + 1).as_bytes());
        }
        body.extend_from_slice(b".\r\n");
        let _ = self.conn.write_bytes(&body).await;
    }

    /// RETR (`lines` None) or TOP: the message as the store returns it (CRLF), passed
    /// through the enabled workarounds, byte-stuffed, then ".".
    async fn send_message(&mut self, i: usize, lines: Option<u64>) {
        let quirks = self.ctx.cfg.pop3.workarounds;
        let Some(m) = self.maildrop() else {
            return;
        };
        let Some(meta) = m.snapshot.messages.get(i) else {
            return;
        };
        let fetched = blocking(|| Message::new(m.mailbox.as_ref(), &meta).into_whole());
        let data = match fetched {
            Ok(d) => d,
            Err(e) => {
                if let Some(detail) = &e.detail {
                    warn!(session = %self.id, user = %self.user_name(), "RETR uid {}: {detail}", meta.uid);
                }
                let text = if e.kind == mailbox::ErrorKind::Expunged {
                    "Message was removed by another session.".to_string()
                } else {
                    format!("[SYS/TEMP] {}", e.text)
                };
                self.err(&text);
                return;
            }
        };
        if lines.is_none() {
            m.retrieved.push(meta.uid);
        }
        let sent = crate::quirks::pop3::apply(quirks, &data);
        let body: &[u8] = match lines {
            Some(n) => stuff::top(&sent, n),
            None => &sent,
        };
        match lines {
            None => {
                self.stats.retrieved += 1;
                self.stats.retrieved_bytes += meta.size;
                self.ok(&format!("{} octets", meta.size));
            }
            Some(_) => {
                self.stats.top += 1;
                self.conn.out.extend_from_slice(b"+OK\r\n");
            }
        }
        let _ = self.write_stuffed(body).await;
    }

    /// Writes `data` byte-stuffed and terminated, straight from its buffer.
    async fn write_stuffed(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut start = 0;
        for p in stuff::dot_lines(data) {
            self.conn
                .write_bytes(data.get(start..p).unwrap_or_default())
                .await?;
            self.conn.write_bytes(b".").await?;
            start = p;
        }
        self.conn
            .write_bytes(data.get(start..).unwrap_or_default())
            .await?;
        if stuff::needs_crlf(data) {
            self.conn.write_bytes(b"\r\n").await?;
        }
        self.conn.write_bytes(b".\r\n").await
    }

    /// QUIT in TRANSACTION: the UPDATE state (RFC 1939 §6). Retrieved messages become
    /// \Seen; marked ones get \Deleted and are expunged — only those, so a \Deleted flag
    /// an IMAP client set on another message is left alone.
    pub(super) fn update(&mut self) {
        let Some(m) = self.maildrop() else {
            return;
        };
        let marked: Vec<(Uid, u64)> = m
            .snapshot
            .messages
            .iter()
            .zip(&m.deleted)
            .filter(|(_, d)| **d)
            .map(|(meta, _)| (meta.uid, meta.size))
            .collect();
        let uids: Vec<Uid> = marked.iter().map(|(u, _)| *u).collect();
        let mut seen: Vec<Uid> = m
            .retrieved
            .iter()
            .copied()
            .filter(|u| uids.binary_search(u).is_err())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        let result = blocking(|| {
            if !seen.is_empty() {
                let mut f = Flags::default();
                f.sys.insert(SysFlags::SEEN);
                if let Err(e) = m.mailbox.store(&seen, StoreOp::Add, &f) {
                    // Not fatal: the messages were delivered; only the flag is missing.
                    warn!(user = %m.user.name, "POP3 could not flag retrieved messages \\Seen: {e}");
                }
            }
            if uids.is_empty() {
                return Ok(Vec::new());
            }
            let mut f = Flags::default();
            f.sys.insert(SysFlags::DELETED);
            m.mailbox.store(&uids, StoreOp::Add, &f)?;
            m.mailbox.expunge(Some(&uids))
        });
        // Unlock before answering, so a client that reconnects at once is not [IN-USE].
        m.lock = None;
        match result {
            Ok(gone) => {
                let bytes: u64 = marked
                    .iter()
                    .filter(|(u, _)| gone.binary_search(u).is_ok())
                    .map(|(_, s)| s)
                    .sum();
                self.stats.deleted = gone.len() as u64;
                self.stats.deleted_bytes = bytes;
                let n = gone.len();
                self.ok(&format!("Logging out, {n} messages deleted."));
            }
            Err(e) => {
                warn!(session = %self.id, user = %self.user_name(), "POP3 UPDATE failed: {e}");
                // RFC 1939 §6: -ERR when some messages marked as deleted were not removed.
                self.err("[SYS/TEMP] Some deleted messages were not removed.");
            }
        }
    }
}
