//! Message files named as MTAs name them (`,S=` without `,W=`, or neither): the first
//! SELECT reads no message file; RFC822.SIZE is computed on first need, recorded in the
//! index, and survives a restart (issue 11).
//!
//! The tests watch *when* a size is computed by rewriting a message file in place (what
//! no mail program does, which makes the moment visible): a size computed at SELECT
//! shows the old length, one computed on first need the new one, and one recorded in the
//! index stays whatever the file says afterwards.

use crate::util::*;
use std::path::{Path, PathBuf};

/// Three messages with LF line ends, delivered as an MTA does: `S=` (file size) but no
/// `W=`, and one with neither.
fn deliver_mta_named(maildir: &Path) {
    for (i, name) in [
        "1700000001.M100001P4242.mx1,S=13",
        "1700000002.M100002P4242.mx1,S=13",
        "1700000003.M100003P4242.mx1",
    ]
    .iter()
    .enumerate()
    {
        deliver(maildir, name, &format!("A: {i}\n\nbody{i}\n"));
    }
}

/// The file of the message whose base name contains `needle`, wherever it is now.
fn file_of(maildir: &Path, needle: &str) -> PathBuf {
    for sub in ["cur", "new"] {
        for e in std::fs::read_dir(maildir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap().to_string_lossy().contains(needle) {
                return p;
            }
        }
    }
    panic!("no file for {needle}");
}

/// Rewrites every message file in place with a body of `lines` LF-terminated lines and
/// returns the RFC822.SIZE that content has (each LF counts as CRLF).
fn rewrite_all(maildir: &Path, lines: usize) -> u64 {
    let text = format!("A: x\n\n{}", "0123456789\n".repeat(lines));
    for m in ["M100001", "M100002", "M100003"] {
        std::fs::write(file_of(maildir, m), &text).unwrap();
    }
    (text.len() + text.matches('\n').count()) as u64
}

fn sizes(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.split("RFC822.SIZE ").nth(1))
        .map(|t| t.trim_end_matches([')', '\r', '\n']).parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_select_reads_no_message_file_and_sizes_are_computed_once() {
    // Maildir-only: MTA-named message files (`,S=` without `,W=`) and sizes observed by
    // rewriting message files in place; an mbox folder's sizes come from reading its file.
    if format() != Format::Maildir {
        return;
    }
    let mut srv = TestServer::start().await;
    let md = srv.maildir(USER);
    deliver_mta_named(&md);
    let mut c = srv.login().await;
    c.ok("SELECT INBOX").await;
    // Changed after SELECT: the size must not have been computed yet.
    let size = rewrite_all(&md, 7);
    let got = sizes(&c.ok("FETCH 1:* (RFC822.SIZE)").await);
    assert_eq!(got, vec![size; 3], "RFC822.SIZE computed at SELECT");
    // The content really is served at that size.
    let body = c.ok("FETCH 3 BODY.PEEK[]").await;
    assert!(body[0].contains(&format!("{{{size}}}")), "{body:?}");
    // Computed once: a later change of the file does not change the recorded size.
    rewrite_all(&md, 20);
    assert_eq!(sizes(&c.ok("FETCH 1:* (RFC822.SIZE)").await), vec![size; 3]);
    let st = c.ok("STATUS INBOX (SIZE MESSAGES)").await;
    assert!(st[0].contains(&format!("SIZE {}", 3 * size)), "{st:?}");
    c.ok("LOGOUT").await;
    srv.stop().await;

    // A restart on the same Maildir: the sizes come from the index.
    let srv2 = srv.restart_on().await;
    let mut c = srv2.login().await;
    let st = c.ok("STATUS INBOX (SIZE)").await;
    assert!(st[0].contains(&format!("SIZE {}", 3 * size)), "{st:?}");
    c.ok("SELECT INBOX").await;
    assert_eq!(sizes(&c.ok("FETCH 1:* (RFC822.SIZE)").await), vec![size; 3]);
}

/// SEARCH LARGER/SMALLER and STATUS SIZE compute the sizes they need (exact answers),
/// and STATUS without SIZE computes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_status_size_compute_what_they_need() {
    // Maildir-only: MTA-named message files (`,S=` without `,W=`) and sizes observed by
    // rewriting message files in place; an mbox folder's sizes come from reading its file.
    if format() != Format::Maildir {
        return;
    }
    let srv = TestServer::start().await;
    let md = srv.maildir(USER);
    deliver_mta_named(&md);
    let mut c = srv.login().await;
    // STATUS without SIZE (a scan of a folder nobody has open) reads no file either.
    c.ok("STATUS INBOX (MESSAGES UNSEEN)").await;
    c.ok("SELECT INBOX").await;
    let size = rewrite_all(&md, 3);
    let hits = c.ok(&format!("SEARCH LARGER {}", size - 1)).await;
    assert_eq!(hits[0].trim_end(), "* SEARCH 1 2 3", "{hits:?}");
    let hits = c.ok(&format!("SEARCH SMALLER {size}")).await;
    assert_eq!(hits[0].trim_end(), "* SEARCH", "{hits:?}");
    let hits = c
        .ok(&format!("SEARCH OR SMALLER {} FROM nobody", size + 1))
        .await;
    assert_eq!(hits[0].trim_end(), "* SEARCH 1 2 3", "{hits:?}");
    // A second mailbox: STATUS SIZE alone computes them.
    c.ok("CREATE Other").await;
    let other = md.join(".Other");
    deliver_mta_named(&other);
    let mut d = srv.login().await;
    d.ok("STATUS Other (MESSAGES)").await;
    let each = {
        let text = "A: x\n\n0123456789\n";
        for m in ["M100001", "M100002", "M100003"] {
            std::fs::write(file_of(&other, m), text).unwrap();
        }
        (text.len() + text.matches('\n').count()) as u64
    };
    let st = d.ok("STATUS Other (SIZE)").await;
    assert!(st[0].contains(&format!("SIZE {}", 3 * each)), "{st:?}");
}

/// POP3 STAT and LIST count every message exactly: the sizes a SELECT left unknown are
/// computed when the maildrop is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_stat_and_list_compute_unknown_sizes() {
    // Maildir-only: MTA-named message files (`,S=` without `,W=`) and sizes observed by
    // rewriting message files in place; an mbox folder's sizes come from reading its file.
    if format() != Format::Maildir {
        return;
    }
    let p3 = crate::pop3::client::Pop3Server::start().await;
    let md = p3.inbox();
    deliver_mta_named(&md);
    let mut c = p3.srv.login().await;
    c.ok("SELECT INBOX").await;
    c.ok("LOGOUT").await;
    let size = rewrite_all(&md, 5);
    let mut p = p3.login().await;
    assert_eq!(p.ok("STAT").await, format!("+OK 3 {}", 3 * size));
    assert_eq!(p.ok("LIST 2").await, format!("+OK 2 {size}"));
    let (first, _) = p.multi("RETR 3").await;
    assert_eq!(first, format!("+OK {size} octets"));
    p.ok("QUIT").await;
}
