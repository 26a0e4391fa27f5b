//! Opens arbitrary bytes as `loft.index.cache`: open must either fail with an error or give
//! a cache that answers, accepts values, flushes, compacts and reopens without a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loft::config::FsyncMode;
use loft::index::cache::{Cache, FILE_NAME};
use loft::index::{LockMethod, Options};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile_dir() else { return };
    let opts = Options {
        fsync: FsyncMode::Never,
        lock_method: LockMethod::Flock,
        nfs: data.first().is_some_and(|b| b & 1 == 1),
        log_compact_bytes: 1 << 20,
        cache_drop_days: 30,
        ..Options::default()
    };
    if std::fs::write(dir.join(FILE_NAME), data).is_err() {
        return;
    }
    let cache = match Cache::open(&dir, &opts) {
        Ok(c) => c,
        Err(_) => match Cache::rebuild_empty(&dir, &opts) {
            Ok(c) => c,
            Err(_) => return,
        },
    };
    for f in cache.decisions() {
        let _ = cache.get_many(&[1, 2, 3, u32::MAX], &f.name, 10);
    }
    cache.get(5, "imap.envelope", 5);
    cache.get(1, "imap.envelope", 5);
    cache.offer(6, "imap.envelope", b"value", 6);
    let _ = cache.flush();
    let _ = cache.compact(&|uid| uid % 2 == 0, 20_000);
    drop(cache);
    let _ = Cache::open(&dir, &opts);
    let _ = std::fs::remove_dir_all(&dir);
});

/// A fresh directory under the system temp dir (no dev-dependencies in fuzz targets).
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("loft-fuzz-cache-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
