//! One POP3 connection: greeting, the states of RFC 1939 §3 (AUTHORIZATION → TRANSACTION
//! → UPDATE), dispatch, timeouts and the one log line per session.
//!
//! Responses are queued in the connection's output buffer and flushed after every
//! command, so pipelined commands (RFC 2449 §6.6) are answered in order. Storage calls
//! block and run under [`crate::net::blocking`], as in the IMAP session.

mod auth;
mod transaction;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info};

use super::command::{self, Command};
use super::registry::Registry;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::net::{blocking, kicked, Conn, ConnSlot, Stream, UserIpLimits};
use transaction::Maildrop;

/// What every POP3 session shares.
pub struct Context {
    pub cfg: Arc<Config>,
    pub auth: Arc<Authenticator>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub user_limits: Arc<UserIpLimits>,
    pub registry: Arc<Registry>,
    /// The storage every session of this server shares.
    pub storage: Arc<crate::mailbox::Storage>,
}

const KICKED_ERR: &str =
    "[SYS/TEMP] Too many connections not logged in; closing the oldest idle one.";

/// After this many consecutive bad commands the client is disconnected (a client that
/// is not speaking POP3 at all, or an attack).
const MAX_BAD_COMMANDS: u32 = 20;

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

enum State {
    /// RFC 1939 §4; `user` is the name given by USER, waiting for PASS.
    Authorization { user: Option<String> },
    /// RFC 1939 §5: the maildrop is open and (by default) locked.
    Transaction(Box<Maildrop>),
}

/// Per-session counters for the log line.
#[derive(Default)]
struct Stats {
    retrieved: u64,
    retrieved_bytes: u64,
    top: u64,
    deleted: u64,
    deleted_bytes: u64,
}

pub struct Session {
    ctx: Arc<Context>,
    conn: Conn,
    id: String,
    remote: SocketAddr,
    state: State,
    /// The APOP timestamp of the greeting (RFC 1939 §7), when APOP is offered.
    apop_stamp: Option<String>,
    bad_commands: u32,
    stats: Stats,
    started: Instant,
    /// The connection's slot (`crate::net::Slots`), when made by the accept loop.
    slot: Option<ConnSlot>,
    /// `login_timeout` is a total: the whole AUTHORIZATION state ends here.
    login_deadline: tokio::time::Instant,
}

impl Session {
    pub fn new(ctx: Arc<Context>, stream: Stream, remote: SocketAddr) -> Session {
        Session {
            conn: Conn::new(stream),
            id: format!("{:08x}", rand::random::<u32>()),
            remote,
            state: State::Authorization { user: None },
            apop_stamp: None,
            bad_commands: 0,
            stats: Stats::default(),
            started: Instant::now(),
            slot: None,
            login_deadline: tokio::time::Instant::now() + ctx.cfg.pop3.login_timeout,
            ctx,
        }
    }

    /// Attaches the connection's slot: released from the unauthenticated share at login;
    /// the session says -ERR and ends when dropped for a newcomer before that.
    pub fn with_slot(mut self, slot: ConnSlot) -> Session {
        self.slot = Some(slot);
        self
    }

    fn ok(&mut self, text: &str) {
        self.conn.out.extend_from_slice(b"+OK ");
        self.conn.out.extend_from_slice(text.as_bytes());
        self.conn.out.extend_from_slice(b"\r\n");
    }

    fn err(&mut self, text: &str) {
        self.conn.out.extend_from_slice(b"-ERR ");
        self.conn.out.extend_from_slice(text.as_bytes());
        self.conn.out.extend_from_slice(b"\r\n");
    }

    fn user_name(&self) -> &str {
        match &self.state {
            State::Transaction(m) => &m.user.name,
            State::Authorization { .. } => "-",
        }
    }

    /// RFC 2449 §5: the capabilities for the current state.
    fn capabilities(&self) -> Vec<String> {
        let mut caps: Vec<String> = vec!["TOP".into(), "UIDL".into()];
        if matches!(self.state, State::Authorization { .. }) {
            if !self.plaintext_refused() {
                caps.push("USER".into());
            }
            let mechs = self.sasl_mechanisms();
            if !mechs.is_empty() {
                let names: Vec<&str> = mechs.iter().map(|m| m.name()).collect();
                caps.push(format!("SASL {}", names.join(" ")));
            }
            if self.ctx.tls.is_some() && !self.conn.stream.is_tls() {
                caps.push("STLS".into());
            }
        }
        caps.push("RESP-CODES".into());
        caps.push("PIPELINING".into());
        caps.push("AUTH-RESP-CODE".into());
        let delay = self.ctx.cfg.pop3.login_delay;
        if !delay.is_zero() {
            caps.push(format!("LOGIN-DELAY {}", delay.as_secs().max(1)));
        }
        caps.push(format!("IMPLEMENTATION Loft {}", env!("CARGO_PKG_VERSION")));
        caps
    }

    fn plaintext_refused(&self) -> bool {
        crate::auth::plaintext_auth_refused(
            self.conn.stream.is_tls(),
            self.remote.ip(),
            self.ctx.cfg.auth.allow_plaintext_auth,
        )
    }

    /// Serves the connection until QUIT, disconnect, timeout or shutdown.
    pub async fn run(mut self) {
        let greeting = self.greeting();
        self.ok(&greeting);
        if self.conn.flush().await.is_err() {
            return;
        }
        let mut shutdown = self.ctx.shutdown.clone();
        let reason = loop {
            let (until, authed) = match self.state {
                State::Transaction(_) => {
                    let at = tokio::time::Instant::now() + self.ctx.cfg.pop3.autologout;
                    (at, true)
                }
                State::Authorization { .. } => (self.login_deadline, false),
            };
            let max_line = self.ctx.cfg.pop3.max_line_length;
            let line = tokio::select! {
                r = tokio::time::timeout_at(until, self.conn.read_line(max_line)) => r,
                _ = shutdown.changed() => {
                    // Nothing is deleted: the session never reached UPDATE.
                    self.err("[SYS/TEMP] Server shutting down.");
                    let _ = self.conn.flush().await;
                    break "server shutdown";
                }
                _ = kicked(self.slot.as_ref()) => break self.kicked().await,
            };
            let started = std::time::Instant::now();
            let flow = match line {
                Err(_) => {
                    // RFC 1939 §3: an autologout timer closes without entering UPDATE.
                    let (text, why) = if authed {
                        ("Disconnected for inactivity.", "inactivity")
                    } else {
                        ("Disconnected: login timed out.", "login timeout")
                    };
                    self.err(text);
                    let _ = self.conn.flush().await;
                    break why;
                }
                Ok(read) => match self.on_read(read).await {
                    Ok(flow) => flow,
                    Err(why) => break why,
                },
            };
            if self.conn.flush().await.is_err() {
                break "connection error";
            }
            self.conn.shrink();
            if let Some(d) = self.ctx.storage.after_command(started.elapsed()) {
                let storage = self.ctx.storage.clone();
                crate::net::later(d, move || storage.trim_deferred());
            }
            if flow == Flow::Close {
                break if self.bad_commands >= MAX_BAD_COMMANDS {
                    "too many bad commands"
                } else {
                    "quit"
                };
            }
        };
        if let State::Transaction(m) = &mut self.state {
            crate::net::blocking(|| m.close());
        }
        self.log_end(reason);
    }

    /// The greeting, with an APOP timestamp (RFC 1939 §7) when some user can use APOP.
    fn greeting(&mut self) -> String {
        let auth = Arc::clone(&self.ctx.auth);
        if blocking(|| auth.has_plain_passwords()) {
            self.apop_stamp = Some(format!(
                "<{}.{:x}.{}@{}>",
                std::process::id(),
                rand::random::<u64>(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                self.ctx.cfg.server.hostname
            ));
        }
        match &self.apop_stamp {
            Some(stamp) => format!("Loft POP3 ready. {stamp}"),
            None => "Loft POP3 ready.".to_string(),
        }
    }

    /// Says why the session is closed for a newer connection (the unauthenticated share
    /// was full, `net::Slots`); returns the reason for the log.
    async fn kicked(&mut self) -> &'static str {
        self.err(KICKED_ERR);
        let _ = self.conn.flush().await;
        "dropped for a newer connection"
    }

    /// One read from the client before the deadline: a command runs, or the session ends
    /// with the reason returned.
    async fn on_read(
        &mut self,
        read: std::io::Result<Option<Vec<u8>>>,
    ) -> Result<Flow, &'static str> {
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.err("Command line too long.");
                Ok(self.bad_command())
            }
            Err(e) => {
                debug!(session = %self.id, "read error: {e}");
                Err("connection error")
            }
            Ok(None) => Err("disconnected"),
            Ok(Some(_)) if self.slot.as_ref().is_some_and(|s| !s.begin_command()) => {
                Err(self.kicked().await)
            }
            Ok(Some(line)) => {
                let flow = self.command(&line).await;
                if let Some(s) = &self.slot {
                    s.end_command();
                }
                if self.slot.as_ref().is_some_and(|s| s.is_kicked()) {
                    // Dropped for a newcomer while waiting inside AUTH.
                    return Err(self.kicked().await);
                }
                Ok(flow)
            }
        }
    }

    fn log_end(&self, reason: &str) {
        match &self.state {
            State::Transaction(m) => info!(
                session = %self.id,
                user = %m.user.name,
                remote = %self.remote,
                retrieved = self.stats.retrieved,
                retrieved_bytes = self.stats.retrieved_bytes,
                top = self.stats.top,
                deleted = self.stats.deleted,
                deleted_bytes = self.stats.deleted_bytes,
                bytes_in = self.conn.bytes_in,
                bytes_out = self.conn.bytes_out,
                secs = self.started.elapsed().as_secs(),
                "pop3 logout ({reason})"
            ),
            State::Authorization { .. } => debug!(
                session = %self.id,
                remote = %self.remote,
                "pop3 connection closed before login ({reason})"
            ),
        }
    }

    fn bad_command(&mut self) -> Flow {
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.err("Too many bad commands.");
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    async fn command(&mut self, line: &[u8]) -> Flow {
        let cmd = match command::parse(line, self.ctx.cfg.pop3.max_line_length) {
            Ok(c) => c,
            Err(e) => {
                self.err(e.message);
                return self.bad_command();
            }
        };
        self.bad_commands = 0;
        // RFC 1939 §7: PASS is valid only immediately after USER.
        if !matches!(cmd, Command::Pass(_)) {
            if let State::Authorization { user } = &mut self.state {
                *user = None;
            }
        }
        match cmd {
            Command::Capa => {
                let mut out = String::from("+OK Capability list follows\r\n");
                for c in self.capabilities() {
                    out.push_str(&c);
                    out.push_str("\r\n");
                }
                out.push_str(".\r\n");
                self.conn.out.extend_from_slice(out.as_bytes());
                Flow::Continue
            }
            Command::Quit => match &self.state {
                State::Authorization { .. } => {
                    self.ok("Logging out.");
                    Flow::Close
                }
                State::Transaction(_) => {
                    self.update();
                    Flow::Close
                }
            },
            Command::User(_)
            | Command::Pass(_)
            | Command::Apop { .. }
            | Command::Auth { .. }
            | Command::Stls => {
                if matches!(self.state, State::Transaction(_)) {
                    self.err("Already logged in.");
                    return Flow::Continue;
                }
                self.authorization(cmd).await
            }
            other => {
                if matches!(self.state, State::Authorization { .. }) {
                    self.err("Not logged in.");
                    return Flow::Continue;
                }
                self.transaction(other).await;
                Flow::Continue
            }
        }
    }
}
