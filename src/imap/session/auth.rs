//! STARTTLS, LOGIN and AUTHENTICATE (RFC 3501 §6.2, RFC 4959 SASL-IR, RFC 4616 PLAIN, the
//! LOGIN mechanism, and CRAM-MD5 / SCRAM-SHA-256 through [`crate::auth::exchange`]), and
//! what happens once a user is known.

use base64::Engine;
use tracing::{info, warn};

use super::{blocking, Flow, Session, Status};
use crate::auth::exchange::{Exchange, Mech, Reply};
use crate::auth::{sasl, AuthOutcome, AuthRequest, Service, User};
use crate::imap::response::ResponseCode;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Longest SASL response line we accept.
const SASL_LINE_LIMIT: usize = 16 * 1024;

impl Session {
    pub(super) async fn starttls(&mut self, tag: &str) -> Flow {
        let Some(acceptor) = self.ctx.tls.clone() else {
            self.tagged(tag, Status::no("TLS is not configured."));
            return Flow::Continue;
        };
        if self.conn.stream.is_tls() {
            self.tagged(tag, Status::bad("TLS is already active."));
            return Flow::Continue;
        }
        self.tagged(tag, Status::ok("Begin TLS negotiation now."));
        let deadline = self.handshake_deadline();
        let stop = self.ctx.shutdown.clone();
        match self.conn.start_tls(&acceptor, deadline, stop).await {
            Ok(()) => Flow::Continue,
            Err(e) => {
                info!(session = %self.id, remote = %self.remote, "STARTTLS handshake failed: {e}");
                Flow::Close
            }
        }
    }

    /// `tls_handshake_timeout` from now, but not past the login deadline.
    fn handshake_deadline(&self) -> tokio::time::Instant {
        let hs = tokio::time::Instant::now() + self.ctx.cfg.server.tls_handshake_timeout;
        hs.min(self.login_deadline)
    }

    pub(super) async fn login(&mut self, user: &str, password: &str) -> Status {
        if self.login_disabled() {
            return Status::no_code(
                ResponseCode::PrivacyRequired,
                "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
            );
        }
        self.check_password(user, password).await
    }

    pub(super) async fn authenticate(
        &mut self,
        mechanism: &str,
        initial: Option<String>,
    ) -> Status {
        let mech = Mech::from_name(mechanism).filter(|m| self.ctx.auth.mech_allowed(*m));
        let Some(mech) = mech else {
            return Status::no("Unsupported authentication mechanism.");
        };
        if mech.is_challenge_response() {
            // Not plaintext: allowed without TLS, as Dovecot does.
            return self.challenge_response(mech, initial).await;
        }
        if self.login_disabled() {
            return Status::no_code(
                ResponseCode::PrivacyRequired,
                "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
            );
        }
        match mech {
            Mech::Plain => {
                let data = match initial {
                    Some(ir) => ir,
                    None => match self.sasl_prompt("").await {
                        Ok(line) => line,
                        Err(status) => return status,
                    },
                };
                let raw = match decode_b64(&data) {
                    Some(raw) => raw,
                    None => return Status::bad("Invalid base64 data in SASL response."),
                };
                match sasl::decode_plain(&raw) {
                    Some((_authz, user, pass)) => self.check_password(&user, &pass).await,
                    None => {
                        self.fail_delay().await;
                        Status::no_code(
                            ResponseCode::AuthenticationFailed,
                            "Authentication failed.",
                        )
                    }
                }
            }
            Mech::Login => {
                // With SASL-IR the initial response is the user name.
                let user_b64 = match initial {
                    Some(ir) => ir,
                    None => match self.sasl_prompt("VXNlcm5hbWU6").await {
                        Ok(line) => line,
                        Err(status) => return status,
                    },
                };
                let pass_b64 = match self.sasl_prompt("UGFzc3dvcmQ6").await {
                    Ok(line) => line,
                    Err(status) => return status,
                };
                let (Some(user), Some(pass)) = (decode_b64(&user_b64), decode_b64(&pass_b64))
                else {
                    return Status::bad("Invalid base64 data in SASL response.");
                };
                let user = String::from_utf8_lossy(&user).into_owned();
                let pass = String::from_utf8_lossy(&pass).into_owned();
                self.check_password(&user, &pass).await
            }
            _ => Status::no("Unsupported authentication mechanism."),
        }
    }

    /// CRAM-MD5 or SCRAM-SHA-256: challenges go out as `+ base64` continuations; SCRAM's
    /// server signature too, answered by an empty line before the tagged OK (IMAP4rev1 has
    /// no success-with-data, RFC 3501 §6.2.2 / RFC 4422 §3.6).
    async fn challenge_response(&mut self, mech: Mech, initial: Option<String>) -> Status {
        let remote = Some(self.remote.ip().to_canonical());
        let host = self.ctx.cfg.server.hostname.clone();
        let Some(mut ex) = Exchange::new(mech, &host, remote, Service::Imap) else {
            return Status::no("Unsupported authentication mechanism.");
        };
        let mut input = match initial.as_deref().map(decode_b64) {
            Some(None) => return Status::bad("Invalid base64 data in SASL response."),
            Some(Some(raw)) => Some(raw),
            None => None,
        };
        let auth = std::sync::Arc::clone(&self.ctx.auth);
        loop {
            match ex.step(&auth, input.as_deref()).await {
                Reply::Challenge(c) => {
                    let line = match self.sasl_prompt(&B64.encode(c)).await {
                        Ok(line) => line,
                        Err(status) => return status,
                    };
                    match decode_b64(&line) {
                        Some(raw) => input = Some(raw),
                        None => return Status::bad("Invalid base64 data in SASL response."),
                    }
                }
                Reply::Done(outcome) => return self.outcome(outcome),
                Reply::Malformed(_) => {
                    return Status::no_code(
                        ResponseCode::AuthenticationFailed,
                        "Authentication failed.",
                    )
                }
            }
        }
    }

    /// Sends a SASL continuation and reads the client's answer (RFC 3501 §6.2.2): `*`
    /// cancels the exchange with a tagged BAD.
    async fn sasl_prompt(&mut self, challenge: &str) -> Result<String, Status> {
        self.conn
            .out
            .extend_from_slice(format!("+ {challenge}\r\n").as_bytes());
        if self.conn.flush().await.is_err() {
            return Err(Status::bad("Connection lost."));
        }
        // The login deadline covers SASL exchanges too: a client that stops answering
        // is dropped when it passes (the session loop then says BYE).
        // Waiting for the client counts as idle for the connection slots.
        let read =
            tokio::time::timeout_at(self.login_deadline, self.conn.read_line(SASL_LINE_LIMIT));
        let Some(read) = crate::net::wait_idle(self.slot.as_ref(), read).await else {
            return Err(Status::bad("Too many connections not logged in."));
        };
        match read {
            Err(_) => Err(Status::bad("Login timed out.")),
            Ok(Ok(Some(line))) if line == b"*" => Err(Status::bad("Authentication canceled.")),
            Ok(Ok(Some(line))) => Ok(String::from_utf8_lossy(&line).into_owned()),
            Ok(Ok(None)) => Err(Status::bad("Connection lost.")),
            Ok(Err(_)) => Err(Status::bad("SASL response too long.")),
        }
    }

    async fn fail_delay(&self) {
        tokio::time::sleep(self.ctx.cfg.auth.failure_delay).await;
    }

    async fn check_password(&mut self, user: &str, password: &str) -> Status {
        let req = AuthRequest {
            user,
            password,
            remote: Some(self.remote.ip().to_canonical()),
            service: Service::Imap,
        };
        let outcome = self.ctx.auth.authenticate_for(&req).await;
        self.outcome(outcome)
    }

    fn outcome(&mut self, outcome: AuthOutcome) -> Status {
        match outcome {
            AuthOutcome::Ok(user) => self.logged_in(user),
            AuthOutcome::Failed => {
                Status::no_code(ResponseCode::AuthenticationFailed, "Authentication failed.")
            }
            AuthOutcome::TempFail(why) => {
                warn!(session = %self.id, remote = %self.remote, "authentication unavailable: {why}");
                Status::no_code(
                    ResponseCode::Unavailable,
                    "Temporary authentication failure.",
                )
            }
            AuthOutcome::Busy => {
                Status::no_code(ResponseCode::Unavailable, "Server busy; try again.")
            }
            // Refused by the brute-force limiter without a password check (already logged).
            AuthOutcome::RateLimited => Status::no_code(
                ResponseCode::Unavailable,
                "Too many failed logins; try again later.",
            ),
        }
    }

    /// The password was right: apply per-user limits and open the user's mail store.
    fn logged_in(&mut self, user: User) -> Status {
        let Some(guard) = self.ctx.user_limits.acquire(&user.name, self.remote.ip()) else {
            warn!(
                session = %self.id,
                user = %user.name,
                remote = %self.remote,
                "login refused: too many connections from this user and address (max {})",
                self.ctx.cfg.server.max_connections_per_user_ip
            );
            return Status::no_code(
                ResponseCode::Limit,
                "Maximum number of connections from user+IP exceeded.",
            );
        };
        let cfg = &self.ctx.cfg.storage;
        let opened = blocking(|| {
            let store = crate::mailbox::open_store(cfg, &user.name, user.home.as_deref())?;
            if cfg.autocreate_special_use {
                store.ensure_special_use()?;
            }
            Ok::<_, crate::mailbox::Error>(store)
        });
        match opened {
            Ok(store) => {
                info!(
                    session = %self.id,
                    user = %user.name,
                    remote = %self.remote,
                    tls = self.conn.stream.is_tls(),
                    "login"
                );
                self.store = Some(store);
                self.user = Some(user);
                self._limit = Some(guard);
                if let Some(slot) = self.slot.as_mut() {
                    slot.logged_in();
                }
                Status::ok_code(ResponseCode::Capability(self.capabilities()), "Logged in")
            }
            Err(e) => {
                warn!(session = %self.id, user = %user.name, "cannot open mail store: {e}");
                Status::no_code(
                    ResponseCode::Unavailable,
                    "Mail storage is temporarily unavailable.",
                )
            }
        }
    }
}

/// Base64 as used in SASL exchanges; `=` alone is the empty response (RFC 4959 §3).
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s == "=" {
        return Some(Vec::new());
    }
    B64.decode(s).ok()
}
