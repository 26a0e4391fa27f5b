//! Listeners (IMAP, IMAPS, POP3, POP3S), connection limits, graceful shutdown.
//!
//! Listener kinds: IMAP (plain + STARTTLS), IMAPS, POP3 (plain + STLS), POP3S, and the
//! auth socket (UNIX and/or TCP, `crate::auth::socket`), which shares the one
//! [`Authenticator`].
//!
//! Connection slots (`net::slots`): unauthenticated connections get a capped share of
//! `max_connections` (and a per-address cap) so they cannot lock out real users; a
//! refused connection hears `* BYE` / `-ERR` first (not on implicit-TLS ports, where
//! nothing can be said before the handshake). TLS handshakes have their own deadline
//! and are abandoned at shutdown.
//!
//! `start` binds every configured address (so a port in use is a clear startup error),
//! spawns one accept loop per listener and one task per connection; `serve` adds the
//! signal handling of the daemon. Tests use `start` with port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::imap::session::{Context, Session};
use crate::net::{ConnSlot, Refusal, Slots, Stream, UserIpLimits};
use crate::pop3;

/// How long shutdown waits for sessions to finish what they are writing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server did not start; each names what failed (file, address, signal).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The passwd-file could not be created or read.
    #[error(transparent)]
    Auth(#[from] crate::auth::FileError),
    #[error(transparent)]
    Tls(#[from] crate::tls::Error),
    #[error(transparent)]
    AuthSocket(#[from] crate::auth::socket::Error),
    #[error("cannot listen on {addr} for {service}: {source}")]
    Listen {
        addr: SocketAddr,
        service: &'static str,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    LocalAddr {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot handle {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    /// What the `before_accept` hook (the switch away from root) refused.
    #[error(transparent)]
    BeforeAccept(Box<dyn std::error::Error + Send + Sync>),
}

/// A running server.
pub struct Server {
    /// Bound plaintext IMAP addresses (with real ports when 0 was configured).
    pub imap_addrs: Vec<SocketAddr>,
    /// Bound IMAPS addresses.
    pub imaps_addrs: Vec<SocketAddr>,
    /// Bound plaintext POP3 addresses (STLS-capable).
    pub pop3_addrs: Vec<SocketAddr>,
    /// Bound POP3S addresses.
    pub pop3s_addrs: Vec<SocketAddr>,
    /// Bound TCP addresses of the auth socket (`[auth] socket_tcp`).
    pub auth_tcp_addrs: Vec<SocketAddr>,
    /// The shared authenticator (also used by the auth socket).
    pub auth: Arc<Authenticator>,
    /// The connection slots (counts are visible to tests).
    pub slots: Arc<Slots>,
    stop: watch::Sender<bool>,
    auth_socket: Option<crate::auth::socket::AuthSocket>,
    /// The storage every session shares: told at shutdown, once the sessions are gone.
    storage: Arc<crate::mailbox::Storage>,
}

impl Server {
    /// Stops accepting, tells every session to say BYE, and waits (bounded) until they are
    /// gone.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(sock) = self.auth_socket {
            sock.shutdown().await;
        }
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, self.slots.drained()).await;
        let storage = self.storage;
        let _ = tokio::task::spawn_blocking(move || storage.shutdown()).await;
    }
}

/// Which protocol a listener speaks, and whether TLS starts at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Imap,
    Imaps,
    Pop3,
    Pop3s,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Imap => "IMAP",
            Service::Imaps => "IMAPS",
            Service::Pop3 => "POP3",
            Service::Pop3s => "POP3S",
        }
    }
    fn implicit_tls(self) -> bool {
        matches!(self, Service::Imaps | Service::Pop3s)
    }
}

/// The shared state of both protocols' sessions.
struct Contexts {
    imap: Arc<Context>,
    pop3: Arc<pop3::session::Context>,
}

/// Binds the listeners and starts serving. Returns when everything is listening.
pub async fn start(cfg: Config) -> Result<Server, StartError> {
    start_with(cfg, || Ok::<(), std::convert::Infallible>(())).await
}

/// As [`start`], with `before_accept` run once every listener and the auth socket are
/// bound and the TLS key is read, before any connection is accepted: the `serve` command
/// drops root privileges there. Its error aborts the start.
pub async fn start_with<F, E>(cfg: Config, before_accept: F) -> Result<Server, StartError>
where
    F: FnOnce() -> Result<(), E>,
    E: std::error::Error + Send + Sync + 'static,
{
    let cfg = Arc::new(cfg);
    let auth = Arc::new(Authenticator::new(&cfg.auth)?);
    let (workers, queue) = auth.hash_pool_shape();
    info!(
        "password checks: {workers} at once, {queue} waiting per lane; \
         {} of {} connections for clients not logged in",
        cfg.server.unauthenticated_cap(),
        cfg.server.max_connections
    );
    let tls = match crate::tls::server_config(&cfg.tls, &cfg.server.hostname) {
        Ok(c) => Some(tokio_rustls::TlsAcceptor::from(c)),
        Err(e) if cfg.imap.listen_tls.is_empty() && cfg.pop3.listen_tls.is_empty() => {
            warn!("TLS unavailable, STARTTLS and STLS will not be offered: {e}");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let (stop, stop_rx) = watch::channel(false);
    let auth_bound = crate::auth::socket::bind(&cfg.auth).await?;
    let auth_tcp_addrs = auth_bound
        .as_ref()
        .map(|s| s.tcp_addrs())
        .unwrap_or_default();
    let user_limits = UserIpLimits::new(cfg.server.max_connections_per_user_ip);
    // One storage context for every session of this server (open folders shared).
    let storage = crate::mailbox::Storage::new(&cfg.storage);
    let ctxs = Arc::new(Contexts {
        imap: Arc::new(Context {
            storage: Arc::clone(&storage),
            cfg: Arc::clone(&cfg),
            auth: Arc::clone(&auth),
            tls: tls.clone(),
            shutdown: stop_rx.clone(),
            user_limits: Arc::clone(&user_limits),
        }),
        pop3: Arc::new(pop3::session::Context {
            cfg: Arc::clone(&cfg),
            auth: Arc::clone(&auth),
            tls: tls.clone(),
            shutdown: stop_rx.clone(),
            user_limits,
            registry: pop3::registry::Registry::new(),
            storage: Arc::clone(&storage),
        }),
    });
    let slots = Slots::new(
        cfg.server.max_connections,
        cfg.server.unauthenticated_cap(),
        cfg.server.max_connections_per_ip,
    );
    let mut bound: [Vec<SocketAddr>; 4] = Default::default();
    let mut listeners = Vec::new();
    let services = [
        (&cfg.imap.listen, Service::Imap),
        (&cfg.imap.listen_tls, Service::Imaps),
        (&cfg.pop3.listen, Service::Pop3),
        (&cfg.pop3.listen_tls, Service::Pop3s),
    ];
    for (slot, (addrs, service)) in services.into_iter().enumerate() {
        for addr in addrs {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen {
                    addr: *addr,
                    service: service.name(),
                    source,
                })?;
            let local = l.local_addr().map_err(|source| StartError::LocalAddr {
                addr: *addr,
                source,
            })?;
            info!("listening for {} on {local}", service.name());
            bound[slot].push(local);
            listeners.push((l, service));
        }
    }
    before_accept().map_err(|e| StartError::BeforeAccept(Box::new(e)))?;
    let auth_socket = auth_bound.map(|b| b.serve(Arc::clone(&auth), stop_rx.clone()));
    for (listener, service) in listeners {
        let ctxs = Arc::clone(&ctxs);
        let slots = Arc::clone(&slots);
        let tls = if service.implicit_tls() {
            tls.clone()
        } else {
            None
        };
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    r = listener.accept() => r,
                    _ = stop.changed() => break,
                };
                match accepted {
                    Ok((tcp, remote)) => {
                        accept_one(tcp, remote, service, &ctxs, &slots, tls.clone());
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        error!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    let [imap_addrs, imaps_addrs, pop3_addrs, pop3s_addrs] = bound;
    Ok(Server {
        imap_addrs,
        imaps_addrs,
        pop3_addrs,
        pop3s_addrs,
        auth_tcp_addrs,
        auth,
        stop,
        auth_socket,
        slots,
        storage,
    })
}

/// Admits (or refuses, saying why) one accepted connection and spawns its session.
fn accept_one(
    tcp: TcpStream,
    remote: SocketAddr,
    service: Service,
    ctxs: &Arc<Contexts>,
    slots: &Arc<Slots>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    // IPv6 clients count by /64, as in the rate limiter.
    let ip = crate::auth::ratelimit::address_key(remote.ip());
    let slot = match slots.admit(ip) {
        Ok(slot) => slot,
        Err(why) => return refuse(slots, tcp, remote, service, why),
    };
    let _ = tcp.set_nodelay(true);
    let ctxs = Arc::clone(ctxs);
    tokio::spawn(async move {
        let stream = match tls {
            Some(acceptor) => match handshake(&ctxs, &slot, acceptor, tcp, remote).await {
                Some(s) => Stream::Tls(Box::new(s)),
                None => return,
            },
            None => Stream::Plain(tcp),
        };
        match service {
            Service::Imap | Service::Imaps => {
                Session::new(Arc::clone(&ctxs.imap), stream, remote)
                    .with_slot(slot)
                    .run()
                    .await
            }
            Service::Pop3 | Service::Pop3s => {
                pop3::session::Session::new(Arc::clone(&ctxs.pop3), stream, remote)
                    .with_slot(slot)
                    .run()
                    .await
            }
        }
    });
}

/// The implicit-TLS handshake, bounded by `tls_handshake_timeout` and abandoned at
/// shutdown or when the connection is dropped for a newcomer.
async fn handshake(
    ctxs: &Contexts,
    slot: &ConnSlot,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    remote: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let limit = ctxs.imap.cfg.server.tls_handshake_timeout;
    let mut stop = ctxs.imap.shutdown.clone();
    let why = tokio::select! {
        r = tokio::time::timeout(limit, acceptor.accept(tcp)) => match r {
            Ok(Ok(s)) => return Some(s),
            Ok(Err(e)) => format!("failed: {e}"),
            Err(_) => format!("timed out after {}", crate::config::format_duration(limit)),
        },
        _ = stop.changed() => "abandoned: server shutdown".to_string(),
        _ = slot.kicked() => "abandoned: too many unauthenticated connections".to_string(),
    };
    info!(remote = %remote, "TLS handshake {why}");
    None
}

/// Tells a refused client why (in the clear: not on implicit-TLS ports), without
/// waiting for it, and closes.
fn refuse(slots: &Slots, tcp: TcpStream, remote: SocketAddr, service: Service, why: Refusal) {
    let text = match why {
        Refusal::Full => "too many connections",
        Refusal::PerIp => "too many connections from this address",
    };
    if let Some(n) = slots.note_refusal() {
        warn!(remote = %remote, protocol = service.name(), refused = n,
            "connection refused: {text} (one line per 10 s; `refused` counts since the last)");
    }
    let line = match service {
        Service::Imap => format!("* BYE Server busy: {text}, try again later.\r\n"),
        // RFC 3206 §4: SYS/TEMP, a temporary problem on the server side.
        Service::Pop3 => format!("-ERR [SYS/TEMP] Server busy: {text}, try again later.\r\n"),
        Service::Imaps | Service::Pop3s => return,
    };
    // Best effort: a fresh socket's send buffer takes one short line.
    let _ = tcp.try_write(line.as_bytes());
}

/// Runs the daemon until SIGTERM/SIGINT. Errors are startup failures, in plain words.
pub async fn serve(cfg: Config) -> Result<(), StartError> {
    serve_with(cfg, || Ok::<(), std::convert::Infallible>(())).await
}

/// As [`serve`], with `before_accept` run as in [`start_with`].
pub async fn serve_with<F, E>(cfg: Config, before_accept: F) -> Result<(), StartError>
where
    F: FnOnce() -> Result<(), E>,
    E: std::error::Error + Send + Sync + 'static,
{
    use tokio::signal::unix::{signal, SignalKind};
    let handle = |signal| move |source| StartError::Signal { signal, source };
    let mut term = signal(SignalKind::terminate()).map_err(handle("SIGTERM"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(handle("SIGINT"))?;
    let server = start_with(cfg, before_accept).await?;
    info!("Loft {} ready", env!("CARGO_PKG_VERSION"));
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received, shutting down"),
        _ = int.recv() => info!("SIGINT received, shutting down"),
    }
    server.shutdown().await;
    info!("stopped");
    Ok(())
}
