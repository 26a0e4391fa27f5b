//! The index cache as a client sees it (issue 3): what a client fetches decides what is
//! cached, and cached answers are served without reading the message again.

use crate::util::*;

fn show(srv: &TestServer) -> String {
    loft::mailbox::index_show(&srv.cfg.storage, USER, None, "INBOX").expect("index show")
}

fn decision_line(report: &str, field: &str) -> String {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(field))
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_pattern_drives_caching_decisions() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 1..=3 {
        let m = sample_message(i);
        c.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
            .await;
        c.collect("x").await;
    }
    c.ok("SELECT INBOX").await;
    assert_eq!(
        decision_line(&show(&srv), "imap.envelope"),
        "",
        "nothing decided before use"
    );

    // A client that fetches ENVELOPE of new mail only: the field becomes "temp".
    let first = c.ok("UID FETCH 3 ENVELOPE").await;
    let line = decision_line(&show(&srv), "imap.envelope");
    assert!(line.contains("temp"), "{line}");
    assert!(
        decision_line(&show(&srv), "imap.bodystructure").is_empty(),
        "unused fields stay undecided"
    );

    // The cached ENVELOPE is what answers now: change the file behind Loft's back (never
    // done to a real Maildir) and the answer stays the cached one.
    let cur = srv.maildir(USER).join("cur");
    let file = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("Message number 3")
        })
        .expect("message 3 on disk");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("Message number 3", "Changed subject!");
    std::fs::write(&file, text).unwrap();
    let again = c.ok("UID FETCH 3 ENVELOPE").await;
    assert_eq!(again, first, "served from the cache");

    // Fetching it for an older message makes the decision permanent ("yes").
    c.ok("UID FETCH 1 ENVELOPE").await;
    let line = decision_line(&show(&srv), "imap.envelope");
    assert!(line.contains("yes"), "{line}");
}

/// `FETCH 1:*` mixing cached values with values computed for a message that arrived
/// after the others were cached answers exactly as before caching; a message whose file
/// vanished is left out with `NO [EXPUNGEISSUED]` while the others are still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_mixes_cached_and_computed_values() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    let append = |i: usize| {
        let m = sample_message(i);
        format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len())
    };
    for i in 1..=4 {
        c.send(append(i).as_bytes()).await;
        c.collect("x").await;
    }
    c.ok("SELECT INBOX").await;
    let q = "FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE BODYSTRUCTURE INTERNALDATE)";
    let cold = c.ok(q).await;
    assert_eq!(cold.len(), 4, "{cold:?}");
    // An older message asked for again: both fields are kept for every message ("yes").
    c.ok("UID FETCH 1 (ENVELOPE BODYSTRUCTURE)").await;
    c.ok(q).await;
    let report = show(&srv);
    for field in ["imap.envelope", "imap.bodystructure"] {
        assert!(
            decision_line(&report, field).contains("yes"),
            "{field}: {report}"
        );
    }
    let warm = c.ok(q).await;
    assert_eq!(warm, cold, "served from the cache, byte for byte");

    c.send(append(5).as_bytes()).await;
    c.collect("x").await;
    c.ok("NOOP").await;
    let mixed = c.ok(q).await;
    assert_eq!(mixed.len(), 5, "{mixed:?}");
    assert_eq!(mixed[..4], cold[..], "cached part unchanged");
    assert!(
        mixed[4].starts_with("* 5 FETCH (FLAGS (") && mixed[4].contains("Message number 5"),
        "{}",
        mixed[4]
    );
    assert_eq!(
        c.ok(q).await,
        mixed,
        "the value computed for 5 is what is cached"
    );

    // Message 2's file disappears behind Loft's back; BODY[HEADER] must read every file.
    let cur = srv.maildir(USER).join("cur");
    let file = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("Message number 2")
        })
        .expect("message 2 on disk");
    std::fs::remove_file(&file).unwrap();
    let mut r = c.cmd("FETCH 1:* (ENVELOPE BODY.PEEK[HEADER])").await;
    let last = r.pop().unwrap();
    assert!(last.contains("NO [EXPUNGEISSUED]"), "{last}");
    let seqs: Vec<&str> = r
        .iter()
        .filter_map(|u| u.strip_prefix("* ")?.split(' ').next())
        .collect();
    assert_eq!(seqs, ["1", "3", "4", "5"], "{r:?}");
}

/// SEARCH FROM/SUBJECT are answered from cached ENVELOPEs once a client fetched them
/// (RFC 3501 §6.4.4 defines them on the envelope), and from the header otherwise, with
/// the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_searches_use_cached_envelopes() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 1..=4 {
        let m = sample_message(i);
        c.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
            .await;
        c.collect("x").await;
    }
    c.ok("SELECT INBOX").await;
    // Not cached yet: from the files (comments are not part of the envelope's name).
    let r = c.ok("UID SEARCH FROM sender2").await;
    assert!(r.contains(&"* SEARCH 2\r\n".to_string()), "{r:?}");
    assert!(c
        .ok("UID SEARCH FROM \"Sender 3 <sender3@\"")
        .await
        .contains(&"* SEARCH 3\r\n".to_string()));
    // A client fetches every ENVELOPE (new, then old: the decision becomes "yes").
    c.ok("UID FETCH 4 ENVELOPE").await;
    c.ok("UID FETCH 1:* ENVELOPE").await;
    // Change message 2 behind Loft's back: the cached envelope still answers.
    let cur = srv.maildir(USER).join("cur");
    let file = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("Message number 2")
        })
        .expect("message 2 on disk");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("sender2@", "someone@");
    std::fs::write(&file, text).unwrap();
    assert!(c
        .ok("UID SEARCH FROM SENDER2")
        .await
        .contains(&"* SEARCH 2\r\n".to_string()));
    assert!(c
        .ok("UID SEARCH FROM someone")
        .await
        .contains(&"* SEARCH\r\n".to_string()));
    assert!(c
        .ok("UID SEARCH SUBJECT \"number 4\" FROM example")
        .await
        .contains(&"* SEARCH 4\r\n".to_string()));
    assert!(c
        .ok("UID SEARCH OR FROM sender1 TO nobody")
        .await
        .contains(&"* SEARCH 1\r\n".to_string()));
    assert!(c
        .ok("UID SEARCH NOT FROM sender1")
        .await
        .contains(&"* SEARCH 2 3 4\r\n".to_string()));
    // A key the envelope cannot answer takes the header (cached or from the file).
    assert!(c
        .ok("UID SEARCH HEADER Message-ID m3@")
        .await
        .contains(&"* SEARCH 3\r\n".to_string()));
}
