//! The SASL mechanisms by name, and the challenge-response exchanges (CRAM-MD5, RFC 2195;
//! SCRAM-SHA-256, RFC 5802/7677) as one small driver that IMAP AUTHENTICATE, POP3 AUTH and
//! the auth socket all run: the protocol decodes the client's base64 and calls
//! [`Exchange::step`]; the exchange answers with a challenge to send, or the outcome.
//! Every check goes through the authenticator's one policy path (rate limits, failure
//! delay, one log line). Knows no protocol syntax; PLAIN and LOGIN stay with the protocols.

use std::net::IpAddr;

use tracing::warn;

use super::{cram, scram, AuthOutcome, Authenticator, Service, User};

/// A SASL mechanism Loft can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mech {
    Plain,
    Login,
    CramMd5,
    ScramSha256,
}

impl Mech {
    pub const ALL: [Mech; 4] = [Mech::Plain, Mech::Login, Mech::CramMd5, Mech::ScramSha256];

    pub fn name(self) -> &'static str {
        match self {
            Mech::Plain => "PLAIN",
            Mech::Login => "LOGIN",
            Mech::CramMd5 => "CRAM-MD5",
            Mech::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// Case-insensitive, as SASL mechanism names are (RFC 4422 §3.1).
    pub fn from_name(s: &str) -> Option<Mech> {
        Mech::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
    }

    /// Sends the password itself: refused without TLS unless allowed (RFC 3501 §6.2.3).
    /// The challenge-response mechanisms are allowed on any connection, as Dovecot does.
    pub fn is_plaintext(self) -> bool {
        matches!(self, Mech::Plain | Mech::Login)
    }

    /// The MECH flags of Dovecot's auth protocol for this mechanism.
    pub fn socket_flags(self) -> &'static str {
        match self {
            Mech::Plain | Mech::Login => "plaintext",
            Mech::CramMd5 => "dictionary\tactive",
            Mech::ScramSha256 => "mutual-auth",
        }
    }

    /// A challenge-response mechanism that [`Exchange`] runs.
    pub fn is_challenge_response(self) -> bool {
        !self.is_plaintext()
    }
}

/// What the protocol does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send this challenge (raw; the protocol base64-encodes it) and call
    /// [`Exchange::step`] again with the client's decoded answer.
    Challenge(Vec<u8>),
    /// The exchange is over. `Ok` only after the whole mechanism succeeded (for SCRAM,
    /// after the client acknowledged the server signature).
    Done(AuthOutcome),
    /// The client's message broke the mechanism's grammar: fail the exchange (logged,
    /// and the failure delay already served). The text is safe to show the client.
    Malformed(&'static str),
}

enum Stage {
    Start,
    CramResponse {
        challenge: String,
    },
    ScramFirst,
    ScramFinal(Box<ScramPending>),
    /// The server signature was sent; waiting for the client's empty answer.
    ScramAck(User),
    Finished,
}

/// State kept between SCRAM's first and final messages.
pub(crate) struct ScramPending {
    pub user: String,
    pub gs2_header: String,
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub client_first_bare: String,
    pub server_first: String,
}

/// One running challenge-response exchange.
pub struct Exchange {
    mech: Mech,
    stage: Stage,
    hostname: String,
    remote: Option<IpAddr>,
    service: Service,
    /// The user name, once the client has said it.
    user: Option<String>,
    /// Test hook: a fixed server nonce (RFC 7677 example).
    fixed_nonce: Option<String>,
}

impl Exchange {
    /// `None` for PLAIN and LOGIN, which the protocols run themselves.
    pub fn new(
        mech: Mech,
        hostname: &str,
        remote: Option<IpAddr>,
        service: Service,
    ) -> Option<Exchange> {
        mech.is_challenge_response().then(|| Exchange {
            mech,
            stage: Stage::Start,
            hostname: hostname.to_string(),
            remote,
            service,
            user: None,
            fixed_nonce: None,
        })
    }

    #[cfg(test)]
    pub(crate) fn with_nonce(mut self, nonce: &str) -> Exchange {
        self.fixed_nonce = Some(nonce.to_string());
        self
    }

    pub fn mech(&self) -> Mech {
        self.mech
    }

    /// The user name the client gave, once it has (for `user=` in auth-socket answers).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    async fn malformed(&mut self, auth: &Authenticator, why: &'static str) -> Reply {
        self.stage = Stage::Finished;
        let remote = self.remote.map(|r| r.to_string());
        // Like the core's failure line; `{:?}` escapes what a client put in the name.
        warn!(user = ?self.user.as_deref().unwrap_or("-"), mech = self.mech.name(),
            service = %self.service, remote = %remote.as_deref().unwrap_or("-"),
            "authentication failed: malformed SASL message: {why}");
        tokio::time::sleep(auth.failure_delay()).await;
        Reply::Malformed(why)
    }

    /// Advances the exchange. `input` is the client's decoded message: `None` at the start
    /// when there was no initial response (an empty initial response counts as none).
    pub async fn step(&mut self, auth: &Authenticator, input: Option<&[u8]>) -> Reply {
        let stage = std::mem::replace(&mut self.stage, Stage::Finished);
        match (stage, input) {
            (Stage::Start, input) if self.mech == Mech::CramMd5 => {
                // RFC 2195: the server speaks first; there is no initial response.
                if input.is_some_and(|i| !i.is_empty()) {
                    return self
                        .malformed(auth, "CRAM-MD5 takes no initial response")
                        .await;
                }
                let challenge = cram::challenge(&self.hostname);
                let out = challenge.clone().into_bytes();
                self.stage = Stage::CramResponse { challenge };
                Reply::Challenge(out)
            }
            (Stage::CramResponse { challenge }, Some(resp)) => {
                let Some((user, digest)) = cram::parse_response(resp) else {
                    return self.malformed(auth, "Invalid CRAM-MD5 response").await;
                };
                self.user = Some(user.clone());
                let out = auth
                    .verify_cram(&user, &challenge, digest, self.remote, self.service)
                    .await;
                Reply::Done(out)
            }
            (Stage::Start, None) | (Stage::Start, Some([])) => {
                // SCRAM is client-first: ask for the client-first-message.
                self.stage = Stage::ScramFirst;
                Reply::Challenge(Vec::new())
            }
            (Stage::Start, Some(first)) | (Stage::ScramFirst, Some(first)) => {
                self.scram_first(auth, first).await
            }
            (Stage::ScramFinal(p), Some(fin)) => {
                let (out, server_final) =
                    auth.verify_scram(*p, fin, self.remote, self.service).await;
                match (out, server_final) {
                    (AuthOutcome::Ok(user), Some(v)) => {
                        self.stage = Stage::ScramAck(user);
                        Reply::Challenge(v.into_bytes())
                    }
                    (out, _) => Reply::Done(out),
                }
            }
            (Stage::ScramAck(user), Some([])) => Reply::Done(AuthOutcome::Ok(user)),
            (Stage::ScramAck(_), Some(_)) => {
                self.malformed(auth, "Unexpected data after the server signature")
                    .await
            }
            (_, _) => self.malformed(auth, "Unexpected SASL step").await,
        }
    }

    async fn scram_first(&mut self, auth: &Authenticator, first: &[u8]) -> Reply {
        let cf = match scram::parse_client_first(first) {
            Ok(cf) => cf,
            Err(why) => return self.malformed(auth, scram_reason(why)).await,
        };
        self.user = Some(cf.user.clone());
        // Nobody may act as someone else (no master users), as for PLAIN.
        if cf.authzid.as_ref().is_some_and(|a| *a != cf.user) {
            return self
                .malformed(auth, "Authorization identity differs from the user")
                .await;
        }
        let (salt, iterations) = auth.scram_salt(&cf.user).await;
        let server_part = self.fixed_nonce.clone().unwrap_or_else(scram::new_nonce);
        let nonce = format!("{}{server_part}", cf.client_nonce);
        let server_first = scram::server_first(&nonce, &salt, iterations);
        let out = server_first.clone().into_bytes();
        self.stage = Stage::ScramFinal(Box::new(ScramPending {
            user: cf.user,
            gs2_header: cf.gs2_header,
            nonce,
            salt,
            iterations,
            client_first_bare: cf.bare,
            server_first,
        }));
        Reply::Challenge(out)
    }
}

/// The parse errors are static texts already; this keeps one place to map them.
fn scram_reason(why: &'static str) -> &'static str {
    match why {
        "channel binding is not supported" => "Channel binding is not supported",
        "mandatory extension not supported" => "Unsupported SCRAM extension",
        _ => "Invalid SCRAM-SHA-256 message",
    }
}

#[cfg(test)]
mod tests;
