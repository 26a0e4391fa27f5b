//! SASL CRAM-MD5 and SCRAM-SHA-256 through the real server: IMAP AUTHENTICATE (with and
//! without SASL-IR), POP3 AUTH, which mechanisms are advertised for which passdb, and that
//! they work without TLS where plaintext logins are refused.

use std::time::Duration;

use base64::Engine;

use crate::pop3::client::{Pop, Pop3Server};
use crate::scram_client::Scram;
use crate::util::*;
use loft::auth::{cram, hash_password, md5, Scheme};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn b64(s: impl AsRef<[u8]>) -> String {
    B64.encode(s)
}

fn unb64(line: &str) -> String {
    let data = line.trim_end().strip_prefix("+").unwrap().trim_start();
    String::from_utf8(B64.decode(data).unwrap()).unwrap()
}

fn cram_answer(user: &str, secret: &str, challenge: &str) -> String {
    let d = md5::hex(&cram::hmac_md5(secret.as_bytes(), challenge.as_bytes()));
    b64(format!("{user} {d}"))
}

fn auth_caps(greeting: &str) -> Vec<String> {
    greeting
        .split([' ', ']'])
        .filter(|w| w.starts_with("AUTH="))
        .map(String::from)
        .collect()
}

/// Writes the users file and waits out the passdb's once-a-second change check.
async fn rewrite_users(srv: &TestServer, text: &str) {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(srv.dir.path().join("users"), text).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

async fn imap_cram(c: &mut Client, user: &str, secret: &str) -> String {
    c.send(b"c1 AUTHENTICATE CRAM-MD5\r\n").await;
    let ch = unb64(&s(&c.read_unit().await));
    assert!(
        ch.starts_with('<') && ch.ends_with('>') && ch.contains('@'),
        "{ch}"
    );
    c.send(format!("{}\r\n", cram_answer(user, secret, &ch)).as_bytes())
        .await;
    c.read_checked().await
}

/// A SCRAM exchange; returns the tagged answer. Checks the server signature on success.
async fn imap_scram(c: &mut Client, user: &str, pw: &str, sasl_ir: bool) -> String {
    let mut sc = Scram::new("n,,", user, pw, "fyko+d2lbbFgONRv9qkxdawL");
    if sasl_ir {
        c.send(
            format!(
                "s1 AUTHENTICATE SCRAM-SHA-256 {}\r\n",
                b64(sc.first_message())
            )
            .as_bytes(),
        )
        .await;
    } else {
        c.send(b"s1 AUTHENTICATE SCRAM-SHA-256\r\n").await;
        assert_eq!(s(&c.read_unit().await).trim_end(), "+");
        c.send(format!("{}\r\n", b64(sc.first_message())).as_bytes())
            .await;
    }
    let sf = unb64(&s(&c.read_unit().await));
    let fin = sc.final_message(&sf);
    c.send(format!("{}\r\n", b64(fin)).as_bytes()).await;
    let next = s(&c.read_unit().await);
    if !next.starts_with('+') {
        return next;
    }
    assert_eq!(Some(unb64(&next)), sc.expected_v, "server signature");
    c.send(b"\r\n").await;
    c.read_checked().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_cram_md5_and_scram_succeed_and_fail() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    let caps = auth_caps(&c.greeting);
    for m in [
        "AUTH=PLAIN",
        "AUTH=LOGIN",
        "AUTH=CRAM-MD5",
        "AUTH=SCRAM-SHA-256",
    ] {
        assert!(caps.contains(&m.to_string()), "{m} missing: {caps:?}");
    }
    let r = imap_cram(&mut c, USER, "wrong").await;
    assert!(r.starts_with("c1 NO [AUTHENTICATIONFAILED]"), "{r}");
    let r = imap_cram(&mut c, "nobody", "x").await;
    assert!(r.starts_with("c1 NO [AUTHENTICATIONFAILED]"), "{r}");
    let r = imap_cram(&mut c, USER, PASS).await;
    assert!(r.starts_with("c1 OK [CAPABILITY "), "{r}");
    c.ok("SELECT INBOX").await;

    for ir in [false, true] {
        let mut c = srv.connect().await;
        let r = imap_scram(&mut c, USER, "wrong", ir).await;
        assert!(r.starts_with("s1 NO [AUTHENTICATIONFAILED]"), "{r}");
        let r = imap_scram(&mut c, "nobody", PASS, ir).await;
        assert!(r.starts_with("s1 NO [AUTHENTICATIONFAILED]"), "{r}");
        let r = imap_scram(&mut c, "bob", "hunter2", ir).await;
        assert!(r.starts_with("s1 OK [CAPABILITY "), "{r}");
        c.ok("SELECT INBOX").await;
    }

    // Malformed messages and cancel.
    let mut c = srv.connect().await;
    c.send(
        format!(
            "s2 AUTHENTICATE SCRAM-SHA-256 {}\r\n",
            b64("p=tls-unique,,n=bob,r=x")
        )
        .as_bytes(),
    )
    .await;
    assert!(c
        .read_checked()
        .await
        .starts_with("s2 NO [AUTHENTICATIONFAILED]"));
    c.send(b"s3 AUTHENTICATE CRAM-MD5\r\n").await;
    c.read_unit().await;
    c.send(b"*\r\n").await;
    assert!(c.read_checked().await.starts_with("s3 BAD"));
    c.send(b"s4 AUTHENTICATE CRAM-MD5\r\n").await;
    c.read_unit().await;
    c.send(b"!!notbase64\r\n").await;
    assert!(c.read_checked().await.starts_with("s4 BAD"));
    c.send(b"s5 AUTHENTICATE DIGEST-MD5\r\n").await;
    assert!(c.read_checked().await.starts_with("s5 NO"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_scram_and_cram_schemes() {
    let scram = hash_password(Scheme::ScramSha256, "s3cr3t").unwrap();
    let crammd5 = hash_password(Scheme::CramMd5, "t0p").unwrap();
    let sha = hash_password(Scheme::Sha512Crypt, "pw").unwrap();
    let srv = TestServer::start().await;
    rewrite_users(
        &srv,
        &format!("carol:{scram}\ndave:{crammd5}\nerin:{sha}\n"),
    )
    .await;
    let mut c = srv.connect().await;
    let caps = auth_caps(&c.greeting);
    assert!(
        caps.contains(&"AUTH=SCRAM-SHA-256".into()) && caps.contains(&"AUTH=CRAM-MD5".into()),
        "{caps:?}"
    );
    // SCRAM with the stored keys; plain LOGIN against the stored SCRAM hash too.
    assert!(imap_scram(&mut c, "carol", "s3cr3t", true)
        .await
        .starts_with("s1 OK"));
    let mut c = srv.connect().await;
    c.ok("LOGIN carol s3cr3t").await;
    // CRAM-MD5 with the stored contexts; SCRAM for that user fails like a wrong password.
    let mut c = srv.connect().await;
    assert!(imap_cram(&mut c, "dave", "t0p").await.starts_with("c1 OK"));
    let mut c = srv.connect().await;
    assert!(imap_scram(&mut c, "dave", "t0p", false)
        .await
        .starts_with("s1 NO [AUTHENTICATIONFAILED]"));
    assert!(imap_cram(&mut c, "erin", "pw")
        .await
        .starts_with("c1 NO [AUTHENTICATIONFAILED]"));
    let r = imap_scram(&mut c, "erin", "pw", false).await;
    assert!(r.starts_with("s1 NO [AUTHENTICATIONFAILED]"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertised_only_when_some_user_can_use_them() {
    let sha = hash_password(Scheme::Sha512Crypt, "pw").unwrap();
    let scram = hash_password(Scheme::ScramSha256, "pw").unwrap();
    let srv = TestServer::start().await;
    rewrite_users(&srv, &format!("erin:{sha}\n")).await;
    let c = srv.connect().await;
    assert_eq!(auth_caps(&c.greeting), ["AUTH=PLAIN", "AUTH=LOGIN"]);
    rewrite_users(&srv, &format!("erin:{sha}\ncarol:{scram}\n")).await;
    let mut c = srv.connect().await;
    assert_eq!(
        auth_caps(&c.greeting),
        ["AUTH=PLAIN", "AUTH=LOGIN", "AUTH=SCRAM-SHA-256"]
    );
    let caps = c.ok("CAPABILITY").await;
    assert!(caps[0].contains("AUTH=SCRAM-SHA-256") && !caps[0].contains("AUTH=CRAM-MD5"));

    // The config switch.
    let srv = TestServer::start_with(|c| {
        c.auth.mechanisms = vec!["PLAIN".into(), "SCRAM-SHA-256".into()];
    })
    .await;
    let mut c = srv.connect().await;
    assert_eq!(auth_caps(&c.greeting), ["AUTH=PLAIN", "AUTH=SCRAM-SHA-256"]);
    c.send(b"c1 AUTHENTICATE CRAM-MD5\r\n").await;
    assert!(c.read_checked().await.starts_with("c1 NO"));
    c.send(b"c2 AUTHENTICATE LOGIN\r\n").await;
    assert!(c.read_checked().await.starts_with("c2 NO"));
}

fn lan_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_response_works_where_plaintext_is_refused() {
    let Some(ip) = lan_ip() else {
        eprintln!("NOTICE: no non-loopback address; skipping");
        return;
    };
    let srv = TestServer::start_with(|c| {
        c.imap.listen = vec![std::net::SocketAddr::new(ip, 0)];
    })
    .await;
    let mut c = Client::plain(srv.addr).await;
    assert!(c.greeting.contains("LOGINDISABLED"), "{}", c.greeting);
    assert_eq!(
        auth_caps(&c.greeting),
        ["AUTH=CRAM-MD5", "AUTH=SCRAM-SHA-256"]
    );
    c.send(format!("p1 AUTHENTICATE PLAIN {}\r\n", b64("\0alice\0secret")).as_bytes())
        .await;
    assert!(c
        .read_checked()
        .await
        .starts_with("p1 NO [PRIVACYREQUIRED]"));
    assert!(imap_cram(&mut c, USER, PASS).await.starts_with("c1 OK"));
    let mut c = Client::plain(srv.addr).await;
    assert!(imap_scram(&mut c, "bob", "hunter2", true)
        .await
        .starts_with("s1 OK"));
}

async fn pop_cram(p: &mut Pop, user: &str, secret: &str) -> String {
    p.send(b"AUTH CRAM-MD5\r\n").await;
    let ch = unb64(&p.line().await);
    p.send(format!("{}\r\n", cram_answer(user, secret, &ch)).as_bytes())
        .await;
    p.line().await
}

async fn pop_scram(p: &mut Pop, user: &str, pw: &str, ir: bool) -> String {
    let mut sc = Scram::new("y,,", user, pw, "abcdefghijklmnop");
    if ir {
        p.send(format!("AUTH SCRAM-SHA-256 {}\r\n", b64(sc.first_message())).as_bytes())
            .await;
    } else {
        p.send(b"AUTH SCRAM-SHA-256\r\n").await;
        assert_eq!(p.line().await.trim_end(), "+");
        p.send(format!("{}\r\n", b64(sc.first_message())).as_bytes())
            .await;
    }
    let sf = unb64(&p.line().await);
    p.send(format!("{}\r\n", b64(sc.final_message(&sf))).as_bytes())
        .await;
    let next = p.line().await;
    if !next.starts_with('+') {
        return next;
    }
    assert_eq!(Some(unb64(&next)), sc.expected_v);
    p.send(b"\r\n").await;
    p.line().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_auth_cram_md5_and_scram() {
    let p3 = Pop3Server::start().await;
    let mut p = p3.connect().await;
    let caps = p.lines("CAPA").await;
    assert!(
        caps.iter()
            .any(|c| c == "SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256"),
        "{caps:?}"
    );
    assert_eq!(
        p.lines("AUTH").await,
        ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
    );
    let r = pop_cram(&mut p, USER, "nope").await;
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
    let r = pop_cram(&mut p, USER, PASS).await;
    assert!(r.starts_with("+OK"), "{r}");
    p.ok("QUIT").await;
    for ir in [false, true] {
        let mut p = p3.connect().await;
        let r = pop_scram(&mut p, "bob", "wrong", ir).await;
        assert!(r.starts_with("-ERR [AUTH]"), "{r}");
        let r = pop_scram(&mut p, "bob", "hunter2", ir).await;
        assert!(r.starts_with("+OK"), "{r}");
        p.ok("STAT").await;
        p.ok("QUIT").await;
    }
    // Malformed: no panic, a plain failure.
    let mut p = p3.connect().await;
    p.send(format!("AUTH SCRAM-SHA-256 {}\r\n", b64("n,,m=x,n=bob,r=abc")).as_bytes())
        .await;
    assert!(p.line().await.starts_with("-ERR [AUTH]"));
    p.send(b"AUTH CRAM-MD5\r\n").await;
    p.line().await;
    p.send(b"*\r\n").await;
    assert!(p.line().await.starts_with("-ERR"));
    assert!(!p.lines("CAPA").await.is_empty());
}
