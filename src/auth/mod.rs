//! Authentication: the passwd-file passdb, password schemes, SASL mechanisms and the
//! failure delay. One core, used by IMAP now and POP3 and the auth socket later.

use std::net::IpAddr;
use std::path::PathBuf;

/// A successfully authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The login name as stored in the passwd-file.
    pub name: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<PathBuf>,
}

/// The outcome of a password check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthResult {
    Ok(User),
    /// Unknown user or wrong password: indistinguishable on purpose.
    Failed,
    /// The passdb could not be consulted (unreadable file…): try again later.
    TempFail(String),
}

/// The authentication core. Cheap to share (`Arc<Authenticator>`).
pub struct Authenticator {
    _cfg: crate::config::AuthConfig,
}

impl Authenticator {
    /// Loads the passwd-file. An unreadable file is an error at startup.
    pub fn new(cfg: &crate::config::AuthConfig) -> Result<Authenticator, String> {
        Ok(Authenticator { _cfg: cfg.clone() })
    }

    /// Checks a user name and password. Hash verification runs on the blocking pool; on
    /// failure the configured failure delay is served before returning, identically for an
    /// unknown user and a wrong password. `remote` is for logging and rate limits.
    pub async fn authenticate(&self, user: &str, password: &str, remote: IpAddr) -> AuthResult {
        let _ = (user, password, remote);
        AuthResult::Failed
    }
}

/// SASL mechanism helpers (RFC 4616 PLAIN, draft-murchison-sasl-login LOGIN).
pub mod sasl {
    /// Decodes a PLAIN message `authzid NUL authcid NUL passwd` (already base64-decoded).
    /// Returns (authzid, authcid, password).
    pub fn decode_plain(data: &[u8]) -> Option<(String, String, String)> {
        let _ = data;
        None
    }
}
