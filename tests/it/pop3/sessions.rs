//! Deletion only in UPDATE, dropped connections, [IN-USE], IMAP alongside POP3, limits,
//! timeouts and shutdown.

use std::time::Duration;

use super::client::*;
use crate::util::*;

fn populate(p3: &Pop3Server, n: usize) {
    for i in 1..=n {
        p3.deliver(&sample_message(i));
    }
}

/// Logs in, retrying while the previous session of the same user is still being torn
/// down by the server ([IN-USE] for a moment after the client hung up).
async fn login_when_free(p3: &Pop3Server) -> Pop {
    for _ in 0..100 {
        let mut p = p3.connect().await;
        p.ok("USER alice").await;
        let r = p.cmd("PASS secret").await;
        if r.starts_with("+OK") {
            return p;
        }
        assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("maildrop stayed locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_happen_only_after_quit() {
    let p3 = Pop3Server::start().await;
    populate(&p3, 4);
    let mut p = p3.login().await;
    p.ok("DELE 1").await;
    p.ok("DELE 3").await;
    // Nothing is gone before QUIT.
    assert_eq!(p3.stored(), 4);
    assert_eq!(p.ok("QUIT").await, "+OK Logging out, 2 messages deleted.");
    assert!(p.closed().await);
    assert_eq!(p3.stored(), 2);
    let mut p = login_when_free(&p3).await;
    assert!(p.ok("STAT").await.starts_with("+OK 2 "));
    let (_, b) = p.multi("RETR 1").await;
    assert!(s(&b).contains("Message number 2"), "{}", s(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_deletes_nothing() {
    let p3 = Pop3Server::start().await;
    populate(&p3, 3);
    let mut p = p3.login().await;
    for n in 1..=3 {
        p.ok(&format!("DELE {n}")).await;
    }
    drop(p);
    let mut p = login_when_free(&p3).await;
    assert!(p.ok("STAT").await.starts_with("+OK 3 "));
    assert_eq!(p3.stored(), 3);
    // QUIT in AUTHORIZATION deletes nothing either.
    let mut q = p3.connect().await;
    q.ok("QUIT").await;
    p.ok("QUIT").await;
    assert_eq!(p3.stored(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_session_gets_in_use() {
    let p3 = Pop3Server::start().await;
    populate(&p3, 1);
    let mut a = p3.login().await;
    let mut b = p3.connect().await;
    b.ok("USER alice").await;
    let r = b.err("PASS secret").await;
    assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
    // Still in AUTHORIZATION: another user is fine, and alice can try again later.
    b.ok("USER bob").await;
    b.ok("PASS hunter2").await;
    a.ok("QUIT").await;
    assert!(a.closed().await);
    login_when_free(&p3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_can_be_switched_off() {
    let p3 = Pop3Server::start_with(|c| c.pop3.lock_mailbox = false).await;
    populate(&p3, 2);
    let mut a = p3.login().await;
    let mut b = p3.login().await;
    a.ok("DELE 1").await;
    a.ok("QUIT").await;
    assert!(a.closed().await);
    // b still sees its login snapshot; RETR of the expunged message says so.
    assert!(b.ok("STAT").await.starts_with("+OK 2 "));
    b.err("RETR 1").await;
    b.ok("RETR 2").await;
    b.body_raw().await;
    b.ok("QUIT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_session_sees_pop3_expunges() {
    let p3 = Pop3Server::start().await;
    populate(&p3, 3);
    let mut imap = p3.srv.login().await;
    let r = imap.ok("SELECT INBOX").await;
    assert!(r.iter().any(|l| l == "* 3 EXISTS\r\n"), "{r:?}");
    // An IMAP client flags message 3 \Deleted without expunging: POP3 must not expunge it.
    imap.ok("STORE 3 +FLAGS.SILENT (\\Deleted)").await;
    let mut p = p3.login().await;
    p.ok("DELE 1").await;
    p.ok("DELE 2").await;
    assert_eq!(p.ok("QUIT").await, "+OK Logging out, 2 messages deleted.");
    let r = imap.ok("NOOP").await;
    let expunges = r.iter().filter(|l| l.ends_with("EXPUNGE\r\n")).count();
    assert_eq!(expunges, 2, "{r:?}");
    let r = imap.ok("FETCH 1 (UID FLAGS)").await;
    assert!(
        r[0].contains("UID 3") && r[0].contains("\\Deleted"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_err_and_deletes_nothing() {
    let mut p3 = Pop3Server::start().await;
    populate(&p3, 2);
    let mut p = p3.login().await;
    p.ok("DELE 1").await;
    let mut idle = p3.connect().await;
    p3.srv.stop().await;
    assert_eq!(p.line().await, "-ERR [SYS/TEMP] Server shutting down.");
    assert!(p.closed().await);
    assert!(idle.line().await.starts_with("-ERR [SYS/TEMP]"));
    assert_eq!(p3.stored(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_timeout_closes_with_err() {
    let p3 = Pop3Server::start_with(|c| c.pop3.login_timeout = Duration::from_millis(300)).await;
    let mut p = p3.connect().await;
    let r = p.line().await;
    assert!(r.starts_with("-ERR"), "{r}");
    assert!(p.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_ip_limit_applies() {
    let p3 = Pop3Server::start_with(|c| {
        c.server.max_connections_per_user_ip = 1;
        c.pop3.lock_mailbox = false;
    })
    .await;
    let _a = p3.login().await;
    let mut b = p3.connect().await;
    b.ok("USER alice").await;
    let r = b.err("PASS secret").await;
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}");
}
