//! The mbox layer on files as Postfix, procmail, mutt, Dovecot and Loft write them, on
//! damaged ones, and read back by Python's `mailbox`.

use super::meta::{Base, Meta};
use super::scan::{scan, scan_all, Mail, Options, ScanError};
use super::visible;
use super::write::{append_mail, Stamp};
use crate::mailbox::SysFlags;
use proptest::prelude::*;

fn mails(file: &[u8]) -> Vec<Mail> {
    scan_all(file, file.len() as u64).expect("an mbox")
}

fn shown(file: &[u8], m: &Mail) -> String {
    String::from_utf8_lossy(&visible(file, m.header, m.end, &m.hidden)).into_owned()
}

const D: &str = "Mon Dec  7 16:49:14 2026";

#[test]
fn postfix_local_delivery() {
    // local(8): From line, Return-Path and Delivered-To, the message, a blank line; body
    // lines starting with "From " quoted.
    let file = format!(
        "From bob@example.org  {D}\nReturn-Path: <bob@example.org>\nSubject: one\n\nHello\n>From the start\n\n\
         From carol@example.org  {D}\nSubject: two\n\nFrom here on, by train.\n\n"
    );
    let m = mails(file.as_bytes());
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].sender, "bob@example.org");
    assert_eq!(
        shown(file.as_bytes(), &m[0]),
        "Return-Path: <bob@example.org>\nSubject: one\n\nHello\n>From the start\n"
    );
    // An unquoted body line without a date does not split the message.
    assert_eq!(
        shown(file.as_bytes(), &m[1]),
        "Subject: two\n\nFrom here on, by train.\n"
    );
    assert_eq!(m[1].next, None);
    assert_eq!(m[0].next, Some(m[1].from));
}

#[test]
fn dovecot_written_file_keeps_its_state_hidden() {
    // Dovecot: X-IMAPbase on the first message, X-UID, Status, X-Keywords padded, and
    // Content-Length beside a body line it did not quote.
    let body1 = format!("Body\nFrom bob {D}\nmore\n");
    let file = format!(
        "From MAILER-DAEMON {D}\nSubject: a\nX-IMAPbase: 1733590154 0000000009 Work\nStatus: RO\nX-Status: F\n\
         X-Keywords: Work                    \nX-UID: 7\nContent-Length: {}\n\n{body1}\n\
         From MAILER-DAEMON {D}\nSubject: b\nStatus: O\nX-UID: 8\nContent-Length: 3\n\nxyz\n",
        body1.len()
    );
    let m = mails(file.as_bytes());
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].by_length);
    assert_eq!(
        shown(file.as_bytes(), &m[0]),
        format!("Subject: a\n\n{body1}")
    );
    assert_eq!(m[0].meta.uid, Some(7));
    assert_eq!(
        m[0].meta.flags,
        SysFlags(SysFlags::SEEN.0 | SysFlags::FLAGGED.0)
    );
    assert_eq!(m[0].meta.keywords, ["Work"]);
    let base = m[0].meta.base.as_ref().unwrap();
    assert_eq!((base.uid_validity, base.uid_next), (1_733_590_154, 9));
    assert_eq!(shown(file.as_bytes(), &m[1]), "Subject: b\n\nxyz");
    assert_eq!(m[1].meta.uid, Some(8));
    // Without Content-Length the unquoted line splits the first message (as Python does).
    let mut n = 0;
    scan(
        file.as_bytes(),
        file.len() as u64,
        0,
        Options {
            content_length: false,
        },
        |_| {
            n += 1;
            true
        },
    )
    .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn a_content_length_that_does_not_check_out_is_ignored() {
    let file = format!(
        "From a {D}\nContent-Length: 2\n\nhello\n\nFrom b {D}\nContent-Length: 999\n\nx\n\n"
    );
    let m = mails(file.as_bytes());
    assert_eq!(m.len(), 2);
    assert!(!m[0].by_length && !m[1].by_length);
    assert_eq!(shown(file.as_bytes(), &m[0]), "\nhello\n");
    assert_eq!(shown(file.as_bytes(), &m[1]), "\nx\n");
}

#[test]
fn odd_but_real_files() {
    // Empty file: no message. Not starting with From: not an mbox.
    assert!(mails(b"").is_empty());
    assert!(matches!(
        scan_all(&b"Subject: x\n\nbody\n"[..], 17),
        Err(ScanError::NotMbox { offset: 0 })
    ));
    // No final line end, bare CR, NUL, CRLF line ends.
    let file = format!("From a {D}\nSubject: x\n\nlast line\r without end\0");
    let m = mails(file.as_bytes());
    assert_eq!(
        shown(file.as_bytes(), &m[0]),
        "Subject: x\n\nlast line\r without end\0"
    );
    let file = format!("From a {D}\r\nSubject: x\r\n\r\nbody\r\n\r\nFrom b {D}\r\n\r\nz\r\n");
    let m = mails(file.as_bytes());
    assert_eq!(m.len(), 2);
    assert_eq!(shown(file.as_bytes(), &m[0]), "Subject: x\r\n\r\nbody\r\n");
    // A header with no blank line before the next From line; an empty message.
    let file = format!("From a {D}\nSubject: x\nFrom b {D}\n\nFrom c {D}\nSubject: c\n\nc\n");
    let m = mails(file.as_bytes());
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(shown(file.as_bytes(), &m[0]), "Subject: x\n");
    assert_eq!(shown(file.as_bytes(), &m[1]), "");
    assert_eq!(shown(file.as_bytes(), &m[2]), "Subject: c\n\nc\n");
}

#[test]
fn a_line_longer_than_a_window_is_read_through() {
    let long = "y".repeat(super::scan::CHUNK * 2 + 17);
    let file = format!("From a {D}\nX-Long: {long}\nX-UID: 4\n\n{long}\nFrom b {D}\n\nz\n");
    let m = mails(file.as_bytes());
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].meta.uid, Some(4));
    assert_eq!(shown(file.as_bytes(), &m[1]), "\nz\n");
    // A From line split across two windows is found.
    for pad in [
        super::scan::CHUNK - 3,
        super::scan::CHUNK - 1,
        super::scan::CHUNK + 2,
    ] {
        let body = "b".repeat(pad);
        let file = format!("From a {D}\n\n{body}\n\nFrom b {D}\n\nz\n");
        assert_eq!(mails(file.as_bytes()).len(), 2, "pad {pad}");
    }
}

#[test]
fn hostile_headers_stay_bounded() {
    let mut file = format!("From a {D}\n");
    for i in 0..1000 {
        file.push_str(&format!("X-UID: {i}\n"));
    }
    file.push_str("\nbody\n");
    let m = mails(file.as_bytes());
    assert_eq!(m[0].hidden.len(), super::scan::MAX_HIDDEN);
    let v = shown(file.as_bytes(), &m[0]);
    assert!(v.starts_with(&format!("X-UID: {}\n", super::scan::MAX_HIDDEN)));
}

fn stamp<'a>(meta: &'a Meta, base: Option<&'a Base>) -> Stamp<'a> {
    Stamp {
        sender: "bob@example.org",
        date: 1_733_590_154,
        meta,
        base,
        pad: 10,
        fields: true,
    }
}

#[test]
fn written_messages_read_back() {
    let meta = Meta {
        uid: Some(3),
        flags: SysFlags(SysFlags::SEEN.0 | SysFlags::ANSWERED.0),
        keywords: vec!["Work".into()],
        ..Meta::default()
    };
    let base = Base {
        uid_validity: 77,
        uid_next: 4,
        keywords: vec!["Work".into()],
    };
    let msg = b"X-UID: 999\r\nStatus: RO\r\nFrom bob Mon Dec  7 16:49:14 2026\r\nSubject: hi\r\n\r\nFrom here\r\nno end";
    let mut file = Vec::new();
    append_mail(&mut file, msg, &stamp(&meta, Some(&base)));
    append_mail(
        &mut file,
        b"Subject: second\r\n\r\nx\r\n",
        &stamp(&Meta::default(), None),
    );
    let m = mails(&file);
    assert_eq!(m.len(), 2, "{}", String::from_utf8_lossy(&file));
    // The client's own X-UID and Status are gone; From lines are quoted; no line end
    // added to the last line (Content-Length says where the body ends).
    assert_eq!(
        shown(&file, &m[0]),
        ">From bob Mon Dec  7 16:49:14 2026\nSubject: hi\n\n>From here\nno end"
    );
    assert!(m[0].by_length);
    assert_eq!(m[0].meta.uid, Some(3));
    assert_eq!(m[0].meta.flags, meta.flags);
    assert_eq!(m[0].meta.keywords, ["Work"]);
    assert_eq!(m[0].meta.base.as_ref(), Some(&base));
    assert_eq!(m[0].date, 1_733_590_154);
    assert_eq!(shown(&file, &m[1]), "Subject: second\n\nx\n");
}

/// Message text made of pieces that matter to mbox: From lines with and without dates,
/// quoted ones, hidden fields, line ends of every kind, NUL, empty lines.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(&b"From "[..]),
        Just(&b"From bob Mon Dec  7 16:49:14 2026"[..]),
        Just(&b">From "[..]),
        Just(&b"\n"[..]),
        Just(&b"\r\n"[..]),
        Just(&b"\r"[..]),
        Just(&b"\0"[..]),
        Just(&b"Subject: x"[..]),
        Just(&b"X-UID: 5"[..]),
        Just(&b"Status: R"[..]),
        Just(&b"Content-Length: 3"[..]),
        Just(&b" folded"[..]),
        Just(&b"text"[..]),
    ];
    proptest::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
}

/// What a reader sees of `msg` once written: LF line ends, no hidden fields in the header,
/// `From ` lines quoted (a model of the writer, line by line).
fn model(msg: &[u8]) -> Vec<u8> {
    let lf: Vec<u8> = {
        let mut out = Vec::new();
        for &c in msg {
            if c == b'\n' {
                while out.last() == Some(&b'\r') {
                    out.pop();
                }
            }
            out.push(c);
        }
        out
    };
    let mut out = Vec::new();
    let mut in_header = true;
    let mut dropping = false;
    let lines: Vec<&[u8]> = lf.split_inclusive(|&c| c == b'\n').collect();
    for (k, line) in lines.iter().enumerate() {
        if in_header {
            if *line == b"\n" {
                in_header = false;
                out.push(b'\n');
                continue;
            }
            if !matches!(line.first(), Some(b' ' | b'\t')) {
                dropping = super::meta::field_of(line).is_some();
            }
            if dropping {
                continue;
            }
        }
        let mut line: &[u8] = line;
        if in_header && k + 1 == lines.len() && !line.ends_with(b"\n") {
            while let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
            if line.is_empty() {
                continue;
            }
            out.extend_from_slice(if line.starts_with(b"From ") {
                b">"
            } else {
                b""
            });
            out.extend_from_slice(line);
            out.push(b'\n');
            continue;
        }
        if line.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if in_header {
        // A message without a body gets the blank line that ends its header.
        out.push(b'\n');
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any messages, written one after the other, scan back as the same number of
    /// messages, each showing what the model says, with its UID and flags; with or
    /// without Content-Length.
    #[test]
    fn any_messages_round_trip(msgs in proptest::collection::vec(message(), 1..6)) {
        let mut file = Vec::new();
        let metas: Vec<Meta> = (0..msgs.len()).map(|i| Meta {
            uid: Some(i as u32 + 1),
            flags: SysFlags((i % 32) as u8),
            ..Meta::default()
        }).collect();
        for (m, meta) in msgs.iter().zip(&metas) {
            append_mail(&mut file, m, &stamp(meta, None));
        }
        for content_length in [true, false] {
            let mut got = Vec::new();
            scan(&file[..], file.len() as u64, 0, Options { content_length }, |m| {
                got.push(m);
                true
            }).unwrap();
            prop_assert_eq!(got.len(), msgs.len(), "{}", String::from_utf8_lossy(&file));
            for ((g, m), meta) in got.iter().zip(&msgs).zip(&metas) {
                let seen = visible(&file, g.header, g.end, &g.hidden);
                let want = model(m);
                if content_length {
                    prop_assert_eq!(String::from_utf8_lossy(&seen), String::from_utf8_lossy(&want));
                } else {
                    // Without Content-Length, a body whose last line had no line end
                    // reads back with one.
                    let ok = seen == want || (seen.len() == want.len() + 1 && seen.starts_with(&want));
                    prop_assert!(ok, "{:?} vs {:?}", String::from_utf8_lossy(&seen), String::from_utf8_lossy(&want));
                }
                prop_assert_eq!(g.meta.uid, meta.uid);
                prop_assert_eq!(g.meta.flags, meta.flags);
            }
        }
    }

    /// Arbitrary bytes after a first From line: the scan never panics, and what it finds
    /// lies inside the file in order (the fuzz target's checks).
    #[test]
    fn any_file_scans_within_bounds(tail in message()) {
        let mut file = b"From a Mon Dec  7 16:49:14 2026\n".to_vec();
        file.extend_from_slice(&tail);
        super::fuzz_check(&file);
    }
}

/// Python's `mailbox.mbox` (what many tools use) reads the file Loft writes as the same
/// messages, byte for byte (hidden fields included: Python does not hide them).
#[test]
fn python_mailbox_reads_what_loft_writes() {
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("python3 not installed: skipped");
        return;
    }
    let msgs: Vec<&[u8]> = vec![
        b"Subject: one\r\n\r\nFrom here on\r\n>From there\r\n",
        b"Subject: two\r\n\r\nno final line end",
        b"Subject: three\r\nX-UID: 9\r\n\r\n\r\n\r\nblank lines above and below\r\n\r\n",
        b"Subject: four\r\n\r\nbare\rCR and NUL\0\r\n",
        b"Subject: five, no body",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mbox");
    let mut file = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let meta = Meta {
            uid: Some(i as u32 + 1),
            ..Meta::default()
        };
        append_mail(&mut file, m, &stamp(&meta, None));
    }
    std::fs::write(&path, &file).unwrap();
    let script = "import mailbox, sys\n\
        box = mailbox.mbox(sys.argv[1], create=False)\n\
        for k in box.iterkeys():\n    sys.stdout.buffer.write(box.get_bytes(k).hex().encode() + b'\\n')\n";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let ours = mails(&file);
    assert_eq!(theirs.len(), ours.len());
    for (t, m) in theirs.iter().zip(&ours) {
        let raw = &file[m.header as usize..m.end as usize];
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        // Python keeps the line end of a last line without one (it reads lines); Loft's
        // Content-Length ends the body exactly.
        let also = format!("{hex}0a");
        assert!(*t == hex || *t == also, "python {t}\nloft   {hex}");
    }
}

/// Runs one of Dovecot's protocol binaries (`imap`, `pop3`) as a pre-authenticated
/// session on `home` with `conf`, feeding it `script`; its output. As `nobody` when the
/// tests run as root (Dovecot refuses to serve mail as root).
fn run_dovecot(
    bin: &std::path::Path,
    home: &std::path::Path,
    conf: &std::path::Path,
    script: &[u8],
) -> String {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    // /proc/self belongs to the process's effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let mut cmd = if root {
        let st = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(home)
            .status()
            .unwrap();
        assert!(st.success());
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "env",
            "-i",
        ])
        .arg(format!("HOME={}", home.display()))
        .arg("USER=nobody")
        .arg(bin);
        c
    } else {
        let mut c = Command::new(bin);
        c.env_clear().env("HOME", home).env("USER", "user");
        c
    };
    let mut child = cmd
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script).unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{out}\n{err}");
    out
}

/// An mbox written by Dovecot itself (Debian's `dovecot-imapd`, its `imap` binary run as
/// a PREAUTH session): Loft reads its UIDs, UIDVALIDITY, UIDNEXT, flags and keywords, and
/// every message as it was appended (Dovecot does not quote body `From ` lines; its
/// `Content-Length` says where each message ends).
#[test]
fn dovecot_writes_what_loft_reads() {
    let bin = std::path::Path::new("/usr/lib/dovecot/imap");
    if !bin.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "dovecot-imapd missing in CI"
        );
        eprintln!("dovecot-imapd not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    std::fs::create_dir(home.join("mail")).unwrap();
    std::fs::write(home.join("inbox"), b"").unwrap();
    let conf = home.join("dovecot.conf");
    std::fs::write(
        &conf,
        format!(
            "mail_location = mbox:{0}/mail:INBOX={0}/inbox\nlog_path = /dev/stderr\nmail_log_prefix = \n",
            home.display()
        ),
    )
    .unwrap();
    let msgs: [&[u8]; 3] = [
        b"From: a@example.org\r\nSubject: one\r\n\r\nfirst\r\n",
        b"From: b@example.org\r\nSubject: two\r\n\r\nFrom here on, by train\r\nFrom bob Mon Dec  7 16:49:14 2026\r\n>From quoted\r\n",
        b"Subject: three\r\n\r\nno final line end",
    ];
    let flags = ["(\\Seen)", "(\\Flagged $Work)", "()"];
    let mut script = Vec::new();
    for (i, (m, f)) in msgs.iter().zip(flags).enumerate() {
        script.extend_from_slice(format!("a{i} APPEND INBOX {f} {{{}+}}\r\n", m.len()).as_bytes());
        script.extend_from_slice(m);
        script.extend_from_slice(b"\r\n");
    }
    script.extend_from_slice(
        b"s SELECT INBOX\r\nt STORE 3 +FLAGS (\\Answered \\Draft)\r\nf FETCH 1:3 (RFC822.SIZE)\r\nz LOGOUT\r\n",
    );
    let out = run_dovecot(bin, home, &conf, &script);
    assert!(out.contains("t OK"), "{out}");
    let validity: u32 = out
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no UIDVALIDITY in {out}"));
    let file = std::fs::read(home.join("inbox")).unwrap();
    let m = mails(&file);
    assert_eq!(m.len(), 3, "{}", String::from_utf8_lossy(&file));
    for (i, (g, sent)) in m.iter().zip(msgs).enumerate() {
        // Dovecot gives a last line its line end (and counts it in Content-Length).
        let mut lf = String::from_utf8_lossy(sent).replace("\r\n", "\n");
        if !lf.ends_with('\n') {
            lf.push('\n');
        }
        let seen = shown(&file, g);
        assert_eq!(seen, lf, "message {i}");
        assert_eq!(g.meta.uid, Some(i as u32 + 1));
        // The size Dovecot serves is what Loft shows: the hidden fields hidden alike.
        let crlf = seen.len() + seen.matches('\n').count();
        let want = format!("* {} FETCH (RFC822.SIZE {crlf})", i + 1);
        assert!(out.contains(&want), "{want} not in {out}");
    }
    let base = m[0]
        .meta
        .base
        .as_ref()
        .expect("X-IMAPbase on the first message");
    // Dovecot does not rewrite the first message's header for every APPEND: its
    // X-IMAPbase UIDNEXT may lag; the highest X-UID + 1 is the floor (the sync's rule).
    assert_eq!(base.uid_validity, validity);
    assert!(base.uid_next <= 4, "{base:?}");
    let next = m.iter().filter_map(|g| g.meta.uid).max().unwrap() + 1;
    assert_eq!(base.uid_next.max(next), 4);
    assert!(base.keywords.iter().any(|k| k == "$Work"), "{base:?}");
    assert_eq!(m[0].meta.flags, SysFlags::SEEN);
    assert_eq!(m[1].meta.flags, SysFlags::FLAGGED);
    assert_eq!(m[1].meta.keywords, ["$Work"]);
    assert_eq!(
        m[2].meta.flags,
        SysFlags(SysFlags::ANSWERED.0 | SysFlags::DRAFT.0)
    );
    // Numbered without an index (a migration): Dovecot's UIDs and UIDVALIDITY kept.
    let seen: Vec<_> = m.iter().map(super::seen_of).collect();
    let n = super::number::number(Some(base), &seen, None, || panic!("no new UIDVALIDITY"));
    assert_eq!(
        (n.uid_validity, n.uid_next, n.uids.clone()),
        (validity, 4, vec![1, 2, 3])
    );
    assert!(n.rewrite.is_empty());
    served_by_loft_as_by_dovecot(bin, home, &conf, &out, validity, &msgs);
}

/// The file Dovecot wrote, served by Loft's store as Dovecot serves it: the same
/// UIDVALIDITY, UIDs, flags and keywords, RFC822.SIZE and bytes over IMAP, and the same
/// UIDLs as Dovecot's own POP3 gives (`%08Xu%08Xv`, both defaults): clients neither
/// download again nor lose their flags after a move from Dovecot.
fn served_by_loft_as_by_dovecot(
    bin: &std::path::Path,
    home: &std::path::Path,
    conf: &std::path::Path,
    imap_out: &str,
    validity: u32,
    msgs: &[&[u8]],
) {
    use crate::mailbox::Store;
    let pop = run_dovecot(&bin.with_file_name("pop3"), home, conf, b"UIDL\r\nQUIT\r\n");
    let dovecot_uidls: Vec<String> = (pop.lines())
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| n.parse::<u32>().is_ok())
        .map(|(_, u)| u.trim().to_string())
        .collect();
    assert_eq!(dovecot_uidls.len(), 3, "{pop}");
    let mut cfg = crate::config::Config::for_tests(home).storage;
    cfg.format = crate::config::StorageFormat::Mbox;
    cfg.location = home.join("mail").to_string_lossy().into_owned();
    cfg.inbox = Some(home.join("inbox").to_string_lossy().into_owned());
    cfg.autocreate_special_use = false;
    let ctx = super::store::StorageCtx::new(&cfg);
    let store = super::store::MboxStore::open(&ctx, "nobody", None).unwrap();
    let mut mb = store.open("INBOX", true).unwrap();
    let snap = mb.sync().unwrap().snapshot;
    assert_eq!(snap.uid_validity, validity);
    let uidl = crate::config::uidl::UidlFormat::default();
    let ours: Vec<String> = snap
        .messages
        .uids()
        .map(|u| uidl.render(u, validity))
        .collect();
    assert_eq!(ours, dovecot_uidls);
    let flags: Vec<String> = (snap.messages.iter())
        .map(|m| {
            let mut f: Vec<String> = (SysFlags::ALL.iter())
                .filter(|(b, _)| m.flags.sys.contains(*b))
                .map(|(_, n)| n.to_string())
                .collect();
            f.extend(m.flags.keywords.iter().cloned());
            f.join(" ")
        })
        .collect();
    assert_eq!(flags, ["\\Seen", "\\Flagged $Work", "\\Answered \\Draft"]);
    for (i, (uid, sent)) in snap.messages.uids().zip(msgs).enumerate() {
        let got = mb.fetch_message(uid).unwrap();
        // Dovecot gives a last line without one its line end.
        let mut want = sent.to_vec();
        if !want.ends_with(b"\r\n") {
            want.extend_from_slice(b"\r\n");
        }
        assert_eq!(&got[..], &want[..], "message {i}");
        let size = format!("* {} FETCH (RFC822.SIZE {})", i + 1, got.len());
        assert!(imap_out.contains(&size), "{size} not in {imap_out}");
    }
}

/// The fingerprint of a message does not change when only its hidden fields do (another
/// program wrote flags back), nor with CRLF line ends; it does when a header clients see
/// changes.
#[test]
fn prints_survive_flag_rewrites() {
    let meta = Meta {
        uid: Some(1),
        ..Meta::default()
    };
    let mut a = Vec::new();
    append_mail(
        &mut a,
        b"Subject: x\r\nTo: y\r\n\r\nbody\r\n",
        &stamp(&meta, None),
    );
    let flagged = Meta {
        uid: Some(1),
        flags: SysFlags(SysFlags::SEEN.0 | SysFlags::FLAGGED.0),
        keywords: vec!["Work".into()],
        ..Meta::default()
    };
    let mut b = Vec::new();
    append_mail(
        &mut b,
        b"Subject: x\r\nTo: y\r\n\r\nbody\r\n",
        &stamp(&flagged, None),
    );
    let crlf = String::from_utf8_lossy(&b)
        .replace('\n', "\r\n")
        .into_bytes();
    let mut c = Vec::new();
    append_mail(
        &mut c,
        b"Subject: z\r\nTo: y\r\n\r\nbody\r\n",
        &stamp(&meta, None),
    );
    let print = |f: &[u8]| super::seen_of(&mails(f)[0]).print;
    assert_eq!(print(&a), print(&b));
    assert_eq!(print(&a).header_crc, print(&crlf).header_crc);
    assert_ne!(print(&a), print(&c));
    // mutt adds `Lines:` to a header it rewrites: the same message still.
    let with_lines = String::from_utf8_lossy(&b).replacen("To: y\n", "To: y\nLines: 1\n", 1);
    assert_eq!(print(with_lines.as_bytes()), print(&a), "{with_lines}");
}

mod plans {
    use super::super::plan::{plan, Want};
    use super::super::rewrite::{apply, Plan};
    use super::*;
    use std::fs::File;
    use std::os::fd::OwnedFd;

    fn base() -> Base {
        Base {
            uid_validity: 5,
            uid_next: 9,
            keywords: vec!["Work".into()],
        }
    }

    /// Eight messages as Loft writes them, X-IMAPbase on the first.
    fn file() -> Vec<u8> {
        let mut f = Vec::new();
        for i in 0..8u32 {
            let meta = Meta {
                uid: Some(i + 1),
                ..Meta::default()
            };
            let b = base();
            let body = format!("Subject: m{i}\r\n\r\nbody {i}\r\nFrom here {i}\r\n");
            append_mail(
                &mut f,
                body.as_bytes(),
                &stamp(&meta, (i == 0).then_some(&b)),
            );
        }
        f
    }

    fn rewrite(old: &[u8], p: &Plan) -> Vec<u8> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("box");
        std::fs::write(&path, old).unwrap();
        let dir = OwnedFd::from(File::open(tmp.path()).unwrap());
        let f = File::options().read(true).write(true).open(&path).unwrap();
        apply(&dir, std::ffi::OsStr::new("box"), &f, p).unwrap();
        std::fs::read(&path).unwrap()
    }

    fn wants(m: &[Mail]) -> Vec<Want> {
        m.iter()
            .map(|m| Want {
                keep: true,
                meta: m.meta.clone(),
            })
            .collect()
    }

    fn metas_of(m: &Meta) -> (Option<u32>, SysFlags, Vec<String>) {
        (m.uid, m.flags, m.keywords.clone())
    }

    #[test]
    fn expunges_and_flag_changes_read_back_with_every_message_intact() {
        let old = file();
        let m = mails(&old);
        let mut w = wants(&m);
        assert!(
            plan(&m, &w, Some(&base()), old.len() as u64).is_none(),
            "nothing to do"
        );
        w[0].keep = false; // the first: X-IMAPbase moves to the next one
        w[4].keep = false;
        w[2].meta.flags = SysFlags::SEEN;
        w[5].meta.keywords = vec!["Work".into()];
        w[7].meta.flags = SysFlags(SysFlags::DELETED.0 | SysFlags::FLAGGED.0);
        let p = plan(&m, &w, Some(&base()), old.len() as u64).unwrap();
        assert_eq!(
            p.rest, None,
            "messages were removed: everything after moves"
        );
        let new = rewrite(&old, &p);
        let after = mails(&new);
        let kept: Vec<usize> = (0..8).filter(|i| w[*i].keep).collect();
        assert_eq!(after.len(), kept.len());
        for (a, &i) in after.iter().zip(&kept) {
            assert_eq!(shown(&new, a), shown(&old, &m[i]), "message {i}");
            assert_eq!(metas_of(&a.meta), metas_of(&w[i].meta), "message {i}");
        }
        assert_eq!(after[0].meta.base, Some(base()));
        assert!(after[1..].iter().all(|a| a.meta.base.is_none()));
    }

    #[test]
    fn a_flag_change_with_room_moves_nothing() {
        let old = file();
        let m = mails(&old);
        let mut w = wants(&m);
        // "R" and " Work": 6 of the 10 spaces of room the writer left.
        w[3].meta.flags = SysFlags::SEEN;
        w[3].meta.keywords = vec!["Work".into()];
        let p = plan(&m, &w, Some(&base()), old.len() as u64).unwrap();
        assert_eq!(p.rest, m[3].hidden.last().map(|h| h.end));
        assert!(
            p.offset >= m[3].header,
            "only message 3's fields are written"
        );
        let new = rewrite(&old, &p);
        assert_eq!(new.len(), old.len());
        let after = mails(&new);
        for (i, (a, b)) in after.iter().zip(&m).enumerate() {
            assert_eq!(shown(&new, a), shown(&old, b), "message {i}");
            assert_eq!(a.from, b.from, "message {i} moved");
            assert_eq!(metas_of(&a.meta), metas_of(&w[i].meta), "message {i}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any messages, any choice of expunges and flag and keyword changes: after the
        /// planned rewrite the kept messages read back byte for byte with what was wanted.
        #[test]
        fn any_plan_reads_back(
            msgs in proptest::collection::vec(message(), 1..6),
            choices in proptest::collection::vec((any::<bool>(), 0u8..32, 0u8..4), 6),
        ) {
            let mut old = Vec::new();
            for (i, m) in msgs.iter().enumerate() {
                let meta = Meta { uid: Some(i as u32 + 1), ..Meta::default() };
                let b = base();
                append_mail(&mut old, m, &stamp(&meta, (i == 0).then_some(&b)));
            }
            let m = mails(&old);
            prop_assert_eq!(m.len(), msgs.len());
            let mut w = wants(&m);
            for (want, &(drop, flags, kw)) in w.iter_mut().zip(&choices) {
                want.keep = !drop;
                want.meta.flags = SysFlags(flags);
                want.meta.keywords = ["Work", "$Forwarded", "Later"][..usize::from(kw)]
                    .iter().map(|k| k.to_string()).collect();
            }
            let Some(p) = plan(&m, &w, Some(&base()), old.len() as u64) else {
                return Ok(());
            };
            let new = rewrite(&old, &p);
            let after = mails(&new);
            let kept: Vec<usize> = (0..m.len()).filter(|i| w[*i].keep).collect();
            prop_assert_eq!(after.len(), kept.len());
            for (a, &i) in after.iter().zip(&kept) {
                prop_assert_eq!(shown(&new, a), shown(&old, &m[i]));
                prop_assert_eq!(metas_of(&a.meta), metas_of(&w[i].meta));
            }
        }
    }

    #[test]
    fn scattered_or_crowded_fields_are_written_anew() {
        // Fields between other headers (as a hand-edited or foreign file has them), and
        // a message with no room: the fields go to the end of the header.
        let old = format!(
            "From a {D}\nX-UID: 1\nSubject: one\nStatus: O\nTo: x\n\nbody\n\n\
             From b {D}\nSubject: two\nX-UID: 2\nX-Keywords:\n\nbody two\n"
        )
        .into_bytes();
        let m = mails(&old);
        let mut w = wants(&m);
        w[0].meta.flags = SysFlags::SEEN;
        w[1].meta.keywords = vec!["$Forwarded".into(), "Work".into()];
        let b = base();
        let p = plan(&m, &w, Some(&b), old.len() as u64).unwrap();
        let new = rewrite(&old, &p);
        let after = mails(&new);
        assert_eq!(after.len(), 2);
        for i in 0..2 {
            assert_eq!(shown(&new, &after[i]), shown(&old, &m[i]), "message {i}");
            assert_eq!(
                metas_of(&after[i].meta),
                metas_of(&w[i].meta),
                "message {i}"
            );
        }
        assert_eq!(after[0].meta.base, Some(b));
        assert_eq!(shown(&new, &after[0]), "Subject: one\nTo: x\n\nbody\n");
    }
}

/// A measurement, not a check: the scan of a big mbox named by `LOFT_MBOX_SCAN`
/// (docs/mbox.md: `cargo test --release --lib mbox::tests::scan_speed -- --ignored
/// --nocapture`).
#[test]
#[ignore = "a measurement; needs LOFT_MBOX_SCAN=<file>"]
fn scan_speed() {
    let Ok(path) = std::env::var("LOFT_MBOX_SCAN") else {
        return;
    };
    let f = std::fs::File::open(&path).unwrap();
    let size = f.metadata().unwrap().len();
    for round in 0..3 {
        let t0 = std::time::Instant::now();
        let mut n = 0u64;
        let mut by_length = 0u64;
        scan(&f, size, 0, Options::default(), |m| {
            n += 1;
            by_length += u64::from(m.by_length);
            true
        })
        .unwrap();
        let s = t0.elapsed().as_secs_f64();
        eprintln!(
            "round {round}: {n} messages ({by_length} by Content-Length), {:.0} MB in {:.3} s: {:.0} MB/s",
            size as f64 / 1e6,
            s,
            size as f64 / 1e6 / s
        );
    }
}

/// procmail (Debian's, dotlock + fcntl) delivering into a file Loft writes: it waits while
/// Loft holds the write lock and delivers once it is let go, and Loft reads what it wrote
/// (its `From ` line, its quoting); and Loft waits for procmail's own `lockfile`.
#[test]
fn procmail_and_loft_share_a_file() {
    use super::lock::{lock, Config, Kind, LockError, Method};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    if Command::new("procmail").arg("-v").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "procmail missing in CI");
        eprintln!("procmail not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("box");
    let mut file = Vec::new();
    for i in 0..2u32 {
        let meta = Meta {
            uid: Some(i + 1),
            ..Meta::default()
        };
        append_mail(
            &mut file,
            format!("Subject: m{i}\r\n\r\nbody {i}\r\n").as_bytes(),
            &stamp(&meta, None),
        );
    }
    std::fs::write(&path, &file).unwrap();
    let rc = tmp.path().join("rc");
    std::fs::write(&rc, format!("DEFAULT={}\nLOCKSLEEP=1\n", path.display())).unwrap();
    let dir = std::os::fd::OwnedFd::from(std::fs::File::open(tmp.path()).unwrap());
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let cfg = Config {
        timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let held = lock(&dir, std::ffi::OsStr::new("box"), &f, Kind::Write, &cfg).unwrap();
    let mut pm = Command::new("procmail")
        .arg("-f")
        .arg("carol@example.org")
        .arg(&rc)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    pm.stdin
        .take()
        .unwrap()
        .write_all(b"From: carol@example.org\nSubject: late\n\nFrom here on\nbody\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        pm.try_wait().unwrap().is_none(),
        "procmail delivered while Loft held the lock"
    );
    assert_eq!(std::fs::read(&path).unwrap(), file);
    drop(held);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = pm.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "procmail did not deliver"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let now = std::fs::read(&path).unwrap();
    let m = mails(&now);
    assert_eq!(m.len(), 3, "{}", String::from_utf8_lossy(&now));
    assert_eq!(m[2].sender, "carol@example.org");
    assert_eq!(
        shown(&now, &m[2]),
        "From: carol@example.org\nSubject: late\n\n>From here on\nbody\n"
    );
    assert_eq!(
        (m[0].meta.uid, m[1].meta.uid, m[2].meta.uid),
        (Some(1), Some(2), None)
    );
    // procmail's own lockfile(1) holds the dotlock: Loft waits, then takes it.
    let st = Command::new("lockfile")
        .arg("-r0")
        .arg(tmp.path().join("box.lock"))
        .status()
        .unwrap();
    assert!(st.success());
    match lock(&dir, std::ffi::OsStr::new("box"), &f, Kind::Write, &cfg) {
        Err(LockError::Timeout {
            method: Method::Dotlock,
            ..
        }) => {}
        other => panic!("{:?}", other.map(|h| h.methods())),
    }
    std::fs::remove_file(tmp.path().join("box.lock")).unwrap();
    drop(lock(&dir, std::ffi::OsStr::new("box"), &f, Kind::Write, &cfg).unwrap());
}

/// Postfix `local(8)` (Debian's, a private instance) delivering into an mbox spool: Loft
/// reads what it wrote (its `From ` line, `Delivered-To`, its quoting), and a delivery
/// while Loft holds the write lock waits (local's own lock retries) and lands once it is
/// let go. Needs root (local delivers as the recipient, a system user made here).
#[test]
fn postfix_local_delivers_into_a_spool_loft_reads() {
    use super::lock::{lock, Config, Kind};
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    use std::time::{Duration, Instant};
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    if !root || !std::path::Path::new("/usr/sbin/postfix").exists() {
        assert!(
            std::env::var_os("CI").is_none() || !root,
            "postfix missing in CI"
        );
        eprintln!("not root or no postfix: skipped");
        return;
    }
    let user = "loftmbox";
    if !Command::new("id")
        .arg(user)
        .output()
        .unwrap()
        .status
        .success()
    {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "useradd {user}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (etc, queue, data, spool) = (
        d.join("etc"),
        d.join("queue"),
        d.join("data"),
        d.join("spool"),
    );
    for p in [&etc, &queue, &data, &spool] {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(Command::new("chown")
        .arg("postfix")
        .arg(&data)
        .status()
        .unwrap()
        .success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        etc.join("main.cf"),
        format!(
            "compatibility_level = 3.6\nqueue_directory = {q}\ndata_directory = {data}\n\
             command_directory = /usr/sbin\ndaemon_directory = /usr/lib/postfix/sbin\n\
             meta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n\
             mail_owner = postfix\nsetgid_group = postdrop\n\
             myhostname = localhost\nmydestination = localhost\nmynetworks = 127.0.0.0/8\n\
             inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nrelayhost =\n\
             alias_maps =\nalias_database =\nlocal_transport = local\n\
             mail_spool_directory = {spool}\nhome_mailbox =\nmailbox_command =\n\
             mailbox_delivery_lock = fcntl, dotlock\n\
             smtpd_relay_restrictions = permit_mynetworks, reject\n\
             queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n\
             maillog_file_prefixes = {dir}\nmaillog_file = {dir}/maillog\n",
            q = queue.display(),
            data = data.display(),
            spool = spool.display(),
            dir = d.display(),
        ),
    )
    .unwrap();
    let mut master = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
    for (name, kind, limit, cmd) in [
        ("cleanup", "unix n", "0", "cleanup"),
        ("qmgr", "unix n", "1", "qmgr"),
        ("rewrite", "unix -", "-", "trivial-rewrite"),
        ("bounce", "unix -", "0", "bounce"),
        ("defer", "unix -", "0", "bounce"),
        ("trace", "unix -", "0", "bounce"),
        ("error", "unix -", "-", "error"),
        ("retry", "unix -", "-", "error"),
        ("proxymap", "unix -", "-", "proxymap"),
        ("anvil", "unix -", "1", "anvil"),
        ("scache", "unix -", "1", "scache"),
    ] {
        master.push_str(&format!("{name} {kind} - n - {limit} {cmd}\n"));
    }
    // local(8) runs privileged (unpriv n): it delivers as the recipient.
    master.push_str("local unix - n n - - local\npostlog unix-dgram n - n - 1 postlogd\n");
    std::fs::write(etc.join("master.cf"), master).unwrap();
    let log = || std::fs::read_to_string(d.join("maillog")).unwrap_or_default();
    let st = Command::new("postfix")
        .arg("-c")
        .arg(&etc)
        .arg("start")
        .status()
        .unwrap();
    assert!(st.success(), "postfix start failed:\n{}", log());
    struct Stop(std::path::PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("postfix")
                .arg("-c")
                .arg(&self.0)
                .arg("stop")
                .status();
        }
    }
    let _stop = Stop(etc.clone());
    let send = |subject: &str| {
        let t0 = Instant::now();
        let s = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if t0.elapsed() < Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("postfix never listened: {e}\n{}", log()),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut line = String::new();
        let mut expect = |r: &mut BufReader<std::net::TcpStream>, code: &str| loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            assert!(
                line.starts_with(code),
                "wanted {code}, got {line:?}\n{}",
                log()
            );
            if line.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        };
        expect(&mut r, "220");
        for (cmd, code) in [
            ("EHLO test".to_string(), "250"),
            ("MAIL FROM:<bob@example.org>".to_string(), "250"),
            (format!("RCPT TO:<{user}@localhost>"), "250"),
            ("DATA".to_string(), "354"),
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
            expect(&mut r, code);
        }
        w.write_all(format!("Subject: {subject}\r\n\r\nFrom here on\r\nbody\r\n.\r\n").as_bytes())
            .unwrap();
        expect(&mut r, "250");
        w.write_all(b"QUIT\r\n").unwrap();
    };
    let mbox = spool.join(user);
    let count = || {
        let b = std::fs::read(&mbox).unwrap_or_default();
        scan_all(&b[..], b.len() as u64)
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let wait_for = |n: usize| {
        let t0 = Instant::now();
        while count() < n {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "not delivered:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    send("first");
    wait_for(1);
    // Held by Loft: local(8) waits (its lock retries), then delivers.
    let dir = std::os::fd::OwnedFd::from(std::fs::File::open(&spool).unwrap());
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(&mbox)
        .unwrap();
    let held = lock(
        &dir,
        std::ffi::OsStr::new(user),
        &f,
        Kind::Write,
        &Config::default(),
    )
    .unwrap();
    let before = std::fs::read(&mbox).unwrap();
    send("second");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        std::fs::read(&mbox).unwrap(),
        before,
        "delivered while Loft held the lock"
    );
    drop(held);
    wait_for(2);
    let b = std::fs::read(&mbox).unwrap();
    let m = mails(&b);
    assert_eq!(m.len(), 2);
    for (g, subject) in m.iter().zip(["first", "second"]) {
        assert_eq!(g.sender, "bob@example.org");
        let v = shown(&b, g);
        assert!(
            v.contains(&format!("Delivered-To: {user}@localhost\n")),
            "{v}"
        );
        assert!(v.contains(&format!("Subject: {subject}\n")), "{v}");
        assert!(v.ends_with("\n\n>From here on\nbody\n"), "{v:?}");
    }
}

/// Starts this test binary's ignored test `name` as a child process, with `env` set to
/// `dir` (the kill tests: a child does the work, the parent kills it at random moments).
pub(super) fn spawn_child(name: &str, env: &str, dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(env, dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
