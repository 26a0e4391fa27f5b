//! What a protocol hands the authentication core: the service asking, the credentials and
//! the real client's address. Knows no protocol syntax beyond service names.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The service a login is for. App passwords are limited to a set of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Imap,
    Pop3,
    /// SMTP AUTH through the auth socket (`service=smtp`; `submission` is taken as SMTP).
    Smtp,
    /// Any other service name an auth-socket client sends: only the main password works.
    Other,
}

impl Service {
    /// The services an app password may be limited to.
    pub const GRANTABLE: [Service; 3] = [Service::Imap, Service::Pop3, Service::Smtp];

    pub fn name(self) -> &'static str {
        match self {
            Service::Imap => "imap",
            Service::Pop3 => "pop3",
            Service::Smtp => "smtp",
            Service::Other => "other",
        }
    }

    /// Maps an auth-socket `service=` value; never fails.
    pub fn from_protocol(s: &str) -> Service {
        match s.to_ascii_lowercase().as_str() {
            "imap" => Service::Imap,
            "pop3" => Service::Pop3,
            "smtp" | "submission" | "smtps" => Service::Smtp,
            _ => Service::Other,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A service name that cannot be granted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown service {0:?} (known: imap, pop3, smtp)")]
pub struct UnknownService(pub String);

impl FromStr for Service {
    type Err = UnknownService;

    /// Only the grantable names (for `--services`).
    fn from_str(s: &str) -> Result<Service, UnknownService> {
        match Service::from_protocol(s.trim()) {
            Service::Other => Err(UnknownService(s.to_string())),
            sv => Ok(sv),
        }
    }
}

/// One authentication attempt, whatever protocol it came in by.
#[derive(Clone, Debug)]
pub struct AuthRequest<'a> {
    pub user: &'a str,
    pub password: &'a str,
    /// The real client's address (`rip=` on the auth socket); `None` when unknown. Rate
    /// limits per address apply only when it is known.
    pub remote: Option<IpAddr>,
    pub service: Service,
}

/// The result of [`super::Authenticator::authenticate_for`]: [`super::AuthResult`] plus
/// the refusal of the rate limiter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok(super::User),
    /// Unknown user, wrong password, or an app password used for another service:
    /// indistinguishable to the client on purpose.
    Failed,
    /// The passdb could not be consulted: try again later.
    TempFail(String),
    /// Too many recent failures from this address or against this user: refused without
    /// looking at the password. IMAP answers `NO [UNAVAILABLE]`, POP3
    /// `-ERR [LOGIN-DELAY]`, the auth socket `FAIL … code=temp_fail temp`.
    RateLimited,
    /// Every password worker busy and the queue full: nothing was checked. A temporary
    /// answer (IMAP `NO [UNAVAILABLE]`, POP3 `-ERR [SYS/TEMP]`, the socket's `temp`),
    /// so that a burst of good logins (every client reconnecting after a restart) makes
    /// clients retry instead of asking their users for a new password. The pool logs
    /// the burst once.
    Busy,
}

impl From<AuthOutcome> for super::AuthResult {
    fn from(o: AuthOutcome) -> super::AuthResult {
        match o {
            AuthOutcome::Ok(u) => super::AuthResult::Ok(u),
            AuthOutcome::Failed => super::AuthResult::Failed,
            AuthOutcome::TempFail(s) => super::AuthResult::TempFail(s),
            AuthOutcome::RateLimited => {
                super::AuthResult::TempFail("too many failed logins; try again later".into())
            }
            AuthOutcome::Busy => super::AuthResult::TempFail("server busy; try again".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert_eq!(Service::from_protocol("SMTP"), Service::Smtp);
        assert_eq!(Service::from_protocol("submission"), Service::Smtp);
        assert_eq!(Service::from_protocol("sieve"), Service::Other);
        assert_eq!("pop3".parse::<Service>(), Ok(Service::Pop3));
        assert!("sieve".parse::<Service>().is_err());
    }
}
