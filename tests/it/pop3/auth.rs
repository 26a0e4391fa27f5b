//! AUTHORIZATION: greeting, CAPA, USER/PASS, APOP, AUTH PLAIN/LOGIN, STLS, POP3S, state
//! rules and response codes.

use base64::Engine;

use super::client::*;
use crate::util::*;

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capa_in_each_state() {
    let p3 = Pop3Server::start().await;
    let mut p = p3.connect().await;
    let caps = p.lines("CAPA").await;
    for want in [
        "TOP",
        "UIDL",
        "USER",
        "RESP-CODES",
        "PIPELINING",
        "AUTH-RESP-CODE",
        "SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
        "STLS",
    ] {
        assert!(caps.iter().any(|c| c == want), "{want} missing: {caps:?}");
    }
    assert!(caps.iter().any(|c| c.starts_with("IMPLEMENTATION Loft")));
    assert!(!caps.iter().any(|c| c.starts_with("LOGIN-DELAY")));
    p.ok(&format!("USER {USER}")).await;
    p.ok(&format!("PASS {PASS}")).await;
    let caps = p.lines("CAPA").await;
    assert!(caps.iter().any(|c| c == "TOP") && caps.iter().any(|c| c == "UIDL"));
    assert!(!caps
        .iter()
        .any(|c| c == "USER" || c == "STLS" || c.starts_with("SASL")));
    p.ok("QUIT").await;
    assert!(p.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_pass_and_state_rules() {
    let p3 = Pop3Server::start().await;
    let mut p = p3.connect().await;
    // TRANSACTION commands before login.
    for c in [
        "STAT", "LIST", "RETR 1", "DELE 1", "RSET", "NOOP", "TOP 1 1", "UIDL",
    ] {
        p.err(c).await;
    }
    p.err("PASS secret").await;
    p.err("FROBNICATE").await;
    // A wrong password: [AUTH] (RFC 3206 §4); the USER must be given again.
    p.ok("USER alice").await;
    assert!(p.err("PASS wrong").await.starts_with("-ERR [AUTH] "));
    p.err("PASS secret").await;
    // An unknown user fails the same way.
    p.ok("USER nobody").await;
    assert!(p.err("PASS secret").await.starts_with("-ERR [AUTH] "));
    // USER, then another command, forgets the user.
    p.ok("USER alice").await;
    p.lines("CAPA").await;
    p.err("PASS secret").await;
    p.ok("USER alice").await;
    p.ok("PASS secret").await;
    // AUTHORIZATION commands after login.
    for c in [
        "USER alice",
        "PASS secret",
        "STLS",
        "AUTH PLAIN",
        "APOP a b",
    ] {
        p.err(c).await;
    }
    p.ok("NOOP").await;
    p.ok("STAT").await;
    p.ok("QUIT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_with_spaces() {
    let p3 = Pop3Server::start().await;
    std::fs::write(p3.srv.dir.path().join("users"), "alice:{PLAIN}two words\n").unwrap();
    // The passwd-file is re-read at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut p = p3.connect().await;
    p.ok("USER alice").await;
    p.ok("PASS two words").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apop_with_plain_passwords() {
    let p3 = Pop3Server::start().await;
    let mut p = p3.connect().await;
    let start = p.greeting.find('<').expect("APOP timestamp in greeting");
    let stamp = p.greeting[start..].to_string();
    assert!(stamp.ends_with('>') && stamp.contains('@'), "{stamp}");
    let wrong = loft::auth::md5::hex_digest(format!("{stamp}nope").as_bytes());
    assert!(p
        .err(&format!("APOP alice {wrong}"))
        .await
        .starts_with("-ERR [AUTH]"));
    let digest = loft::auth::md5::hex_digest(format!("{stamp}{PASS}").as_bytes());
    p.ok(&format!("APOP alice {digest}")).await;
    p.ok("STAT").await;
    p.ok("QUIT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_apop_without_plain_passwords() {
    let p3 = Pop3Server::start().await;
    let hashed = loft::auth::hash_password(loft::auth::Scheme::Sha256Crypt, PASS).unwrap();
    std::fs::write(p3.srv.dir.path().join("users"), format!("alice:{hashed}\n")).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut p = p3.connect().await;
    assert!(!p.greeting.contains('<'), "{}", p.greeting);
    p.err("APOP alice 0123456789abcdef0123456789abcdef").await;
    // USER/PASS still works with the hash.
    p.ok("USER alice").await;
    p.ok(&format!("PASS {PASS}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_plain_and_login() {
    let p3 = Pop3Server::start().await;
    // AUTH alone lists the mechanisms.
    let mut p = p3.connect().await;
    assert_eq!(
        p.lines("AUTH").await,
        vec!["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
    );
    // PLAIN with an initial response (RFC 5034 §4).
    p.ok(&format!("AUTH PLAIN {}", b64(b"\0alice\0secret")))
        .await;
    p.ok("STAT").await;
    p.ok("QUIT").await;

    // PLAIN with an empty challenge.
    let mut p = p3.connect().await;
    assert_eq!(p.cmd("AUTH PLAIN").await, "+ ");
    p.ok(&b64(b"alice\0alice\0secret")).await;
    p.ok("QUIT").await;

    // A wrong password and a malformed message: [AUTH].
    let mut p = p3.connect().await;
    assert!(p
        .err(&format!("AUTH PLAIN {}", b64(b"\0alice\0bad")))
        .await
        .starts_with("-ERR [AUTH]"));
    assert!(p
        .err("AUTH PLAIN !!!notbase64")
        .await
        .starts_with("-ERR [AUTH]"));
    // Someone else's authorization identity is refused.
    p.err(&format!("AUTH PLAIN {}", b64(b"bob\0alice\0secret")))
        .await;
    // "*" cancels (RFC 5034 §4).
    assert_eq!(p.cmd("AUTH PLAIN").await, "+ ");
    p.err("*").await;
    assert_eq!(p.cmd("AUTH LOGIN").await, "+ VXNlcm5hbWU6");
    p.err("*").await;
    p.err("AUTH DIGEST-MD5").await;

    // LOGIN, with and without the user name as initial response.
    assert_eq!(p.cmd("AUTH LOGIN").await, "+ VXNlcm5hbWU6");
    assert_eq!(p.cmd(&b64(b"alice")).await, "+ UGFzc3dvcmQ6");
    p.ok(&b64(b"secret")).await;
    p.ok("QUIT").await;
    let mut p = p3.connect().await;
    assert_eq!(
        p.cmd(&format!("AUTH LOGIN {}", b64(b"alice"))).await,
        "+ UGFzc3dvcmQ6"
    );
    p.ok(&b64(b"secret")).await;
    p.ok("QUIT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3s_and_stls() {
    let p3 = Pop3Server::start().await;
    let cert = p3.srv.dir.path().join("tls/cert.pem");
    // Implicit TLS.
    let mut p = p3.connect_tls().await;
    let caps = p.lines("CAPA").await;
    assert!(!caps.iter().any(|c| c == "STLS"), "{caps:?}");
    assert!(caps.iter().any(|c| c == "USER"));
    p.ok("USER alice").await;
    p.ok("PASS secret").await;
    p.ok("STAT").await;
    p.ok("QUIT").await;

    // STLS, then everything inside TLS.
    let p = p3.connect().await;
    let mut p = p.stls(&cert).await;
    let caps = p.lines("CAPA").await;
    assert!(!caps.iter().any(|c| c == "STLS"), "{caps:?}");
    p.err("STLS").await;
    p.ok("USER alice").await;
    p.ok("PASS secret").await;
    p.ok("QUIT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stls_discards_pipelined_plaintext() {
    let p3 = Pop3Server::start().await;
    let cert = p3.srv.dir.path().join("tls/cert.pem");
    let mut p = p3.connect().await;
    // USER sent in the clear behind STLS must not count once TLS is up (RFC 2595 §4).
    p.send(b"STLS\r\nUSER alice\r\n").await;
    let r = p.line().await;
    assert!(r.starts_with("+OK"), "{r}");
    let io = std::mem::replace(&mut p.io, Box::new(tokio::io::duplex(1).0));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    p.io = Box::new(
        tls_connector(&cert)
            .connect(name, io)
            .await
            .expect("handshake"),
    );
    let r = p.err("PASS secret").await;
    assert!(r.contains("USER"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_delay_code() {
    let p3 =
        Pop3Server::start_with(|c| c.pop3.login_delay = std::time::Duration::from_secs(60)).await;
    let mut p = p3.connect().await;
    let caps = p.lines("CAPA").await;
    assert!(caps.iter().any(|c| c == "LOGIN-DELAY 60"), "{caps:?}");
    p.ok("USER alice").await;
    p.ok("PASS secret").await;
    p.ok("QUIT").await;
    let mut p = p3.connect().await;
    p.ok("USER alice").await;
    assert!(p.err("PASS secret").await.starts_with("-ERR [LOGIN-DELAY]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_commands_and_long_lines() {
    let p3 = Pop3Server::start_with(|c| c.pop3.max_line_length = 512).await;
    let mut p = p3.connect().await;
    let long = format!("USER {}", "a".repeat(2000));
    p.err(&long).await;
    p.err("\u{1}\u{2}").await;
    p.send(b"\xff\xfe\r\n").await;
    assert!(p.line().await.starts_with("-ERR"));
    p.ok("USER alice").await;
    p.ok("PASS secret").await;
    // 20 bad commands in a row end the session.
    for _ in 0..19 {
        p.err("BOGUS").await;
    }
    let r = p.cmd("BOGUS").await;
    assert!(r.starts_with("-ERR"));
    assert_eq!(p.line().await, "-ERR Too many bad commands.");
    assert!(p.closed().await);
}

/// A non-loopback address of this machine, if it has one (no packet is sent).
fn lan_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_refused_before_tls_on_non_loopback() {
    let Some(ip) = lan_ip() else {
        eprintln!("NOTICE: no non-loopback address; skipping");
        return;
    };
    let p3 = Pop3Server::start_with(|c| {
        c.pop3.listen = vec![std::net::SocketAddr::new(ip, 0)];
    })
    .await;
    let cert = p3.srv.dir.path().join("tls/cert.pem");
    let mut p = p3.connect().await;
    let caps = p.lines("CAPA").await;
    // Challenge-response mechanisms stay available: they send no password.
    assert!(!caps.iter().any(|c| c == "USER"), "{caps:?}");
    assert!(
        caps.iter().any(|c| c == "SASL CRAM-MD5 SCRAM-SHA-256"),
        "{caps:?}"
    );
    assert!(caps.iter().any(|c| c == "STLS"), "{caps:?}");
    assert_eq!(p.lines("AUTH").await, vec!["CRAM-MD5", "SCRAM-SHA-256"]);
    for c in ["USER alice", "AUTH PLAIN", "AUTH LOGIN"] {
        let r = p.err(c).await;
        assert!(r.starts_with("-ERR [AUTH] Plaintext"), "{c} -> {r}");
    }
    let mut p = p.stls(&cert).await;
    p.ok("USER alice").await;
    p.ok("PASS secret").await;
}
