//! Malformed input, limits, and timeouts: the session answers and goes on.

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_bad_and_session_continues() {
    let srv = TestServer::start().await;
    let mut c = srv.connect().await;
    for junk in [
        &b"\r\n"[..],
        b"*\r\n",
        b"a1\r\n",
        b"a2 FROBNICATE\r\n",
        b"a3 LOGIN\r\n",
        b"a4 LOGIN a b c d\r\n",
        b"a5 SELECT \"unterminated\r\n",
        b"\x00\xff\xfe garbage\r\n",
        b"a6 FETCH ((((((((((((\r\n",
    ] {
        c.send(junk).await;
        let line = c.read_checked().await;
        assert!(line.contains(" BAD "), "{:?} -> {line}", s(junk));
    }
    c.ok("NOOP").await;
    c.ok("LOGIN alice secret").await;
    c.ok("SELECT INBOX").await;
    let st = c.status("SEARCH ".to_string().as_str()).await;
    assert!(st.contains(" BAD "), "{st}");
    let deep = format!("SEARCH {}ALL{}", "(".repeat(5000), ")".repeat(5000));
    let st = c.status(&deep).await;
    assert!(st.contains(" BAD "), "{st}");
    c.ok("NOOP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_and_literal_limits() {
    let srv = TestServer::start_with(|cfg| cfg.imap.max_line_length = 4096).await;
    let mut c = srv.login().await;
    let long = format!("a1 NOOP {}\r\n", "x".repeat(10_000));
    c.send(long.as_bytes()).await;
    let line = c.read_checked().await;
    assert!(line.contains("BAD") && line.contains("too long"), "{line}");
    c.ok("NOOP").await;
    c.send(b"a2 LOGIN {100000}\r\n").await;
    let line = c.read_checked().await;
    assert!(line.starts_with("a2 BAD"), "{line}");
    c.ok("NOOP").await;
    // a too-large non-synchronizing literal cannot be skipped: BYE
    c.send(b"a3 SELECT {100000+}\r\n").await;
    let r = c.read_checked().await;
    assert!(r.starts_with("a3 BAD"), "{r}");
    let bye = c.read_checked().await;
    assert!(bye.starts_with("* BYE"), "{bye}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_timeout_disconnects() {
    let srv = TestServer::start_with(|cfg| {
        cfg.imap.login_timeout = std::time::Duration::from_millis(300)
    })
    .await;
    let mut c = srv.connect().await;
    let bye = c.read_checked().await;
    assert!(bye.starts_with("* BYE"), "{bye}");
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_ip_connection_limit() {
    let srv = TestServer::start_with(|cfg| cfg.server.max_connections_per_user_ip = 2).await;
    let _a = srv.login().await;
    let _b = srv.login().await;
    let mut c = srv.connect().await;
    let st = c.status("LOGIN alice secret").await;
    assert!(st.contains("NO [LIMIT]"), "{st}");
    drop(_a);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    c.ok("LOGIN alice secret").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_mid_append_leaves_nothing() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    c.send(b"a APPEND INBOX {1000+}\r\nFrom: x\r\n\r\nhalf a mess")
        .await;
    drop(c);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut d = srv.login().await;
    let r = d.ok("STATUS INBOX (MESSAGES)").await;
    assert!(r[0].contains("MESSAGES 0"), "{r:?}");
    assert_eq!(srv.stored_count(USER, "INBOX"), 0);
    let stored = s(&srv.stored_bytes(USER, "INBOX"));
    assert!(!stored.contains("half a mess"), "{stored:?}");
    if format() == Format::Maildir {
        let tmp = std::fs::read_dir(srv.maildir(USER).join("tmp"))
            .unwrap()
            .count();
        assert_eq!(tmp, 0, "partial APPEND removed from tmp/");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_limit_is_configurable() {
    let srv = TestServer::start_with(|cfg| cfg.imap.max_nesting = 3).await;
    let mut c = srv.login().await;
    c.ok("SELECT INBOX").await;
    c.ok("SEARCH ((ALL))").await;
    let st = c.status("SEARCH ((((((ALL))))))").await;
    assert!(st.contains(" BAD ") && st.contains("nesting"), "{st}");
}
