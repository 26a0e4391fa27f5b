//! TRANSACTION: STAT/LIST/UIDL/RETR/TOP/DELE/RSET/NOOP, the octet-count identity, byte
//! stuffing, workarounds, pipelining.

use super::client::*;
use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octet_counts_are_what_retr_sends() {
    let p3 = Pop3Server::start().await;
    let msgs = tricky_messages();
    for body in &msgs {
        p3.deliver(body);
    }
    let mut p = p3.login().await;
    let list = p.lines("LIST").await;
    assert_eq!(list.len(), msgs.len(), "{list:?}");
    let mut total = 0u64;
    for (i, original) in msgs.iter().enumerate() {
        let n = i + 1;
        let size: u64 = list[i]
            .strip_prefix(&format!("{n} "))
            .expect("scan line")
            .parse()
            .expect("size");
        total += size;
        assert_eq!(p.ok(&format!("LIST {n}")).await, format!("+OK {n} {size}"));
        let (first, body) = p.multi(&format!("RETR {n}")).await;
        assert_eq!(first, format!("+OK {size} octets"));
        // The message as stored, with CRLF line ends: exactly `size` octets, plus the
        // CRLF the server adds before "." when the last line had none. (An mbox delivery
        // stores a final line end the message lacked, as Postfix writes it.)
        let stored = as_delivered(original);
        let crlf = stored.replace("\r\n", "\n").replace('\n', "\r\n");
        let mut want = crlf.clone().into_bytes();
        assert_eq!(
            want.len() as u64,
            size,
            "message {n}: LIST size vs CRLF size"
        );
        if !want.ends_with(b"\n") {
            want.extend_from_slice(b"\r\n");
        }
        assert_eq!(s(&body), s(&want), "message {n} content");
    }
    assert_eq!(p.ok("STAT").await, format!("+OK {} {total}", msgs.len()));
    // Byte-stuffing on the wire: message 3's body lines "." and ".." go out as ".." and "...".
    p.ok("RETR 3").await;
    let raw = p.body_raw().await;
    assert!(
        s(&raw).contains("\r\n..\r\n..\r\n...\r\nbody\r\n"),
        "{:?}",
        s(&raw)
    );
    p.ok("QUIT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uidl_is_dovecots_default_and_stable() {
    let p3 = Pop3Server::start().await;
    for i in 1..=3 {
        p3.deliver(&sample_message(i));
    }
    let mut p = p3.login().await;
    let uidls = p.lines("UIDL").await;
    assert_eq!(uidls.len(), 3);
    // Message n has UID n here; the second half is the UIDVALIDITY in hex.
    let uv = &uidls[0][2 + 8..];
    assert_eq!(uv.len(), 8);
    let uidvalidity = u32::from_str_radix(uv, 16).expect("hex UIDVALIDITY");
    for (i, line) in uidls.iter().enumerate() {
        assert_eq!(line, &format!("{} {:08x}{:08x}", i + 1, i + 1, uidvalidity));
    }
    assert_eq!(p.ok("UIDL 2").await, format!("+OK {}", uidls[1]));
    p.err("UIDL 4").await;
    p.ok("DELE 1").await;
    p.ok("QUIT").await;
    // The same messages keep their UIDLs in the next session; IMAP agrees on UIDVALIDITY.
    let mut p = p3.login().await;
    assert_eq!(
        p.lines("UIDL").await,
        vec![
            uidls[1].replacen("2 ", "1 ", 1),
            uidls[2].replacen("3 ", "2 ", 1),
        ]
    );
    let mut imap = p3.srv.login().await;
    let r = imap.ok("SELECT INBOX").await;
    assert!(
        r.iter()
            .any(|l| l.contains(&format!("[UIDVALIDITY {uidvalidity}]"))),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uidl_format_is_configurable() {
    let p3 = Pop3Server::start_with(|c| {
        c.pop3.uidl_format = loft::config::uidl::UidlFormat::parse("%v-%u").unwrap()
    })
    .await;
    p3.deliver(&sample_message(1));
    let mut p = p3.login().await;
    let u = p.ok("UIDL 1").await;
    let v = u.strip_prefix("+OK 1 ").unwrap();
    assert!(
        v.ends_with("-1") && v.split('-').next().unwrap().parse::<u32>().is_ok(),
        "{u}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_retr_errors_and_marks() {
    let p3 = Pop3Server::start().await;
    p3.deliver("Subject: top\n\n1\n.2\n3\n4\n");
    p3.deliver("Subject: only header\n");
    let mut p = p3.login().await;
    let (_, b) = p.multi("TOP 1 0").await;
    assert_eq!(s(&b), "Subject: top\r\n\r\n");
    let (_, b) = p.multi("TOP 1 2").await;
    assert_eq!(s(&b), "Subject: top\r\n\r\n1\r\n.2\r\n");
    let (_, b) = p.multi("TOP 1 100").await;
    assert_eq!(s(&b), "Subject: top\r\n\r\n1\r\n.2\r\n3\r\n4\r\n");
    let (_, b) = p.multi("TOP 2 5").await;
    assert_eq!(s(&b), "Subject: only header\r\n");
    for bad in [
        "RETR 3",
        "TOP 3 1",
        "LIST 3",
        "DELE 3",
        "RETR 99999999999",
        "TOP 1",
        "RETR 0",
    ] {
        p.err(bad).await;
    }
    // DELE marks; the message can no longer be referred to; RSET unmarks.
    p.ok("DELE 1").await;
    for bad in ["DELE 1", "RETR 1", "TOP 1 0", "LIST 1", "UIDL 1"] {
        p.err(bad).await;
    }
    assert_eq!(p.lines("LIST").await.len(), 1);
    assert_eq!(p.lines("UIDL").await.len(), 1);
    let stat = p.ok("STAT").await;
    assert!(stat.starts_with("+OK 1 "), "{stat}");
    p.ok("RSET").await;
    assert!(p.ok("STAT").await.starts_with("+OK 2 "));
    p.ok("RETR 1").await;
    p.body_raw().await;
    p.ok("NOOP").await;
    p.ok("QUIT").await;
    // RSET means nothing was deleted; RETR marked the message \Seen (visible to IMAP).
    assert_eq!(p3.stored(), 2);
    let mut imap = p3.srv.login().await;
    imap.ok("SELECT INBOX").await;
    let r = imap.ok("FETCH 1:2 FLAGS").await;
    assert!(r[0].contains("\\Seen"), "{r:?}");
    assert!(!r[1].contains("\\Seen"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_are_answered_in_order() {
    let p3 = Pop3Server::start().await;
    for i in 1..=2 {
        p3.deliver(&sample_message(i));
    }
    let mut p = p3.connect().await;
    p.send(b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nRETR 2\r\nDELE 1\r\nUIDL 1\r\nNOOP\r\nQUIT\r\n")
        .await;
    assert!(p.line().await.starts_with("+OK"));
    assert!(p.line().await.starts_with("+OK"));
    assert!(p.line().await.starts_with("+OK 2 "));
    assert!(p.line().await.starts_with("+OK"));
    assert_eq!(p.body_raw().await.split(|&b| b == b'\n').count(), 3);
    assert!(p.line().await.starts_with("+OK"));
    let body = unstuff(&p.body_raw().await);
    assert!(s(&body).contains("Message number 2"));
    assert!(p.line().await.starts_with("+OK"));
    assert!(p.line().await.starts_with("-ERR"));
    assert!(p.line().await.starts_with("+OK"));
    assert_eq!(p.line().await, "+OK Logging out, 1 messages deleted.");
    assert!(p.closed().await);
    assert_eq!(p3.stored(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workarounds_change_only_retr_and_top() {
    let p3 = Pop3Server::start_with(|c| {
        c.pop3
            .workarounds
            .insert(loft::quirks::Quirk::OutlookNoNuls);
        c.pop3.workarounds.insert(loft::quirks::Quirk::OeNsEoh);
    })
    .await;
    p3.deliver("Subject: nul\n\na\0b\n");
    p3.deliver("Subject: header only\n");
    let mut p = p3.login().await;
    let list = p.lines("LIST").await;
    assert_eq!(list, vec!["1 21", "2 22"]);
    let (first, b) = p.multi("RETR 1").await;
    assert_eq!(first, "+OK 21 octets");
    // outlook-no-nuls: one octet for one, the count stays exact.
    assert_eq!(b, b"Subject: nul\r\n\r\na\x80b\r\n");
    // oe-ns-eoh: the missing end-of-header line is sent.
    let (_, b) = p.multi("RETR 2").await;
    assert_eq!(s(&b), "Subject: header only\r\n\r\n");
    let (_, b) = p.multi("TOP 2 0").await;
    assert_eq!(s(&b), "Subject: header only\r\n\r\n");
    p.ok("QUIT").await;
    // The stored messages are untouched.
    let stored = p3.srv.stored_bytes(USER, "INBOX");
    assert!(
        stored.contains(&0),
        "the NUL is still in the stored message"
    );
}
