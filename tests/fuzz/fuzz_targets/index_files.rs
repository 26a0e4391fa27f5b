//! Fuzzes the index engine's readers: arbitrary bytes as `loft.index` and
//! `loft.index.log` (raw, or as patches/cuts of a valid pair) must give `Ok` or
//! `Error::Corrupted` from open/refresh/commit, a list from verify and a salvage —
//! never a panic, never a hang.

#![no_main]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use loft::index::{FsyncMode, Index, Options, INDEX_FILE, LOG_FILE};

static N: AtomicU64 = AtomicU64::new(0);

fn opts() -> Options {
    Options { fsync: FsyncMode::Never, ..Options::default() }
}

/// A valid pair with records both in the main index and in the log.
fn valid_pair(dir: &PathBuf) {
    let ix = Index::open_unshared(dir, &opts()).expect("create");
    let mut t = ix.begin().expect("begin");
    for i in 0..4u32 {
        t.append(format!("key{i}").as_bytes(), (i % 32) as u8, 0, 10, 10);
    }
    let kw = t.keyword_index("$Label1").unwrap_or(0);
    t.set_flags(2, 1, 1 << kw, true);
    t.commit().expect("commit");
    ix.compact().expect("compact");
    let mut t = ix.begin().expect("begin");
    t.expunge(1);
    t.append(b"late", 0, 0, 1, 1);
    t.set_flags(3, 4, 0, false);
    t.commit().expect("commit");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let dir = std::env::temp_dir().join(format!("loft-fuzz-index-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let (ipath, lpath) = (dir.join(INDEX_FILE), dir.join(LOG_FILE));
    match mode % 3 {
        0 => {
            let split = rest.first().map_or(0, |&b| b as usize * rest.len() / 255);
            let _ = std::fs::write(&ipath, &rest[..split]);
            let _ = std::fs::write(&lpath, &rest[split..]);
        }
        1 => {
            valid_pair(&dir);
            let mut ib = std::fs::read(&ipath).unwrap_or_default();
            let mut lb = std::fs::read(&lpath).unwrap_or_default();
            for p in rest.chunks_exact(3) {
                let off = u16::from_le_bytes([p[0], p[1]]) as usize;
                let f = if off & 1 == 0 { &mut ib } else { &mut lb };
                let len = f.len().max(1);
                if let Some(b) = f.get_mut((off >> 1) % len) {
                    *b ^= p[2];
                }
            }
            let _ = std::fs::write(&ipath, &ib);
            let _ = std::fs::write(&lpath, &lb);
        }
        _ => {
            valid_pair(&dir);
            let cut = |b: &[u8]| b.iter().fold(0usize, |a, &x| a.wrapping_mul(31).wrapping_add(x as usize));
            let (ib, lb) = (std::fs::read(&ipath).unwrap_or_default(), std::fs::read(&lpath).unwrap_or_default());
            let (h, l) = rest.split_at(rest.len() / 2);
            let _ = std::fs::write(&ipath, &ib[..cut(h) % (ib.len() + 1)]);
            let _ = std::fs::write(&lpath, &lb[..cut(l) % (lb.len() + 1)]);
        }
    }
    if let Ok(ix) = Index::open_unshared(&dir, &opts()) {
        let _ = ix.refresh();
        if let Ok(mut t) = ix.begin() {
            t.append(b"fuzz", 0, 0, 1, 1);
            t.expunge(2);
            let _ = t.commit();
        }
        let _ = ix.refresh();
    }
    let _ = Index::verify(&dir);
    let s = Index::salvage(&dir);
    for w in s.records.windows(2) {
        assert!(w[0].uid < w[1].uid, "salvage records out of order");
    }
    let _ = std::fs::remove_dir_all(&dir);
});
