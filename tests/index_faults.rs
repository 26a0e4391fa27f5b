//! `loft index rebuild|verify|show` on a real Maildir: verify exits 0 on a healthy
//! index and 1 (naming each problem) on damage or on mail files changed behind Loft's
//! back; rebuild keeps every UID; show prints the header, counts and cache decisions.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn loft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loft"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn setup(d: &Path) -> (String, std::path::PathBuf) {
    let conf = d.join("loft.toml");
    std::fs::write(
        &conf,
        "[imap]\nlisten = \"127.0.0.1:2143\"\nlisten_tls = []\n[auth]\npasswd_file = \"pw\"\n[storage]\nlocation = \"mail/%u\"\nfsync = \"never\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "alice:{PLAIN}x\n").unwrap();
    let root = d.join("mail/alice");
    std::fs::create_dir_all(root.join("cur")).unwrap();
    std::fs::create_dir_all(root.join("new")).unwrap();
    for i in 0..5 {
        std::fs::write(
            root.join("cur")
                .join(format!("17000000{i}.M{i}P1.host:2,S")),
            format!("Subject: {i}\r\n\r\nbody {i}\r\n"),
        )
        .unwrap();
    }
    (conf.to_string_lossy().into_owned(), root)
}

#[test]
fn rebuild_verify_show() {
    let d = tempfile::tempdir().unwrap();
    let (conf, root) = setup(d.path());
    // The first rebuild creates the index (fresh UIDs 1..5).
    let out = loft(&["index", "rebuild", "alice", "--config", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("INBOX: rebuilt, 5 messages"),
        "{}",
        text(&out.stdout)
    );
    let out = loft(&["index", "verify", "alice", "INBOX", "--config", &conf]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "index OK\n");

    let out = loft(&["index", "show", "alice", "INBOX", "--config", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let show = text(&out.stdout);
    assert!(show.contains("UIDNEXT 6"), "{show}");
    assert!(show.contains("5 messages, 0 unseen"), "{show}");
    assert!(show.contains("cache fields:"), "{show}");
    assert!(show.contains("loft.index.log"), "{show}");
    let validity = show
        .split("UIDVALIDITY ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_string();

    // A mail file removed behind Loft's back and a garbled index: verify exits 1 with both.
    let gone = std::fs::read_dir(root.join("cur"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .min()
        .unwrap();
    std::fs::remove_file(&gone).unwrap();
    let out = loft(&["index", "verify", "alice", "--config", &conf]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("UID 1 names"),
        "{}",
        text(&out.stdout)
    );
    let mut bytes = std::fs::read(root.join("loft.index")).unwrap();
    bytes[12] ^= 0xff;
    std::fs::write(root.join("loft.index"), &bytes).unwrap();
    let out = loft(&["index", "verify", "alice", "INBOX", "--config", &conf]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("INBOX: "),
        "{}",
        text(&out.stdout)
    );

    // Rebuild: same UIDVALIDITY, UIDs 2..5 kept, verify clean again.
    let out = loft(&["index", "rebuild", "alice", "INBOX", "--config", &conf]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains(&format!("4 messages, UIDVALIDITY {validity}, UIDNEXT 6")),
        "{line}"
    );
    let out = loft(&["index", "verify", "alice", "INBOX", "--config", &conf]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}
