//! Standards points found by an external IMAP test suite and a differential run against
//! Dovecot (issue 10): UIDVALIDITY of a re-created mailbox, RECENT on EXAMINE,
//! 4294967295 in sequence sets, SEARCH HEADER in long headers, keywords announced in FLAGS
//! before a FETCH shows them.

use crate::util::*;

/// APPENDs `msg` with a synchronizing literal; returns the tagged status line.
pub async fn append(c: &mut Client, mailbox: &str, msg: &str) -> String {
    let tag = c.tag();
    c.send(format!("{tag} APPEND {mailbox} {{{}}}\r\n", msg.len()).as_bytes())
        .await;
    let cont = c.read_checked().await;
    assert!(cont.starts_with("+ "), "{cont}");
    c.send(format!("{msg}\r\n").as_bytes()).await;
    c.collect(&tag).await.pop().unwrap()
}

/// The number in `[CODE n]` or `CODE n` of a STATUS/SELECT answer.
fn number_after(lines: &[String], code: &str) -> u32 {
    let all = lines.join("");
    let at = all
        .find(code)
        .unwrap_or_else(|| panic!("{code} missing: {all}"));
    all[at + code.len()..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {code}: {all}"))
}

/// RFC 3501 §2.3.1.1: a mailbox deleted and created again under the same name must get a
/// UIDVALIDITY above the old one, even within the same second; a cached client would
/// otherwise take the new messages for the old ones with the same UIDs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_mailbox_gets_new_uidvalidity() {
    let mut srv = TestServer::start().await;
    let mut c = srv.login().await;
    let mut seen = Vec::new();
    for round in 0..3 {
        c.ok("CREATE Again").await;
        assert!(append(&mut c, "Again", &sample_message(round))
            .await
            .contains("OK"));
        let r = c.ok("SELECT Again").await;
        let v = number_after(&r, "UIDVALIDITY");
        let r = c
            .ok("UID FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .await;
        assert!(r.join("").contains(&format!("number {round}")), "{r:?}");
        seen.push(v);
        c.ok("CLOSE").await;
        c.ok("DELETE Again").await;
    }
    assert!(
        seen.windows(2).all(|w| w[1] > w[0]),
        "UIDVALIDITY values {seen:?}"
    );
    // Across a restart of the server (a new process would lose anything held in memory):
    // the last value handed out is remembered under the mail root.
    let state = std::fs::read_to_string(srv.store_file(USER, "loft-uidvalidity"))
        .expect("UIDVALIDITY state file at the mail root");
    assert_eq!(state.trim().parse::<u32>().ok(), seen.last().copied());
    let future = seen.last().unwrap() + 1000;
    std::fs::write(
        srv.store_file(USER, "loft-uidvalidity"),
        format!("{future}\n"),
    )
    .unwrap();
    drop(c);
    srv.stop().await;
    let cfg = srv.cfg.clone();
    let server = loft::server::start(cfg).await.expect("restart");
    let mut c = Client::plain(server.imap_addrs[0]).await;
    c.ok(&format!("LOGIN {USER} {PASS}")).await;
    c.ok("CREATE Again").await;
    let r = c.ok("STATUS Again (UIDVALIDITY)").await;
    assert!(number_after(&r, "UIDVALIDITY") > future, "{r:?}");
    server.shutdown().await;
}

/// RFC 3501 §6.3.2: EXAMINE answers like SELECT, RECENT included; and it does not take
/// \Recent away from the session that selects next (§2.3.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examine_reports_recent_without_clearing_it() {
    let srv = TestServer::start().await;
    for i in 1..=3 {
        srv.deliver(USER, "INBOX", &sample_message(i));
    }
    let mut c = srv.login().await;
    let r = c.ok("EXAMINE INBOX").await;
    assert!(r.iter().any(|l| l == "* 3 EXISTS\r\n"), "{r:?}");
    assert!(r.iter().any(|l| l == "* 3 RECENT\r\n"), "{r:?}");
    let r = c.ok("FETCH 1:* FLAGS").await;
    assert!(
        r.iter().filter(|l| l.contains("\\Recent")).count() == 3,
        "{r:?}"
    );
    let r = c.ok("STATUS INBOX (RECENT)").await;
    assert!(r[0].contains("RECENT 3"), "{r:?}");
    // A second EXAMINE still sees them, and so does the SELECT after it.
    let mut d = srv.login().await;
    let r = d.ok("EXAMINE INBOX").await;
    assert!(r.iter().any(|l| l == "* 3 RECENT\r\n"), "{r:?}");
    // New mail while examined is announced with its RECENT count.
    srv.deliver(USER, "INBOX", &sample_message(9));
    let r = d.ok("NOOP").await;
    assert!(r.iter().any(|l| l == "* 4 EXISTS\r\n"), "{r:?}");
    assert!(r.iter().any(|l| l == "* 4 RECENT\r\n"), "{r:?}");
    let r = c.ok("SELECT INBOX").await;
    assert!(r.iter().any(|l| l == "* 4 RECENT\r\n"), "{r:?}");
    let r = d.ok("EXAMINE INBOX").await;
    assert!(r.iter().any(|l| l == "* 0 RECENT\r\n"), "{r:?}");
}

/// RFC 3501 §9: `seq-number = nz-number / "*"`; 4294967295 is a number like any other,
/// not `*` (RFC 9051 §6.4.8 warns about exactly this confusion).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn largest_number_is_not_star() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 1..=3 {
        assert!(append(&mut c, "INBOX", &sample_message(i))
            .await
            .contains("OK"));
    }
    c.ok("SELECT INBOX").await;
    let r = c.ok("UID FETCH 4294967295 (UID FLAGS)").await;
    assert!(r.is_empty(), "no message has UID 4294967295: {r:?}");
    let r = c.ok("UID SEARCH UID 4:4294967295").await;
    assert_eq!(r, vec!["* SEARCH\r\n".to_string()]);
    let r = c.ok("UID FETCH 4:4294967295 UID").await;
    assert!(r.is_empty(), "{r:?}");
    // `*` still means the highest UID, also when it is below the other end.
    let r = c.ok("UID FETCH 4:* UID").await;
    assert_eq!(r, vec!["* 3 FETCH (UID 3)\r\n".to_string()]);
    let r = c.ok("UID SEARCH UID 2:4294967295").await;
    assert_eq!(r, vec!["* SEARCH 2 3\r\n".to_string()]);
    let r = c.ok("SEARCH 1:4294967295").await;
    assert_eq!(r, vec!["* SEARCH 1 2 3\r\n".to_string()]);
    let r = c.ok("UID STORE 4294967295 +FLAGS (\\Flagged)").await;
    assert!(r.is_empty(), "{r:?}");
}

/// RFC 3501 §6.4.4 HEADER: the field is found wherever it is in the header block, and an
/// empty string matches every message that has the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_header_finds_fields_deep_in_long_headers() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    // A long header whose lines fall so that one of them ends exactly where the server's
    // first 8 KiB read of the file ends (messages are stored as sent).
    let mut long = String::new();
    let mut i = 0;
    while long.len() < 8000 {
        long.push_str(&format!(
            "Received: from relay{i}.example.net (relay{i}.example.net [192.0.2.{}]) by mx.example.org with ESMTPS id {i:08x}; Mon, 2 Jan 2006 15:04:05 -0700\r\n",
            i % 250
        ));
        i += 1;
    }
    let pad = 8192 - long.len() - "X-Pad: \r\n".len();
    long.push_str(&format!("X-Pad: {}\r\n", "p".repeat(pad)));
    assert_eq!(long.len(), 8192);
    while i < 400 {
        long.push_str(&format!(
            "Received: from relay{i}.example.net by mx.example.org; Mon, 2 Jan 2006 15:04:05 -0700\r\n"
        ));
        i += 1;
    }
    let deep = format!(
        "{long}From: a@example.org\r\nSubject: deep\r\nX-Deep-Field: needle-in-haystack\r\n\r\nbody\r\n"
    );
    let plain = "From: b@example.org\r\nSubject: short\r\nX-Short: here\r\n\r\nbody\r\n";
    assert!(append(&mut c, "INBOX", &deep).await.contains("OK"));
    assert!(append(&mut c, "INBOX", plain).await.contains("OK"));
    c.ok("SELECT INBOX").await;
    // Twice: the second search may answer from what the first one cached.
    for _ in 0..2 {
        let r = c.ok("SEARCH HEADER X-Deep-Field needle").await;
        assert_eq!(r, vec!["* SEARCH 1\r\n".to_string()]);
        let r = c.ok("SEARCH HEADER X-Deep-Field \"\"").await;
        assert_eq!(r, vec!["* SEARCH 1\r\n".to_string()]);
        let r = c.ok("SEARCH HEADER X-Short \"\"").await;
        assert_eq!(r, vec!["* SEARCH 2\r\n".to_string()]);
        let r = c.ok("SEARCH HEADER Received \"\"").await;
        assert_eq!(r, vec!["* SEARCH 1\r\n".to_string()]);
        let r = c.ok("SEARCH HEADER Received relay399").await;
        assert_eq!(r, vec!["* SEARCH 1\r\n".to_string()]);
        let r = c.ok("SEARCH NOT HEADER X-Deep-Field \"\"").await;
        assert_eq!(r, vec!["* SEARCH 2\r\n".to_string()]);
    }
}

/// Keywords in the `* FLAGS` lines this session was sent so far.
fn announce(lines: &[String], known: &mut Vec<String>) {
    for l in lines {
        if let Some(rest) = l.strip_prefix("* FLAGS (") {
            known.clear();
            known.extend(
                rest.trim_end_matches(")\r\n")
                    .split(' ')
                    .filter(|f| !f.starts_with('\\'))
                    .map(str::to_string),
            );
        }
    }
}

/// Panics when a FETCH line shows a keyword no earlier `* FLAGS` announced.
fn check_announced(lines: &[String], known: &mut Vec<String>) {
    for l in lines {
        announce(std::slice::from_ref(l), known);
        if let Some(at) = l.find("FLAGS (") {
            if l.starts_with("* FLAGS") {
                continue;
            }
            let flags = &l[at + 7..l[at..].find(')').map_or(l.len(), |e| at + e)];
            for f in flags
                .split(' ')
                .filter(|f| !f.is_empty() && !f.starts_with('\\'))
            {
                assert!(
                    known.iter().any(|k| k.eq_ignore_ascii_case(f)),
                    "keyword {f} shown before any FLAGS announced it: {l:?} in {lines:?}"
                );
            }
        }
    }
}

/// RFC 3501 §7.2.6: the FLAGS response lists the flags the mailbox knows; a client must
/// not see a keyword in a FETCH before a FLAGS response named it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keywords_are_announced_before_fetch_shows_them() {
    let srv = TestServer::start().await;
    let mut a = srv.login().await;
    let mut b = srv.login().await;
    for i in 1..=2 {
        assert!(append(&mut a, "INBOX", &sample_message(i))
            .await
            .contains("OK"));
    }
    let mut known_a = Vec::new();
    let mut known_b = Vec::new();
    let r = a.ok("SELECT INBOX").await;
    check_announced(&r, &mut known_a);
    let r = b.ok("SELECT INBOX").await;
    check_announced(&r, &mut known_b);
    // b adds a keyword a has not heard of; a's own STORE answer shows it first.
    let r = b.ok("STORE 1 +FLAGS ($FromB)").await;
    check_announced(&r, &mut known_b);
    let r = a.ok("STORE 1 +FLAGS (\\Seen)").await;
    check_announced(&r, &mut known_a);
    assert!(r.iter().any(|l| l.contains("$FromB")), "{r:?}");
    // a's own new keyword, and a FETCH right after another session's new keyword.
    let r = a.ok("STORE 2 +FLAGS ($FromA)").await;
    check_announced(&r, &mut known_a);
    let r = b.ok("STORE 2 +FLAGS ($AlsoB)").await;
    check_announced(&r, &mut known_b);
    let r = a.ok("FETCH 1:* FLAGS").await;
    check_announced(&r, &mut known_a);
    let r = a.ok("NOOP").await;
    check_announced(&r, &mut known_a);
    let r = b.ok("FETCH 1:* FLAGS").await;
    check_announced(&r, &mut known_b);
    let r = b.ok("NOOP").await;
    check_announced(&r, &mut known_b);
    assert!(known_a.iter().any(|k| k == "$AlsoB"), "{known_a:?}");
    assert!(known_b.iter().any(|k| k == "$FromA"), "{known_b:?}");
    let r = a.ok("UID FETCH 1:* FLAGS").await;
    check_announced(&r, &mut known_a);
}
