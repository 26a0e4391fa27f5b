//! What only an mbox store has (issue 12): one file that other programs append to and
//! rewrite, the status fields (`Status`, `X-Status`, `X-Keywords`, `X-UID`, `X-IMAPbase`)
//! Loft writes into it and hides from clients, expunges that rewrite the file, UIDs kept
//! in it across restarts and from other programs, and messages that need care in the
//! format (no final line end, body lines starting with "From ", a bare CR).
//!
//! Every test here returns at once unless the suite runs on mbox
//! (`LOFT_TEST_FORMAT=mbox cargo test --test it`).

use std::time::{Duration, Instant};

use crate::standards::append;
use crate::util::*;

/// The hidden fields (docs/mbox.md): a client never sees them in a message.
const HIDDEN: [&str; 7] = [
    "X-IMAPbase",
    "X-IMAP",
    "X-UID",
    "Status",
    "X-Status",
    "X-Keywords",
    "Content-Length",
];

/// The literal of `item` (e.g. `BODY[]`) in a FETCH response unit.
fn literal(unit: &str, item: &str) -> String {
    let open = format!("{item} {{");
    let at = unit
        .find(&open)
        .unwrap_or_else(|| panic!("no {item} literal in {unit:?}"))
        + open.len();
    let close = at + unit[at..].find('}').expect("literal length");
    let n: usize = unit[at..close].parse().expect("literal length");
    let start = close + "}\r\n".len();
    unit[start..start + n].to_string()
}

/// The number after `key` (e.g. `UID `, `RFC822.SIZE `, `UIDVALIDITY `) in `text`.
fn number(text: &str, key: &str) -> u32 {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {text:?}"))
        + key.len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key:?} in {text:?}"))
}

/// The header lines of `text` (up to its first empty line) naming a hidden field.
fn hidden_fields_in(text: &str) -> Vec<String> {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| HIDDEN.iter().any(|h| h.eq_ignore_ascii_case(n.trim())))
        })
        .map(str::to_string)
        .collect()
}

/// alice's INBOX file, split into its messages.
fn inbox_messages(srv: &TestServer) -> Vec<Vec<u8>> {
    let file = std::fs::read(srv.mailbox_path(USER, "INBOX")).expect("the INBOX file");
    mbox_messages(&file)
        .into_iter()
        .filter(|m| !is_pseudo_message(m))
        .map(<[u8]>::to_vec)
        .collect()
}

/// The header (in the file) of the one message of alice's INBOX containing `needle`.
fn header_in_file(srv: &TestServer, needle: &str) -> String {
    let msgs: Vec<String> = inbox_messages(srv)
        .iter()
        .map(|m| s(m))
        .filter(|m| m.contains(needle))
        .collect();
    assert_eq!(
        msgs.len(),
        1,
        "messages with {needle:?} in the file: {msgs:?}"
    );
    mbox_header(msgs[0].as_bytes())
}

/// (UID, INTERNALDATE, BODY[]) of every message of the selected mailbox. Other untagged
/// data the server sends meanwhile (a flag update, RFC 3501 §7: at any time) is not one.
async fn uids_dates_bodies(c: &mut Client) -> Vec<(u32, String, String)> {
    c.ok("UID FETCH 1:* (UID INTERNALDATE BODY.PEEK[])")
        .await
        .iter()
        .filter(|u| u.contains(" FETCH (") && u.contains("BODY[] {"))
        .map(|u| {
            let date = u.split("INTERNALDATE \"").nth(1).expect("INTERNALDATE");
            let date = date.split('"').next().unwrap().to_string();
            (number(u, "UID "), date, literal(u, "BODY[]"))
        })
        .collect()
}

/// Reads untagged lines until one matches, failing after `wait`.
async fn sees(c: &mut Client, wait: Duration, what: &str, want: impl Fn(&str) -> bool) {
    let t = Instant::now();
    let seen = tokio::time::timeout(wait, async { while !want(&c.read_checked().await) {} }).await;
    assert!(seen.is_ok(), "{what} not seen within {wait:?}");
    eprintln!("{what} after {:?}", t.elapsed());
}

/// (a) Mail another program (an MTA) appends to the INBOX file while a session has it
/// selected is announced: at the next NOOP, and during IDLE within a few seconds; the
/// new messages get ascending UIDs above the known ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_appended_by_another_program_is_announced() {
    if format() != Format::Mbox {
        return;
    }
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    assert!(append(&mut c, "INBOX", &sample_message(1))
        .await
        .contains(" OK "));
    let r = c.ok("SELECT INBOX").await;
    assert!(r.contains(&"* 1 EXISTS\r\n".to_string()), "{r:?}");

    srv.deliver(USER, "INBOX", &sample_message(2));
    let r = c.ok("NOOP").await;
    assert!(r.contains(&"* 2 EXISTS\r\n".to_string()), "NOOP: {r:?}");

    c.send(b"i IDLE\r\n").await;
    assert!(c.read_checked().await.starts_with("+ "));
    srv.deliver(USER, "INBOX", &sample_message(3));
    sees(&mut c, Duration::from_secs(5), "EXISTS during IDLE", |l| {
        l == "* 3 EXISTS\r\n"
    })
    .await;
    c.send(b"DONE\r\n").await;
    let r = c.collect("i").await;
    assert!(r.last().unwrap().starts_with("i OK"), "{r:?}");

    // Two at once, between commands.
    srv.deliver(USER, "INBOX", &sample_message(4));
    srv.deliver(USER, "INBOX", &sample_message(5));
    let r = c.ok("NOOP").await;
    assert!(r.contains(&"* 5 EXISTS\r\n".to_string()), "NOOP: {r:?}");

    // In file order, UIDs ascending, each message whole.
    let r = uids_dates_bodies(&mut c).await;
    assert_eq!(r.len(), 5, "{r:?}");
    for (k, (_, _, body)) in r.iter().enumerate() {
        assert_eq!(body, &sample_message(k + 1), "message {}", k + 1);
    }
    let uids: Vec<u32> = r.iter().map(|(u, _, _)| *u).collect();
    assert!(uids.windows(2).all(|w| w[0] < w[1]), "UIDs {uids:?}");
}

/// (b) Flags and the UID are written into the file (`Status: RO` for \Seen, `F` in
/// `X-Status` for \Flagged, the keyword in `X-Keywords`, `X-UID`) once the folder is
/// closed; clients never see those fields: not in BODY[HEADER], not in BODY[], not in
/// RFC822.SIZE, which is the size of the BODY[] served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_and_uid_are_written_into_the_file_and_hidden_from_clients() {
    if format() != Format::Mbox {
        return;
    }
    let srv = TestServer::start().await;
    srv.deliver(USER, "INBOX", &sample_message(1));
    srv.deliver(USER, "INBOX", &sample_message(2));
    let mut c = srv.login().await;
    assert!(append(&mut c, "INBOX", &sample_message(3))
        .await
        .contains(" OK "));
    c.ok("SELECT INBOX").await;
    let r = c.ok("FETCH 2 (UID)").await;
    let uid = number(&r[0], "UID ");
    c.ok("STORE 2 +FLAGS (\\Seen \\Flagged $Work)").await;
    c.ok("CLOSE").await;

    let head = header_in_file(&srv, "Message number 2");
    assert_eq!(header_values(&head, "Status"), ["RO"], "{head}");
    let x = header_values(&head, "X-Status");
    assert!(x.len() == 1 && x[0].contains('F'), "{head}");
    let kw = header_values(&head, "X-Keywords");
    assert!(
        kw.len() == 1 && kw[0].split_whitespace().any(|k| k == "$Work"),
        "{head}"
    );
    assert_eq!(header_values(&head, "X-UID"), [uid.to_string()], "{head}");

    // What clients see, in this session and in a new one.
    for mut c in [c, srv.login().await] {
        c.ok("SELECT INBOX").await;
        let r = c
            .ok("FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[])")
            .await;
        assert_eq!(r.len(), 3, "{r:?}");
        for (k, unit) in r.iter().enumerate() {
            let header = literal(unit, "BODY[HEADER]");
            let body = literal(unit, "BODY[]");
            assert!(hidden_fields_in(&header).is_empty(), "{header:?}");
            assert!(hidden_fields_in(&body).is_empty(), "{body:?}");
            assert_eq!(body, sample_message(k + 1), "message {}", k + 1);
            assert_eq!(number(unit, "RFC822.SIZE ") as usize, body.len(), "{unit}");
        }
        let flags = r[1].split("FLAGS (").nth(1).unwrap();
        let flags = flags.split(')').next().unwrap();
        for f in ["\\Seen", "\\Flagged", "$Work"] {
            assert!(flags.split(' ').any(|x| x == f), "{f} in {}", r[1]);
        }
        c.ok("LOGOUT").await;
    }
}

/// (c) EXPUNGE removes exactly the \Deleted messages from the file; the others are
/// served byte for byte as before (and with the same INTERNALDATE), in this session and
/// the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expunge_removes_exactly_the_deleted_messages_from_the_file() {
    if format() != Format::Mbox {
        return;
    }
    let srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 1..=6 {
        if i % 2 == 0 {
            assert!(append(&mut c, "INBOX", &sample_message(i))
                .await
                .contains(" OK "));
        } else {
            srv.deliver(USER, "INBOX", &sample_message(i));
        }
    }
    c.ok("SELECT INBOX").await;
    let before = uids_dates_bodies(&mut c).await;
    assert_eq!(before.len(), 6, "{before:?}");
    c.ok("STORE 2,3,5 +FLAGS.SILENT (\\Deleted)").await;
    let r = c.ok("EXPUNGE").await;
    assert_eq!(r, ["* 5 EXPUNGE\r\n", "* 3 EXPUNGE\r\n", "* 2 EXPUNGE\r\n"]);

    let msgs = inbox_messages(&srv);
    assert_eq!(msgs.len(), 3, "messages left in the file: {msgs:?}");
    let file = s(&msgs.concat());
    for (i, there) in [
        (1, true),
        (2, false),
        (3, false),
        (4, true),
        (5, false),
        (6, true),
    ] {
        assert_eq!(
            file.contains(&format!("Message number {i}")),
            there,
            "message {i} in the file: {file}"
        );
    }
    let want: Vec<_> = [0, 3, 5].iter().map(|&k| before[k].clone()).collect();
    assert_eq!(uids_dates_bodies(&mut c).await, want);
    c.ok("LOGOUT").await;
    let mut d = srv.login().await;
    d.ok("SELECT INBOX").await;
    assert_eq!(uids_dates_bodies(&mut d).await, want);
}

/// UIDVALIDITY, UIDNEXT and MESSAGES of INBOX, from STATUS.
async fn status(c: &mut Client) -> (u32, u32, u32) {
    let r = c.ok("STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)").await;
    (
        number(&r[0], "UIDVALIDITY "),
        number(&r[0], "UIDNEXT "),
        number(&r[0], "MESSAGES "),
    )
}

/// (d) A restart keeps UIDVALIDITY, every UID and UIDNEXT (with a gap an expunge left),
/// for appended and delivered mail alike; the next APPEND continues above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_uidvalidity_and_uids() {
    if format() != Format::Mbox {
        return;
    }
    let mut srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 1..=3 {
        assert!(append(&mut c, "INBOX", &sample_message(i))
            .await
            .contains(" OK "));
    }
    srv.deliver(USER, "INBOX", &sample_message(4));
    srv.deliver(USER, "INBOX", &sample_message(5));
    c.ok("SELECT INBOX").await;
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    c.ok("EXPUNGE").await;
    let messages = uids_dates_bodies(&mut c).await;
    c.ok("CLOSE").await;
    let st = status(&mut c).await;
    assert_eq!(st.2, 4, "{st:?}");
    c.ok("LOGOUT").await;
    srv.stop().await;

    let srv2 = srv.restart_on().await;
    let mut c = srv2.login().await;
    assert_eq!(status(&mut c).await, st);
    let sel = c.ok("SELECT INBOX").await.join("");
    assert!(sel.contains(&format!("[UIDVALIDITY {}]", st.0)), "{sel}");
    assert_eq!(uids_dates_bodies(&mut c).await, messages);
    let r = append(&mut c, "INBOX", &sample_message(6)).await;
    assert!(
        r.contains(&format!("[APPENDUID {} {}]", st.0, st.1)),
        "{r} after {st:?}"
    );
}

/// The UIDs live in the file too (`X-IMAPbase`, `X-UID`): with Loft's index lost, a
/// restart still finds UIDVALIDITY and every UID, as another server reading the file
/// would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uids_survive_the_loss_of_the_index() {
    if format() != Format::Mbox {
        return;
    }
    let mut srv = TestServer::start().await;
    let mut c = srv.login().await;
    for i in 1..=4 {
        assert!(append(&mut c, "INBOX", &sample_message(i))
            .await
            .contains(" OK "));
    }
    c.ok("SELECT INBOX").await;
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    c.ok("EXPUNGE").await;
    let messages = uids_dates_bodies(&mut c).await;
    c.ok("CLOSE").await;
    let st = status(&mut c).await;
    c.ok("LOGOUT").await;
    srv.stop().await;

    let index = srv.mail_root(USER).join(".loft-index");
    assert!(index.is_dir(), "no index at {}", index.display());
    std::fs::remove_dir_all(&index).unwrap();
    let file = s(&std::fs::read(srv.mailbox_path(USER, "INBOX")).unwrap());
    let srv2 = srv.restart_on().await;
    let mut c = srv2.login().await;
    let sel = c.ok("SELECT INBOX").await.join("");
    assert!(
        sel.contains(&format!("[UIDVALIDITY {}]", st.0)),
        "{sel}\nfile:\n{file}"
    );
    let got = uids_dates_bodies(&mut c).await;
    let uids = |v: &[(u32, String, String)]| v.iter().map(|m| m.0).collect::<Vec<_>>();
    assert_eq!(uids(&got), uids(&messages), "file:\n{file}");
    assert_eq!(got, messages);
}

/// (e) A file another program (Dovecot, UW-IMAP) wrote: `X-IMAPbase` on its first
/// message and `X-UID`s give UIDVALIDITY, UIDs and UIDNEXT; `Status`, `X-Status` and
/// `X-Keywords` the flags; none of those fields is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_uids_another_program_wrote() {
    if format() != Format::Mbox {
        return;
    }
    let srv = TestServer::start().await;
    let lf = |i: usize| sample_message(i).replace("\r\n", "\n");
    // Each message's header, the fields added at its end.
    let with = |i: usize, fields: &str| {
        let m = lf(i);
        let (head, body) = m.split_once("\n\n").unwrap();
        format!("{head}\n{fields}\n\n{body}")
    };
    let file = format!(
        "From someone@example.org  Mon Jan  2 15:04:05 2006\n{}\n\
         From someone@example.org  Mon Jan  2 16:04:05 2006\n{}\n",
        with(1, "X-IMAPbase: 1234567 50\nStatus: RO\nX-UID: 7"),
        with(
            2,
            "Status: O\nX-Status: F\nX-Keywords: $Work                    \nX-UID: 9"
        ),
    );
    let inbox = srv.mailbox_path(USER, "INBOX");
    std::fs::create_dir_all(inbox.parent().unwrap()).unwrap();
    std::fs::write(&inbox, file).unwrap();

    let mut c = srv.login().await;
    let sel = c.ok("SELECT INBOX").await.join("");
    assert!(sel.contains("[UIDVALIDITY 1234567]"), "{sel}");
    assert!(sel.contains("* 2 EXISTS"), "{sel}");
    assert!(number(&sel, "[UIDNEXT ") >= 50, "{sel}");
    let r = c.ok("FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[])").await;
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(number(&r[0], "UID "), 7, "{}", r[0]);
    assert_eq!(number(&r[1], "UID "), 9, "{}", r[1]);
    assert!(
        r[0].contains("\\Seen") && !r[0].contains("\\Flagged"),
        "{}",
        r[0]
    );
    assert!(
        r[1].contains("\\Flagged") && r[1].contains("$Work") && !r[1].contains("\\Seen"),
        "{}",
        r[1]
    );
    for (k, unit) in r.iter().enumerate() {
        let body = literal(unit, "BODY[]");
        assert_eq!(body, sample_message(k + 1), "message {}", k + 1);
        assert_eq!(number(unit, "RFC822.SIZE ") as usize, body.len(), "{unit}");
    }
    let st = append(&mut c, "INBOX", &sample_message(3)).await;
    assert!(st.contains("[APPENDUID 1234567 "), "{st}");
    assert!(number(&st, "[APPENDUID 1234567 ") >= 50, "{st}");
}

/// (f) Messages the mbox format needs care with are read back exactly as appended
/// (CRLF line ends): no line end after the last line, a body line starting with "From "
/// (and one starting with ">From "), a bare CR inside a line; in the session, after
/// an MTA appended more mail behind them, and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_messages_read_back_as_stored() {
    if format() != Format::Mbox {
        return;
    }
    let msgs = [
        "Subject: no final line end\r\n\r\nfirst line\r\nlast line without a line end",
        "Subject: from line\r\n\r\nabove\r\nFrom here on it starts with From\r\nFrom me\r\nbelow\r\n",
        "Subject: quoted from line\r\n\r\n>From a line quoted by someone\r\n>>From twice\r\n",
        "Subject: bare CR\r\n\r\nbefore\rafter\r\nend\r\n",
    ];
    // A body line starting with "From " is stored `>From ` (mboxo, as Postfix,
    // procmail and mutt write it: no reader of the file splits the message there) and
    // served as stored, as mutt and Dovecot read such a file; lines already quoted stay
    // as they are (docs/mbox.md, "The message as Loft writes it").
    let served: Vec<String> = msgs
        .iter()
        .map(|m| m.replace("\r\nFrom ", "\r\n>From "))
        .collect();
    let mut srv = TestServer::start().await;
    let mut c = srv.login().await;
    for m in msgs {
        assert!(append(&mut c, "INBOX", m).await.contains(" OK "), "{m:?}");
    }
    // Every message checked, every difference reported.
    let check = |r: Vec<String>, n: usize| {
        assert_eq!(r.len(), n, "{r:?}");
        let mut wrong = Vec::new();
        for (k, want) in served.iter().enumerate() {
            let body = literal(&r[k], "BODY[]");
            let size = number(&r[k], "RFC822.SIZE ") as usize;
            if body != *want || size != want.len() {
                wrong.push(format!(
                    "message {}: BODY[] {body:?} RFC822.SIZE {size}, appended {want:?} ({})",
                    k + 1,
                    want.len()
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    };
    c.ok("SELECT INBOX").await;
    check(c.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[])").await, 4);

    // Mail an MTA appends after them is a message of its own.
    srv.deliver(USER, "INBOX", &sample_message(5));
    let r = c.ok("NOOP").await;
    assert!(r.contains(&"* 5 EXISTS\r\n".to_string()), "{r:?}");
    let r = c.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[])").await;
    assert_eq!(literal(&r[4], "BODY[]"), sample_message(5));
    check(r, 5);
    c.ok("LOGOUT").await;
    srv.stop().await;

    let srv2 = srv.restart_on().await;
    let mut c = srv2.login().await;
    c.ok("SELECT INBOX").await;
    check(c.ok("FETCH 1:* (RFC822.SIZE BODY.PEEK[])").await, 5);
}
