//! The fsync policy per mode, checked through the directories each operation fsyncs
//! (recorded per thread by `fsio::sync_dir` in test builds).

use super::*;
use crate::mailbox::{Flags, StoreOp};

use super::super::fsio::take_synced_dirs;

fn store_with(dir: &Path, fsync: FsyncMode) -> (Arc<dyn Store>, PathBuf) {
    let c = StorageConfig { fsync, ..cfg(dir) };
    super::store_of(&c, dir)
}

fn canon(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths
        .into_iter()
        .map(|p| p.canonicalize().unwrap_or(p))
        .collect()
}

#[test]
fn optimized_makes_new_and_copied_mail_durable() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store_with(d.path(), FsyncMode::Optimized);
    s.create("Dest", None).unwrap();
    let root = root.canonicalize().unwrap();
    take_synced_dirs();
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let synced = canon(take_synced_dirs());
    // The tmp/ -> cur/ rename (the index log append is fsynced by the index engine).
    assert!(synced.contains(&root.join("cur")), "APPEND: {synced:?}");

    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    take_synced_dirs();
    m.copy_to(&[1], "Dest").unwrap();
    let synced = canon(take_synced_dirs());
    let dest = root.join(".Dest");
    assert!(synced.contains(&dest.join("cur")), "COPY: {synced:?}");

    // Flag renames are what `optimized` may leave unsynced.
    take_synced_dirs();
    m.store(&[1], StoreOp::Add, &seen()).unwrap();
    let synced = canon(take_synced_dirs());
    assert!(!synced.contains(&root.join("cur")), "STORE: {synced:?}");
}

#[test]
fn always_syncs_flag_renames_and_never_syncs_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (s, root) = store_with(d.path(), FsyncMode::Always);
    let root = root.canonicalize().unwrap();
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    take_synced_dirs();
    m.store(&[1], StoreOp::Add, &seen()).unwrap();
    // The flag is durable in the index log; the rename happens at the last close.
    drop(m);
    assert!(canon(take_synced_dirs()).contains(&root.join("cur")));

    let d = tempfile::tempdir().unwrap();
    let (s, _) = store_with(d.path(), FsyncMode::Never);
    take_synced_dirs();
    append(&*s, "INBOX", b"x\r\n", Flags::default(), None);
    let mut m = s.open("INBOX", false).unwrap();
    m.sync().unwrap();
    m.store(&[1], StoreOp::Add, &seen()).unwrap();
    assert!(take_synced_dirs().is_empty());
}
