//! Test messages and Maildir helpers: deterministic sample messages (plain, UTF-8,
//! multipart with a base64 attachment), delivery into a Maildir the way an MTA does it,
//! and reading a Maildir back as (message-id, flags, content) for comparisons.

use std::collections::BTreeMap;
use std::path::Path;

/// Message number `i` with LF line ends, as an MTA writes it into a Maildir.
pub fn sample(i: usize) -> String {
    let mut m = format!(
        "Return-Path: <sender{i}@example.org>\n\
         From: Sender {i} <sender{i}@example.org>\n\
         To: Alice <alice@example.com>\n\
         Subject: Interop message {i}\n\
         Date: Mon, 2 Jan 2006 15:{:02}:05 -0700\n\
         Message-ID: <interop-{i}@example.org>\n\
         MIME-Version: 1.0\n",
        i % 60
    );
    if i % 10 == 3 {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n\
             This is a MIME message.\n\
             --b{i}\n\
             Content-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit\n\n\
             Grüße aus Nummer {i}.\n\
             --b{i}\n\
             Content-Type: application/octet-stream; name=\"blob{i}.bin\"\n\
             Content-Disposition: attachment; filename=\"blob{i}.bin\"\n\
             Content-Transfer-Encoding: base64\n\n\
             AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\n\
             --b{i}--\n"
        ));
    } else {
        m.push_str("Content-Type: text/plain; charset=utf-8\n\n");
        m.push_str(&format!("Hello {i}, this is the body.\n"));
        for k in 0..(i % 7) {
            m.push_str(&format!(
                "Line {k} of message {i}: {}\n",
                "x".repeat(k * 11)
            ));
        }
    }
    m
}

/// `text` with CRLF line ends (what goes over IMAP).
pub fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// Content normalised for comparing across stores: LF line ends, and without the
/// `X-TUID` header mbsync inserts into messages it propagates.
pub fn normalize(content: &[u8]) -> String {
    let text = String::from_utf8_lossy(content).replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    let mut in_header = true;
    for line in text.split_inclusive('\n') {
        if in_header && line == "\n" {
            in_header = false;
        }
        if in_header && line.to_ascii_lowercase().starts_with("x-tuid:") {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Delivers `content` into `maildir` as an MTA would (tmp/, then rename). With `flags`
/// `Some("S")` the file goes to cur/ with the `:2,S` info suffix, else to new/.
pub fn deliver(maildir: &Path, name: &str, content: &str, flags: Option<&str>) {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("maildir dirs");
    }
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, content).expect("write tmp");
    let dest = match flags {
        Some(f) => maildir.join("cur").join(format!("{name}:2,{f}")),
        None => maildir.join("new").join(name),
    };
    std::fs::rename(&tmp, dest).expect("rename into maildir");
}

/// One message file of a Maildir folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirMsg {
    /// `cur/NAME` or `new/NAME`.
    pub file: String,
    /// The Maildir flag letters after `:2,` (sorted), "" when none.
    pub flags: String,
    pub content: Vec<u8>,
}

/// Every message of a Maildir folder (cur/ and new/), keyed by Message-ID.
pub fn read_maildir(dir: &Path) -> BTreeMap<String, MaildirMsg> {
    let mut out = BTreeMap::new();
    for sub in ["cur", "new"] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd {
            let e = e.expect("dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let content = std::fs::read(e.path()).expect("read message");
            let mut flags: Vec<char> = name
                .rsplit_once(":2,")
                .map(|(_, f)| f.chars().collect())
                .unwrap_or_default();
            flags.sort();
            let id = crate::imap::message_id(&header_block(&content));
            let prev = out.insert(
                id.clone(),
                MaildirMsg {
                    file: format!("{sub}/{name}"),
                    flags: flags.into_iter().collect(),
                    content,
                },
            );
            assert!(
                prev.is_none(),
                "two messages with Message-ID {id} in {}",
                dir.display()
            );
        }
    }
    out
}

/// The names of every file under cur/ and new/ of every folder below `root` (sorted):
/// any transfer, flag change or expunge changes this list.
pub fn file_list(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Some(parent) = p.parent().and_then(|d| d.file_name()) {
            if parent == "cur" || parent == "new" {
                out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
            }
        }
    }
}

fn header_block(content: &[u8]) -> String {
    let text = String::from_utf8_lossy(content).replace("\r\n", "\n");
    text.split("\n\n").next().unwrap_or_default().to_string()
}
