//! Configuration: `conf/loft.toml` parsed and validated into typed [`Config`].
//! Relative paths are resolved against the folder of the config file.
//!
//! [`load`] reads and validates a file and reports every problem as a [`Diagnostic`]
//! (`FILE:LINE:COL: message`); the key reference is `docs/config.md`. This module knows
//! the schema, not how the daemon uses it.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

mod diag;
mod files;
mod load;
mod pop3;
mod positions;
pub mod uidl;
mod units;
mod walk;

pub use diag::Diagnostic;
pub use load::load;
pub use positions::Positions;
pub use units::{format_duration, parse_duration, parse_size, UnitError};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// The config file itself.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub imap: ImapConfig,
    pub pop3: Pop3Config,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
    /// Where each key was written, for diagnostics made after loading.
    pub positions: Positions,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Used in greetings and the self-signed certificate.
    pub hostname: String,
    /// All connections, all protocols (default 1000).
    pub max_connections: usize,
    /// Concurrent sessions of one user from one remote IP (default 20).
    pub max_connections_per_user_ip: usize,
    /// Concurrent connections from one remote IP before login (default 100).
    pub max_connections_per_ip: usize,
    /// The account Loft serves mail as: started as root it drops to it after binding
    /// (name or number). `None`: no switch.
    pub user: Option<String>,
    /// Its group (name or number); `None`: the user's primary group.
    pub group: Option<String>,
    /// Serving mail as root is refused unless this is true (default false).
    pub allow_root: bool,
    /// Started by an ordinary account other than `user` (default [`WhenNotRoot::Refuse`]).
    pub when_not_root: WhenNotRoot,
    /// Connections not yet logged in, all addresses together (`None`: half of
    /// `max_connections`). The rest of the slots stay for logged-in sessions; at the cap
    /// the oldest idle unauthenticated connection is dropped for the newcomer.
    pub max_unauthenticated: Option<usize>,
    /// Longest TLS handshake (implicit TLS, STARTTLS, STLS); default 10 s.
    pub tls_handshake_timeout: Duration,
}

impl ServerConfig {
    /// The effective cap on unauthenticated connections: at least 1, at most
    /// `max_connections`.
    pub fn unauthenticated_cap(&self) -> usize {
        self.max_unauthenticated
            .unwrap_or(self.max_connections / 2)
            .clamp(1, self.max_connections.max(1))
    }
}

/// `[server] when_not_root`: what a start by an ordinary account other than `[server] user`
/// does (it cannot switch users).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenNotRoot {
    /// Refuse to start: mail would belong to another account than configured.
    #[default]
    Refuse,
    /// Run as the starting account (the shipped try-out configuration).
    Run,
}

#[derive(Clone, Debug)]
pub struct ImapConfig {
    /// Plaintext + STARTTLS listeners.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (IMAPS).
    pub listen_tls: Vec<SocketAddr>,
    /// Longest command line, literals other than APPEND's included (default 64 KiB).
    pub max_line_length: usize,
    /// APPENDLIMIT (RFC 7889): largest message accepted (default 50 MiB).
    pub append_limit: u64,
    /// Deepest parenthesis nesting in SEARCH and other arguments (default 64).
    pub max_nesting: usize,
    /// Idle time after which an authenticated session is closed (RFC 3501 §5.4: ≥ 30 min).
    pub autologout: Duration,
    /// Time allowed to log in after connecting (default 60 s).
    pub login_timeout: Duration,
    /// How often a session in IDLE looks for changes (default 1 s).
    pub idle_poll: Duration,
}

#[derive(Clone, Debug)]
pub struct Pop3Config {
    /// Plaintext + STLS listeners.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (POP3S).
    pub listen_tls: Vec<SocketAddr>,
    /// Client workarounds applied to RETR/TOP output (default none).
    pub workarounds: crate::quirks::QuirkSet,
    /// How UIDL values are built (default Dovecot's `%08Xu%08Xv`).
    pub uidl_format: uidl::UidlFormat,
    /// One POP3 session per maildrop at a time; the second gets [IN-USE] (default true).
    pub lock_mailbox: bool,
    /// Time allowed to log in after connecting (default 60 s).
    pub login_timeout: Duration,
    /// Idle time after which a logged-in session is closed (RFC 1939 §3: ≥ 10 min).
    pub autologout: Duration,
    /// Longest command line, SASL responses included (default 8 KiB).
    pub max_line_length: usize,
    /// Minimum time between two logins of one user, 0 = none (RFC 2449 LOGIN-DELAY).
    pub login_delay: Duration,
}

#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Neither file exists and both are the shipped defaults: `serve` generates a
    /// self-signed pair on first start.
    pub generate_if_missing: bool,
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub passwd_file: PathBuf,
    /// Delay before answering a failed authentication (default 2 s).
    pub failure_delay: Duration,
    /// Allow LOGIN/AUTHENTICATE PLAIN without TLS on non-loopback connections
    /// (Dovecot's `disable_plaintext_auth = no`). Default false.
    pub allow_plaintext_auth: bool,
    /// The passwd-file is the default one (`users` beside the config) and does not exist:
    /// [`crate::auth::Authenticator::new`] creates it empty (mode 0600).
    pub create_if_missing: bool,
    /// The Dovecot-protocol auth socket for Postfix/Exim (UNIX socket); off when `None`.
    pub socket: Option<PathBuf>,
    /// Permission bits of the socket file (default 0o660).
    pub socket_mode: u32,
    /// Owner and group of the socket file (names or numbers); unchanged when `None`.
    pub socket_owner: Option<String>,
    pub socket_group: Option<String>,
    /// The same protocol over TCP (for MTAs on other hosts); empty by default.
    pub socket_tcp: Vec<SocketAddr>,
    /// Brute-force limits.
    pub rate_limit: RateLimitConfig,
    /// SASL mechanisms that may be offered, upper-case names (default all four: PLAIN,
    /// LOGIN, CRAM-MD5, SCRAM-SHA-256). One is advertised only when some user's stored
    /// password can use it.
    pub mechanisms: Vec<String>,
    /// PBKDF2 iterations for SCRAM-SHA-256 with PLAIN-stored passwords (default 4096).
    pub scram_iterations: u32,
    /// Password checks computed at once (`hash_workers`); 0 = one per core.
    pub hash_workers: usize,
    /// Password checks waiting for a worker, per lane (`hash_queue`); 0 = 16 per worker.
    pub hash_queue: usize,
}

/// Token-bucket limits on failed logins (see `auth::ratelimit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Failures one address may make in a burst before it is refused (default 20).
    pub ip_burst: u32,
    /// One failure is forgiven per this interval, per address (default 6 s).
    pub ip_interval: Duration,
    /// Failures against one user name before failing addresses are refused (default 10).
    pub user_burst: u32,
    /// One failure is forgiven per this interval, per user name (default 12 s).
    pub user_interval: Duration,
    /// Longest extra wait imposed on a slowed attempt (default 3 s).
    pub max_delay: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> RateLimitConfig {
        RateLimitConfig {
            ip_burst: 20,
            ip_interval: Duration::from_secs(6),
            user_burst: 10,
            user_interval: Duration::from_secs(12),
            max_delay: Duration::from_secs(3),
        }
    }
}

/// `[storage] format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFormat {
    Maildir,
    /// One file per folder; `location` is the folder directory (docs/mbox.md).
    Mbox,
}

/// The `[storage]` value types live in a leaf that `index` and `mailbox` can name too.
pub use crate::durability::{FsyncMode, LockMethod, MboxLock};

#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub format: StorageFormat,
    /// Path template: `%u` user, `%n` local part, `%d` domain, `%h` home. Relative
    /// templates are already resolved against the config folder.
    pub location: String,
    pub fsync: FsyncMode,
    /// Create Drafts/Sent/Trash/Junk/Archive on first login (default true).
    pub autocreate_special_use: bool,
    /// How processes lock a folder's index (`lock_method`, default fcntl).
    pub lock_method: LockMethod,
    /// Mail on shared storage (NFS): dotlocks, every commit fsynced.
    pub nfs: bool,
    /// When flag changes reach Maildir file names (`maildir_flag_sync`).
    pub maildir_flag_sync: MaildirFlagSync,
    /// Cache fields unused for this many days are dropped (`cache_drop_days`, default 30).
    pub cache_drop_days: u32,
    /// mbox only: the INBOX spool file template (`inbox`, e.g. `/var/mail/%u`), resolved
    /// like `location`. `None`: the file `INBOX` inside `location`.
    pub inbox: Option<String>,
    /// mbox only: locking and the status headers (`mbox_*` keys).
    pub mbox: MboxConfig,
}

/// The `mbox_*` keys of `[storage]`.
#[derive(Clone, Debug)]
pub struct MboxConfig {
    /// Locks taken, in order, to read an mbox file (`mbox_read_locks`, default fcntl).
    pub read_locks: Vec<MboxLock>,
    /// Locks taken, in order, to change one (`mbox_write_locks`, default dotlock, fcntl).
    pub write_locks: Vec<MboxLock>,
    /// How long to wait for all the locks together (`mbox_lock_timeout`, default 30 s).
    pub lock_timeout: Duration,
    /// A dotlock not changed for this long is stale and removed (`mbox_dotlock_stale`,
    /// default 120 s).
    pub dotlock_stale: Duration,
    /// Write X-UID/Status/X-Keywords/X-IMAPbase into the files (`mbox_write_headers`,
    /// default true); false: flags live only in Loft's index.
    pub write_headers: bool,
}

impl Default for MboxConfig {
    fn default() -> MboxConfig {
        MboxConfig {
            read_locks: vec![MboxLock::Fcntl],
            write_locks: vec![MboxLock::Dotlock, MboxLock::Fcntl],
            lock_timeout: Duration::from_secs(30),
            dotlock_stale: Duration::from_secs(120),
            write_headers: true,
        }
    }
}

/// `[storage] maildir_flag_sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MaildirFlagSync {
    /// Flags are durable in the index at once; file names follow at the last close of
    /// the folder or after a few seconds (default).
    #[default]
    Lazy,
    /// File names are renamed before STORE answers.
    Immediate,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    /// tracing filter, e.g. "info" or "loft=debug" (RUST_LOG overrides).
    pub level: String,
}

impl Config {
    /// Defaults for tests: everything on loopback, paths under `dir`.
    pub fn for_tests(dir: &Path) -> Config {
        Config {
            path: dir.join("loft.toml"),
            server: ServerConfig {
                hostname: "localhost".into(),
                max_connections: 1000,
                max_connections_per_user_ip: 20,
                max_connections_per_ip: 100,
                user: None,
                group: None,
                allow_root: false,
                when_not_root: WhenNotRoot::Refuse,
                max_unauthenticated: None,
                tls_handshake_timeout: Duration::from_secs(10),
            },
            imap: ImapConfig {
                listen: vec![],
                listen_tls: vec![],
                max_line_length: 64 * 1024,
                append_limit: 50 * 1024 * 1024,
                max_nesting: 64,
                autologout: Duration::from_secs(30 * 60),
                login_timeout: Duration::from_secs(60),
                idle_poll: Duration::from_millis(500),
            },
            pop3: Pop3Config {
                listen: vec![],
                listen_tls: vec![],
                workarounds: crate::quirks::QuirkSet::default(),
                uidl_format: uidl::UidlFormat::default(),
                lock_mailbox: true,
                login_timeout: Duration::from_secs(60),
                autologout: Duration::from_secs(10 * 60),
                max_line_length: 8192,
                login_delay: Duration::ZERO,
            },
            tls: TlsConfig {
                cert: dir.join("tls/cert.pem"),
                key: dir.join("tls/key.pem"),
                generate_if_missing: true,
            },
            auth: AuthConfig {
                passwd_file: dir.join("users"),
                failure_delay: Duration::from_millis(0),
                allow_plaintext_auth: false,
                create_if_missing: true,
                socket: None,
                socket_mode: 0o660,
                socket_owner: None,
                socket_group: None,
                socket_tcp: vec![],
                rate_limit: RateLimitConfig::default(),
                mechanisms: ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
                    .map(String::from)
                    .to_vec(),
                scram_iterations: 4096,
                hash_workers: 0,
                hash_queue: 0,
            },
            storage: StorageConfig {
                format: StorageFormat::Maildir,
                location: dir.join("mail/%u").to_string_lossy().into_owned(),
                fsync: FsyncMode::Always,
                autocreate_special_use: true,
                lock_method: LockMethod::Fcntl,
                nfs: false,
                maildir_flag_sync: MaildirFlagSync::Lazy,
                cache_drop_days: 30,
                inbox: None,
                mbox: MboxConfig::default(),
            },
            log: LogConfig {
                level: "info".into(),
            },
            positions: Positions::default(),
        }
    }
}

/// The documented defaults for a config file living in `dir` (before the file's own
/// values are applied). Differs from [`Config::for_tests`] where a daemon and a test
/// want different things: real listeners, a real failure delay, the system host name.
pub(crate) fn defaults(dir: &Path) -> Config {
    let mut c = Config::for_tests(dir);
    c.server.hostname = system_hostname().unwrap_or_else(|| "localhost".into());
    c.imap.listen = vec![SocketAddr::from(([127, 0, 0, 1], 1143))];
    c.imap.listen_tls = vec![SocketAddr::from(([127, 0, 0, 1], 1993))];
    c.imap.idle_poll = Duration::from_secs(1);
    c.pop3.listen = vec![SocketAddr::from(([127, 0, 0, 1], 1110))];
    c.pop3.listen_tls = vec![SocketAddr::from(([127, 0, 0, 1], 1995))];
    c.auth.failure_delay = Duration::from_secs(2);
    c.storage.location = dir.join("../var/mail/%u").to_string_lossy().into_owned();
    c
}

/// gethostname(2), if it yields a usable UTF-8 name.
pub(crate) fn system_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `len` bytes; gethostname NUL-terminates on success
    // when the name fits, and we also cap at the buffer length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(buf.get(..end)?).ok()?.trim();
    (!name.is_empty() && !name.contains(char::is_whitespace)).then(|| name.to_string())
}

#[cfg(test)]
mod tests;
