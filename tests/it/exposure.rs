//! Bounded work for unauthenticated clients (issue 10): the total login deadline, TLS
//! handshake deadlines, shutdown with stalled handshakes, connection slots that idle
//! unauthenticated connections cannot exhaust, and how a session dropped in IDLE is
//! logged.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::logcap;
use crate::pop3::client::Pop3Server;
use crate::util::*;

/// A connection from a chosen loopback address (127.0.0.0/8 is all local on Linux).
async fn connect_from(last: u8, addr: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0)))
        .expect("bind a loopback source address");
    sock.connect(addr).await.expect("connect")
}

/// Reads one line (or whatever came before EOF / `wait`), as text.
async fn line(tcp: &mut TcpStream, wait: Duration) -> String {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n") {
        match tokio::time::timeout_at(deadline, tcp.read(&mut byte)).await {
            Ok(Ok(1)) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Waits until the peer closes (true) or `wait` passes (false), discarding data.
async fn closes_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_timeout_is_a_total_deadline_not_per_command() {
    let srv = TestServer::start_with(|c| c.imap.login_timeout = Duration::from_millis(1500)).await;
    let mut c = srv.connect().await;
    let t = Instant::now();
    let mut dropped = false;
    while t.elapsed() < Duration::from_secs(5) {
        let cmd = format!("{} NOOP\r\n", c.tag());
        c.send(cmd.as_bytes()).await;
        let mut saw_bye = false;
        loop {
            let l = s(&c.read_unit().await);
            if l.starts_with("* BYE") {
                assert!(l.contains("Login timed out"), "{l}");
                saw_bye = true;
                break;
            }
            if !l.starts_with('*') {
                break;
            }
        }
        if saw_bye {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(dropped, "a client sending NOOP was never dropped");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(1200), "{took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_login_timeout_is_a_total_deadline() {
    let srv = Pop3Server::start_with(|c| c.pop3.login_timeout = Duration::from_millis(1500)).await;
    let mut p = srv.connect().await;
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(5), "never dropped");
        p.send(b"NOOP\r\n").await;
        let l = p.line().await;
        if l.contains("login timed out") {
            break;
        }
        assert!(l.starts_with("-ERR"), "{l}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_starttls_handshake_times_out() {
    let srv = TestServer::start_with(|c| {
        c.server.tls_handshake_timeout = Duration::from_millis(700);
    })
    .await;
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    assert!(line(&mut tcp, Duration::from_secs(5))
        .await
        .starts_with("* OK"));
    tcp.write_all(b"a STARTTLS\r\n").await.unwrap();
    assert!(line(&mut tcp, Duration::from_secs(5))
        .await
        .starts_with("a OK"));
    // No ClientHello ever comes.
    let t = Instant::now();
    assert!(
        closes_within(&mut tcp, Duration::from_secs(5)).await,
        "still open"
    );
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_implicit_tls_handshake_times_out() {
    let srv = TestServer::start_with(|c| {
        c.server.tls_handshake_timeout = Duration::from_millis(700);
    })
    .await;
    let mut tcp = TcpStream::connect(srv.tls_addr).await.unwrap();
    let t = Instant::now();
    assert!(
        closes_within(&mut tcp, Duration::from_secs(5)).await,
        "still open"
    );
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_stalled_handshakes() {
    let mut srv = Pop3Server::start().await;
    // Stalled in an implicit-TLS handshake (IMAPS, POP3S) and in STARTTLS and STLS.
    let _a = TcpStream::connect(srv.srv.tls_addr).await.unwrap();
    let _b = TcpStream::connect(srv.pop3s).await.unwrap();
    let mut c = TcpStream::connect(srv.srv.addr).await.unwrap();
    line(&mut c, Duration::from_secs(5)).await;
    c.write_all(b"a STARTTLS\r\n").await.unwrap();
    assert!(line(&mut c, Duration::from_secs(5))
        .await
        .starts_with("a OK"));
    let mut d = TcpStream::connect(srv.pop3).await.unwrap();
    line(&mut d, Duration::from_secs(5)).await;
    d.write_all(b"STLS\r\n").await.unwrap();
    assert!(line(&mut d, Duration::from_secs(5))
        .await
        .starts_with("+OK"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    srv.srv.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        t.elapsed()
    );
}

/// Opens `n` idle connections from 127.0.0.{first..} (`per_ip` each) and returns them
/// with how many were told `* BYE` at once (refused) instead of greeted.
async fn idle_flood(
    addr: SocketAddr,
    n: usize,
    per_ip: usize,
    first: u8,
) -> (Vec<TcpStream>, usize) {
    let mut conns = Vec::new();
    let mut refused = 0;
    for i in 0..n {
        let mut tcp = connect_from(first + (i / per_ip) as u8, addr).await;
        let l = line(&mut tcp, Duration::from_secs(5)).await;
        if l.starts_with("* BYE") {
            refused += 1;
        } else {
            assert!(l.starts_with("* OK"), "connection {i}: {l:?}");
            conns.push(tcp);
        }
    }
    (conns, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_unauthenticated_connections_cannot_lock_out_users() {
    let srv = TestServer::start_with(|c| {
        c.server.max_connections = 40;
        c.server.max_connections_per_ip = 10;
    })
    .await;
    // Ten users logged in before the flood.
    let mut sessions = Vec::new();
    for _ in 0..10 {
        sessions.push(srv.login().await);
    }
    // 300 idle connections from 30 addresses: far more than the 40 slots.
    let (mut flood, _) = idle_flood(srv.addr, 300, 10, 2).await;
    let counts = srv.server.as_ref().unwrap().slots.counts();
    assert!(counts.0 <= 40 && counts.1 <= 20, "slots {counts:?}");
    // Most early flood connections were told to go, with a BYE.
    let mut told = 0;
    for tcp in flood.iter_mut().take(250) {
        let l = line(tcp, Duration::from_millis(20)).await;
        if l.starts_with("* BYE") {
            told += 1;
        }
    }
    assert!(told >= 200, "only {told} dropped connections said BYE");
    // Logged-in sessions are untouched and a real user still gets in.
    for c in sessions.iter_mut() {
        c.ok("NOOP").await;
    }
    let mut fresh = srv.login().await;
    fresh.ok("SELECT INBOX").await;
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_cap_refuses_with_bye() {
    let srv = Pop3Server::start_with(|c| c.server.max_connections_per_ip = 3).await;
    let (_kept, refused) = idle_flood(srv.srv.addr, 5, 5, 60).await;
    assert_eq!(refused, 2);
    // POP3 refuses with -ERR.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tcp = connect_from(61, srv.pop3).await;
        assert!(line(&mut tcp, Duration::from_secs(5))
            .await
            .starts_with("+OK"));
        held.push(tcp);
    }
    let mut tcp = connect_from(61, srv.pop3).await;
    let l = line(&mut tcp, Duration::from_secs(5)).await;
    assert!(l.starts_with("-ERR [SYS/TEMP]"), "{l:?}");
    // The cap counts connections before login only: logged-in ones free their place.
    let mut users = Vec::new();
    for _ in 0..4 {
        let tcp = connect_from(62, srv.srv.addr).await;
        let mut c = Client::from_io(Box::new(tcp)).await;
        c.ok(&format!("LOGIN {USER} {PASS}")).await;
        users.push(c);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_dropped_in_idle_is_logged_as_a_disconnect() {
    logcap::install();
    let srv = TestServer::start().await;
    let tcp = TcpStream::connect(srv.addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut c = Client::from_io(Box::new(tcp)).await;
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    c.ok("SELECT INBOX").await;
    c.send(b"i IDLE\r\n").await;
    assert!(s(&c.read_unit().await).starts_with("+ "));
    drop(c);
    let needle = format!("remote={local}");
    let t = Instant::now();
    let found = loop {
        let hit = logcap::lines()
            .into_iter()
            .find(|l| l.contains(&needle) && l.contains("logout ("));
        if let Some(l) = hit {
            break l;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no logout line for {local}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(found.contains("logout (disconnected)"), "{found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stalled_inside_authenticate_can_be_dropped_too() {
    let srv = TestServer::start_with(|c| c.server.max_connections = 10).await;
    let mut stalled = Vec::new();
    for i in 0..5 {
        let mut tcp = connect_from(70 + i, srv.addr).await;
        assert!(line(&mut tcp, Duration::from_secs(5))
            .await
            .starts_with("* OK"));
        tcp.write_all(b"a AUTHENTICATE PLAIN\r\n").await.unwrap();
        assert!(line(&mut tcp, Duration::from_secs(5))
            .await
            .starts_with("+"));
        stalled.push(tcp);
    }
    // The unauthenticated share (5) is held by clients that never answer the SASL
    // continuation; a newcomer still gets in, and the oldest stalled one is told to go.
    let mut c = Client::from_io(Box::new(connect_from(80, srv.addr).await)).await;
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    let mut told = String::new();
    for _ in 0..3 {
        told.push_str(&line(&mut stalled[0], Duration::from_secs(2)).await);
    }
    assert!(
        told.contains("* BYE Too many connections not logged in"),
        "{told:?}"
    );
}
