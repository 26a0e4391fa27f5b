//! Real POP3 clients against Loft's POP3 and POP3S: `fetchmail` and `getmail6` retrieving
//! 500 messages in keep and delete modes (then again: nothing may be fetched twice),
//! Python's `poplib` (`py/poplib_check.py`) and `curl` over pop3:// and pop3s://. The
//! server's Maildir is checked directly afterwards.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{maildir_of, Loft, PASS, USER};
use crate::mail;
use crate::proc::{self, have_tool};

const N: usize = 500;

fn populate_n(dir: &Path, from: usize, to: usize) {
    for i in from..=to {
        mail::deliver(
            &maildir_of(dir),
            &format!("{}.M{i}P7.pop", 1_700_000_000 + i),
            &mail::sample(i),
            None,
        );
    }
}

fn inbox_count(loft: &Loft) -> usize {
    mail::read_maildir(&loft.maildir()).len()
}

/// The Message-IDs of every file in `dir` (one message per file), checking none repeats.
fn fetched_ids(dir: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for e in std::fs::read_dir(dir).expect("fetched dir").flatten() {
        if e.path().is_dir() {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .unwrap_or_else(|| panic!("no Message-ID in {}", e.path().display()))
            .trim()
            .to_string();
        assert!(ids.insert(id.clone()), "{id} was fetched twice");
    }
    ids
}

fn expected_ids(from: usize, to: usize) -> BTreeSet<String> {
    (from..=to)
        .map(|i| format!("<interop-{i}@example.org>"))
        .collect()
}

// ---------------------------------------------------------------- fetchmail

fn fetchmail(loft: &Loft, out: &Path, keep: bool, tls: bool) -> proc::Output {
    let scratch = loft.scratch();
    std::fs::create_dir_all(out).unwrap();
    let rc = scratch.join(format!("fetchmailrc-{keep}-{tls}"));
    let (port, ssl) = if tls {
        (loft.pop3s_port, "ssl")
    } else {
        (loft.pop3_port, "sslproto 'TLS1.2+'")
    };
    let text = format!(
        "set no syslog\n\
         poll 127.0.0.1 service {port} protocol pop3 uidl auth password timeout 30\n\
         \tuser \"{USER}\" there with password \"{PASS}\" is \"root\" here\n\
         \t{keep}\n\
         \t{ssl} sslcertck sslcertfile \"{cert}\" sslcommonname localhost\n\
         \tmda \"/bin/sh -c 'cat > {out}/m.$$'\"\n",
        keep = if keep { "keep" } else { "no keep" },
        cert = loft.cert().display(),
        out = out.display(),
    );
    std::fs::write(&rc, text).unwrap();
    std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    proc::run(
        Command::new("fetchmail")
            .arg("-f")
            .arg(&rc)
            .arg("--idfile")
            .arg(scratch.join(format!("fetchids-{tls}")))
            .args(["--nodetach", "--nosyslog", "-v"])
            .env("HOME", &scratch)
            .env("FETCHMAILHOME", &scratch),
        &scratch,
        Duration::from_secs(300),
    )
}

/// fetchmail exits 0 when it fetched mail and 1 when there was none.
fn assert_fetchmail(out: &proc::Output, fetched_mail: bool) {
    let want = if fetched_mail { 0 } else { 1 };
    assert_eq!(out.code, Some(want), "{}", out.dump());
}

#[test]
fn fetchmail_keep_then_delete_500() {
    if !have_tool("fetchmail", "fetchmail") {
        return;
    }
    let mut loft = Loft::start_with(|d| populate_n(d, 1, N));
    let out1 = loft.scratch().join("fm-keep");
    // Keep mode over STLS: everything once, nothing on the second run.
    assert_fetchmail(&fetchmail(&loft, &out1, true, false), true);
    assert_eq!(fetched_ids(&out1), expected_ids(1, N));
    assert_eq!(inbox_count(&loft), N, "keep mode deleted something");
    assert_fetchmail(&fetchmail(&loft, &out1, true, false), false);
    assert_eq!(fetched_ids(&out1).len(), N);
    // New mail, and a server restart in between: only the new messages come.
    populate_n(loft.dir.path(), N + 1, N + 5);
    loft.restart();
    assert_fetchmail(&fetchmail(&loft, &out1, true, false), true);
    assert_eq!(fetched_ids(&out1), expected_ids(1, N + 5));

    // Delete mode over POP3S: everything, then the maildrop is empty.
    let out2 = loft.scratch().join("fm-delete");
    assert_fetchmail(&fetchmail(&loft, &out2, false, true), true);
    assert_eq!(fetched_ids(&out2), expected_ids(1, N + 5));
    assert_eq!(inbox_count(&loft), 0);
    assert_fetchmail(&fetchmail(&loft, &out2, false, true), false);
    assert_eq!(fetched_ids(&out2).len(), N + 5);
    loft.assert_clean_log();
    // fetchmail downloads with "TOP n 99999999" (so the server does not mark messages
    // \Seen); the session log line counts TOPs and deletions.
    let log = loft.log();
    assert!(
        log.contains("top=500 deleted=0"),
        "no keep-mode log line:\n{log}"
    );
    assert!(
        log.contains("deleted=505"),
        "no delete-mode log line:\n{log}"
    );
}

// ---------------------------------------------------------------- getmail6

fn getmail(loft: &Loft, name: &str, delete: bool, tls: bool) -> (proc::Output, PathBuf) {
    let scratch = loft.scratch();
    let home = scratch.join(format!("getmail-{name}"));
    let dest = home.join("fetched");
    std::fs::create_dir_all(&dest).unwrap();
    let (kind, port, extra) = if tls {
        (
            "SimplePOP3SSLRetriever",
            loft.pop3s_port,
            format!("ca_certs = {}\n", loft.cert().display()),
        )
    } else {
        ("SimplePOP3Retriever", loft.pop3_port, String::new())
    };
    // An external MDA writing one file per message (getmail's Maildir destination
    // refuses to deliver as root, which CI containers are).
    let rc = format!(
        "[retriever]\ntype = {kind}\nserver = 127.0.0.1\nport = {port}\nusername = {USER}\n\
         password = {PASS}\n{extra}\n[destination]\ntype = MDA_external\npath = /bin/sh\n\
         arguments = (\"-c\", \"cat > {dest}/m.$$\")\nunixfrom = false\nallow_root_commands = true\n\n\
         [options]\nverbose = 1\nread_all = false\ndelete = {delete}\nmessage_log_syslog = false\n",
        dest = dest.display()
    );
    std::fs::write(home.join("getmailrc"), rc).unwrap();
    let out = proc::run(
        Command::new("getmail")
            .arg(format!("--getmaildir={}", home.display()))
            .arg("--rcfile=getmailrc")
            .env("HOME", &home),
        &scratch,
        Duration::from_secs(300),
    );
    (out, dest)
}

#[test]
fn getmail_keep_then_delete_500() {
    if !have_tool("getmail", "getmail6") {
        return;
    }
    let loft = Loft::start_with(|d| populate_n(d, 1, N));
    let (out, got) = getmail(&loft, "keep", false, false);
    out.assert_ok();
    assert_eq!(fetched_ids(&got), expected_ids(1, N));
    assert_eq!(inbox_count(&loft), N);
    let (out, got) = getmail(&loft, "keep", false, false);
    out.assert_ok();
    assert_eq!(fetched_ids(&got).len(), N, "{}", out.dump());
    populate_n(loft.dir.path(), N + 1, N + 3);
    let (out, got) = getmail(&loft, "keep", false, false);
    out.assert_ok();
    assert_eq!(fetched_ids(&got), expected_ids(1, N + 3));

    let (out, got) = getmail(&loft, "delete", true, true);
    out.assert_ok();
    assert_eq!(fetched_ids(&got), expected_ids(1, N + 3));
    assert_eq!(inbox_count(&loft), 0);
    let (out, got) = getmail(&loft, "delete", true, true);
    out.assert_ok();
    assert_eq!(fetched_ids(&got).len(), N + 3);
    loft.assert_clean_log();
}

// ---------------------------------------------------------------- poplib

#[test]
fn python_poplib_full_session() {
    if !have_tool("python3", "python3") {
        return;
    }
    let loft = Loft::start_with(|d| populate_n(d, 1, 12));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/py/poplib_check.py"
    );
    let out = proc::run(
        Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(loft.pop3_port.to_string())
            .arg(loft.pop3s_port.to_string())
            .arg(loft.cert())
            .arg(USER)
            .arg(PASS)
            .arg(loft.maildir())
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        &loft.scratch(),
        Duration::from_secs(60),
    );
    println!("{}", out.stdout);
    out.assert_ok();
    assert!(
        out.stdout.contains("all poplib checks passed"),
        "{}",
        out.dump()
    );
    loft.assert_clean_log();
}

// ---------------------------------------------------------------- curl

fn curl(loft: &Loft, args: &[&str]) -> proc::Output {
    proc::run(
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "-u", &format!("{USER}:{PASS}")])
            .args(args),
        &loft.scratch(),
        Duration::from_secs(30),
    )
}

#[test]
fn curl_pop3_and_pop3s() {
    if !have_tool("curl", "curl") {
        return;
    }
    let loft = Loft::start_with(|d| populate_n(d, 1, 3));
    let cert = loft.cert().display().to_string();
    for (base, tls_args) in [
        (format!("pop3://127.0.0.1:{}", loft.pop3_port), vec![]),
        (
            format!("pop3://localhost:{}", loft.pop3_port),
            vec!["--ssl-reqd", "--cacert", cert.as_str()],
        ),
        (
            format!("pop3s://localhost:{}", loft.pop3s_port),
            vec!["--cacert", cert.as_str()],
        ),
    ] {
        // No message number: LIST.
        let mut args = tls_args.clone();
        let url = format!("{base}/");
        args.push(&url);
        let list = curl(&loft, &args);
        list.assert_ok();
        let lines: Vec<&str> = list.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{}", list.dump());
        for (i, l) in lines.iter().enumerate() {
            let size = mail::crlf(&mail::sample(i + 1)).len();
            assert_eq!(*l, format!("{} {size}", i + 1).as_str());
        }
        // A message number: RETR, the exact CRLF message.
        let mut args = tls_args.clone();
        let url = format!("{base}/2");
        args.push(&url);
        let retr = curl(&loft, &args);
        retr.assert_ok();
        assert_eq!(retr.stdout, mail::crlf(&mail::sample(2)), "{base}");
        // Custom multi-line commands (curl: a custom request on the mailbox URL).
        let root = format!("{base}/");
        let mut args = tls_args.clone();
        args.extend(["-X", "UIDL", &root]);
        let uidl = curl(&loft, &args);
        uidl.assert_ok();
        assert_eq!(uidl.stdout.lines().count(), 3, "{}", uidl.dump());
        let mut args = tls_args.clone();
        args.extend(["-X", "TOP 2 0", &root]);
        let top = curl(&loft, &args);
        top.assert_ok();
        let crlf = mail::crlf(&mail::sample(2));
        let header_end = crlf.find("\r\n\r\n").unwrap() + 4;
        assert_eq!(top.stdout, crlf[..header_end], "{}", top.dump());
    }
    // DELE through curl's custom request (-I: no transfer), then the file is gone.
    let url = format!("pop3://127.0.0.1:{}/1", loft.pop3_port);
    curl(&loft, &["-X", "DELE", "-I", &url]).assert_ok();
    assert_eq!(inbox_count(&loft), 2);
    // A wrong password.
    let bad = proc::run(
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "-u", "alice:wrong"])
            .arg(format!("pop3://127.0.0.1:{}/", loft.pop3_port)),
        &loft.scratch(),
        Duration::from_secs(30),
    );
    assert!(!bad.success(), "{}", bad.dump());
    loft.assert_clean_log();
}

// ---------------------------------------------------------------- Dovecot migration

/// UIDL + LIST through a raw POP3 connection (USER/PASS on loopback).
fn uidl_and_list(port: u16, user: &str, pass: &str) -> (Vec<String>, Vec<String>) {
    use std::io::{BufRead, BufReader, Write};
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut read = |r: &mut BufReader<std::net::TcpStream>| {
        line.clear();
        r.read_line(&mut line).expect("read");
        line.trim_end().to_string()
    };
    assert!(read(&mut r).starts_with("+OK"));
    w.write_all(format!("USER {user}\r\nPASS {pass}\r\nUIDL\r\nLIST\r\nQUIT\r\n").as_bytes())
        .unwrap();
    assert!(read(&mut r).starts_with("+OK"));
    let login = read(&mut r);
    assert!(login.starts_with("+OK"), "{login}");
    let mut lists = Vec::new();
    for _ in 0..2 {
        assert!(read(&mut r).starts_with("+OK"));
        let mut v = Vec::new();
        loop {
            let l = read(&mut r);
            if l == "." {
                break;
            }
            v.push(l);
        }
        lists.push(v);
    }
    let list = lists.pop().unwrap();
    (lists.pop().unwrap(), list)
}

/// A Maildir that Dovecot's POP3 served (and indexed) is served by Loft with the same
/// UIDLs and sizes, so POP3 clients do not download everything again after a migration.
#[test]
fn dovecot_uidls_survive_migration() {
    if !std::path::Path::new("/usr/sbin/dovecot").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install dovecot-pop3d"
        );
        eprintln!("NOTICE: dovecot not installed; skipping");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let md = work.path().join("Maildir");
    populate_n(work.path(), 1, 30);
    std::fs::rename(maildir_of(work.path()), &md).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/dovecot-pop3.sh");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dv = work.path().join("dovecot");
    let st = Command::new(script)
        .arg("start")
        .arg(&dv)
        .arg(port.to_string())
        .arg(&md)
        .args([USER, PASS])
        .status()
        .expect("run dovecot-pop3.sh");
    assert!(st.success(), "dovecot did not start");
    let dovecot = uidl_and_list(port, USER, PASS);
    let _ = Command::new(script).arg("stop").arg(&dv).status();
    assert_eq!(dovecot.0.len(), 30);
    assert!(md.join("dovecot-uidlist").exists());

    let loft = Loft::start_with(|d| {
        let dest = maildir_of(d);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let cp = Command::new("cp")
            .arg("-a")
            .arg(&md)
            .arg(&dest)
            .status()
            .unwrap();
        assert!(cp.success());
    });
    let ours = uidl_and_list(loft.pop3_port, USER, PASS);
    assert_eq!(ours.0, dovecot.0, "UIDL differs from Dovecot's");
    assert_eq!(ours.1, dovecot.1, "LIST sizes differ from Dovecot's");
    loft.assert_clean_log();
}
