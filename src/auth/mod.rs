//! Authentication: the passwd-file passdb, password schemes, SASL mechanisms, app
//! passwords, the failure delay and the brute-force limiter. One core, used by IMAP,
//! POP3 and the auth socket. Knows nothing of protocols: callers hand it an
//! [`AuthRequest`] (user, password, real client address, service).
//!
//! * [`passwd_file`] — Dovecot-format users file, re-read when it changes.
//! * [`scheme`] — `{SCHEME}hash` verification and [`hash_password`].
//! * [`sasl`] — SASL PLAIN decoding and the LOGIN prompts.
//! * [`exchange`] — the challenge-response mechanisms CRAM-MD5 and SCRAM-SHA-256, driven
//!   the same way by IMAP, POP3 and the socket; [`cram`], [`scram`], [`saslprep`] and
//!   [`md5`] hold their pure computations.
//! * [`ratelimit`] — per-address and per-user token buckets.
//! * [`pool`] — the bounded set of threads that compute password hashes, with a queue
//!   per lane (addresses with and without recent failures).
//! * [`app_passwords`] — extra per-service passwords beside the passwd-file.
//! * [`useradmin`], [`filedit`] — safe edits of those files for `loft user`.
//! * [`socket`] — the Dovecot-protocol auth socket for Postfix and Exim.

pub mod app_passwords;
mod challenge;
pub mod cram;
pub mod exchange;
pub mod filedit;
pub mod md5;
pub mod passwd_file;
pub mod pool;
pub mod ratelimit;
pub mod request;
pub mod sasl;
pub mod saslprep;
pub mod scheme;
pub mod scram;
pub mod socket;
pub mod useradmin;

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use filedit::{FileAction, FileError};
pub use request::{AuthOutcome, AuthRequest, Service};
pub use scheme::{hash_password, Scheme};

use app_passwords::{AppDb, AppMatch};
use pool::{Busy, Lane, Pool};
use ratelimit::{RateLimiter, Verdict};

use passwd_file::{PasswdDb, Table};

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
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    db: PasswdDb,
    /// Keys the stable per-user SCRAM salts (see [`challenge`]).
    salt_secret: [u8; 32],
    /// PBKDF2 iterations for SCRAM with PLAIN-stored passwords and for decoy salts.
    scram_iterations: u32,
    /// The mechanisms the admin allows (`[auth] mechanisms`).
    allowed_mechs: Vec<exchange::Mech>,
    apps: AppDb,
    /// Recording an app password's last use failed, and was logged (see
    /// [`Authenticator::app_password_used`]).
    app_touch_failing: AtomicBool,
    limiter: RateLimiter,
    /// Where every password check is computed (bounded; see [`pool`]).
    pool: Pool,
    failure_delay: Duration,
    /// Decoy hash for unknown users when the file has no usable hash to imitate.
    fallback_decoy: OnceLock<String>,
}

/// Why a check failed: for the log only, never for the client.
pub(crate) enum Outcome {
    /// With the name of the app password used, if one was.
    Ok(User, Option<String>),
    Failed(String),
}

const NEW_FILE_HEADER: &str = "# Loft users: user:{SCHEME}hash[:uid:gid:gecos:home:shell:extra]\n\
# Make a hash with `loft pw` and add one line per user.\n";

/// Creates an empty passwd-file (mode 0600), and its folder, if it does not exist.
fn create_passwd_file(path: &Path) -> Result<(), FileError> {
    let create = |path| FileError::io(FileAction::Create, path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(create(dir))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(NEW_FILE_HEADER.as_bytes())
                .map_err(FileError::io(FileAction::Write, path))?;
            tracing::info!("created empty passwd-file {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(create(path)(e)),
    }
}

impl Authenticator {
    /// Loads the passwd-file. An unreadable file is an error at startup. The default
    /// file (`cfg.create_if_missing`) is created empty when it does not exist.
    pub fn new(cfg: &crate::config::AuthConfig) -> Result<Authenticator, FileError> {
        if cfg.create_if_missing && !cfg.passwd_file.exists() {
            create_passwd_file(&cfg.passwd_file)?;
        }
        let db = PasswdDb::open(&cfg.passwd_file)?;
        let allowed_mechs = cfg
            .mechanisms
            .iter()
            .filter_map(|m| exchange::Mech::from_name(m))
            .collect();
        Ok(Authenticator {
            inner: Arc::new(Inner {
                db,
                salt_secret: challenge::load_or_create_secret(&cfg.passwd_file),
                scram_iterations: cfg.scram_iterations,
                allowed_mechs,
                apps: AppDb::new(&cfg.passwd_file),
                app_touch_failing: AtomicBool::new(false),
                limiter: RateLimiter::new(cfg.rate_limit),
                pool: Pool::new(cfg.hash_workers, cfg.hash_queue, scheme::release_scratch),
                failure_delay: cfg.failure_delay,
                fallback_decoy: OnceLock::new(),
            }),
        })
    }

    /// Checks a user name and password for an unspecified service (only the main
    /// password counts, not app passwords). Kept for callers that predate
    /// [`Authenticator::authenticate_for`]; a rate-limit refusal comes back as `TempFail`.
    pub async fn authenticate(&self, user: &str, password: &str, remote: IpAddr) -> AuthResult {
        self.authenticate_for(&AuthRequest {
            user,
            password,
            remote: Some(remote),
            service: Service::Other,
        })
        .await
        .into()
    }

    /// The full check: rate limits first (a refusal does not look at the password), then
    /// the passwd-file, then (for passwords of the generated shape) the user's app
    /// passwords for `req.service`. Hash verification runs on the bounded hash pool. On
    /// failure or refusal the configured failure delay is served before returning,
    /// identically for an unknown user and a wrong password, and one line is logged with
    /// user, service, remote address and reason (never the password).
    pub async fn authenticate_for(&self, req: &AuthRequest<'_>) -> AuthOutcome {
        let (u, p, svc) = (req.user.to_owned(), req.password.to_owned(), req.service);
        self.run_policy(req.user, req.remote, req.service, move |inner| {
            (inner.check(&u, &p, svc), None)
        })
        .await
        .0
    }

    /// The one policy path every check takes, whatever the mechanism: rate limits first
    /// (a refusal does not run `check`), then `check` on the bounded hash pool (attempts
    /// from addresses that failed lately wait behind the others; no room means no hash),
    /// then on failure the limiter's count and one log line. A failure or refusal answers
    /// at a deadline fixed when the attempt started (failure delay, plus the limiter's
    /// slow-down), so the time taken does not tell whether the user exists, which scheme
    /// it has, or whether the check was computed at all. `check` may return extra data
    /// for the client on success (SCRAM's server signature).
    pub(crate) async fn run_policy<F>(
        &self,
        user: &str,
        remote: Option<IpAddr>,
        service: Service,
        check: F,
    ) -> (AuthOutcome, Option<String>)
    where
        F: FnOnce(&Inner) -> (Outcome, Option<String>) + Send + 'static,
    {
        let mut deadline = tokio::time::Instant::now() + self.inner.failure_delay;
        let remote_s = remote.map(|r| r.to_string());
        let remote_s = remote_s.as_deref().unwrap_or("-");
        match self.inner.limiter.check(user, remote) {
            Verdict::Refuse => {
                tracing::warn!(user = ?user, service = %service, remote = %remote_s,
                    "authentication refused: too many recent failures (password not checked)");
                tokio::time::sleep_until(deadline).await;
                return (AuthOutcome::RateLimited, None);
            }
            Verdict::Allow(d) if !d.is_zero() => {
                deadline += d;
                tokio::time::sleep(d).await
            }
            Verdict::Allow(_) => {}
        }
        let lane = if self.inner.limiter.is_suspect(remote) {
            Lane::Suspect
        } else {
            Lane::Clean
        };
        let inner = Arc::clone(&self.inner);
        // Queue shares are per address as the limiter counts them (IPv6: per /64).
        let share = remote.map(ratelimit::address_key);
        let outcome = self
            .inner
            .pool
            .run(lane, share, move || check(&inner))
            .await;
        match outcome {
            Ok((Outcome::Ok(found, app), extra)) => {
                self.inner.limiter.succeeded(user, remote);
                self.inner.db.note_login(&found.name, found.uid, found.gid);
                if let Some(name) = app {
                    self.app_password_used(&found, name, service, remote_s);
                }
                (AuthOutcome::Ok(found), extra)
            }
            Ok((Outcome::Failed(reason), _)) => {
                self.inner.limiter.failed(user, remote);
                // `{:?}` escapes control characters a client may have put in the name.
                tracing::warn!(user = ?user, service = %service, remote = %remote_s,
                    "authentication failed: {reason}");
                tokio::time::sleep_until(deadline).await;
                (AuthOutcome::Failed, None)
            }
            // No room in the hash pool: a temporary failure (the pool logs once per
            // burst); the address's next attempts wait in the suspect lane.
            Err(Busy::QueueFull | Busy::AddressShare) => {
                self.inner.limiter.unchecked(remote);
                tokio::time::sleep_until(deadline).await;
                (AuthOutcome::Busy, None)
            }
            Err(Busy::WorkerLost) => {
                tracing::error!(user = ?user, service = %service, remote = %remote_s,
                    "authentication worker failed (panic in the password check)");
                (
                    AuthOutcome::TempFail("internal error in the authentication worker".into()),
                    None,
                )
            }
        }
    }

    /// Logs the use of an app password and records it in the file (in the background).
    fn app_password_used(&self, found: &User, name: String, service: Service, remote: &str) {
        tracing::info!(user = %found.name, service = %service, remote = %remote,
            app_password = %name, "authenticated with an app password");
        let inner = self.inner.clone();
        let uname = found.name.clone();
        tokio::task::spawn_blocking(move || {
            let path = inner.apps.path();
            let now = app_passwords::now();
            let result = app_passwords::touch(path, &uname, &name, now);
            match touch_report(&inner.app_touch_failing, &result) {
                TouchReport::FirstFailure => tracing::warn!(user = %uname, file = %path.display(),
                    "cannot record app password use, last-use times stay as they are until \
                     the file is writable again (not logged again): {}",
                    result.err().map(|e| e.to_string()).unwrap_or_default()),
                TouchReport::Recovered => {
                    tracing::info!(file = %path.display(), "app password use recorded again")
                }
                TouchReport::Quiet => {}
            }
        });
    }

    /// The hash pool's shape (workers, queue per lane), for logs and tests.
    pub fn hash_pool_shape(&self) -> (usize, usize) {
        (self.inner.pool.workers(), self.inner.pool.queue_cap())
    }

    /// The failure delay configured (also served by protocols for malformed SASL data).
    pub fn failure_delay(&self) -> Duration {
        self.inner.failure_delay
    }

    /// The user's passdb fields without a password check (for userdb-style lookups).
    /// May stat or re-read the file: blocking.
    pub fn lookup(&self, name: &str) -> Option<User> {
        self.inner.db.current().get(name).map(to_user)
    }

    /// The user's password in clear when the passdb stores it with the PLAIN scheme
    /// (`{PLAIN}`/`{CLEARTEXT}`), for challenge-response mechanisms such as POP3 APOP that
    /// need the secret itself. `None` for unknown users and hashed passwords.
    /// May stat or re-read the file: blocking.
    pub fn plain_password(&self, name: &str) -> Option<String> {
        let table = self.inner.db.current();
        let entry = table.get(name)?;
        match scheme::parse_stored(&entry.password) {
            Ok((Scheme::Plain, secret)) if !secret.is_empty() => Some(secret.to_string()),
            _ => None,
        }
    }

    /// True when at least one user's password is stored in clear (so APOP can work for
    /// someone). May stat or re-read the file: blocking.
    pub fn has_plain_passwords(&self) -> bool {
        self.inner.db.current().has_plain()
    }

    /// Number of users currently known. May stat or re-read the file: blocking.
    pub fn user_count(&self) -> usize {
        self.inner.db.current().len()
    }
}

/// What to log after recording an app password's last use.
#[derive(Debug, PartialEq, Eq)]
enum TouchReport {
    /// The first failure of a stretch: one warning (after a switch to an account that
    /// cannot write the file, docs/operations.md, every login would fail the same way).
    FirstFailure,
    /// Written again after failures.
    Recovered,
    Quiet,
}

/// Updates `failing` (a failure was logged and no write succeeded since) with `result`.
fn touch_report<E>(failing: &AtomicBool, result: &Result<(), E>) -> TouchReport {
    match (
        result.is_ok(),
        failing.swap(result.is_err(), Ordering::Relaxed),
    ) {
        (false, false) => TouchReport::FirstFailure,
        (true, true) => TouchReport::Recovered,
        _ => TouchReport::Quiet,
    }
}

/// Plaintext passwords are refused on connections that are neither TLS nor loopback,
/// unless the admin allowed it (RFC 3501 §6.2.3 LOGINDISABLED, RFC 2595 §2.1, RFC 8314 §3).
/// Shared by IMAP (LOGIN, AUTHENTICATE) and POP3 (USER/PASS, AUTH).
pub fn plaintext_auth_refused(tls: bool, remote: IpAddr, allowed: bool) -> bool {
    !tls && !remote.is_loopback() && !allowed
}

fn to_user(e: &passwd_file::Entry) -> User {
    User {
        name: e.name.clone(),
        uid: e.uid,
        gid: e.gid,
        home: e.home.clone(),
    }
}

impl Inner {
    /// Blocking: file check plus hash verification, then app passwords.
    fn check(&self, user: &str, password: &str, service: Service) -> Outcome {
        let main = self.check_main(user, password);
        let Outcome::Failed(reason) = main else {
            return main;
        };
        if !app_passwords::looks_like(password) {
            return Outcome::Failed(reason);
        }
        let table = self.db.current();
        let known = table.get(user);
        match self.apps.check(user, password, service) {
            AppMatch::Ok(name) => match known {
                Some(entry) => Outcome::Ok(to_user(entry), Some(name)),
                None => Outcome::Failed(format!("app password {name:?} of a deleted user")),
            },
            AppMatch::WrongService(name) => Outcome::Failed(format!(
                "app password {name:?} is not allowed for {service}"
            )),
            AppMatch::None => Outcome::Failed(reason),
        }
    }

    fn check_main(&self, user: &str, password: &str) -> Outcome {
        let table = self.db.current();
        let Some(entry) = table.get(user) else {
            self.decoy_verify(&table, password);
            return Outcome::Failed("unknown user".into());
        };
        if entry.password.is_empty() {
            self.decoy_verify(&table, password);
            return Outcome::Failed("no password set".into());
        }
        match scheme::parse_stored(&entry.password) {
            Err(name) => {
                self.decoy_verify(&table, password);
                Outcome::Failed(format!("unknown scheme {name}"))
            }
            Ok((s, hash)) => match scheme::verify(s, hash, password) {
                Ok(true) => Outcome::Ok(to_user(entry), None),
                Ok(false) => Outcome::Failed("wrong password".into()),
                Err(e) => {
                    Outcome::Failed(format!("malformed {s} hash on line {}: {e}", entry.line))
                }
            },
        }
    }

    /// Spends about the time a real check would: verifies against a real stored hash of
    /// the file's most common scheme (same parameters as real users), the result unused.
    fn decoy_verify(&self, table: &Table, password: &str) {
        let stored = match &table.decoy {
            Some(d) => d.as_str(),
            None => self.fallback_decoy.get_or_init(|| {
                hash_password(Scheme::Argon2id, "decoy-password-never-matches").unwrap_or_default()
            }),
        };
        if let Ok((s, h)) = scheme::parse_stored(stored) {
            let _ = std::hint::black_box(scheme::verify(s, h, password));
        }
    }
}

#[cfg(test)]
mod tests;
