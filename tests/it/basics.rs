//! Greeting, CAPABILITY, LOGIN/AUTHENTICATE, STARTTLS, IMAPS, LOGOUT.

use base64::Engine;

use crate::util::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_capability_and_logout() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    assert!(
        c.greeting.starts_with("* OK [CAPABILITY IMAP4rev1"),
        "{}",
        c.greeting
    );
    assert!(c.greeting.contains("STARTTLS"));
    assert!(c.greeting.contains("AUTH=PLAIN"));
    let caps = c.ok("CAPABILITY").await;
    assert_eq!(caps.len(), 1);
    assert!(
        caps[0].contains("LITERAL+") && caps[0].contains("SASL-IR") && caps[0].contains("IDLE")
    );
    c.ok("NOOP").await;
    let r = c.ok("LOGOUT").await;
    assert!(r[0].starts_with("* BYE"));
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_good_and_bad() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    let st = c.status("LOGIN alice wrong").await;
    assert!(st.contains("NO [AUTHENTICATIONFAILED]"), "{st}");
    let st = c.status("LOGIN nobody wrong").await;
    assert!(st.contains("NO [AUTHENTICATIONFAILED]"), "{st}");
    let st = c.status("SELECT INBOX").await;
    assert!(st.contains(" BAD "), "{st}");
    let st = c.status("LOGIN alice secret").await;
    assert!(
        st.contains("OK [CAPABILITY IMAP4rev1") && st.contains("UIDPLUS") && st.contains("MOVE"),
        "{st}"
    );
    let st = c.status("LOGIN alice secret").await;
    assert!(st.contains(" BAD "), "{st}");
    // quoted and literal forms
    let mut c = srv.connect().await;
    c.ok("LOGIN \"alice\" \"secret\"").await;
    let mut c = srv.connect().await;
    c.send(b"x1 LOGIN {5}\r\n").await;
    let cont = c.read_checked().await;
    assert!(cont.starts_with("+ "), "{cont}");
    c.send(b"alice {6+}\r\nsecret\r\n").await;
    let r = c.collect("x1").await;
    assert!(r.last().unwrap().starts_with("x1 OK"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticate_plain_and_login() {
    let srv = TestServer::start().await;
    // SASL-IR
    let mut c = srv.connect().await;
    let ir = B64.encode(b"\0alice\0secret");
    c.ok(&format!("AUTHENTICATE PLAIN {ir}")).await;
    // continuation form
    let mut c = srv.connect().await;
    c.send(b"p1 AUTHENTICATE PLAIN\r\n").await;
    assert!(c.read_checked().await.starts_with("+"));
    c.send(format!("{}\r\n", B64.encode(b"alice\0alice\0secret")).as_bytes())
        .await;
    assert!(c.collect("p1").await.last().unwrap().starts_with("p1 OK"));
    // cancel
    let mut c = srv.connect().await;
    c.send(b"p2 AUTHENTICATE PLAIN\r\n").await;
    assert!(c.read_checked().await.starts_with("+"));
    c.send(b"*\r\n").await;
    assert!(c.collect("p2").await.last().unwrap().starts_with("p2 BAD"));
    // wrong password
    let ir = B64.encode(b"\0alice\0nope");
    let st = c.status(&format!("AUTHENTICATE PLAIN {ir}")).await;
    assert!(st.contains("NO [AUTHENTICATIONFAILED]"), "{st}");
    // LOGIN mechanism
    c.send(b"l1 AUTHENTICATE LOGIN\r\n").await;
    let p = c.read_checked().await;
    assert_eq!(p.trim_end(), "+ VXNlcm5hbWU6");
    c.send(format!("{}\r\n", B64.encode("alice")).as_bytes())
        .await;
    let p = c.read_checked().await;
    assert_eq!(p.trim_end(), "+ UGFzc3dvcmQ6");
    c.send(format!("{}\r\n", B64.encode("secret")).as_bytes())
        .await;
    assert!(c.collect("l1").await.last().unwrap().starts_with("l1 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_imaps() {
    let srv = TestServer::start().await;
    let cert = srv.dir.path().join("tls/cert.pem");
    let c = srv.connect().await;
    let mut c = c.starttls(&cert).await;
    let caps = c.ok("CAPABILITY").await;
    assert!(!caps[0].contains("STARTTLS"), "{caps:?}");
    c.ok("LOGIN alice secret").await;
    c.ok("SELECT INBOX").await;

    let mut t = srv.connect_tls().await;
    assert!(!t.greeting.contains("STARTTLS"));
    t.ok("LOGIN alice secret").await;
    t.ok("LOGOUT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_discards_pipelined_plaintext() {
    // A man in the middle may append commands after STARTTLS; they must not be executed
    // inside the TLS session.
    let srv = TestServer::start().await;
    let cert = srv.dir.path().join("tls/cert.pem");
    let mut c = srv.connect().await;
    c.send(b"s1 STARTTLS\r\ns2 LOGIN alice secret\r\n").await;
    let r = c.collect("s1").await;
    assert!(r.last().unwrap().starts_with("s1 OK"));
    let io = std::mem::replace(&mut c.io, Box::new(tokio::io::duplex(1).0));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tls_connector(&cert)
        .connect(name, io)
        .await
        .expect("handshake");
    c.io = Box::new(tls);
    let st = c.status("SELECT INBOX").await;
    assert!(
        st.contains(" BAD "),
        "pipelined LOGIN must have been dropped: {st}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_namespace_enable() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    let r = c.ok("ID (\"name\" \"Thunderbird\")").await;
    assert!(r[0].starts_with("* ID ("), "ID before login: {r:?}");
    c.ok("LOGIN alice secret").await;
    let r = c.ok("ID (\"name\" \"test\" \"version\" \"1\")").await;
    assert!(r[0].starts_with("* ID (\"name\" \"Loft\""), "{r:?}");
    let r = c.ok("ID NIL").await;
    assert_eq!(r.len(), 1);
    let r = c.ok("NAMESPACE").await;
    assert_eq!(r[0], "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    c.strict = false; // imap-codec lacks ENABLE without its extension feature
    let r = c.ok("ENABLE CONDSTORE").await;
    assert_eq!(r[0], "* ENABLED\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_bye() {
    let mut srv = TestServer::start().await;
    let mut c = srv.login().await;
    srv.stop().await;
    let bye = c.read_checked().await;
    assert!(bye.starts_with("* BYE"), "{bye}");
    assert!(c.closed().await);
}
