//! `loft convert` (issue 12): the suite's format converted into the other one and back,
//! with what a client and a POP3 client see compared before and after — UIDVALIDITY,
//! UIDNEXT, UIDs, flags, keywords, INTERNALDATE, bytes, LIST with special-use, LSUB,
//! UIDL — and the user lock: no conversion while a session is open, no login while a
//! conversion runs, never into a target that holds mail.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use loft::config::{StorageConfig, StorageFormat};
use loft::mailbox::convert::{self, ConvertError, Job, Report};

use crate::pop3::client::Pop3Server;
use crate::standards::append;
use crate::util::*;

/// One mailbox as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    status: String,
    /// UID → (FLAGS sorted, INTERNALDATE, message bytes).
    messages: BTreeMap<u32, (Vec<String>, String, Vec<u8>)>,
}

/// A user's whole store as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    list: Vec<String>,
    lsub: Vec<String>,
    mailboxes: BTreeMap<String, Seen>,
    uidl: Vec<String>,
}

fn other(f: StorageFormat) -> StorageFormat {
    match f {
        StorageFormat::Maildir => StorageFormat::Mbox,
        StorageFormat::Mbox => StorageFormat::Maildir,
    }
}

fn target(src: &StorageConfig, format: StorageFormat, location: &Path) -> StorageConfig {
    let mut t = src.clone();
    t.format = format;
    t.location = format!("{}/%u", location.display());
    t.inbox = None;
    t
}

async fn run(source: &StorageConfig, target: &StorageConfig) -> Result<Report, ConvertError> {
    let (s, t) = (source.clone(), target.clone());
    tokio::task::spawn_blocking(move || {
        convert::run(&Job {
            user: USER,
            home: None,
            source: &s,
            target: &t,
        })
    })
    .await
    .expect("conversion thread")
}

/// Mail with what a conversion must keep: flags and keywords, set dates, a body line
/// starting with "From ", no final line end, expunged UIDs (gaps, and an empty mailbox
/// whose UIDNEXT is not 1), a `\Noselect` parent, special-use mailboxes, subscriptions.
async fn fill(c: &mut Client) {
    c.ok("CREATE Work/2026").await;
    c.ok("CREATE Empty").await;
    let msgs = [
        "From: a@example.org\r\nSubject: one\r\n\r\nhello\r\n",
        "From: b@example.org\r\nSubject: two\r\n\r\nFrom the start of a line\r\nand more\r\n",
        "Subject: three (expunged)\r\n\r\nbye\r\n",
        "Subject: four\r\n\r\nno final line end",
    ];
    for (i, m) in msgs.iter().enumerate() {
        let tag = c.tag();
        let cmd = format!(
            "{tag} APPEND INBOX (\\Seen $Label{i}) \"0{}-Feb-2021 10:11:12 +0000\" {{{}}}\r\n",
            i + 1,
            m.len()
        );
        c.send(cmd.as_bytes()).await;
        assert!(c.read_checked().await.starts_with("+ "));
        c.send(format!("{m}\r\n").as_bytes()).await;
        let done = c.collect(&tag).await.pop().unwrap();
        assert!(done.contains("OK"), "{done}");
    }
    for m in ["Subject: w1\r\n\r\nw1\r\n", "Subject: w2\r\n\r\nw2\r\n"] {
        append(c, "Work/2026", m).await;
        append(c, "Empty", m).await;
    }
    c.ok("SELECT INBOX").await;
    c.ok("UID STORE 2 +FLAGS (\\Flagged \\Answered Junk)").await;
    c.ok("UID STORE 3 +FLAGS (\\Deleted)").await;
    c.ok("EXPUNGE").await;
    c.ok("UID STORE 4 FLAGS (\\Draft \\Deleted)").await;
    c.ok("SELECT Empty").await;
    c.ok("STORE 1:* +FLAGS (\\Deleted)").await;
    c.ok("EXPUNGE").await;
    c.ok("SUBSCRIBE Work/2026").await;
    c.ok("SUBSCRIBE INBOX").await;
}

fn flags_of(unit: &str) -> Vec<String> {
    let at = unit.find("FLAGS (").expect("FLAGS") + "FLAGS (".len();
    let end = at + unit[at..].find(')').expect("FLAGS end");
    let mut f: Vec<String> = unit[at..end]
        .split_whitespace()
        .filter(|f| *f != "\\Recent")
        .map(str::to_ascii_lowercase)
        .collect();
    f.sort();
    f
}

fn quoted_after(unit: &str, key: &str) -> String {
    let at = unit.find(key).expect(key) + key.len();
    let end = at + unit[at..].find('"').expect("closing quote");
    unit[at..end].to_string()
}

fn literal_bytes(unit: &str) -> Vec<u8> {
    let open = unit.find("BODY[] {").expect("BODY[] literal") + "BODY[] {".len();
    let close = open + unit[open..].find('}').unwrap();
    let n: usize = unit[open..close].parse().unwrap();
    let start = close + 3;
    unit.as_bytes()[start..start + n].to_vec()
}

async fn seen(c: &mut Client, name: &str) -> Seen {
    let status = c
        .ok(&format!(
            "STATUS {name} (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"
        ))
        .await
        .join("");
    c.ok(&format!("EXAMINE {name}")).await;
    let mut messages = BTreeMap::new();
    for unit in c
        .ok("UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])")
        .await
    {
        let uid_at = unit.find("UID ").expect("UID") + 4;
        let uid: u32 = unit[uid_at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let date = quoted_after(&unit, "INTERNALDATE \"");
        messages.insert(uid, (flags_of(&unit), date, literal_bytes(&unit)));
    }
    Seen { status, messages }
}

async fn view(srv: &Pop3Server) -> View {
    let mut c = srv.srv.login().await;
    let mut list = c.ok("LIST \"\" \"*\"").await;
    // `Work`, made by CREATE Work/2026: a selectable empty folder in Maildir, a
    // directory (\Noselect) in mbox; both with children.
    let work = list
        .iter()
        .position(|l| l.trim_end().ends_with("\"/\" \"Work\""))
        .expect("Work");
    assert!(list.remove(work).contains("\\HasChildren"));
    list.sort();
    let mut lsub = c.ok("LSUB \"\" \"*\"").await;
    lsub.sort();
    let mut mailboxes = BTreeMap::new();
    for name in ["INBOX", "Work/2026", "Empty", "Sent", "Trash"] {
        mailboxes.insert(name.to_string(), seen(&mut c, name).await);
    }
    c.ok("LOGOUT").await;
    let mut p = srv.login().await;
    let uidl = p.lines("UIDL").await;
    p.ok("QUIT").await;
    View {
        list,
        lsub,
        mailboxes,
        uidl,
    }
}

/// `v` as an mbox store serves it: lines starting with "From " quoted.
fn as_mbox(v: &View) -> View {
    let mut out = v.clone();
    for m in out.mailboxes.values_mut() {
        for (_, _, bytes) in m.messages.values_mut() {
            let mut q = Vec::new();
            for line in bytes.split_inclusive(|&c| c == b'\n') {
                if line.starts_with(b"From ") {
                    q.push(b'>');
                }
                q.extend_from_slice(line);
            }
            *bytes = q;
        }
    }
    out
}

async fn serve(storage: &StorageConfig) -> Pop3Server {
    let s = storage.clone();
    Pop3Server::start_with(move |cfg| cfg.storage = s).await
}

/// Converting waits for the sessions that just logged out to let go of the user lock.
async fn run_when_free(source: &StorageConfig, target: &StorageConfig) -> Report {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match run(source, target).await {
            Err(ConvertError::InUse { .. }) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            r => return r.expect("conversion"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converted_and_back_clients_and_pop3_see_the_same_mail() {
    let mut first = Pop3Server::start().await;
    let mut c = first.srv.login().await;
    fill(&mut c).await;
    c.ok("LOGOUT").await;
    let before = view(&first).await;
    let source = first.srv.cfg.storage.clone();
    first.srv.stop().await;

    let there = tempfile::tempdir().unwrap();
    let to = other(source.format);
    let t1 = target(&source, to, there.path());
    let report = run_when_free(&source, &t1).await;
    let inbox = report.mailboxes.iter().find(|m| m.name == "INBOX").unwrap();
    assert_eq!(inbox.messages, 3, "{report:?}");
    assert!(report.subscriptions >= 2, "{report:?}");
    let mut second = serve(&t1).await;
    let after = view(&second).await;
    let want = match to {
        StorageFormat::Mbox => as_mbox(&before),
        StorageFormat::Maildir => before.clone(),
    };
    assert_eq!(after, want);
    second.srv.stop().await;

    let back = tempfile::tempdir().unwrap();
    let t2 = target(&source, source.format, back.path());
    run_when_free(&t1, &t2).await;
    let mut third = serve(&t2).await;
    assert_eq!(view(&third).await, want);
    third.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_conversion_while_a_session_is_open_and_no_login_while_one_runs() {
    let srv = Pop3Server::start().await;
    let source = srv.srv.cfg.storage.clone();
    let there = tempfile::tempdir().unwrap();
    let t = target(&source, other(source.format), there.path());
    let mut c = srv.srv.login().await;
    assert!(matches!(
        run(&source, &t).await,
        Err(ConvertError::InUse { .. })
    ));
    c.ok("LOGOUT").await;
    drop(c);

    // A conversion's hold on the user lock (taken as `convert::run` takes it).
    let until = Instant::now() + Duration::from_secs(10);
    let held = loop {
        let st = loft::mailbox::Storage::new(&source);
        match st.open_store_as(USER, None, loft::mailbox::userlock::Mode::Exclusive) {
            Ok(s) => break s,
            Err(_) if Instant::now() < until => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("the session kept the user lock: {e}"),
        }
    };
    let mut c = srv.srv.connect().await;
    let no = c.status(&format!("LOGIN {USER} {PASS}")).await;
    assert!(no.contains("NO [UNAVAILABLE]"), "{no}");
    let mut p = srv.connect().await;
    p.ok(&format!("USER {USER}")).await;
    let err = p.err(&format!("PASS {PASS}")).await;
    assert!(err.starts_with("-ERR [IN-USE]"), "{err}");
    drop(held);
    let mut c = srv.srv.connect().await;
    let ok = c.status(&format!("LOGIN {USER} {PASS}")).await;
    assert!(ok.contains("OK"), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_into_a_target_that_holds_mail() {
    let mut srv = Pop3Server::start().await;
    let source = srv.srv.cfg.storage.clone();
    srv.srv.stop().await;
    let there = tempfile::tempdir().unwrap();
    let t = target(&source, other(source.format), there.path());
    let dir = there.path().join(USER);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep"), b"something").unwrap();
    assert!(matches!(
        run(&source, &t).await,
        Err(ConvertError::TargetNotEmpty(_))
    ));
    assert_eq!(std::fs::read(dir.join("keep")).unwrap(), b"something");
    let same = target(&source, source.format, there.path());
    assert!(matches!(
        run(&source, &same).await,
        Err(ConvertError::SameFormat(_))
    ));
}
