//! isync's `mbsync` against Loft: a 500-message INBOX synced to a local Maildir, an idle
//! re-sync that must transfer nothing, then changes on both sides that must converge in
//! one run and stay put in the next, with mbsync's recorded UID pairs stable throughout.
//! Run once over IMAPS (certificate pinned with `CertificateFile`) and once in plaintext
//! on the loopback port (`SSLType None`). Shared helpers for `mbsync_folders`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{maildir_of, Loft, PASS, USER};
use crate::imap::Imap;
use crate::mail::{self, normalize, read_maildir};
use crate::proc::{self, have_tool};

const COUNT: usize = 500;
const LOCAL_FLAGGED: std::ops::Range<usize> = 100..200;
const LOCAL_TRASHED: std::ops::Range<usize> = 200..250;
const SERVER_ANSWERED: std::ops::Range<usize> = 300..400;
const SERVER_EXPUNGED: std::ops::Range<usize> = 400..410;

#[derive(Clone, Copy, Debug)]
pub enum Transport {
    Imaps,
    Plain,
    StartTls,
}

#[test]
fn mbsync_imaps_500_messages_converge() {
    scenario(Transport::Imaps);
}

#[test]
fn mbsync_plaintext_500_messages_converge() {
    scenario(Transport::Plain);
}

/// Writes the mbsyncrc (and creates the local root, which mbsync requires to exist).
pub fn write_rc(loft: &Loft, local: &Path, transport: Transport) -> PathBuf {
    std::fs::create_dir_all(local).expect("local root");
    let (port, ssl, mechs) = match transport {
        // The generated certificate names "localhost" (isync checks DNS names).
        Transport::Imaps => (
            loft.tls_port,
            format!("SSLType IMAPS\nCertificateFile {}", loft.cert().display()),
            "LOGIN",
        ),
        Transport::Plain => (loft.port, "SSLType None".to_string(), "PLAIN"),
        Transport::StartTls => (
            loft.port,
            format!(
                "SSLType STARTTLS\nCertificateFile {}",
                loft.cert().display()
            ),
            "PLAIN",
        ),
    };
    let rc = format!(
        "IMAPAccount loft\n\
         Host localhost\n\
         Port {port}\n\
         User {USER}\n\
         Pass {PASS}\n\
         {ssl}\n\
         AuthMechs {mechs}\n\
         Timeout 20\n\
         \n\
         IMAPStore remote\n\
         Account loft\n\
         \n\
         MaildirStore local\n\
         Path {local}/\n\
         Inbox {local}/INBOX\n\
         SubFolders Verbatim\n\
         \n\
         Channel loft\n\
         Far :remote:\n\
         Near :local:\n\
         Patterns *\n\
         Sync All\n\
         Create Both\n\
         Expunge Both\n\
         SyncState *\n",
        local = local.display()
    );
    let path = loft.scratch().join("mbsyncrc");
    std::fs::write(&path, rc).expect("write mbsyncrc");
    path
}

pub fn mbsync(loft: &Loft, rc: &Path, label: &str) -> proc::Output {
    let started = Instant::now();
    let out = proc::run(
        Command::new("mbsync").arg("-c").arg(rc).arg("-V").arg("-a"),
        &loft.scratch(),
        Duration::from_secs(45),
    );
    eprintln!(
        "mbsync {label}: {:?} in {:.1?}",
        out.code,
        started.elapsed()
    );
    out.assert_ok();
    assert!(
        !out.stderr.contains("Error") && !out.stdout.contains("Error"),
        "mbsync {label} reported an error:\n{}",
        out.dump()
    );
    out
}

/// mbsync's `.mbsyncstate` of one near-side folder: UIDVALIDITY header lines and the
/// (far UID, near UID) pairs it recorded.
#[derive(Debug, PartialEq, Eq)]
pub struct State {
    pub far_validity: String,
    pub near_validity: String,
    /// near UID -> far UID (pairs with a 0 side, i.e. pending, are left out).
    pub pairs: BTreeMap<u32, u32>,
}

pub fn read_state(folder: &Path) -> State {
    let text = std::fs::read_to_string(folder.join(".mbsyncstate"))
        .unwrap_or_else(|e| panic!("no .mbsyncstate in {}: {e}", folder.display()));
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let header = |key: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{key} missing in state file:\n{text}"))
    };
    let mut pairs = BTreeMap::new();
    for line in body.lines() {
        let mut f = line.split_whitespace();
        let far: u32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let near: u32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if far > 0 && near > 0 {
            assert!(
                pairs.insert(near, far).is_none(),
                "near UID {near} twice:\n{text}"
            );
        }
    }
    State {
        far_validity: header("FarUidValidity"),
        near_validity: header("NearUidValidity"),
        pairs,
    }
}

/// The near UID mbsync wrote into a local file name (`...,U=17:2,S`).
fn near_uid(file: &str) -> u32 {
    file.split(",U=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no ,U= in local file name {file}"))
}

/// IMAP system flags as Maildir info letters (sorted), \Recent and keywords ignored.
fn letters(flags: &[String]) -> String {
    let mut l: Vec<char> = flags
        .iter()
        .filter_map(|f| match f.as_str() {
            "\\Seen" => Some('S'),
            "\\Flagged" => Some('F'),
            "\\Answered" => Some('R'),
            "\\Draft" => Some('D'),
            "\\Deleted" => Some('T'),
            _ => None,
        })
        .collect();
    l.sort();
    l.into_iter().collect()
}

/// The server's INBOX as Message-ID -> (UID, Maildir letters).
fn server_inbox(loft: &Loft) -> BTreeMap<String, (u32, String)> {
    server_box(loft, "INBOX")
}

/// A server mailbox as Message-ID -> (UID, Maildir letters).
pub fn server_box(loft: &Loft, mailbox: &str) -> BTreeMap<String, (u32, String)> {
    let mut c = Imap::login(loft.port, USER, PASS);
    c.ok(&format!("EXAMINE \"{mailbox}\""));
    let mut out = BTreeMap::new();
    for (uid, flags, id) in c.uid_flags_ids() {
        assert!(
            !id.is_empty(),
            "{mailbox}: message UID {uid} has no Message-ID"
        );
        let prev = out.insert(id.clone(), (uid, letters(&flags)));
        assert!(prev.is_none(), "Message-ID {id} twice on the server");
    }
    c.logout();
    out
}

/// Both sides hold the same messages with the same flags, and mbsync's state maps each
/// local file's UID to the server UID of the same message.
fn assert_converged(loft: &Loft, local_inbox: &Path, expected: usize) {
    assert_box_converged(loft, "INBOX", local_inbox, expected)
}

/// [`assert_converged`] for any server mailbox and its local folder.
pub fn assert_box_converged(loft: &Loft, mailbox: &str, local_inbox: &Path, expected: usize) {
    let server = server_box(loft, mailbox);
    let local = read_maildir(local_inbox);
    let state = read_state(local_inbox);
    assert_eq!(server.len(), expected, "{mailbox}: server message count");
    assert_eq!(
        server.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>(),
        "the two sides hold different messages"
    );
    for (id, m) in &local {
        let (far_uid, far_flags) = &server[id];
        assert_eq!(
            &m.flags, far_flags,
            "flags of {id}: local {} vs server",
            m.file
        );
        let near = near_uid(&m.file);
        assert_eq!(
            state.pairs.get(&near),
            Some(far_uid),
            "state file does not pair near UID {near} ({id}) with far UID {far_uid}"
        );
    }
    assert_eq!(
        state.pairs.len(),
        expected,
        "state pairs: {:?}",
        state.pairs
    );
}

/// Adds a Maildir flag letter to a local message by renaming it, as a mail reader does.
fn add_local_flag(folder: &Path, m: &mail::MaildirMsg, letter: char) {
    let (base, flags) = m.file.rsplit_once(":2,").unwrap_or((&m.file, ""));
    let mut letters: Vec<char> = flags.chars().chain([letter]).collect();
    letters.sort();
    letters.dedup();
    let renamed = format!("{base}:2,{}", letters.into_iter().collect::<String>());
    let renamed = renamed.replacen("new/", "cur/", 1);
    std::fs::rename(folder.join(&m.file), folder.join(renamed)).expect("rename to flag");
}

fn populate(dir: &Path) {
    let md = maildir_of(dir);
    for i in 1..=COUNT {
        // Odd messages were already read (cur/ with S), even ones are new.
        let flags = (i % 2 == 1).then_some("S");
        mail::deliver(
            &md,
            &format!("{}.M{i}P7.interop", 1_700_000_000 + i),
            &mail::sample(i),
            flags,
        );
    }
}

fn id(i: usize) -> String {
    format!("<interop-{i}@example.org>")
}

fn scenario(transport: Transport) {
    if !have_tool("mbsync", "isync") {
        return;
    }
    let loft = Loft::start_with(populate);
    let local_root = loft.scratch().join("local");
    std::fs::create_dir_all(&local_root).expect("local root");
    let inbox = local_root.join("INBOX");
    let rc = write_rc(&loft, &local_root, transport);

    // 1. Initial sync: every message arrives intact with its flags.
    let out = mbsync(&loft, &rc, "initial");
    assert!(
        out.stdout.contains(&format!("far side: {COUNT} messages")),
        "mbsync did not see {COUNT} messages:\n{}",
        out.dump()
    );
    let local = read_maildir(&inbox);
    assert_eq!(local.len(), COUNT, "local message count");
    for i in 1..=COUNT {
        let m = local
            .get(&id(i))
            .unwrap_or_else(|| panic!("message {i} missing locally"));
        assert_eq!(
            normalize(&m.content),
            mail::sample(i),
            "content of message {i}"
        );
        assert_eq!(
            m.flags,
            if i % 2 == 1 { "S" } else { "" },
            "flags of message {i}"
        );
    }
    // Create Both: the server's special-use folders now exist locally.
    for folder in ["Archive", "Drafts", "Junk", "Sent", "Trash"] {
        assert!(
            local_root.join(folder).join("cur").is_dir(),
            "{folder} not created locally"
        );
    }
    assert_converged(&loft, &inbox, COUNT);

    // 2. Nothing changed: nothing may move on either side.
    let (local_files, server_files) = (
        mail::file_list(&local_root),
        mail::file_list(&loft.maildir()),
    );
    let state = read_state(&inbox);
    mbsync(&loft, &rc, "idle");
    assert_eq!(
        mail::file_list(&local_root),
        local_files,
        "idle sync changed local files"
    );
    assert_eq!(
        mail::file_list(&loft.maildir()),
        server_files,
        "idle sync changed server files"
    );
    assert_eq!(read_state(&inbox), state, "idle sync changed the UID state");

    // 3. Changes on both sides.
    let local = read_maildir(&inbox);
    let one = &local[&id(1)];
    assert!(one.file.ends_with(":2,S"), "{}", one.file);
    add_local_flag(&inbox, one, 'F');
    std::fs::remove_file(inbox.join(&local[&id(2)].file)).expect("delete locally");
    // In bulk: flag 100 messages, trash 50 (T = \Deleted, expunged by Expunge Both).
    for i in LOCAL_FLAGGED {
        add_local_flag(&inbox, &local[&id(i)], 'F');
    }
    for i in LOCAL_TRASHED {
        add_local_flag(&inbox, &local[&id(i)], 'T');
    }
    let local_new = "From: Alice <alice@example.com>\nTo: Bob <bob@example.net>\n\
                     Subject: written offline\nMessage-ID: <local-new@example.com>\n\n\
                     Composed in the local Maildir.\n";
    mail::deliver(&inbox, "1800000000.M1P1.offline", local_new, None);
    let server_new = mail::crlf(
        "From: Carol <carol@example.org>\nTo: alice@example.com\n\
         Subject: arrived on the server\nMessage-ID: <server-new@example.org>\n\n\
         Appended by another client.\n",
    );
    let uids = server_inbox(&loft);
    let uid_set = |r: std::ops::Range<usize>| {
        r.map(|i| uids[&id(i)].0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut c = Imap::login(loft.port, USER, PASS);
    c.ok("SELECT INBOX");
    c.ok(&format!(
        "UID STORE {} +FLAGS.SILENT (\\Answered)",
        uids[&id(3)].0
    ));
    c.ok(&format!(
        "UID STORE {} +FLAGS.SILENT (\\Answered)",
        uid_set(SERVER_ANSWERED)
    ));
    c.ok(&format!(
        "UID STORE {} +FLAGS.SILENT (\\Deleted)",
        uid_set(SERVER_EXPUNGED)
    ));
    c.ok("EXPUNGE");
    c.append("INBOX", "\\Seen", server_new.as_bytes());
    c.logout();

    mbsync(&loft, &rc, "after changes");
    let expected = COUNT - 1 - LOCAL_TRASHED.len() - SERVER_EXPUNGED.len() + 2;
    assert_converged(&loft, &inbox, expected);
    let local = read_maildir(&inbox);
    let server = server_inbox(&loft);
    for i in LOCAL_TRASHED.chain(SERVER_EXPUNGED) {
        assert!(!local.contains_key(&id(i)), "message {i} still local");
        assert!(
            !server.contains_key(&id(i)),
            "message {i} still on the server"
        );
    }
    for i in LOCAL_FLAGGED {
        assert!(server[&id(i)].1.contains('F'), "flag of {i} not propagated");
    }
    for i in SERVER_ANSWERED {
        assert!(
            local[&id(i)].flags.contains('R'),
            "\\Answered of {i} not propagated"
        );
    }
    assert!(
        !local.contains_key(&id(2)) && !server.contains_key(&id(2)),
        "deletion not propagated"
    );
    assert_eq!(server[&id(1)].1, "FS", "local flag not propagated");
    assert_eq!(local[&id(3)].flags, "RS", "server flag not propagated");
    assert_eq!(local["<server-new@example.org>"].flags, "S");
    assert_eq!(
        normalize(&local["<server-new@example.org>"].content),
        normalize(server_new.as_bytes())
    );
    let mut c = Imap::login(loft.port, USER, PASS);
    c.ok("EXAMINE INBOX");
    let uid = server["<local-new@example.com>"].0;
    let fetched = c.ok(&format!("UID FETCH {uid} BODY.PEEK[]"));
    let body = fetched
        .iter()
        .find_map(|u| u.literals.first().cloned())
        .expect("BODY[] literal");
    assert_eq!(
        normalize(&body),
        local_new,
        "the locally written message on the server"
    );
    c.logout();

    // 4. Converged: another run moves nothing and keeps every UID pair.
    let (local_files, server_files) = (
        mail::file_list(&local_root),
        mail::file_list(&loft.maildir()),
    );
    let state_before = read_state(&inbox);
    mbsync(&loft, &rc, "final");
    assert_eq!(
        mail::file_list(&local_root),
        local_files,
        "final sync changed local files"
    );
    assert_eq!(
        mail::file_list(&loft.maildir()),
        server_files,
        "final sync changed server files"
    );
    let state_after = read_state(&inbox);
    assert_eq!(
        state_after, state_before,
        "final sync changed the UID state"
    );
    assert_eq!(
        state_after.far_validity, state.far_validity,
        "server UIDVALIDITY changed"
    );
    for (near, far) in &state.pairs {
        if let Some(now) = state_after.pairs.get(near) {
            assert_eq!(now, far, "near UID {near} re-paired");
        }
    }
    assert_eq!(
        state.pairs.len() - 1 - LOCAL_TRASHED.len() - SERVER_EXPUNGED.len(),
        state
            .pairs
            .keys()
            .filter(|n| state_after.pairs.contains_key(n))
            .count(),
        "only the deleted messages' pairs may be gone"
    );
    loft.assert_clean_log();
}
