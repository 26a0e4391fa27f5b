//! The auth socket: Dovecot's authentication protocol on a UNIX socket (and optionally
//! TCP), so Postfix (`smtpd_sasl_type = dovecot`) and Exim (`dovecot` authenticator) can
//! check SMTP AUTH against Loft's users. Binds and owns the listeners; the per-connection
//! protocol is [`conn`], the line format [`proto`], the SASL steps [`mech`].
//! Knows the authenticator's API, not how passwords are stored.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

pub mod conn;
pub mod mech;
pub mod proto;

use std::ffi::CString;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::auth::Authenticator;
use crate::config::AuthConfig;

/// Why the auth listeners could not be set up; names the socket, file or account.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad user name {0:?}")]
    BadUserName(String),
    #[error("no such user {0:?}")]
    NoUser(String),
    #[error("bad group name {0:?}")]
    BadGroupName(String),
    #[error("no such group {0:?}")]
    NoGroup(String),
    #[error("auth socket {} exists and is not a socket", .0.display())]
    NotASocket(PathBuf),
    #[error("auth socket {}: another server is listening on it", .0.display())]
    InUse(PathBuf),
    #[error("cannot remove stale auth socket {}: {source}", .path.display())]
    RemoveStale {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on auth socket {}: {source}", .path.display())]
    ListenUnix {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot chown auth socket {}: {source}", .path.display())]
    Chown {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot chmod auth socket {}: {source}", .path.display())]
    Chmod {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} for the auth socket: {source}")]
    ListenTcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    LocalAddr {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The running auth listeners.
pub struct AuthSocket {
    /// The UNIX socket's path, if configured.
    pub path: Option<PathBuf>,
    /// Bound TCP addresses (real ports when 0 was asked for).
    pub tcp_addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

/// Resolves a user given by name or number.
fn uid_of(owner: &str) -> Result<u32, Error> {
    if let Ok(n) = owner.parse::<u32>() {
        return Ok(n);
    }
    let c = CString::new(owner).map_err(|_| Error::BadUserName(owner.to_string()))?;
    // SAFETY: getpwnam returns NULL or a pointer to static storage, read at once; this
    // runs at startup before other threads look users up.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(Error::NoUser(owner.to_string()));
    }
    // SAFETY: `pw` is not NULL (checked above) and points to getpwnam's static record.
    Ok(unsafe { (*pw).pw_uid })
}

fn gid_of(group: &str) -> Result<u32, Error> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    let c = CString::new(group).map_err(|_| Error::BadGroupName(group.to_string()))?;
    // SAFETY: as in `uid_of`.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(Error::NoGroup(group.to_string()));
    }
    // SAFETY: `gr` is not NULL (checked above) and points to getgrnam's static record.
    Ok(unsafe { (*gr).gr_gid })
}

/// Binds the UNIX socket: a stale socket file (nobody listening) is replaced, a live one
/// or a non-socket file is an error. Then owner, group and mode are applied.
fn bind_unix(cfg: &AuthConfig, path: &Path) -> Result<UnixListener, Error> {
    let p = || path.to_path_buf();
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(Error::NotASocket(p()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::InUse(p()));
        }
        std::fs::remove_file(path).map_err(|source| Error::RemoveStale { path: p(), source })?;
        info!("replaced stale auth socket {}", path.display());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let l = UnixListener::bind(path).map_err(|source| Error::ListenUnix { path: p(), source })?;
    let uid = cfg.socket_owner.as_deref().map(uid_of).transpose()?;
    let gid = cfg.socket_group.as_deref().map(gid_of).transpose()?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)
            .map_err(|source| Error::Chown { path: p(), source })?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.socket_mode))
        .map_err(|source| Error::Chmod { path: p(), source })?;
    Ok(l)
}

/// Binds the configured auth listeners and starts serving them until `stop` turns true.
/// `Ok(None)` when neither `socket` nor `socket_tcp` is configured.
pub async fn start(
    cfg: &AuthConfig,
    auth: Arc<Authenticator>,
    stop: watch::Receiver<bool>,
) -> Result<Option<AuthSocket>, Error> {
    Ok(bind(cfg).await?.map(|b| b.serve(auth, stop)))
}

/// The auth listeners, bound but not yet accepting (the daemon drops root privileges
/// between [`bind`] and [`Bound::serve`]).
pub struct Bound {
    path: Option<PathBuf>,
    tcp: Vec<(TcpListener, SocketAddr)>,
    unix: Option<UnixListener>,
    opts: Arc<conn::Options>,
}

/// Binds the configured auth listeners (the UNIX socket gets its owner, group and mode).
/// `Ok(None)` when neither `socket` nor `socket_tcp` is configured.
pub async fn bind(cfg: &AuthConfig) -> Result<Option<Bound>, Error> {
    if cfg.socket.is_none() && cfg.socket_tcp.is_empty() {
        return Ok(None);
    }
    let opts = Arc::new(conn::Options {
        allow_plaintext: cfg.allow_plaintext_auth,
        hostname: crate::config::system_hostname().unwrap_or_else(|| "localhost".into()),
    });
    let mut tcp = Vec::new();
    for addr in &cfg.socket_tcp {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::ListenTcp {
                addr: *addr,
                source,
            })?;
        let local = l.local_addr().map_err(|source| Error::LocalAddr {
            addr: *addr,
            source,
        })?;
        info!("auth socket listening on {local} (TCP)");
        tcp.push((l, local));
    }
    let unix = match &cfg.socket {
        Some(p) => {
            let l = bind_unix(cfg, p)?;
            info!(
                "auth socket listening on {} (mode {:o})",
                p.display(),
                cfg.socket_mode
            );
            Some(l)
        }
        None => None,
    };
    Ok(Some(Bound {
        path: cfg.socket.clone(),
        tcp,
        unix,
        opts,
    }))
}

impl Bound {
    /// Bound TCP addresses (real ports when 0 was asked for).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp.iter().map(|(_, a)| *a).collect()
    }

    /// Starts accepting on every listener until `stop` turns true.
    pub fn serve(self, auth: Arc<Authenticator>, stop: watch::Receiver<bool>) -> AuthSocket {
        let tcp_addrs = self.tcp_addrs();
        let Bound {
            path,
            tcp,
            unix,
            opts,
        } = self;
        let mut tasks = Vec::new();
        serve_tcp(tcp, &auth, &opts, &stop, &mut tasks);
        if let Some(l) = unix {
            tasks.push(serve_unix(l, auth, opts, stop));
        }
        AuthSocket {
            path,
            tcp_addrs,
            tasks,
        }
    }
}

fn serve_tcp(
    tcp: Vec<(TcpListener, SocketAddr)>,
    auth: &Arc<Authenticator>,
    opts: &Arc<conn::Options>,
    stop: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    for (l, _) in tcp {
        let (auth, opts, mut stop) = (Arc::clone(auth), Arc::clone(opts), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = l.accept() => r,
                    _ = stop.changed() => break,
                };
                match accepted {
                    Ok((s, peer)) => {
                        let _ = s.set_nodelay(true);
                        let c = conn::Conn::new(Arc::clone(&auth), Arc::clone(&opts));
                        tokio::spawn(c.run(s, peer.to_string(), stop.clone()));
                    }
                    Err(e) => {
                        error!("auth socket accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
}

fn serve_unix(
    l: UnixListener,
    auth: Arc<Authenticator>,
    opts: Arc<conn::Options>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = l.accept() => r,
                _ = stop.changed() => break,
            };
            match accepted {
                Ok((s, _)) => {
                    let c = conn::Conn::new(Arc::clone(&auth), Arc::clone(&opts));
                    tokio::spawn(c.run(s, "unix".to_string(), stop.clone()));
                }
                Err(e) => {
                    error!("auth socket accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    })
}

impl AuthSocket {
    /// Waits for the listeners to stop (the caller has signalled `stop`) and removes the
    /// socket file. Connections close on the same signal.
    pub async fn shutdown(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(p) = &self.path {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => error!("cannot remove auth socket {}: {e}", p.display()),
            }
        }
    }
}
