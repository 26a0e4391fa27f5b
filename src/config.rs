//! Configuration: `conf/loft.toml` parsed and validated into typed [`Config`].
//! Relative paths are resolved against the folder of the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// The config file itself.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub imap: ImapConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFormat {
    Maildir,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncMode {
    Always,
    Optimized,
    Never,
}

#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub format: StorageFormat,
    /// Path template: `%u` user, `%n` local part, `%d` domain, `%h` home. Relative
    /// templates are already resolved against the config folder.
    pub location: String,
    pub fsync: FsyncMode,
    /// Create Drafts/Sent/Trash/Junk/Archive on first login (default true).
    pub autocreate_special_use: bool,
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
            tls: TlsConfig {
                cert: dir.join("tls/cert.pem"),
                key: dir.join("tls/key.pem"),
                generate_if_missing: true,
            },
            auth: AuthConfig {
                passwd_file: dir.join("users"),
                failure_delay: Duration::from_millis(0),
                allow_plaintext_auth: false,
            },
            storage: StorageConfig {
                format: StorageFormat::Maildir,
                location: dir.join("mail/%u").to_string_lossy().into_owned(),
                fsync: FsyncMode::Always,
                autocreate_special_use: true,
            },
            log: LogConfig {
                level: "info".into(),
            },
        }
    }
}
