//! Keyword letters and `dovecot-keywords` under faults: a lost file, a file that cannot be
//! written.

use super::*;
use crate::mailbox::{Flags, StoreOp};

fn kw(name: &str) -> Flags {
    let mut f = Flags::default();
    f.add_keyword(name);
    f
}

/// The keyword letters (`a`–`z`) of every file in `cur/`.
fn letters_in_cur(root: &Path) -> Vec<String> {
    files_in(&root.join("cur"))
        .into_iter()
        .map(|n| {
            let info = n.split_once(":2,").map(|(_, i)| i).unwrap_or("");
            info.chars().filter(|c| c.is_ascii_lowercase()).collect()
        })
        .collect()
}

#[test]
fn lost_keywords_file_letter_is_not_reused() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    for _ in 0..2 {
        append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    }
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    m.store(&[1], StoreOp::Add, &kw("$Work")).unwrap();
    std::fs::remove_file(root.join("dovecot-keywords")).unwrap();
    m.sync().unwrap();
    // STORE: `a` is still in UID 1's name, so $Other must get another letter.
    m.store(&[2], StoreOp::Add, &kw("$Other")).unwrap();
    // APPEND and COPY allocate the same way.
    let (_, u3) = append(&*s, "INBOX", b"y\r\n", kw("$Appended"), None);
    let snap = m.sync().unwrap().snapshot;
    let flags = |u: u32| {
        snap.messages
            .iter()
            .find(|x| x.uid == u)
            .map(|x| x.flags.keywords.clone())
            .unwrap()
    };
    assert!(flags(1).is_empty(), "UID 1 got {:?}", flags(1));
    assert_eq!(flags(2), vec!["$Other".to_string()]);
    assert_eq!(flags(u3), vec!["$Appended".to_string()]);
    let file = std::fs::read_to_string(root.join("dovecot-keywords")).unwrap();
    assert_eq!(file, "1 $Other\n2 $Appended\n");
}

#[test]
fn keywords_file_is_written_before_any_file_gets_the_letter() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store(d.path());
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    // A directory in its place: every rewrite of dovecot-keywords fails.
    std::fs::create_dir(root.join("dovecot-keywords")).unwrap();
    assert!(m.store(&[1], StoreOp::Add, &kw("$Work")).is_err());
    assert_eq!(letters_in_cur(&root), vec![String::new()]);
    let mut sink = s.append("INBOX").unwrap();
    sink.write(b"y\r\n").unwrap();
    assert!(sink.commit(&kw("$Work"), None).is_err());
    // The refused message is not in cur/ with a nameless letter (nor anywhere else).
    assert_eq!(letters_in_cur(&root), vec![String::new()]);
    assert!(files_in(&root.join("tmp")).is_empty());
    // Flag changes without new keywords still work.
    m.store(&[1], StoreOp::Add, &seen()).unwrap();
}
