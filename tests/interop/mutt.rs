//! mutt (Debian's `mutt`, run in batch through `script` for its terminal) on the mbox file
//! Loft serves: mutt sees the flags and keywords Loft wrote into the file, and what mutt
//! changes in the file (a message deleted, another flagged) is what Loft's clients see
//! next, every other message keeping its UID.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Loft, PASS, STORAGE_EXTRA, USER};
use crate::imap::Imap;
use crate::proc::{have_tool, run};

const D: &str = "Mon Dec  7 16:49:14 2026";

/// Three messages as Postfix local(8) delivers them: no fields of an IMAP server yet.
fn spool() -> String {
    ["one", "two", "three"]
        .iter()
        .map(|s| {
            format!(
                "From bob@example.org  {D}\nFrom: Bob <bob@example.org>\nSubject: {s}\nMessage-ID: <{s}@example.org>\n\nbody of {s}\n\n"
            )
        })
        .collect()
}

/// Runs mutt on `file` pressing `keys` (mutt's `push` syntax), with a terminal.
fn mutt(loft: &Loft, file: &std::path::Path, keys: &str) {
    let scratch = loft.scratch();
    let rc = scratch.join("muttrc");
    std::fs::write(
        &rc,
        "set mbox_type=mbox\nset confirmappend=no\nset confirmcreate=no\nset delete=yes\n\
         set move=no\nset mark_old=no\nset quit=yes\nset sort=mailbox-order\n",
    )
    .unwrap();
    let inner = format!(
        "mutt -n -F {} -f {} -e 'push \"{keys}\"'",
        rc.display(),
        file.display()
    );
    run(
        Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .env("TERM", "vt100")
            .env("HOME", &scratch),
        &scratch,
        Duration::from_secs(30),
    )
    .assert_ok();
}

/// Waits until the file contains `what` (Loft writes flags at the last close).
fn wait_for(file: &std::path::Path, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(what) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn mutt_and_loft_share_an_mbox() {
    if !have_tool("mutt", "mutt") || !have_tool("script", "bsdutils") {
        return;
    }
    let loft = Loft::start_with(|dir| {
        std::fs::write(dir.join(STORAGE_EXTRA), "format = \"mbox\"\n").unwrap();
        std::fs::create_dir_all(dir.join("mail").join(USER)).unwrap();
        std::fs::write(dir.join("mail").join(USER).join("INBOX"), spool()).unwrap();
    });
    let inbox = loft.dir.path().join("mail").join(USER).join("INBOX");
    let mut c = Imap::login(loft.port, USER, PASS);
    c.ok("SELECT INBOX");
    let before = c.uid_flags_ids();
    assert_eq!(before.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 2, 3]);
    c.ok("UID STORE 1 +FLAGS (\\Flagged)");
    c.ok("UID STORE 2 +FLAGS (\\Seen $Work)");
    c.logout();
    let text = wait_for(&inbox, "X-UID: 3");
    assert!(
        text.contains("X-UID: 3"),
        "flags not written at close:\n{text}"
    );

    // mutt sees Loft's flags: the flagged message, the read one (and its keyword, in
    // X-Keywords, which mutt shows as a label), and no other.
    let scratch = loft.scratch();
    let flagged = scratch.join("flagged.mbox");
    let read = scratch.join("read.mbox");
    mutt(
        &loft,
        &inbox,
        &format!(
            "<tag-pattern>~F<enter><tag-prefix><copy-message>{}<enter>\
             <tag-pattern>~R<enter><tag-prefix><copy-message>{}<enter><quit>",
            flagged.display(),
            read.display()
        ),
    );
    let f = std::fs::read_to_string(&flagged).unwrap_or_default();
    let r = std::fs::read_to_string(&read).unwrap_or_default();
    assert!(
        f.contains("Subject: one") && !f.contains("Subject: two"),
        "{f}"
    );
    assert!(
        r.contains("Subject: two") && !r.contains("Subject: one"),
        "{r}"
    );
    assert!(
        r.contains("$Work"),
        "the keyword in the copy mutt made: {r}"
    );

    // mutt deletes "two" and flags "three", rewriting the file; Loft's next session sees
    // exactly that, and "one" and "three" keep their UIDs.
    mutt(
        &loft,
        &inbox,
        "<tag-pattern>~s two<enter><tag-prefix><delete-message>\
         <tag-pattern>~s three<enter><tag-prefix><flag-message><sync-mailbox><quit>",
    );
    let mut c = Imap::login(loft.port, USER, PASS);
    c.ok("SELECT INBOX");
    let after = c.uid_flags_ids();
    let got: Vec<(u32, bool, String)> = (after.iter())
        .map(|(u, f, id)| (*u, f.iter().any(|x| x == "\\Flagged"), id.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (1, true, "<one@example.org>".to_string()),
            (3, true, "<three@example.org>".to_string())
        ],
        "{after:?}"
    );
    c.logout();
    loft.assert_clean_log();
}
