//! End-to-end tests of the Maildir backend through the `Store`/`Mailbox` traits: shared
//! helpers here, store-level tests in `layout`, message-level tests in `messages`.

mod containment;
mod flagsync;
mod fsync;
mod keywords;
mod layout;
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
    }
}

pub(super) fn store(dir: &Path) -> (Arc<dyn Store>, PathBuf) {
    let s = super::open_store(&cfg(dir), "bob", None).unwrap();
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
