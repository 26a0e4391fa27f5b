//! End-to-end tests of the `loft` binary: `check-config` on good and bad files, and
//! `pw` output verified by the library (and by Dovecot's doveadm when installed).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use loft::auth::scheme::{parse_stored, verify, Scheme};

fn loft(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loft"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit without reading (bad arguments): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn shipped_config_checks_ok() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/loft.toml");
    let out = loft(&["check-config", "--config", conf.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let (account, ok) = stdout.split_once('\n').unwrap();
    assert_eq!(
        ok,
        format!(
            "{}: OK (imap on 127.0.0.1:1143, imaps on 127.0.0.1:1993, pop3 on 127.0.0.1:1110, pop3s on 127.0.0.1:1995, 0 users)\n",
            conf.display()
        )
    );
    // Which account serves mail: the shipped `user` when started as root, else the
    // account that starts it (`when_not_root = "run"`).
    // SAFETY: plain getter.
    let expected = match unsafe { libc::geteuid() } {
        0 => "then serves mail as nobody (uid 65534), group nogroup (gid 65534) for good",
        65534 => "serves mail as nobody (uid 65534), group nogroup (gid 65534), the account",
        _ => "the account that starts it ([server] user \"nobody\" applies when started as root",
    };
    assert!(account.contains(expected), "{account}");
}

#[test]
fn good_config_with_a_user() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("loft.toml");
    std::fs::write(
        &conf,
        "[server]\nallow_root = true\n[imap]\nlisten = \"127.0.0.1:2143\"\nlisten_tls = []\n[pop3]\nlisten_tls = []\n[auth]\npasswd_file = \"pw\"\n",
    )
    .unwrap();
    std::fs::write(d.path().join("pw"), "# one user\nalice:{PLAIN}x\n").unwrap();
    let out = loft(&["check-config", "--config", conf.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .ends_with("OK (imap on 127.0.0.1:2143, pop3 on 127.0.0.1:1110, 1 user)\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bad_config_reports_every_problem_with_its_line() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("loft.toml");
    std::fs::write(
        &conf,
        "# comment\n\
         [server]\n\
         hostnam = \"mx\"\n\
         [imap]\n\
         listen = \"localhost\"\n\
         autologout = \"5m\"\n\
         [storage]\n\
         format = \"mdbox\"\n\
         [tls]\n\
         cert = \"missing.pem\"\n",
    )
    .unwrap();
    let out = loft(&["check-config", "--config", conf.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let prefix = format!("{}:", conf.display());
    let located: Vec<&str> = err.lines().filter(|l| l.starts_with(&prefix)).collect();
    let lines: Vec<&str> = located
        .iter()
        .map(|l| l[prefix.len()..].split(':').next().unwrap())
        .collect();
    // The explicit cert is missing; the key, left at its default, then has to exist
    // too (it is reported at the [tls] header).
    assert_eq!(lines, ["3", "5", "6", "8", "9", "10"], "{err}");
    assert!(located[0].ends_with("did you mean `hostname`?"), "{err}");
    assert!(located[3].contains("not yet supported"), "{err}");
    assert!(
        located[4].contains("key.pem") && located[5].contains("missing.pem"),
        "{err}"
    );
    assert!(
        err.trim_end()
            .ends_with(&format!("6 problems in {}", conf.display())),
        "{err}"
    );
}

#[test]
fn bad_passwd_lines_fail_the_check() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("loft.toml");
    std::fs::write(&conf, "").unwrap();
    std::fs::write(d.path().join("users"), "ok:{PLAIN}x\nbroken\nz:{MD5}q\n").unwrap();
    let out = loft(&["check-config", "--config", conf.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let users = d.path().join("users");
    assert!(err.contains(&format!("{}:2:1: ", users.display())), "{err}");
    assert!(err.contains(&format!("{}:3:1: ", users.display())), "{err}");
}

#[test]
fn pw_round_trips_for_every_scheme() {
    for scheme in Scheme::ALL {
        let out = loft(
            &["pw", "--scheme", scheme.name()],
            "pä ss wörd\n".as_bytes(),
        );
        assert!(out.status.success(), "{scheme}: {}", text(&out.stderr));
        let stored = text(&out.stdout);
        let stored = stored.trim_end();
        let (s, hash) = parse_stored(stored).unwrap();
        assert_eq!(s, scheme);
        assert_eq!(
            verify(s, hash, "pä ss wörd").map_err(|e| e.to_string()),
            Ok(true),
            "{stored}"
        );
        assert_eq!(
            verify(s, hash, "pä ss wörd\n").map_err(|e| e.to_string()),
            Ok(false),
            "{stored}"
        );
        doveadm_agrees(stored, "pä ss wörd");
    }
}

/// Cross-check with Dovecot itself when `doveadm` is installed (Debian: dovecot-core).
fn doveadm_agrees(stored: &str, password: &str) {
    let Ok(out) = Command::new("doveadm")
        .args(["pw", "-t", stored, "-p", password])
        .output()
    else {
        eprintln!("doveadm not installed: Dovecot cross-check skipped");
        return;
    };
    assert!(
        out.status.success(),
        "doveadm rejects {stored}: {}",
        text(&out.stderr)
    );
}

#[test]
fn pw_refuses_empty_and_multi_line_input() {
    assert_eq!(loft(&["pw"], b"").status.code(), Some(1));
    assert_eq!(loft(&["pw"], b"\n").status.code(), Some(1));
    assert_eq!(loft(&["pw"], b"a\nb\n").status.code(), Some(1));
    assert_ne!(
        loft(&["pw", "--scheme", "MD5"], b"x").status.code(),
        Some(0)
    );
}

#[test]
fn serve_refuses_a_bad_config() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("loft.toml");
    std::fs::write(&conf, "[imap]\nmax_nesting = -1\n").unwrap();
    let out = loft(&["serve", "--config", conf.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(":2:15: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn convert_copies_a_maildir_into_mbox_once() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("loft.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nallow_root = true\n[imap]\nlisten = \"127.0.0.1:2143\"\nlisten_tls = []\n[pop3]\nlisten_tls = []\n[auth]\npasswd_file = \"pw\"\n[storage]\nlocation = \"{}/mail/%u\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    std::fs::write(d.path().join("pw"), "alice:{PLAIN}x\n").unwrap();
    let maildir = d.path().join("mail/alice");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(
        maildir.join("new/1700000000.M1P1.host"),
        "From: a@example.org\nSubject: hi\n\nFrom here on, quoted\n",
    )
    .unwrap();
    let target = format!("{}/mbox/%u", d.path().display());
    let args = [
        "convert",
        "alice",
        "--to",
        "mbox",
        "--location",
        &target,
        "--config",
        conf.to_str().unwrap(),
    ];
    let out = loft(&args, b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("INBOX: 1 message, "), "{stdout}");
    assert!(stdout.contains("1 with `From ` lines quoted"), "{stdout}");
    assert!(stdout.contains("converted 1 mailbox"), "{stdout}");
    let file = std::fs::read(d.path().join("mbox/alice/INBOX")).unwrap();
    let file = text(&file);
    assert!(file.starts_with("From MAILER-DAEMON "), "{file}");
    assert!(
        file.contains("\nX-IMAPbase: ") && file.contains("\nX-UID: 1\n"),
        "{file}"
    );
    assert!(file.contains("\n>From here on, quoted\n"), "{file}");
    // Never twice into the same place.
    let again = loft(&args, b"");
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("is not empty"),
        "{}",
        text(&again.stderr)
    );
}
