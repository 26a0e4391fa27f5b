//! APPEND, FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE on the selected mailbox.

use crate::util::*;

async fn append(c: &mut Client, mailbox: &str, extra: &str, msg: &str) -> String {
    let tag = c.tag();
    c.send(format!("{tag} APPEND {mailbox}{extra} {{{}}}\r\n", msg.len()).as_bytes())
        .await;
    let cont = c.read_checked().await;
    assert!(cont.starts_with("+ "), "{cont}");
    c.send(format!("{msg}\r\n").as_bytes()).await;
    c.collect(&tag).await.pop().unwrap()
}

const MULTIPART: &str = "From: \"Joe Q. Public\" <john.q.public@example.com>\r\nTo: Mary Smith <mary@x.test>, jdoe@example.org\r\nCc: Undisclosed recipients:;\r\nSubject: =?ISO-8859-1?Q?Caf=E9?= report\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200\r\nMessage-ID: <5678.21-Nov-1997@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe quarterly numbers --XX are in.\r\n--XX\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\nAAECAwQ=\r\n--XX--\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_and_fetch_everything() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    let st = append(
        &mut c,
        "INBOX",
        " (\\Seen $Work) \"02-Jan-2006 15:04:05 -0700\"",
        MULTIPART,
    )
    .await;
    assert!(st.contains("OK [APPENDUID "), "{st}");
    let validity: u32 = st.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(st.contains(&format!("APPENDUID {validity} 1]")), "{st}");
    c.ok("SELECT INBOX").await;
    let r = c.ok("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID)").await;
    assert_eq!(
        r[0],
        format!("* 1 FETCH (FLAGS (\\Seen \\Recent $Work) INTERNALDATE \"02-Jan-2006 22:04:05 +0000\" RFC822.SIZE {} UID 1)\r\n", MULTIPART.len())
    );
    let r = c.ok("FETCH 1 BODY.PEEK[]").await;
    assert_eq!(
        r[0],
        format!(
            "* 1 FETCH (BODY[] {{{}}}\r\n{})\r\n",
            MULTIPART.len(),
            MULTIPART
        )
    );
    let r = c.ok("FETCH 1 ENVELOPE").await;
    assert!(
        r[0].contains("\"=?ISO-8859-1?Q?Caf=E9?= report\""),
        "{}",
        r[0]
    );
    assert!(
        r[0].contains("((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))"),
        "{}",
        r[0]
    );
    let r = c.ok("FETCH 1 BODYSTRUCTURE").await;
    assert!(r[0].contains("\"mixed\""), "{}", r[0]);
    assert!(r[0].contains("\"base64\" 8"), "{}", r[0]);
    let r = c
        .ok("FETCH 1 (BODY.PEEK[1] BODY.PEEK[2]<2.3> BODY.PEEK[HEADER.FIELDS (Subject)])")
        .await;
    assert!(
        r[0].contains("BODY[1] {34}\r\nThe quarterly numbers --XX are in."),
        "{}",
        r[0]
    );
    assert!(r[0].contains("BODY[2]<2> {3}\r\nECA"), "{}", r[0]);
    assert!(
        r[0].contains(
            "BODY[HEADER.FIELDS (Subject)] {43}\r\nSubject: =?ISO-8859-1?Q?Caf=E9?= report\r\n\r\n"
        ),
        "{}",
        r[0]
    );
    let r = c.ok("UID FETCH 1 (FLAGS BODY[TEXT]<0.8>)").await;
    assert!(
        r[0].starts_with("* 1 FETCH (UID 1 FLAGS"),
        "UID first: {}",
        r[0]
    );
    let r = c.ok("FETCH 1 (RFC822.HEADER)").await;
    assert!(r[0].contains("RFC822.HEADER {"), "{}", r[0]);
    let r = c.ok("FETCH 1 BODY.PEEK[9]").await;
    assert!(r[0].contains("BODY[9] \"\""), "{}", r[0]);
    c.send(b"n1 APPEND INBOX {19}\r\n").await;
    assert!(c.read_checked().await.starts_with("+ "));
    c.send(b"Subject: n\r\n\r\na\0b\r\n\r\n").await;
    let st = c.collect("n1").await.pop().unwrap();
    assert!(st.contains("OK [APPENDUID"), "{st}");
    let r = c.ok("UID FETCH 2 BODY.PEEK[TEXT]").await;
    assert!(
        r.last().unwrap().contains("{5}\r\na\u{FFFD}b\r\n)"),
        "NUL sent as 0x80: {r:?}"
    );
    let st = c.status("FETCH 3 FLAGS").await;
    assert!(st.contains(" BAD "), "{st}");
    let r = c.ok("UID FETCH 5:* FLAGS").await;
    assert_eq!(r.len(), 1, "n:* includes the highest UID: {r:?}");
    let r = c.ok("FETCH 1 FAST").await;
    assert!(
        r[0].contains("FLAGS") && r[0].contains("INTERNALDATE") && r[0].contains("RFC822.SIZE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_body_sets_seen_peek_does_not() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    append(&mut c, "INBOX", "", &sample_message(1)).await;
    append(&mut c, "INBOX", "", &sample_message(2)).await;
    c.ok("SELECT INBOX").await;
    c.ok("FETCH 1 BODY.PEEK[TEXT]").await;
    let r = c.ok("FETCH 1 FLAGS").await;
    assert!(!r[0].contains("\\Seen"), "{r:?}");
    let r = c.ok("FETCH 2 BODY[TEXT]").await;
    assert!(
        r[0].contains("FLAGS (\\Seen"),
        "FLAGS reported with the implicit \\Seen: {r:?}"
    );
    let r = c.ok("FETCH 2 FLAGS").await;
    assert!(r[0].contains("\\Seen"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_errors() {
    let srv = TestServer::start_with(|cfg| cfg.imap.append_limit = 1000).await;
    let mut c = srv.login().await;
    c.send(b"t0 APPEND Nope {1}\r\n").await;
    let st = c.collect("t0").await.pop().unwrap();
    assert!(
        st.contains("NO [TRYCREATE]"),
        "no continuation for a missing mailbox: {st}"
    );
    c.send(b"t1 APPEND INBOX {5000}\r\n").await;
    let st = c.collect("t1").await.pop().unwrap();
    assert!(st.contains("NO [TOOBIG]"), "{st}");
    // bad date
    c.send(b"t2 APPEND INBOX \"31-Feb-2006 15:04:05 -0700\" {1}\r\n")
        .await;
    let st = c.collect("t2").await.pop().unwrap();
    assert!(st.contains(" BAD "), "{st}");
    // still usable
    c.ok("NOOP").await;
    // non-synchronizing literal to a missing mailbox: swallowed, session continues
    c.send(b"t3 APPEND Nope {3+}\r\nabc\r\n").await;
    let st = c.collect("t3").await.pop().unwrap();
    assert!(st.contains("NO [TRYCREATE]"), "{st}");
    c.ok("NOOP").await;
    // nothing half-written is visible
    let r = c.ok("STATUS INBOX (MESSAGES)").await;
    assert!(r[0].contains("MESSAGES 0"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_flags_and_keywords() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 0..3 {
        append(&mut c, "INBOX", "", &sample_message(i)).await;
    }
    c.ok("SELECT INBOX").await;
    let r = c.ok("STORE 1:2 +FLAGS (\\Flagged $Important)").await;
    assert!(
        r.iter()
            .any(|l| l.starts_with("* FLAGS (") && l.contains("$Important")),
        "new keyword announced: {r:?}"
    );
    let r: Vec<String> = r.into_iter().filter(|l| l.contains("FETCH")).collect();
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r[0].starts_with("* 1 FETCH (FLAGS (\\Flagged") && r[0].contains("$Important"),
        "{r:?}"
    );
    let r = c.ok("STORE 1 -FLAGS.SILENT (\\Flagged)").await;
    assert!(r.iter().all(|l| !l.contains("FETCH")), "{r:?}");
    let r = c.ok("UID STORE 3 FLAGS (\\Answered \\Draft)").await;
    assert!(
        r.iter()
            .any(|l| l.starts_with("* 3 FETCH (UID 3 FLAGS (\\Answered \\Draft")),
        "{r:?}"
    );
    let r = c.ok("FETCH 1:3 FLAGS").await;
    assert!(
        r[0].contains("$Important") && !r[0].contains("\\Flagged"),
        "{r:?}"
    );
    assert!(r[1].contains("\\Flagged"), "{r:?}");
    // flags live in Maildir file names or in the mbox file's X-Status (mutt sees them)
    // once the last session on the folder closes it (lazy flag sync; they are durable in
    // the index before that)
    c.ok("UNSELECT").await;
    match format() {
        Format::Maildir => {
            let cur: Vec<String> = std::fs::read_dir(srv.maildir(USER).join("cur"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(cur.iter().any(|n| n.ends_with(":2,DR")), "{cur:?}");
        }
        Format::Mbox => {
            let file = std::fs::read(srv.mailbox_path(USER, "INBOX")).unwrap();
            let msgs = mbox_messages(&file);
            let third = msgs
                .iter()
                .map(|m| mbox_header(m))
                .find(|h| h.contains("Message number 2"))
                .expect("the third message in the file");
            // X-Status letters: A \Answered, T \Draft (F \Flagged, D \Deleted).
            let x = header_values(&third, "X-Status").join("");
            assert!(x.contains('A') && x.contains('T'), "{third}");
            assert!(!x.contains('F') && !x.contains('D'), "{third}");
        }
    }
    // and survive a new session
    let mut d = srv.login().await;
    d.ok("EXAMINE INBOX").await;
    let r = d.ok("FETCH 3 FLAGS").await;
    assert!(r[0].contains("\\Answered \\Draft"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_move_expunge() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 0..5 {
        append(&mut c, "INBOX", "", &sample_message(i)).await;
    }
    c.ok("CREATE Dest").await;
    c.ok("SELECT INBOX").await;
    let st = c.status("COPY 1:2 Dest").await;
    assert!(
        st.contains("OK [COPYUID ") && st.ends_with(" 1:2 1:2] Copy completed.\r\n"),
        "{st}"
    );
    let st = c.status("COPY 1 Missing").await;
    assert!(st.contains("NO [TRYCREATE]"), "{st}");
    let r = c.cmd("UID MOVE 4:5 Dest").await;
    assert!(
        r[0].starts_with("* OK [COPYUID ") && r[0].contains(" 4:5 3:4]"),
        "{r:?}"
    );
    assert_eq!(
        &r[1..3],
        &["* 5 EXPUNGE\r\n".to_string(), "* 4 EXPUNGE\r\n".to_string()],
        "{r:?}"
    );
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    c.ok("STORE 3 +FLAGS.SILENT (\\Deleted)").await;
    let r = c.ok("UID EXPUNGE 3").await;
    assert_eq!(r, vec!["* 3 EXPUNGE\r\n".to_string()]);
    let r = c.ok("EXPUNGE").await;
    assert_eq!(r, vec!["* 1 EXPUNGE\r\n".to_string()]);
    let r = c.ok("UID SEARCH ALL").await;
    assert_eq!(r[0], "* SEARCH 2\r\n");
    let r = c.ok("STATUS Dest (MESSAGES UIDNEXT)").await;
    assert!(r[0].contains("MESSAGES 4 UIDNEXT 5"), "{r:?}");
    // CLOSE expunges silently
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let r = c.ok("CLOSE").await;
    assert!(r.is_empty(), "{r:?}");
    let r = c.ok("STATUS INBOX (MESSAGES)").await;
    assert!(r[0].contains("MESSAGES 0"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_keys() {
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    append(&mut c, "INBOX", " (\\Seen)", &sample_message(1)).await;
    append(&mut c, "INBOX", " (\\Flagged)", MULTIPART).await;
    append(
        &mut c,
        "INBOX",
        "",
        "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\nFrom: x@y.z\r\n\r\nbig body here\r\n",
    )
    .await;
    c.ok("SELECT INBOX").await;
    let q = |k: &str| format!("SEARCH {k}");
    for (key, want) in [
        ("ALL", "* SEARCH 1 2 3"),
        ("SEEN", "* SEARCH 1"),
        ("UNSEEN", "* SEARCH 2 3"),
        ("FLAGGED", "* SEARCH 2"),
        ("FROM sender1", "* SEARCH 1"),
        ("FROM \"joe q.\"", "* SEARCH 2"),
        ("SUBJECT \"café\"", "* SEARCH 2"),
        ("SUBJECT \"GRÜßE\"", "* SEARCH 3"),
        ("BODY quarterly", "* SEARCH 2"),
        ("TEXT \"big body\"", "* SEARCH 3"),
        ("HEADER Message-ID m1@", "* SEARCH 1"),
        ("OR SEEN FLAGGED", "* SEARCH 1 2"),
        ("NOT SEEN", "* SEARCH 2 3"),
        ("(SEEN) (ALL)", "* SEARCH 1"),
        ("2:*", "* SEARCH 2 3"),
        ("UID 1,3", "* SEARCH 1 3"),
        ("LARGER 200", "* SEARCH 2"),
        ("SENTBEFORE 1-Jan-2004", "* SEARCH 2"),
        ("SENTON 2-Jan-2006", "* SEARCH 1"),
        ("NEW", "* SEARCH 2 3"),
    ] {
        let r = c
            .ok(&format!(
                "{} {}",
                if key.contains('é') || key.contains('ß') {
                    "SEARCH CHARSET UTF-8"
                } else {
                    "SEARCH"
                },
                key
            ))
            .await;
        assert_eq!(r[0].trim_end(), want, "SEARCH {key}");
    }
    let _ = q;
    let st = c.status("SEARCH CHARSET KOI9-X ALL").await;
    assert!(st.contains("NO [BADCHARSET"), "{st}");
    let st = c.status("SEARCH FROBNICATE").await;
    assert!(st.contains(" BAD "), "{st}");
    let r = c.ok("UID SEARCH FLAGGED").await;
    assert_eq!(r[0].trim_end(), "* SEARCH 2");
}

/// A mailbox-wide SEARCH BODY / TEXT big enough to be shared among threads gives exactly
/// the hits of a message-by-message evaluation, in ascending order, sequence numbers and
/// UIDs alike (2,100 messages: five chunks of 512). Mail is delivered as an LDA would, with
/// LF line ends, some QP-encoded, so the stored form (not the served CRLF) is searched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_body_over_many_messages_is_exact() {
    let srv = TestServer::start().await;
    let mut want = Vec::new();
    let mut want_text = Vec::new();
    for n in 1..=2100u32 {
        let word = if n % 7 == 0 { "zebrafish" } else { "plain" };
        let subject = if n % 11 == 0 {
            "zebrafish notes"
        } else {
            "notes"
        };
        let body = if n % 13 == 0 {
            // Quoted-printable with a soft break inside the word.
            format!("Content-Transfer-Encoding: quoted-printable\n\nthe zebra=\nfish {n}\n")
        } else {
            format!("\nsome {word} text {n}\n")
        };
        let msg = format!("From: a@x.test\nSubject: {subject}\nMIME-Version: 1.0\n{body}");
        srv.deliver(USER, "INBOX", &msg);
        let in_body = n % 7 == 0 || n % 13 == 0;
        if in_body {
            want.push(n);
        }
        if in_body || n % 11 == 0 {
            want_text.push(n);
        }
    }
    let mut c = srv.login().await;
    c.ok("SELECT INBOX").await;
    let fmt = |v: &[u32]| {
        let mut s = "* SEARCH".to_string();
        for n in v {
            s.push_str(&format!(" {n}"));
        }
        s + "\r\n"
    };
    assert_eq!(c.ok("SEARCH BODY ZebraFish").await[0], fmt(&want));
    assert_eq!(c.ok("UID SEARCH BODY zebrafish").await[0], fmt(&want));
    assert_eq!(c.ok("SEARCH TEXT zebrafish").await[0], fmt(&want_text));
    // Content keys combined with cheap ones: only the UID window is read.
    let window: Vec<u32> = want
        .iter()
        .copied()
        .filter(|n| (700..=1500).contains(n))
        .collect();
    assert_eq!(
        c.ok("UID SEARCH UID 700:1500 BODY zebrafish").await[0],
        fmt(&window)
    );
}

/// FETCH sends literals of 8 KiB or more from their own buffers, wherever they stand in
/// the line, for more messages than one batch holds and more octets than one batch sends
/// (512 messages, 4 MiB): every octet in order, the items after each literal, and the
/// FLAGS that the non-PEEK BODY[] changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_literals_mid_line_across_batches() {
    let srv = TestServer::start().await;
    let n = 600;
    let body = |i: usize| {
        format!(
            "Subject: m{i}\r\n\r\n{}\r\n",
            format!("{i:05} ").repeat(1400 + i)
        )
    };
    for i in 1..=n {
        srv.deliver(USER, "INBOX", &body(i));
    }
    let mut c = srv.login().await;
    c.ok("SELECT INBOX").await;
    let q = "FETCH 1:* (BODY[] UID BODY.PEEK[HEADER.FIELDS (Subject)] RFC822.SIZE)";
    let r = c.ok(q).await;
    assert_eq!(r.len(), n);
    let mut seen = std::collections::HashSet::new();
    for (k, unit) in r.iter().enumerate() {
        let head = format!("* {} FETCH (BODY[] {{", k + 1);
        assert!(unit.starts_with(&head), "{}", &unit[..60.min(unit.len())]);
        // Which message this is, from its Subject.
        let i: usize = unit
            .split("Subject: m")
            .nth(1)
            .and_then(|t| t.split("\r\n").next())
            .and_then(|t| t.parse().ok())
            .expect("a subject");
        let b = body(i);
        let want = format!("{head}{}}}\r\n{b} UID ", b.len());
        assert!(unit.starts_with(&want), "message {i}");
        let tail = format!(
            " BODY[HEADER.FIELDS (Subject)] {{16}}\r\nSubject: m{i}\r\n\r\n RFC822.SIZE {} FLAGS (\\Seen",
            b.len()
        );
        let tail = tail.replace(
            "{16}",
            &format!("{{{}}}", format!("Subject: m{i}\r\n\r\n").len()),
        );
        assert!(unit.contains(&tail), "message {i}: {}", &unit[b.len()..]);
        assert!(seen.insert(i), "message {i} twice");
    }
}

/// A series of APPENDs to a folder that is not selected (a migration tool's way) keeps
/// that folder open between them: every message is there for another session, and a
/// folder deleted and made again under the same name is a new one (UIDs from 1, none of
/// the old messages), not the kept one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_to_an_unselected_folder_and_the_folder_made_again() {
    use crate::standards::append;
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    c.ok("CREATE Imported").await;
    for i in 0..5 {
        let st = append(&mut c, "Imported", &sample_message(i)).await;
        assert!(st.contains(&format!(" {}] ", i + 1)), "{st}");
    }
    let mut other = srv.login().await;
    let sel = other.ok("EXAMINE Imported").await.join("");
    assert!(sel.contains("* 5 EXISTS"), "{sel}");
    other.ok("CLOSE").await;
    c.ok("DELETE Imported").await;
    c.ok("CREATE Imported").await;
    let st = append(&mut c, "Imported", &sample_message(9)).await;
    assert!(
        st.contains(" OK [APPENDUID ") && st.contains(" 1] "),
        "{st}"
    );
    let sel = other.ok("EXAMINE Imported").await.join("");
    assert!(sel.contains("* 1 EXISTS"), "{sel}");
}
