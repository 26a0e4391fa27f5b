//! The index cache as a client sees it (issue 3): what a client fetches decides what is
//! cached, and cached answers are served without reading the message again.

use crate::util::*;

fn show(srv: &TestServer) -> String {
    loft::mailbox::index_show(&srv.cfg.storage, USER, None, "INBOX").expect("index show")
}

/// Maildir: the file of the message whose text contains `needle`.
fn message_file(srv: &TestServer, needle: &str) -> std::path::PathBuf {
    let cur = srv.maildir(USER).join("cur");
    std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no message file with {needle:?}"))
}

/// Maildir: rewrites the file of the message containing `needle` behind Loft's back.
fn change_message_file(srv: &TestServer, needle: &str, change: impl FnOnce(String) -> String) {
    let file = message_file(srv, needle);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, change(text)).unwrap();
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

    // The cached ENVELOPE is what answers now. Maildir: change the file behind Loft's
    // back (never done to a real Maildir) and the answer stays the cached one. (An mbox
    // file changed so would be a rewrite by another program, which is read again.)
    if format() == Format::Maildir {
        change_message_file(&srv, "Message number 3", |t| {
            t.replace("Message number 3", "Changed subject!")
        });
    }
    let again = c.ok("UID FETCH 3 ENVELOPE").await;
    assert_eq!(again, first, "served from the cache");

    // Fetching it for an older message makes the decision permanent ("yes").
    c.ok("UID FETCH 1 ENVELOPE").await;
    let line = decision_line(&show(&srv), "imap.envelope");
    assert!(line.contains("yes"), "{line}");
}

/// `FETCH 1:*` mixing cached values with values computed for a message that arrived
/// after the others were cached answers exactly as before caching; a message whose file
/// vanished (Maildir only) is left out with `OK [EXPUNGEISSUED]` (RFC 2180 §4.1, as
/// Dovecot answers) while the others are still answered.
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

    // Maildir-only from here: message 2's file disappears behind Loft's back (one file
    // per message); BODY[HEADER] must read every file.
    if format() != Format::Maildir {
        return;
    }
    let file = message_file(&srv, "Message number 2");
    std::fs::remove_file(&file).unwrap();
    let mut r = c.cmd("FETCH 1:* (ENVELOPE BODY.PEEK[HEADER])").await;
    let last = r.pop().unwrap();
    assert!(last.contains("OK [EXPUNGEISSUED]"), "{last}");
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
    // Maildir: change message 2 behind Loft's back: the cached envelope still answers.
    // (mbox: the answers below are the same, from the cache or the file.)
    if format() == Format::Maildir {
        change_message_file(&srv, "Message number 2", |t| {
            t.replace("sender2@", "someone@")
        });
    }
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
    // Keys that need no content narrow the search first; the answers are unchanged.
    assert!(c
        .ok("UID SEARCH UID 2:3 FROM example")
        .await
        .contains(&"* SEARCH 2 3\r\n".to_string()));
    assert!(c
        .ok("UID SEARCH OR UID 1 FROM sender4")
        .await
        .contains(&"* SEARCH 1 4\r\n".to_string()));
    assert!(c
        .ok("SEARCH 3:4 NOT FROM sender3")
        .await
        .contains(&"* SEARCH 4\r\n".to_string()));
    // A key the envelope cannot answer takes the header (cached or from the file).
    assert!(c
        .ok("UID SEARCH HEADER Message-ID m3@")
        .await
        .contains(&"* SEARCH 3\r\n".to_string()));
}

/// A multipart message with a text part and a ~200 kB attachment, CRLF line ends.
fn with_attachment() -> String {
    let mut m = String::from(
        "From: a@example.org\r\nSubject: attachment\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nHello part one.\r\n\
         --b1\r\nContent-Type: application/octet-stream\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    for _ in 0..2600 {
        m.push_str(&"QUFB".repeat(19));
        m.push_str("\r\n");
    }
    m.push_str("--b1--\r\n");
    m
}

/// Issue 3, "byte offsets of MIME parts": a client fetching parts gets the `mime.parts`
/// field cached, and then a part is read by range instead of reading and parsing the whole
/// message. Proven (Maildir only: one file per message) by changing the file behind
/// Loft's back, keeping its size: the boundary in the top header no longer matches, so a
/// full parse would find no part 1; the range read still answers from the cached offsets
/// while `BODY[]` shows the change. A file whose size changed is read whole again; a file
/// with LF line ends never by range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_fetches_read_byte_ranges_of_cached_part_maps() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    let m = with_attachment();
    c.send(format!("x APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
        .await;
    c.collect("x").await;
    // Message 2 delivered by an MTA with LF line ends (Maildir: S= differs from W=).
    let lf = m.replace("\r\n", "\n");
    srv.deliver(USER, "INBOX", &lf);
    c.ok("SELECT INBOX").await;
    assert_eq!(decision_line(&show(&srv), "mime.parts"), "");

    let q = "UID FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[2]<4.8> BODY.PEEK[3])";
    let cold = c.ok(q).await;
    assert_eq!(cold.len(), 1, "{cold:?}");
    let want = "* 1 FETCH (UID 1 BODY[1] {15}\r\nHello part one. BODY[2.MIME] {77}\r\n\
         Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n \
         BODY[2]<4> {8}\r\nQUFBQUFB BODY[3] \"\")\r\n";
    assert_eq!(cold[0], want);
    assert!(decision_line(&show(&srv), "mime.parts").contains("temp"));
    // Asked again for an old message: kept for every message now.
    assert_eq!(c.ok(q).await, cold);
    assert!(decision_line(&show(&srv), "mime.parts").contains("yes"));
    assert_eq!(c.ok(q).await, cold, "the offered map is cached");

    // Maildir: message 1's file (stored with CRLF, as appended) changed in place.
    if format() == Format::Maildir {
        let cur = srv.maildir(USER).join("cur");
        let file = std::fs::read_dir(&cur)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::read(p).unwrap() == m.as_bytes())
            .expect("message 1 on disk");
        let changed = m.replacen("boundary=\"b1\"", "boundary=\"zz\"", 1);
        assert_eq!(changed.len(), m.len());
        std::fs::write(&file, &changed).unwrap();
        assert_eq!(c.ok(q).await, cold, "served by range reads");
        let whole = c.ok("UID FETCH 1 BODY.PEEK[]").await;
        assert!(whole[0].contains("boundary=\"zz\""), "the file did change");

        // One more byte: the offsets may be wrong now, so the message is read and parsed
        // whole (and has no part 1 any more: no delimiter matches).
        std::fs::write(&file, format!("{changed}x")).unwrap();
        let r = c.ok("UID FETCH 1 BODY.PEEK[1]").await;
        assert_eq!(r, ["* 1 FETCH (UID 1 BODY[1] \"\")\r\n"]);
    }

    // The LF file answers the same as the CRLF one did, cached part map or not.
    let q2 = q.replace("UID FETCH 1", "UID FETCH 2");
    let want2 = want.replace("* 1 FETCH (UID 1", "* 2 FETCH (UID 2");
    for _ in 0..3 {
        assert_eq!(c.ok(&q2).await, std::slice::from_ref(&want2));
    }
}
