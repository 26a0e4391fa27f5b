//! One IMAP connection: greeting, the state machine of RFC 3501 §3 (not authenticated →
//! authenticated ⇄ selected → logout), command dispatch, and the untagged updates that keep
//! a client's view of the selected mailbox in step with the store.
//!
//! Storage calls block (file I/O); they run under [`crate::net::blocking`]
//! (`block_in_place`), so one worker thread is given up for their duration and other
//! connections keep running.

mod auth;
mod fetch;
mod mailboxes;
mod messages;
pub mod view;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use crate::auth::{Authenticator, User};
use crate::config::Config;
use crate::imap::command::{self, Command, ParseErrorKind, Request};
use crate::imap::response::{push_untagged_ok, ResponseCode};
use crate::mailbox::{self, Store};
use crate::net::{
    blocking, kicked, storage, Conn, ConnSlot, Cost, Stream, UserIpGuard, UserIpLimits,
};
use view::View;
use wire::Frame;

/// What every session shares: configuration, the auth core, TLS, shutdown signal, limits.
pub struct Context {
    pub cfg: Arc<Config>,
    pub auth: Arc<Authenticator>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    pub user_limits: Arc<UserIpLimits>,
    /// The storage every session of this server shares.
    pub storage: Arc<crate::mailbox::Storage>,
}

/// The tagged completion of a command.
pub struct Status {
    kind: &'static str,
    code: Option<ResponseCode>,
    text: String,
}

impl Status {
    pub fn ok(text: impl Into<String>) -> Status {
        Status {
            kind: "OK",
            code: None,
            text: text.into(),
        }
    }
    pub fn ok_code(code: ResponseCode, text: impl Into<String>) -> Status {
        Status {
            kind: "OK",
            code: Some(code),
            text: text.into(),
        }
    }
    pub fn no(text: impl Into<String>) -> Status {
        Status {
            kind: "NO",
            code: None,
            text: text.into(),
        }
    }
    pub fn no_code(code: ResponseCode, text: impl Into<String>) -> Status {
        Status {
            kind: "NO",
            code: Some(code),
            text: text.into(),
        }
    }
    pub fn bad(text: impl Into<String>) -> Status {
        Status {
            kind: "BAD",
            code: None,
            text: text.into(),
        }
    }
}

/// Whether the connection goes on after a command.
#[derive(PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

pub struct Session {
    ctx: Arc<Context>,
    conn: Conn,
    /// Short random id naming this session in every log line.
    id: String,
    remote: SocketAddr,
    user: Option<User>,
    store: Option<Arc<dyn Store>>,
    view: Option<View>,
    /// The folder the last APPEND went to, when not the selected one, kept open (its
    /// index and file map) so that a series of APPENDs (imapsync, imaplib, a migration)
    /// does not open and read its index files again for every message. Let go at SELECT
    /// and EXAMINE (the folder's last close writes flags into file names) and before any
    /// CREATE, DELETE or RENAME (a folder made again under the same name is another one).
    append_target: Option<Box<dyn mailbox::Mailbox>>,
    started: Instant,
    _limit: Option<UserIpGuard>,
    /// Set when the session must end after the current response (BYE already queued).
    closing: bool,
    /// The connection's slot (`crate::net::Slots`); `None` for sessions made outside
    /// the server's accept loop.
    slot: Option<ConnSlot>,
    /// `login_timeout` is a total: the whole unauthenticated period ends here.
    login_deadline: tokio::time::Instant,
    /// Why a command ended the session, when it was not LOGOUT (e.g. the client vanished
    /// during IDLE); for the session's last log line.
    end: Option<&'static str>,
}

/// The most messages a selected mailbox may hold for its storage work to run in place
/// (a listing of this many names takes about a millisecond).
pub(super) const SMALL_MAILBOX: u32 = 2000;

const KICKED_BYE: &[u8] =
    b"* BYE Too many connections not logged in; closing the oldest idle one.\r\n";
const KICKED_REASON: &str = "dropped for a newer connection";

/// Moved to [`crate::auth`], shared with POP3; re-exported for existing callers.
pub use crate::auth::plaintext_auth_refused;

impl Session {
    pub fn new(ctx: Arc<Context>, stream: Stream, remote: SocketAddr) -> Session {
        Session {
            conn: Conn::new(stream),
            id: format!("{:08x}", rand::random::<u32>()),
            remote,
            user: None,
            store: None,
            view: None,
            append_target: None,
            started: Instant::now(),
            _limit: None,
            closing: false,
            slot: None,
            login_deadline: tokio::time::Instant::now() + ctx.cfg.imap.login_timeout,
            end: None,
            ctx,
        }
    }

    /// Attaches the connection's slot: the session leaves the unauthenticated share at
    /// login and says BYE when dropped for a newcomer before that.
    pub fn with_slot(mut self, slot: ConnSlot) -> Session {
        self.slot = Some(slot);
        self
    }

    fn user_name(&self) -> &str {
        self.user.as_ref().map(|u| u.name.as_str()).unwrap_or("-")
    }

    /// Plaintext authentication is refused before TLS on non-loopback connections unless
    /// configured otherwise (RFC 3501 §6.2.3, LOGINDISABLED).
    fn login_disabled(&self) -> bool {
        plaintext_auth_refused(
            self.conn.stream.is_tls(),
            self.remote.ip(),
            self.ctx.cfg.auth.allow_plaintext_auth,
        )
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE");
        if self.user.is_none() {
            if !self.conn.stream.is_tls() && self.ctx.tls.is_some() {
                caps.push_str(" STARTTLS");
            }
            // Plaintext mechanisms only where plaintext is allowed; challenge-response
            // ones wherever some user's stored password can use them (RFC 3501 §6.2.3).
            let disabled = self.login_disabled();
            if disabled {
                caps.push_str(" LOGINDISABLED");
            }
            let auth = Arc::clone(&self.ctx.auth);
            for m in blocking(|| auth.mechanisms()) {
                if !(disabled && m.is_plaintext()) {
                    caps.push_str(" AUTH=");
                    caps.push_str(m.name());
                }
            }
        } else {
            caps.push_str(" NAMESPACE UNSELECT CHILDREN SPECIAL-USE UIDPLUS MOVE STATUS=SIZE");
            caps.push_str(&format!(" APPENDLIMIT={}", self.ctx.cfg.imap.append_limit));
        }
        caps
    }

    /// Serves the connection until LOGOUT, disconnect, timeout or shutdown.
    pub async fn run(mut self) {
        let code = ResponseCode::Capability(self.capabilities());
        let text = format!("{} Loft ready.", self.ctx.cfg.server.hostname);
        push_untagged_ok(&mut self.conn.out, &code, &text);
        if self.conn.flush().await.is_err() {
            return;
        }
        let mut shutdown = self.ctx.shutdown.clone();
        let reason = loop {
            let (until, timeout_bye, timeout_reason) = if self.user.is_some() {
                let at = tokio::time::Instant::now() + self.ctx.cfg.imap.autologout;
                (at, "* BYE Disconnected for inactivity.\r\n", "inactivity")
            } else {
                (
                    self.login_deadline,
                    "* BYE Login timed out.\r\n",
                    "login timeout",
                )
            };
            let (max_line, append_limit) = (
                self.ctx.cfg.imap.max_line_length,
                self.ctx.cfg.imap.append_limit,
            );
            let read = wire::read_frame(&mut self.conn, max_line, append_limit);
            let frame = tokio::select! {
                r = tokio::time::timeout_at(until, read) => r,
                _ = shutdown.changed() => {
                    self.conn.out.extend_from_slice(b"* BYE Server shutting down.\r\n");
                    let _ = self.conn.flush().await;
                    break "server shutdown";
                }
                _ = kicked(self.slot.as_ref()) => {
                    self.conn.out.extend_from_slice(KICKED_BYE);
                    let _ = self.conn.flush().await;
                    break KICKED_REASON;
                }
            };
            let frame = match frame {
                Err(_) => {
                    self.conn.out.extend_from_slice(timeout_bye.as_bytes());
                    let _ = self.conn.flush().await;
                    break timeout_reason;
                }
                Ok(Err(e)) => {
                    debug!(session = %self.id, "read error: {e}");
                    break "connection error";
                }
                Ok(Ok(None)) => break "disconnected",
                Ok(Ok(Some(frame))) => frame,
            };
            if self.slot.as_ref().is_some_and(|s| !s.begin_command()) {
                self.conn.out.extend_from_slice(KICKED_BYE);
                let _ = self.conn.flush().await;
                break KICKED_REASON;
            }
            let started = std::time::Instant::now();
            let flow = self.frame(frame).await;
            if let Some(s) = &self.slot {
                s.end_command();
                if s.is_kicked() {
                    // Dropped for a newcomer while waiting inside the command (SASL).
                    self.conn.out.extend_from_slice(KICKED_BYE);
                    let _ = self.conn.flush().await;
                    break KICKED_REASON;
                }
            }
            if self.conn.flush().await.is_err() {
                break "connection error";
            }
            self.conn.shrink();
            if let Some(d) = self.ctx.storage.after_command(started.elapsed()) {
                let storage = self.ctx.storage.clone();
                crate::net::later(d, move || storage.trim_deferred());
            }
            if self.closing {
                break "mailbox UIDVALIDITY changed";
            }
            if flow == Flow::Close {
                break self.end.take().unwrap_or("logout");
            }
        };
        self.deselect();
        if let Some(user) = &self.user {
            info!(
                session = %self.id,
                user = %user.name,
                remote = %self.remote,
                bytes_in = self.conn.bytes_in,
                bytes_out = self.conn.bytes_out,
                secs = self.started.elapsed().as_secs(),
                "logout ({reason})"
            );
        } else {
            debug!(session = %self.id, remote = %self.remote, "connection closed before login ({reason})");
        }
    }

    /// Lets go of the selected mailbox, closing it (the store's work for the last close
    /// runs here, off the async threads).
    fn deselect(&mut self) {
        if let Some(mut view) = self.view.take() {
            crate::net::blocking(|| view.mailbox.close());
        }
    }

    async fn frame(&mut self, frame: Frame) -> Flow {
        match frame {
            Frame::Command(bytes) => self.command(&bytes).await,
            Frame::Append(head) => self.append(head).await,
            Frame::Refused {
                tag,
                message,
                fatal,
            } => {
                self.tagged_bad(tag.as_deref(), &message);
                if fatal {
                    self.conn.out.extend_from_slice(b"* BYE Too much data.\r\n");
                    Flow::Close
                } else {
                    Flow::Continue
                }
            }
        }
    }

    fn tagged_bad(&mut self, tag: Option<&str>, message: &str) {
        let line = format!("{} BAD {}\r\n", tag.unwrap_or("*"), message);
        self.conn.out.extend_from_slice(line.as_bytes());
    }

    fn tagged(&mut self, tag: &str, status: Status) {
        let mut line = format!("{} {} ", tag, status.kind);
        if let Some(code) = status.code {
            line.push_str(&format!("[{code}] "));
        }
        line.push_str(&status.text);
        line.push_str("\r\n");
        self.conn.out.extend_from_slice(line.as_bytes());
    }

    /// A storage error as a NO response; the detail goes to the log.
    fn storage_error(&self, what: &str, e: &mailbox::Error) -> Status {
        if let Some(detail) = &e.detail {
            warn!(session = %self.id, user = %self.user_name(), "{what}: {detail}");
        }
        Status::no_code(crate::imap::response::code_for(e.kind), e.text.clone())
    }

    async fn command(&mut self, bytes: &[u8]) -> Flow {
        let Request { tag, command } =
            match command::parse_with_limit(bytes, self.ctx.cfg.imap.max_nesting) {
                Ok(req) => req,
                Err(e) => {
                    if e.kind == ParseErrorKind::BadCharset {
                        if let Some(tag) = e.tag {
                            self.tagged(&tag, Status::no_code(ResponseCode::BadCharset, e.message));
                            return Flow::Continue;
                        }
                    }
                    let msg = format!("Error in IMAP command: {}", e.message);
                    self.tagged_bad(e.tag.as_deref(), &msg);
                    return Flow::Continue;
                }
            };
        let (status, flow) = self.dispatch(&tag, command).await;
        if let Some(status) = status {
            self.tagged(&tag, status);
        }
        flow
    }

    /// Runs one command. `None` when the command already sent its tagged response.
    async fn dispatch(&mut self, tag: &str, cmd: Command) -> (Option<Status>, Flow) {
        let authed = self.user.is_some();
        let selected = self.view.is_some();
        // RFC 3501 §7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH.
        let mut allow_expunge = true;
        // SELECT/EXAMINE just synced the new view: another sync would find nothing to
        // announce (and on a folder changed a moment ago it would list it again).
        let mut synced = false;
        let status = match cmd {
            Command::Capability => {
                let caps = format!("* CAPABILITY {}\r\n", self.capabilities());
                self.conn.out.extend_from_slice(caps.as_bytes());
                Status::ok("Capability completed.")
            }
            Command::Noop => Status::ok("NOOP completed."),
            Command::Logout => {
                self.conn.out.extend_from_slice(b"* BYE Logging out\r\n");
                return (Some(Status::ok("Logout completed.")), Flow::Close);
            }
            Command::StartTls if !authed => return (None, self.starttls(tag).await),
            Command::Authenticate {
                mechanism,
                initial_response,
            } if !authed => self.authenticate(&mechanism, initial_response).await,
            Command::Login { user, password } if !authed => self.login(&user, &password).await,
            Command::StartTls | Command::Authenticate { .. } | Command::Login { .. } => {
                Status::bad("Already authenticated.")
            }
            // RFC 2971 §3.1: ID is valid in every state (clients send it before LOGIN).
            Command::Id { params } => self.id(params),
            _ if !authed => Status::bad("Please log in first."),
            Command::Enable { .. } => {
                // No ENABLE-able extension is offered yet (RFC 5161 §3.1: an empty list).
                self.conn.out.extend_from_slice(b"* ENABLED\r\n");
                Status::ok("Enabled.")
            }
            Command::Namespace => {
                self.conn
                    .out
                    .extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                Status::ok("Namespace completed.")
            }
            Command::Select { mailbox } => {
                synced = true;
                self.append_target = None;
                self.select(&mailbox, false)
            }
            Command::Examine { mailbox } => {
                synced = true;
                self.append_target = None;
                self.select(&mailbox, true)
            }
            Command::Create { mailbox } => {
                self.append_target = None;
                self.create(&mailbox)
            }
            Command::Delete { mailbox } => {
                self.append_target = None;
                self.delete(&mailbox)
            }
            Command::Rename { from, to } => {
                self.append_target = None;
                self.rename(&from, &to)
            }
            Command::Subscribe { mailbox } => self.subscribe(&mailbox, true),
            Command::Unsubscribe { mailbox } => self.subscribe(&mailbox, false),
            Command::List {
                reference,
                patterns,
                options,
            } => self.list(&reference, &patterns, &options),
            Command::Lsub { reference, pattern } => self.lsub(&reference, &pattern),
            Command::Status { mailbox, items } => self.status(&mailbox, &items),
            Command::Idle => match self.idle().await {
                (_, Flow::Close) => return (None, Flow::Close),
                (status, Flow::Continue) => status,
            },
            _ if !selected => Status::bad("No mailbox selected."),
            Command::Check => Status::ok("Check completed."),
            Command::Close => self.close(true),
            Command::Unselect => self.close(false),
            Command::Expunge => self.expunge(None),
            Command::UidExpunge { set } => self.expunge(Some(&set)),
            Command::Search {
                uid,
                charset: _,
                key,
            } => {
                allow_expunge = false;
                self.search(uid, &key)
            }
            Command::Fetch { uid, set, atts } => {
                allow_expunge = false;
                self.fetch(uid, &set, &atts).await
            }
            Command::Store {
                uid,
                set,
                op,
                silent,
                flags,
            } => {
                allow_expunge = false;
                self.store(uid, &set, op, silent, &flags)
            }
            Command::Copy { uid, set, mailbox } => self.copy(uid, &set, &mailbox, false),
            Command::Move { uid, set, mailbox } => self.copy(uid, &set, &mailbox, true),
        };
        if !synced {
            self.send_updates(allow_expunge);
        }
        (Some(status), Flow::Continue)
    }

    /// How storage work on the selected mailbox runs ([`crate::net::storage`]): in place
    /// when the mailbox holds at most [`SMALL_MAILBOX`] messages and the work cannot wait
    /// for an fsync (`writes` under `[storage] fsync` other than "never").
    pub(super) fn cost(&self, writes: bool) -> Cost {
        let small = self
            .view
            .as_ref()
            .is_some_and(|v| v.exists() <= SMALL_MAILBOX);
        let syncs = writes && self.ctx.cfg.storage.fsync != crate::config::FsyncMode::Never;
        Cost::small_if(small && !syncs)
    }

    /// Queues untagged EXISTS/EXPUNGE/FETCH for changes made elsewhere. A sync of a small
    /// mailbox runs in place: it reads the index and lists two small directories (its
    /// rare writes, claiming `\Recent` for new mail, are not worth a trip).
    fn send_updates(&mut self, allow_expunge: bool) {
        let cost = self.cost(false);
        let Some(view) = self.view.as_mut() else {
            return;
        };
        let res = storage(cost, || view.update(allow_expunge, &mut self.conn.out));
        match res {
            Ok(true) => {}
            Ok(false) => {
                let mailbox = view.mailbox.name().to_string();
                warn!(
                    session = %self.id,
                    user = %self.user_name(),
                    "UIDVALIDITY of {mailbox} changed while selected; disconnecting so the client resynchronises"
                );
                self.deselect();
                self.conn
                    .out
                    .extend_from_slice(b"* BYE Mailbox UIDVALIDITY changed, please reconnect.\r\n");
                self.closing = true;
            }
            Err(e) => {
                warn!(session = %self.id, user = %self.user_name(), "mailbox sync failed: {e}")
            }
        }
    }

    fn id(&mut self, params: Option<Vec<(String, Option<String>)>>) -> Status {
        if let Some(params) = params {
            let desc: Vec<String> = params
                .iter()
                .take(30)
                .map(|(k, v)| format!("{}={}", k, v.as_deref().unwrap_or("NIL")))
                .collect();
            info!(session = %self.id, user = %self.user_name(), "client ID: {}", desc.join(", "));
        }
        let line = format!(
            "* ID (\"name\" \"Loft\" \"version\" \"{}\")\r\n",
            env!("CARGO_PKG_VERSION")
        );
        self.conn.out.extend_from_slice(line.as_bytes());
        Status::ok("ID completed.")
    }
}

#[cfg(test)]
mod tests {
    use super::plaintext_auth_refused;

    #[test]
    fn plaintext_policy() {
        let lan: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: std::net::IpAddr = "::1".parse().unwrap();
        assert!(plaintext_auth_refused(false, lan, false));
        assert!(!plaintext_auth_refused(true, lan, false));
        assert!(!plaintext_auth_refused(false, lan, true));
        assert!(!plaintext_auth_refused(false, lo, false));
        assert!(!plaintext_auth_refused(false, lo6, false));
    }
}
