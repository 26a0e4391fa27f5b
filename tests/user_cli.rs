//! `loft user …` end to end: add/passwd/del/list on a passwd-file with comments, and
//! app-password add/list/revoke, each result verified through the library.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use loft::auth::{app_passwords, scheme, Service};

fn loft(conf: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loft"))
        .arg("user")
        .args(["--config", conf.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn stored(users: &std::path::Path, name: &str) -> String {
    let text = std::fs::read_to_string(users).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap();
    line.split(':').nth(1).unwrap().to_string()
}

#[test]
fn user_and_app_password_commands() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("loft.toml");
    std::fs::write(
        &conf,
        "[imap]\nlisten = \"127.0.0.1:2143\"\nlisten_tls = []\n",
    )
    .unwrap();
    let users = d.path().join("users");
    std::fs::write(
        &users,
        "# keep me\nbob:{PLAIN}x:1:2:gecos:/home/bob:/bin/sh:extra\n",
    )
    .unwrap();

    let o = loft(
        &conf,
        &["add", "alice", "--scheme", "SHA512-CRYPT"],
        "pw1\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (s, h) = {
        let st = stored(&users, "alice");
        let (s, h) = scheme::parse_stored(&st).unwrap();
        (s, h.to_string())
    };
    assert!(scheme::verify(s, &h, "pw1").unwrap());
    assert!(!loft(&conf, &["add", "alice"], "again\n").status.success());

    let o = loft(&conf, &["passwd", "bob", "--scheme", "PLAIN"], "newpw\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(
        text.starts_with("# keep me\nbob:{PLAIN}newpw:1:2:gecos:/home/bob:/bin/sh:extra\n"),
        "{text}"
    );

    let o = loft(&conf, &["list"], "");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("bob\tPLAIN") && out.contains("alice\tSHA512-CRYPT"),
        "{out}"
    );

    let o = loft(
        &conf,
        &[
            "app-password",
            "add",
            "alice",
            "--name",
            "phone",
            "--services",
            "imap,smtp",
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pw = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(app_passwords::looks_like(&pw), "{pw}");
    let db = app_passwords::AppDb::new(&users);
    assert_eq!(
        db.check("alice", &pw, Service::Smtp),
        app_passwords::AppMatch::Ok("phone".into())
    );
    assert!(!std::fs::read_to_string(app_passwords::path_for(&users))
        .unwrap()
        .contains(&pw));
    assert!(
        !loft(&conf, &["app-password", "add", "nobody", "--name", "x"], "")
            .status
            .success()
    );

    let o = loft(&conf, &["app-password", "list"], "");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("alice\tphone\timap,smtp\tcreated ") && out.contains("last used never"),
        "{out}"
    );

    assert!(loft(
        &conf,
        &["app-password", "revoke", "alice", "--name", "phone"],
        ""
    )
    .status
    .success());
    assert!(!loft(
        &conf,
        &["app-password", "revoke", "alice", "--name", "phone"],
        ""
    )
    .status
    .success());
    assert_eq!(
        db.check("alice", &pw, Service::Smtp),
        app_passwords::AppMatch::None
    );

    assert!(loft(&conf, &["del", "alice"], "").status.success());
    assert!(!std::fs::read_to_string(&users).unwrap().contains("alice"));
    assert!(!loft(&conf, &["del", "alice"], "").status.success());
}
