//! One auth-socket connection: sends the handshake at once, then reads lines and runs
//! many requests concurrently (ids interleave freely; each check runs in its own task
//! and answers when done). Malformed and oversized lines are answered with FAIL when
//! their id is readable, logged, and never disturb other requests. A client that
//! disconnects mid-request is fine: running checks finish and their answers are dropped.
//! Knows the protocol and the authenticator's API; not how passwords are stored.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::RngCore;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::mech::{self, State, Step};
use super::proto::{self, ClientLine, MAX_LINE};
use crate::auth::exchange::{Exchange, Mech, Reply};
use crate::auth::{AuthOutcome, AuthRequest, Authenticator, Service};

/// Requests one connection may have open at once; more are failed as temporary.
pub const MAX_PENDING: usize = 1024;

/// Connection identifiers (CUID), unique within this process.
static NEXT_CUID: AtomicU64 = AtomicU64::new(1);

/// Settings shared by all connections.
pub struct Options {
    /// `[auth] allow_plaintext_auth`: accept plaintext mechanisms for clients whose
    /// connection to the MTA is neither `secured` nor from loopback.
    pub allow_plaintext: bool,
    /// Host name in CRAM-MD5 challenges.
    pub hostname: String,
}

/// Per-request data kept between AUTH and the last CONT.
#[derive(Clone, Debug)]
struct Ctx {
    service: String,
    rip: Option<IpAddr>,
}

enum Pending {
    Waiting(State, Ctx),
    /// A challenge-response exchange waiting for the client's next CONT.
    Exchange(Box<Exchange>, Ctx),
    /// A password check (or a failure delay) is running; its task answers.
    Checking,
}

type PendingMap = Arc<Mutex<HashMap<u32, Pending>>>;

fn lock(p: &PendingMap) -> std::sync::MutexGuard<'_, HashMap<u32, Pending>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Conn {
    auth: Arc<Authenticator>,
    opts: Arc<Options>,
    cuid: u64,
    pending: PendingMap,
}

/// One line read from the client.
enum Read {
    Line(Vec<u8>),
    /// Longer than [`MAX_LINE`]: only its start is kept (enough for the request id).
    TooLong(Vec<u8>),
    Eof,
}

/// Reads up to LF, keeping at most `MAX_LINE + 1` bytes of a line.
async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<Read> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            // EOF; a partial last line is dropped: the client went away mid-request.
            return Ok(Read::Eof);
        }
        let (chunk, used, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (buf.get(..i).unwrap_or_default(), i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(line.len());
        if chunk.len() > room {
            too_long = true;
        }
        line.extend_from_slice(chunk.get(..chunk.len().min(room)).unwrap_or_default());
        r.consume(used);
        if done {
            return Ok(if too_long || line.len() > MAX_LINE {
                Read::TooLong(line)
            } else {
                Read::Line(line)
            });
        }
    }
}

fn cookie() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Conn {
    pub fn new(auth: Arc<Authenticator>, opts: Arc<Options>) -> Conn {
        Conn {
            auth,
            opts,
            cuid: NEXT_CUID.fetch_add(1, Ordering::Relaxed),
            pending: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Serves the connection until the client leaves or `stop` turns true.
    pub async fn run<S>(self, stream: S, peer: String, mut stop: watch::Receiver<bool>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (rd, mut wr) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::channel::<String>(256);
        // The mechanisms usable now (the passwd-file may have changed since the last client).
        let auth = Arc::clone(&self.auth);
        let mechs = tokio::task::spawn_blocking(move || auth.mechanisms())
            .await
            .unwrap_or_else(|_| vec![Mech::Plain, Mech::Login]);
        let hello = proto::handshake(
            &mech::mech_lines(&mechs),
            std::process::id(),
            self.cuid,
            &cookie(),
        );
        let mut wstop = stop.clone();
        let writer = tokio::spawn(async move {
            if wr.write_all(hello.as_bytes()).await.is_err() {
                return;
            }
            loop {
                let msg = tokio::select! {
                    m = rx.recv() => m,
                    _ = wstop.changed() => None,
                };
                let Some(mut out) = msg else { break };
                // Batch whatever else is ready into one write.
                while let Ok(more) = rx.try_recv() {
                    out.push_str(&more);
                }
                if wr.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        debug!(cuid = self.cuid, peer = %peer, "auth client connected");
        let mut reader = BufReader::new(rd);
        loop {
            let read = tokio::select! {
                r = read_line(&mut reader) => r,
                _ = stop.changed() => break,
            };
            let line = match read {
                Ok(Read::Line(l)) => l,
                Ok(Read::TooLong(start)) => {
                    let id = proto::readable_id(&start);
                    warn!(cuid = self.cuid, peer = %peer, id = ?id,
                        "auth client sent a line longer than {MAX_LINE} bytes");
                    if let Some(id) = id {
                        self.fail_bad(&tx, id, "Line too long").await;
                    }
                    continue;
                }
                Ok(Read::Eof) => break,
                Err(e) => {
                    debug!(cuid = self.cuid, "auth client read error: {e}");
                    break;
                }
            };
            if !self.handle(&tx, &line, &peer).await {
                break;
            }
        }
        drop(tx);
        debug!(cuid = self.cuid, peer = %peer, "auth client gone");
        // The writer ends once running checks have answered (or the peer is gone).
        let _ = writer.await;
    }

    /// Handles one line; false closes the connection.
    async fn handle(&self, tx: &mpsc::Sender<String>, line: &[u8], peer: &str) -> bool {
        match proto::parse_line(line) {
            Ok(ClientLine::Version { major, minor }) => {
                if major != proto::MAJOR {
                    warn!(cuid = self.cuid, peer = %peer,
                        "auth client speaks protocol version {major}.{minor}, not {}.x; closing",
                        proto::MAJOR);
                    return false;
                }
                true
            }
            Ok(ClientLine::Cpid(pid)) => {
                debug!(cuid = self.cuid, cpid = %pid, "auth client handshake");
                true
            }
            Ok(ClientLine::Auth(cmd)) => {
                let busy = {
                    let p = lock(&self.pending);
                    if p.contains_key(&cmd.id) {
                        Some("Duplicate request id")
                    } else if p.len() >= MAX_PENDING {
                        Some("Too many concurrent requests")
                    } else {
                        None
                    }
                };
                if let Some(why) = busy {
                    warn!(cuid = self.cuid, id = cmd.id, "auth request refused: {why}");
                    let _ = tx.send(proto::fail(cmd.id, None, Some(why), true)).await;
                    return true;
                }
                let known = Mech::from_name(&cmd.mech).filter(|m| self.auth.mech_allowed(*m));
                let secure = cmd.secured || cmd.rip.is_some_and(|ip| ip.is_loopback());
                let plaintext = known.is_none_or(|m| m.is_plaintext());
                if plaintext && !secure && !self.opts.allow_plaintext {
                    info!(cuid = self.cuid, id = cmd.id, rip = ?cmd.rip, service = %cmd.service,
                        "plaintext authentication refused on a non-secure connection");
                    let why = "Plaintext authentication disallowed on non-secure connections";
                    let _ = tx.send(proto::fail(cmd.id, None, Some(why), false)).await;
                    return true;
                }
                let ctx = Ctx {
                    service: cmd.service.clone(),
                    rip: cmd.rip,
                };
                let svc = Service::from_protocol(&ctx.service);
                match known.and_then(|m| Exchange::new(m, &self.opts.hostname, ctx.rip, svc)) {
                    Some(ex) => {
                        let resp = cmd.resp.as_deref().filter(|r| !r.trim().is_empty());
                        self.run_exchange(tx, cmd.id, ctx, Box::new(ex), resp.map(str::to_owned));
                    }
                    None if known.is_some() => {
                        let step = mech::start(&cmd.mech, cmd.resp.as_deref());
                        self.step(tx, cmd.id, ctx, step).await;
                    }
                    None => {
                        let step = Step::Fail("Unsupported authentication mechanism");
                        self.step(tx, cmd.id, ctx, step).await;
                    }
                }
                true
            }
            Ok(ClientLine::Cont { id, data }) => {
                let entry = lock(&self.pending).remove(&id);
                match entry {
                    Some(Pending::Waiting(state, ctx)) => {
                        let step = mech::next(state, &data);
                        self.step(tx, id, ctx, step).await;
                    }
                    Some(Pending::Exchange(ex, ctx)) => {
                        self.run_exchange(tx, id, ctx, ex, Some(data));
                    }
                    Some(Pending::Checking) => {
                        lock(&self.pending).insert(id, Pending::Checking);
                        warn!(
                            cuid = self.cuid,
                            id, "CONT for a request being checked; ignored"
                        );
                    }
                    None => {
                        warn!(cuid = self.cuid, id, "CONT for an unknown request id");
                        let _ = tx
                            .send(proto::fail(id, None, Some("Unknown request id"), false))
                            .await;
                    }
                }
                true
            }
            Err(bad) => {
                warn!(cuid = self.cuid, peer = %peer, id = ?bad.id,
                    "malformed auth client line: {}", bad.why);
                if let Some(id) = bad.id {
                    self.fail_bad(tx, id, &bad.why).await;
                }
                true
            }
        }
    }

    /// Fails request `id` because of a bad line, unless a check for it is running.
    async fn fail_bad(&self, tx: &mpsc::Sender<String>, id: u32, why: &str) {
        let running = {
            let mut p = lock(&self.pending);
            match p.remove(&id) {
                Some(Pending::Checking) => {
                    p.insert(id, Pending::Checking);
                    true
                }
                _ => false,
            }
        };
        if !running {
            let _ = tx.send(proto::fail(id, None, Some(why), false)).await;
        }
    }

    /// Runs one step of a challenge-response exchange in its own task (checks and failure
    /// delays must not hold up the connection's other requests). `data` is the client's
    /// base64 (`None`: no initial response).
    fn run_exchange(
        &self,
        tx: &mpsc::Sender<String>,
        id: u32,
        ctx: Ctx,
        mut ex: Box<Exchange>,
        data: Option<String>,
    ) {
        lock(&self.pending).insert(id, Pending::Checking);
        let (tx, pending) = (tx.clone(), Arc::clone(&self.pending));
        let auth = Arc::clone(&self.auth);
        let cuid = self.cuid;
        tokio::spawn(async move {
            let decoded = data.as_deref().map(mech::decode_data);
            let reply = match decoded {
                Some(None) => {
                    info!(cuid, id, service = %ctx.service, rip = ?ctx.rip,
                        "authentication failed: invalid base64 data");
                    tokio::time::sleep(auth.failure_delay()).await;
                    Reply::Malformed("Invalid base64 data")
                }
                Some(Some(raw)) => ex.step(&auth, Some(&raw)).await,
                None => ex.step(&auth, None).await,
            };
            let answer = match reply {
                Reply::Challenge(c) => {
                    use base64::Engine;
                    let b64 = base64::engine::general_purpose::STANDARD.encode(c);
                    lock(&pending).insert(id, Pending::Exchange(ex, ctx));
                    let _ = tx.send(proto::cont(id, &b64)).await;
                    return;
                }
                Reply::Done(outcome) => outcome_line(id, ex.user(), outcome),
                Reply::Malformed(why) => proto::fail(id, ex.user(), Some(why), false),
            };
            lock(&pending).remove(&id);
            let _ = tx.send(answer).await;
        });
    }

    async fn step(&self, tx: &mpsc::Sender<String>, id: u32, ctx: Ctx, step: Step) {
        match step {
            Step::Cont(challenge, state) => {
                lock(&self.pending).insert(id, Pending::Waiting(state, ctx));
                let _ = tx.send(proto::cont(id, &challenge)).await;
            }
            Step::Fail(why) => {
                // A malformed exchange costs the failure delay too, without blocking
                // the connection's other requests.
                lock(&self.pending).insert(id, Pending::Checking);
                let (tx, pending) = (tx.clone(), Arc::clone(&self.pending));
                let delay = self.auth.failure_delay();
                info!(cuid = self.cuid, id, service = %ctx.service, rip = ?ctx.rip,
                    "authentication failed: {why}");
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    lock(&pending).remove(&id);
                    let _ = tx.send(proto::fail(id, None, Some(why), false)).await;
                });
            }
            Step::Check { user, password } => {
                lock(&self.pending).insert(id, Pending::Checking);
                let (tx, pending) = (tx.clone(), Arc::clone(&self.pending));
                let auth = Arc::clone(&self.auth);
                tokio::spawn(async move {
                    let outcome = auth
                        .authenticate_for(&AuthRequest {
                            user: &user,
                            password: &password,
                            remote: ctx.rip,
                            service: Service::from_protocol(&ctx.service),
                        })
                        .await;
                    let answer = outcome_line(id, Some(&user), outcome);
                    lock(&pending).remove(&id);
                    let _ = tx.send(answer).await;
                });
            }
        }
    }
}

/// The OK or FAIL line for a finished check.
fn outcome_line(id: u32, user: Option<&str>, outcome: AuthOutcome) -> String {
    match outcome {
        AuthOutcome::Ok(u) => proto::ok(id, &u.name),
        AuthOutcome::Failed => proto::fail(id, user, None, false),
        AuthOutcome::TempFail(_) => {
            proto::fail(id, user, Some("Temporary authentication failure"), true)
        }
        AuthOutcome::Busy => proto::fail(id, user, Some("Server busy, try again"), true),
        AuthOutcome::RateLimited => proto::fail(
            id,
            user,
            Some("Too many failed logins, try again later"),
            true,
        ),
    }
}
