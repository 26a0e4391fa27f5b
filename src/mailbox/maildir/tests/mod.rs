//! End-to-end tests of the Maildir backend through the `Store`/`Mailbox` traits: shared
//! helpers here, store-level tests in `layout`, message-level tests in `messages`.

mod containment;
mod flagsync;
mod fsync;
mod keywords;
mod layout;
mod memory;
mod messages;
mod racy;
mod scale;
mod uidlist;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{FsyncMode, StorageConfig, StorageFormat};
use crate::mailbox::{Flags, Store, SysFlags};

pub(super) fn cfg(dir: &Path) -> StorageConfig {
    StorageConfig {
        format: StorageFormat::Maildir,
        location: format!("{}/mail/%u", dir.display()),
        fsync: FsyncMode::Never,
        autocreate_special_use: true,
        lock_method: crate::index::LockMethod::Fcntl,
        nfs: false,
        maildir_flag_sync: Default::default(),
        cache_drop_days: 30,
        inbox: None,
        mbox: Default::default(),
    }
}

pub(super) fn store(dir: &Path) -> (Arc<dyn Store>, PathBuf) {
    store_of(&cfg(dir), dir)
}

/// bob's store under `c` (a session's), and his Maildir root in `dir`.
pub(super) fn store_of(c: &StorageConfig, dir: &Path) -> (Arc<dyn Store>, PathBuf) {
    let s = super::open_store(
        &super::StorageCtx::new(c),
        "bob",
        None,
        crate::mailbox::userlock::Mode::Session,
    )
    .unwrap();
    (s, dir.join("mail/bob"))
}

pub(super) fn append(
    s: &dyn Store,
    mbox: &str,
    body: &[u8],
    flags: Flags,
    date: Option<i64>,
) -> (u32, u32) {
    let mut sink = s.append(mbox).unwrap();
    for chunk in body.chunks(7) {
        sink.write(chunk).unwrap();
    }
    sink.commit(&flags, date).unwrap()
}

/// `n` small messages (`m0`, `m1`, …) APPENDed to INBOX.
pub(super) fn append_n(s: &dyn Store, n: usize) {
    for i in 0..n {
        append(
            s,
            "INBOX",
            format!("m{i}\r\n").as_bytes(),
            Flags::default(),
            None,
        );
    }
}

pub(super) fn names(s: &dyn Store) -> Vec<(String, bool, bool)> {
    let mut v: Vec<_> = s
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.noselect, e.has_children))
        .collect();
    v.sort();
    v
}

/// Whether message `i` of `snap` has `\\Seen`.
pub(super) fn is_seen(snap: &crate::mailbox::Snapshot, i: usize) -> bool {
    snap.messages
        .get(i)
        .unwrap()
        .flags
        .sys
        .contains(SysFlags::SEEN)
}

pub(super) fn seen() -> Flags {
    Flags {
        sys: SysFlags::SEEN,
        keywords: vec![],
    }
}

pub(super) fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// No process-wide mutable state in the Maildir backend or the index engine: what
/// sessions share lives in the storage context ([`super::StorageCtx`]), passed
/// explicitly. Allowed: counters that only make names unique (a temp file, a delivery),
/// the host name read once, and thread-local test hooks.
#[test]
fn no_process_wide_state_in_maildir_and_index() {
    let allowed = [
        "static TMP_COUNTER: AtomicU64",
        "static COUNTER: AtomicU64",
        "static COUNTER: std::sync::atomic::AtomicU64",
        "static HOST: OnceLock<String>",
        "pub static SYNCED_DIRS:",
        "pub static FAIL_COMMIT:",
    ];
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut stack = vec![top.join("mailbox/maildir"), top.join("index")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("").trim();
                let is_static = code.starts_with("static ") || code.starts_with("pub static ");
                if is_static && !allowed.iter().any(|a| code.starts_with(a)) {
                    found.push(format!("{}:{}: {code}", p.display(), i + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "process-wide state: {found:#?}");
}
