//! curl's IMAP client against Loft: LIST, FETCH by UID (whole message and MIME sections),
//! SEARCH through the URL query, custom commands (`-X 'EXAMINE INBOX'`, STATUS), APPEND
//! by upload, over plain `imap://`, implicit TLS `imaps://` and STARTTLS (`--ssl-reqd`),
//! with the generated self-signed certificate as the only trusted CA.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{maildir_of, Loft, PASS, USER};
use crate::imap::Imap;
use crate::mail;
use crate::proc::{self, have_tool};

fn populate(dir: &Path) {
    for i in 1..=3 {
        mail::deliver(
            &maildir_of(dir),
            &format!("{}.M{i}P9.curl", 1_700_000_000 + i),
            &mail::sample(i),
            None,
        );
    }
}

/// Runs curl as alice with a time limit; `args` come last.
fn curl(loft: &Loft, args: &[&str]) -> proc::Output {
    curl_as(loft, &format!("{USER}:{PASS}"), args)
}

fn curl_as(loft: &Loft, user: &str, args: &[&str]) -> proc::Output {
    proc::run(
        Command::new("curl")
            .args(["-sS", "--max-time", "15", "-u", user])
            .args(args),
        &loft.scratch(),
        Duration::from_secs(25),
    )
}

fn ok(loft: &Loft, args: &[&str]) -> String {
    curl(loft, args).assert_ok().stdout.clone()
}

#[test]
fn curl_plain_list_fetch_search_examine_append() {
    if !have_tool("curl", "curl") {
        return;
    }
    let loft = Loft::start_with(populate);
    let base = format!("imap://127.0.0.1:{}", loft.port);

    // LIST: INBOX and the autocreated special-use folders, one valid LIST line each.
    let list = ok(&loft, &[&format!("{base}/")]);
    for line in list.lines() {
        assert!(
            line.starts_with("* LIST ("),
            "not a LIST response: {line:?}"
        );
    }
    for name in ["INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"] {
        assert!(
            list.lines()
                .any(|l| l.ends_with(&format!(" {name}")) || l.ends_with(&format!(" \"{name}\""))),
            "{name} missing from LIST:\n{list}"
        );
    }
    assert!(
        list.contains("\\Sent") && list.contains("\\Trash"),
        "no SPECIAL-USE attributes:\n{list}"
    );

    // FETCH by UID: the exact message, with the CRLF line ends IMAP requires on the wire.
    let body = curl(&loft, &[&format!("{base}/INBOX;UID=1")]);
    body.assert_ok();
    assert_eq!(body.stdout, mail::crlf(&mail::sample(1)), "UID 1 content");
    // MIME sections of the multipart message 3 (RFC 3501 §6.4.5 BODY[1], BODY[2]).
    let part1 = ok(&loft, &[&format!("{base}/INBOX;UID=3;SECTION=1")]);
    assert_eq!(part1, "Grüße aus Nummer 3.");
    let part2 = ok(&loft, &[&format!("{base}/INBOX;UID=3;SECTION=2")]);
    assert_eq!(
        part2,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v"
    );
    let subject = ok(
        &loft,
        &[&format!(
            "{base}/INBOX;UID=2;SECTION=HEADER.FIELDS%20(SUBJECT)"
        )],
    );
    assert_eq!(subject, "Subject: Interop message 2\r\n\r\n");

    // SEARCH through the URL query (RFC 5092).
    let found = ok(
        &loft,
        &[&format!("{base}/INBOX?SUBJECT%20%22message%202%22")],
    );
    assert_eq!(found.trim_end(), "* SEARCH 2");

    // Custom commands: curl prints the untagged responses.
    let examine = ok(&loft, &[&format!("{base}/"), "-X", "EXAMINE INBOX"]);
    for want in ["* 3 EXISTS", "[UIDVALIDITY ", "[UIDNEXT 4]", "* FLAGS ("] {
        assert!(examine.contains(want), "EXAMINE lacks {want:?}:\n{examine}");
    }
    // curl fetches with BODY[...], not BODY.PEEK, so every message fetched above is now
    // \Seen (RFC 3501 §6.4.5): UNSEEN 0.
    let status = ok(
        &loft,
        &[
            &format!("{base}/"),
            "-X",
            "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)",
        ],
    );
    let status = status.trim_end().replace("\"INBOX\"", "INBOX");
    assert_eq!(status, "* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UNSEEN 0)");

    // APPEND by upload; it must arrive byte for byte under the next UID.
    let upload = loft.scratch().join("upload.eml");
    let message = mail::crlf(
        "From: Dave <dave@example.net>\nTo: alice@example.com\nSubject: uploaded by curl\n\
         Message-ID: <curl-upload@example.net>\n\nSent with curl -T.\n",
    );
    std::fs::write(&upload, &message).expect("write upload");
    ok(
        &loft,
        &[
            "-T",
            upload.to_str().expect("utf-8 path"),
            &format!("{base}/INBOX"),
        ],
    );
    assert_eq!(
        ok(&loft, &[&format!("{base}/INBOX;UID=4")]),
        message,
        "uploaded message"
    );
    let mut c = Imap::login(loft.port, USER, PASS);
    c.ok("EXAMINE INBOX");
    let all = c.uid_flags_ids();
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[3].0, 4);
    assert_eq!(all[3].2, "<curl-upload@example.net>");
    c.logout();

    // Each advertised SASL mechanism, with an initial response (SASL-IR, RFC 4959).
    for mech in ["LOGIN", "PLAIN"] {
        let r = curl(
            &loft,
            &[
                "--login-options",
                &format!("AUTH={mech}"),
                "-v",
                &format!("{base}/"),
            ],
        );
        r.assert_ok();
        assert!(
            r.stderr.contains(&format!("AUTHENTICATE {mech}")),
            "{}",
            r.dump()
        );
        assert!(r.stdout.contains("INBOX"), "AUTH={mech}: {}", r.dump());
    }

    // A wrong password is refused (curl: 67, "Login denied").
    let bad = curl_as(&loft, "alice:wrong", &[&format!("{base}/")]);
    assert_eq!(bad.code, Some(67), "{}", bad.dump());
    loft.assert_clean_log();
}

#[test]
fn curl_imaps_and_starttls_with_the_generated_certificate() {
    if !have_tool("curl", "curl") {
        return;
    }
    let loft = Loft::start_with(populate);
    let cacert = loft.cert();
    let cacert = cacert.to_str().expect("utf-8 path");
    let tls = format!("imaps://127.0.0.1:{}", loft.tls_port);
    let plain = format!("imap://127.0.0.1:{}", loft.port);

    // Implicit TLS, the certificate verified against itself (and its 127.0.0.1 name).
    let list = ok(&loft, &["--cacert", cacert, &format!("{tls}/")]);
    assert!(list.contains("INBOX"), "{list}");
    assert_eq!(
        ok(&loft, &["--cacert", cacert, &format!("{tls}/INBOX;UID=2")]),
        mail::crlf(&mail::sample(2))
    );
    // Without the certificate curl must refuse the self-signed server (60).
    let untrusted = curl(&loft, &[&format!("{tls}/")]);
    assert_eq!(untrusted.code, Some(60), "{}", untrusted.dump());

    // STARTTLS required on the plain port: the login happens inside TLS.
    let st = curl(
        &loft,
        &[
            "--ssl-reqd",
            "--cacert",
            cacert,
            "-v",
            &format!("{plain}/INBOX;UID=1"),
        ],
    );
    st.assert_ok();
    assert_eq!(st.stdout, mail::crlf(&mail::sample(1)));
    let starttls_at = st
        .stderr
        .find("STARTTLS\r\n")
        .or_else(|| st.stderr.find(" STARTTLS\n"));
    let login_at = st
        .stderr
        .find("AUTHENTICATE")
        .or_else(|| st.stderr.find(" LOGIN "));
    match (starttls_at, login_at) {
        (Some(s), Some(l)) => assert!(s < l, "logged in before STARTTLS:\n{}", st.stderr),
        _ => panic!("no STARTTLS/login seen in curl -v:\n{}", st.stderr),
    }
    assert!(
        st.stderr.contains("SSL connection using") || st.stderr.contains("TLSv1"),
        "{}",
        st.stderr
    );

    // Upload over IMAPS.
    let upload = loft.scratch().join("tls.eml");
    let message = mail::crlf(
        "From: e@example.net\nSubject: over tls\nMessage-ID: <tls-upload@example.net>\n\nSecret.\n",
    );
    std::fs::write(&upload, &message).expect("write upload");
    ok(
        &loft,
        &[
            "--cacert",
            cacert,
            "-T",
            upload.to_str().expect("utf-8 path"),
            &format!("{tls}/INBOX"),
        ],
    );
    assert_eq!(
        ok(&loft, &["--cacert", cacert, &format!("{tls}/INBOX;UID=4")]),
        message
    );
    loft.assert_clean_log();
}
