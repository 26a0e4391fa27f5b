//! The AUTHORIZATION state: STLS (RFC 2595 §4), USER/PASS and APOP (RFC 1939 §7),
//! AUTH PLAIN/LOGIN with initial responses and `*` cancel (RFC 5034), CRAM-MD5 and
//! SCRAM-SHA-256 through [`crate::auth::exchange`], and the step into
//! TRANSACTION: login delay, per-user limits, the maildrop lock, opening INBOX.

use base64::Engine;
use tracing::{info, warn};

use super::transaction::Maildrop;
use super::{blocking, Command, Flow, Session, State};
use crate::auth::exchange::{Exchange, Mech, Reply};
use crate::auth::{sasl, AuthOutcome, AuthResult, User};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const PLAINTEXT_REFUSED: &str =
    "[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";
const AUTH_FAILED: &str = "[AUTH] Authentication failed.";

impl Session {
    pub(super) async fn authorization(&mut self, cmd: Command) -> Flow {
        // Any command but PASS forgets a pending USER (RFC 1939 §7: PASS follows USER).
        let pending = match &mut self.state {
            State::Authorization { user } => user.take(),
            State::Transaction(_) => None,
        };
        match cmd {
            Command::Stls => return self.stls().await,
            Command::User(name) => {
                if self.plaintext_refused() {
                    self.err(PLAINTEXT_REFUSED);
                } else {
                    self.state = State::Authorization { user: Some(name) };
                    self.ok("Send your password.");
                }
            }
            Command::Pass(password) => match pending {
                None => self.err("No user name given (send USER first)."),
                Some(_) if self.plaintext_refused() => self.err(PLAINTEXT_REFUSED),
                Some(name) => self.check_password(&name, &password).await,
            },
            Command::Apop { user, digest } => self.apop(&user, &digest).await,
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial).await,
            _ => self.err("Not logged in."),
        }
        Flow::Continue
    }

    async fn stls(&mut self) -> Flow {
        let Some(acceptor) = self.ctx.tls.clone() else {
            self.err("TLS is not configured.");
            return Flow::Continue;
        };
        if self.conn.stream.is_tls() {
            self.err("TLS is already active.");
            return Flow::Continue;
        }
        self.ok("Begin TLS negotiation now.");
        let hs = tokio::time::Instant::now() + self.ctx.cfg.server.tls_handshake_timeout;
        let stop = self.ctx.shutdown.clone();
        match self
            .conn
            .start_tls(&acceptor, hs.min(self.login_deadline), stop)
            .await
        {
            Ok(()) => Flow::Continue,
            Err(e) => {
                info!(session = %self.id, remote = %self.remote, "STLS handshake failed: {e}");
                Flow::Close
            }
        }
    }

    async fn check_password(&mut self, name: &str, password: &str) {
        let auth = std::sync::Arc::clone(&self.ctx.auth);
        match auth
            .authenticate(name, password, self.remote.ip().to_canonical())
            .await
        {
            AuthResult::Ok(user) => self.logged_in(user),
            AuthResult::Failed => self.err(AUTH_FAILED),
            AuthResult::TempFail(why) => {
                warn!(session = %self.id, remote = %self.remote, "authentication unavailable: {why}");
                self.err("[SYS/TEMP] Temporary authentication failure.");
            }
        }
    }

    /// RFC 1939 §7 APOP: digest = MD5(timestamp + secret), for users whose password is
    /// stored in clear.
    async fn apop(&mut self, name: &str, digest: &str) {
        let Some(stamp) = self.apop_stamp.clone() else {
            self.err("APOP is not available.");
            return;
        };
        let remote = Some(self.remote.ip().to_canonical());
        let outcome = self
            .ctx
            .auth
            .verify_apop(name, &stamp, digest, remote)
            .await;
        self.auth_outcome(outcome);
    }

    /// Answers the outcome of a check made through the authenticator.
    fn auth_outcome(&mut self, outcome: AuthOutcome) {
        match outcome {
            AuthOutcome::Ok(user) => self.logged_in(user),
            AuthOutcome::Failed => self.err(AUTH_FAILED),
            AuthOutcome::RateLimited => {
                self.err("[LOGIN-DELAY] Too many failed logins; try again later.")
            }
            AuthOutcome::Busy => self.err("[SYS/TEMP] Server busy; try again."),
            AuthOutcome::TempFail(why) => {
                warn!(session = %self.id, remote = %self.remote, "authentication unavailable: {why}");
                self.err("[SYS/TEMP] Temporary authentication failure.");
            }
        }
    }

    /// RFC 5034 AUTH. Without a mechanism: the list (as Dovecot answers RFC 1734-era
    /// clients).
    async fn auth(&mut self, mechanism: Option<String>, initial: Option<String>) {
        let Some(name) = mechanism else {
            let mut out = b"+OK\r\n".to_vec();
            for m in self.sasl_mechanisms() {
                out.extend_from_slice(m.name().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b".\r\n");
            self.conn.out.extend_from_slice(&out);
            return;
        };
        let mech = Mech::from_name(&name).filter(|m| self.ctx.auth.mech_allowed(*m));
        let Some(mech) = mech else {
            self.err("Unsupported authentication mechanism.");
            return;
        };
        if mech.is_challenge_response() {
            // Not plaintext: allowed without TLS, as Dovecot does.
            self.challenge_response(mech, initial).await;
            return;
        }
        if self.plaintext_refused() {
            self.err(PLAINTEXT_REFUSED);
            return;
        }
        match mech {
            Mech::Plain => {
                let data = match initial {
                    Some(ir) => ir,
                    None => match self.sasl_prompt("").await {
                        Some(line) => line,
                        None => return,
                    },
                };
                let decoded = decode_b64(&data).and_then(|raw| sasl::decode_plain(&raw));
                match decoded {
                    Some((_authz, user, pass)) => self.check_password(&user, &pass).await,
                    None => {
                        warn!(session = %self.id, remote = %self.remote, "malformed AUTH PLAIN response");
                        tokio::time::sleep(self.ctx.auth.failure_delay()).await;
                        self.err(AUTH_FAILED);
                    }
                }
            }
            Mech::Login => {
                // With an initial response (RFC 5034 §4) it is the user name.
                let user_b64 = match initial {
                    Some(ir) => ir,
                    None => match self.sasl_prompt("VXNlcm5hbWU6").await {
                        Some(line) => line,
                        None => return,
                    },
                };
                let Some(pass_b64) = self.sasl_prompt("UGFzc3dvcmQ6").await else {
                    return;
                };
                match (decode_b64(&user_b64), decode_b64(&pass_b64)) {
                    (Some(u), Some(p)) => {
                        let (u, p) = (String::from_utf8_lossy(&u), String::from_utf8_lossy(&p));
                        self.check_password(&u, &p).await
                    }
                    _ => {
                        tokio::time::sleep(self.ctx.auth.failure_delay()).await;
                        self.err(AUTH_FAILED);
                    }
                }
            }
            _ => self.err("Unsupported authentication mechanism."),
        }
    }

    /// The mechanisms to list in CAPA's SASL line and AUTH without argument: those usable
    /// now, without the plaintext ones where plaintext is refused.
    pub(super) fn sasl_mechanisms(&self) -> Vec<Mech> {
        let refused = self.plaintext_refused();
        let auth = std::sync::Arc::clone(&self.ctx.auth);
        blocking(|| auth.mechanisms())
            .into_iter()
            .filter(|m| !(refused && m.is_plaintext()))
            .collect()
    }

    /// CRAM-MD5 or SCRAM-SHA-256 (RFC 5034 §4): challenges as `+ base64`; SCRAM's server
    /// signature too, answered by an empty line before +OK (RFC 5034 has no
    /// success-with-data).
    async fn challenge_response(&mut self, mech: Mech, initial: Option<String>) {
        let remote = Some(self.remote.ip().to_canonical());
        let host = self.ctx.cfg.server.hostname.clone();
        let Some(mut ex) = Exchange::new(mech, &host, remote, crate::auth::Service::Pop3) else {
            self.err("Unsupported authentication mechanism.");
            return;
        };
        let auth = std::sync::Arc::clone(&self.ctx.auth);
        let mut input = initial.as_deref().map(decode_b64);
        loop {
            let reply = match input.take() {
                Some(None) => {
                    tokio::time::sleep(auth.failure_delay()).await;
                    self.err("[AUTH] Invalid base64 data in SASL response.");
                    return;
                }
                Some(Some(raw)) => ex.step(&auth, Some(&raw)).await,
                None => ex.step(&auth, None).await,
            };
            match reply {
                Reply::Challenge(c) => {
                    let Some(line) = self.sasl_prompt(&B64.encode(c)).await else {
                        return;
                    };
                    input = Some(decode_b64(&line));
                }
                Reply::Done(AuthOutcome::Ok(user)) => return self.logged_in(user),
                Reply::Done(AuthOutcome::Failed) | Reply::Malformed(_) => {
                    return self.err(AUTH_FAILED)
                }
                Reply::Done(AuthOutcome::RateLimited) => {
                    return self.err("[LOGIN-DELAY] Too many failed logins; try again later.")
                }
                Reply::Done(AuthOutcome::Busy) => {
                    return self.err("[SYS/TEMP] Server busy; try again.")
                }
                Reply::Done(AuthOutcome::TempFail(why)) => {
                    warn!(session = %self.id, remote = %self.remote, "authentication unavailable: {why}");
                    return self.err("[SYS/TEMP] Temporary authentication failure.");
                }
            }
        }
    }

    /// Sends `+ challenge` and reads the answer (RFC 5034 §4). `None` (with the -ERR
    /// already queued) when the client cancels with `*`, the line is too long or the
    /// connection ends.
    async fn sasl_prompt(&mut self, challenge: &str) -> Option<String> {
        self.conn
            .out
            .extend_from_slice(format!("+ {challenge}\r\n").as_bytes());
        if self.conn.flush().await.is_err() {
            return None;
        }
        let limit = self.ctx.cfg.pop3.max_line_length;
        // The login deadline covers SASL exchanges too.
        let read = tokio::time::timeout_at(self.login_deadline, self.conn.read_line(limit));
        // Waiting for the client counts as idle for the connection slots.
        let read = crate::net::wait_idle(self.slot.as_ref(), read).await?;
        match read {
            Err(_) => {
                self.err("Login timed out.");
                None
            }
            Ok(Ok(Some(line))) if line == b"*" => {
                self.err("Authentication canceled.");
                None
            }
            Ok(Ok(Some(line))) => Some(String::from_utf8_lossy(&line).into_owned()),
            Ok(Ok(None)) => None,
            Ok(Err(_)) => {
                self.err("SASL response too long.");
                None
            }
        }
    }

    /// The credentials were right: apply the login delay, per-user limits and the
    /// maildrop lock, open INBOX and enter TRANSACTION (RFC 1939 §4).
    fn logged_in(&mut self, user: User) {
        let reg = std::sync::Arc::clone(&self.ctx.registry);
        if let Err(left) = reg.check_login_delay(&user.name, self.ctx.cfg.pop3.login_delay) {
            info!(session = %self.id, user = %user.name, remote = %self.remote, "login refused: login delay ({}s left)", left.as_secs());
            self.err("[LOGIN-DELAY] Logged in too recently; try again later.");
            return;
        }
        let Some(limit) = self.ctx.user_limits.acquire(&user.name, self.remote.ip()) else {
            warn!(
                session = %self.id,
                user = %user.name,
                remote = %self.remote,
                "login refused: too many connections from this user and address (max {})",
                self.ctx.cfg.server.max_connections_per_user_ip
            );
            self.err("[SYS/TEMP] Maximum number of connections from user+IP exceeded.");
            return;
        };
        let lock = if self.ctx.cfg.pop3.lock_mailbox {
            match reg.lock(&user.name) {
                Some(l) => Some(l),
                None => {
                    info!(session = %self.id, user = %user.name, remote = %self.remote, "login refused: maildrop in use by another POP3 session");
                    self.err("[IN-USE] Mailbox is locked by another POP3 session.");
                    return;
                }
            }
        } else {
            None
        };
        let storage = &self.ctx.storage;
        let opened = blocking(|| Maildrop::open(storage, user.clone(), lock, limit));
        match opened {
            Ok(drop) => {
                info!(
                    session = %self.id,
                    user = %user.name,
                    remote = %self.remote,
                    tls = self.conn.stream.is_tls(),
                    messages = drop.count(),
                    "pop3 login"
                );
                let text = format!(
                    "Logged in, {} messages ({} octets).",
                    drop.live_count, drop.live_size
                );
                self.state = State::Transaction(Box::new(drop));
                if let Some(slot) = self.slot.as_mut() {
                    slot.logged_in();
                }
                self.ok(&text);
            }
            Err(e) => {
                warn!(session = %self.id, user = %user.name, "cannot open INBOX: {e}");
                match e.kind {
                    // RFC 2449 §8.1.1: the maildrop is in use (a conversion holds it).
                    crate::mailbox::ErrorKind::InUse => {
                        self.err("[IN-USE] Mail is being converted, try again later.")
                    }
                    _ => self.err("[SYS/TEMP] Mail storage is temporarily unavailable."),
                }
            }
        }
    }
}

/// Base64 of a SASL response; `=` alone is the empty response (RFC 5034 §4).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s == "=" {
        return Some(Vec::new());
    }
    B64.decode(s).ok()
}
