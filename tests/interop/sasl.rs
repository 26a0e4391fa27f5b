//! CRAM-MD5 and SCRAM-SHA-256 with real clients: curl's CRAM-MD5 over IMAP and POP3
//! (`--login-options AUTH=CRAM-MD5`, so nothing else is tried), and Python's imaplib:
//! its own `login_cram_md5`, and `py/sasl_check.py`'s SCRAM-SHA-256 client (hashlib and
//! hmac, independent of Loft) against a PLAIN-stored and a `{SCRAM-SHA-256}`-stored user.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Loft, PASS, USER};
use crate::proc::{self, have_tool};

const SCRAM_USER: &str = "carol";
const SCRAM_PASS: &str = "c4r0l pässword";

fn with_scram_user(dir: &Path) {
    let stored =
        loft::auth::hash_password(loft::auth::Scheme::ScramSha256, SCRAM_PASS).expect("hash");
    let users = dir.join("users");
    let mut text = std::fs::read_to_string(&users).expect("users");
    text.push_str(&format!("{SCRAM_USER}:{stored}\n"));
    std::fs::write(users, text).expect("users");
}

fn curl(loft: &Loft, user: &str, url: &str) -> proc::Output {
    proc::run(
        Command::new("curl")
            .args([
                "-sS",
                "-v",
                "--max-time",
                "15",
                "--login-options",
                "AUTH=CRAM-MD5",
            ])
            .args(["-u", user, url]),
        &loft.scratch(),
        Duration::from_secs(25),
    )
}

#[test]
fn curl_cram_md5_imap_and_pop3() {
    if !have_tool("curl", "curl") {
        return;
    }
    let loft = Loft::start();
    let imap = format!("imap://127.0.0.1:{}/", loft.port);
    let out = curl(&loft, &format!("{USER}:{PASS}"), &imap);
    out.assert_ok();
    assert!(
        out.stderr.contains("AUTHENTICATE CRAM-MD5"),
        "{}",
        out.dump()
    );
    assert!(out.stdout.contains("INBOX"), "{}", out.dump());
    let bad = curl(&loft, &format!("{USER}:wrong"), &imap);
    assert!(!bad.success(), "{}", bad.dump());
    assert_eq!(bad.code, Some(67), "login denied: {}", bad.dump());

    let pop3 = format!("pop3://127.0.0.1:{}/", loft.pop3_port);
    let out = curl(&loft, &format!("{USER}:{PASS}"), &pop3);
    out.assert_ok();
    assert!(out.stderr.contains("AUTH CRAM-MD5"), "{}", out.dump());
    let bad = curl(&loft, &format!("{USER}:wrong"), &pop3);
    assert_eq!(bad.code, Some(67), "login denied: {}", bad.dump());
}

#[test]
fn python_imaplib_cram_md5_and_scram_sha256() {
    if !have_tool("python3", "python3") {
        return;
    }
    let loft = Loft::start_with(with_scram_user);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/py/sasl_check.py"
    );
    let out = proc::run(
        Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(loft.port.to_string())
            .args([USER, PASS, SCRAM_USER, SCRAM_PASS])
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        &loft.scratch(),
        Duration::from_secs(40),
    );
    println!("{}", out.stdout);
    out.assert_ok();
    assert!(
        out.stdout.contains("all sasl checks passed"),
        "{}",
        out.dump()
    );
}
