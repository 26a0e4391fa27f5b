//! Index engine tests: round trips, reopen after every kind of change, compaction,
//! crash simulation on the log, fault injection on each file, concurrency, verify,
//! salvage and rebuild. Timing checks are `#[ignore]`d (`--ignored --nocapture`).

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::*;

fn opts() -> Options {
    Options {
        fsync: FsyncMode::Never,
        ..Options::default()
    }
}

fn fresh(dir: &Path) -> IndexSnapshot {
    let ix = Index::open_unshared(dir, &opts()).unwrap();
    let s = ix.refresh().unwrap();
    (*s).clone()
}

fn log_len(dir: &Path) -> u64 {
    fs::metadata(dir.join(LOG_FILE)).unwrap().len()
}

/// A few transactions of every kind; returns (log length, state) after each commit.
fn populate(ix: &Index) -> Vec<(u64, IndexSnapshot)> {
    let mut out = Vec::new();
    let mut t = ix.begin().unwrap();
    for i in 0..5 {
        assert_eq!(
            t.append(
                format!("msg{i}").as_bytes(),
                0,
                0,
                100 + i,
                1_700_000_000 + i as i64
            ),
            i as u32 + 1
        );
    }
    out.push((0, (*t.commit().unwrap()).clone()));
    let mut t = ix.begin().unwrap();
    let kw = t.keyword_index("$Junk").unwrap();
    assert_eq!(t.keyword_index("$junk"), Some(kw));
    t.set_flags(2, 1 | 4, 1 << kw, true);
    t.set_flags(3, 1 | 4, 1 << kw, true);
    t.set_flags(5, 8, 0, false);
    out.push((0, (*t.commit().unwrap()).clone()));
    let mut t = ix.begin().unwrap();
    t.expunge(3);
    t.set_key(4, b"msg4-renamed");
    t.clear_dirty(2);
    t.set_recent_uid(6);
    out.push((0, (*t.commit().unwrap()).clone()));
    let mut t = ix.begin().unwrap();
    t.append(b"msg5", 1, 0, 5, crate::index::UNKNOWN_DATE);
    out.push((0, (*t.commit().unwrap()).clone()));
    // A date found out later: no modseq change, a vanished uid ignored.
    let mut t = ix.begin().unwrap();
    let modseq = t.snapshot().header.highest_modseq;
    t.set_date(6, 5);
    t.set_date(3, 99);
    let s = t.commit().unwrap();
    assert_eq!(s.get(6).unwrap().internal_date, 5);
    assert_eq!(s.header.highest_modseq, modseq);
    out.push((0, (*s).clone()));
    // A size computed later (appended as unknown): kept, no modseq change.
    let mut t = ix.begin().unwrap();
    t.append(b"msg6", 1, 0, crate::index::UNKNOWN_SIZE, 7);
    let s = t.commit().unwrap();
    assert_eq!(s.get(7).unwrap().size, crate::index::UNKNOWN_SIZE);
    out.push((0, (*s).clone()));
    let mut t = ix.begin().unwrap();
    let modseq = t.snapshot().header.highest_modseq;
    t.set_size(7, 4321);
    t.set_size(3, 1);
    let s = t.commit().unwrap();
    assert_eq!(s.get(7).unwrap().size, 4321);
    assert_eq!(s.header.highest_modseq, modseq);
    out.push((0, (*s).clone()));
    let n = out.len();
    let _ = n;
    out
}

fn populate_with_ends(dir: &Path, ix: &Index) -> Vec<(u64, IndexSnapshot)> {
    let start = log_len(dir);
    let mut v = vec![(start, (*ix.refresh().unwrap()).clone())];
    let states = populate(ix);
    // Recompute each end by replaying: commit sizes are what the log grew by.
    let total = log_len(dir);
    let bytes = fs::read(dir.join(LOG_FILE)).unwrap();
    let sc = log::scan(&bytes[start as usize..], start).unwrap();
    assert_eq!(sc.end, total);
    assert_eq!(sc.txns.len(), states.len());
    for (i, (_, s)) in states.into_iter().enumerate() {
        let end = sc.txns.get(i + 1).map_or(total, |t| t.0);
        v.push((end, s));
    }
    v
}

#[test]
fn round_trip_and_reopen_after_each_change() {
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    assert!(ix.created());
    let states = populate(ix.as_ref());
    let last = &states.last().unwrap().1;
    assert_eq!(
        last.records.iter().map(|r| r.uid).collect::<Vec<_>>(),
        [1, 2, 4, 5, 6, 7]
    );
    let r2 = last.get(2).unwrap();
    assert_eq!((r2.flags, r2.keywords, r2.dirty), (5, 1, false));
    assert_eq!(&*last.get(4).unwrap().key, b"msg4-renamed");
    assert_eq!(last.header.recent_uid, 6);
    assert_eq!(last.header.uid_next, 8);
    assert_eq!(
        (
            last.header.messages,
            last.header.unseen,
            last.header.deleted
        ),
        (6, 3, 1)
    );
    assert_eq!(last.first_unseen(), 1);
    assert_eq!(last.keywords, ["$Junk"]);
    assert_eq!(fresh(d.path()), *last);
    ix.compact().unwrap();
    assert_eq!(fresh(d.path()), *last);
    assert!(
        Index::verify(d.path()).is_empty(),
        "{:?}",
        Index::verify(d.path())
    );
}

#[test]
fn refresh_without_change_is_the_same_snapshot_and_sees_others() {
    let d = tempfile::tempdir().unwrap();
    let a = Index::open_unshared(d.path(), &opts()).unwrap();
    let b = Index::open_unshared(d.path(), &opts()).unwrap();
    let s1 = b.refresh().unwrap();
    assert!(Arc::ptr_eq(&s1, &b.refresh().unwrap()));
    let mut t = a.begin().unwrap();
    t.append(b"x", 0, 0, 1, 1);
    t.commit().unwrap();
    let s2 = b.refresh().unwrap();
    assert_eq!(s2.records.len(), 1);
    assert!(Arc::ptr_eq(&s2, &b.refresh().unwrap()));
    a.compact().unwrap();
    let s3 = b.refresh().unwrap();
    assert_eq!(*s3, *s2);
    let mut t = b.begin().unwrap();
    t.set_flags(1, 1, 0, false);
    t.commit().unwrap();
    assert_eq!(a.refresh().unwrap().records[0].flags, 1);
}

#[test]
fn registry_shares_one_instance() {
    let d = tempfile::tempdir().unwrap();
    let o = opts();
    let a = Index::open(d.path(), &o).unwrap();
    let b = Index::open(&d.path().join("."), &o.clone()).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    // Another storage context (its own `Shared`): its own instance, no process-wide state.
    let other = Index::open(d.path(), &opts()).unwrap();
    assert!(!Arc::ptr_eq(&a, &other));
    drop((a, b, other));
    let c = Index::open(d.path(), &o).unwrap();
    assert!(!c.created());
}

#[test]
fn big_index_compacts_and_flags_encode_compactly() {
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    let mut t = ix.begin().unwrap();
    for i in 0..100_000u32 {
        t.append(
            format!("1700000000.M{i}P1.host").as_bytes(),
            0,
            0,
            2000,
            1_700_000_000,
        );
    }
    let s = t.commit().unwrap();
    assert_eq!(s.header.messages, 100_000);
    // The log passed 1 MiB: it was compacted into generation 2.
    assert_eq!(ix.inner.lock().unwrap().generation(), 2);
    assert_eq!(log_len(d.path()), format::LOG_HEADER_LEN as u64);
    let before = log_len(d.path());
    let mut t = ix.begin().unwrap();
    for uid in 1..=100_000 {
        t.set_flags(uid, 4, 0, true);
    }
    let s = t.commit().unwrap();
    assert!(
        log_len(d.path()) - before < 100,
        "flags on 100k took {} log bytes",
        log_len(d.path()) - before
    );
    assert!(s.records.iter().all(|r| r.flags == 4 && r.dirty));
    assert_eq!(fresh(d.path()), *s);
}

#[test]
fn torn_tail_at_every_cut_reads_the_last_complete_transaction() {
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    let states = populate_with_ends(d.path(), &ix);
    drop(ix);
    let full = fs::read(d.path().join(LOG_FILE)).unwrap();
    for cut in format::LOG_HEADER_LEN..=full.len() {
        fs::write(d.path().join(LOG_FILE), &full[..cut]).unwrap();
        let want = states
            .iter()
            .rev()
            .find(|(end, _)| *end <= cut as u64)
            .unwrap();
        let ix = Index::open_unshared(d.path(), &opts()).unwrap();
        assert_eq!(*ix.refresh().unwrap(), want.1, "cut at {cut}");
        if cut % 7 == 0 || cut == full.len() - 1 {
            // The next writer cuts the torn tail off and appends after it.
            let mut t = ix.begin().unwrap();
            let uid = t.append(b"after-crash", 0, 0, 1, 1);
            let s = t.commit().unwrap();
            assert_eq!(s.records.last().unwrap().uid, uid);
            assert_eq!(fresh(d.path()), *s, "after writing at cut {cut}");
        }
    }
}

/// Applies `damage` to a copy of a populated folder's `file`; the open must fail with
/// `Corrupted` or give exactly a state the files really had; verify must agree; salvage
/// must never invent a key -> uid pair.
fn check_damage(file: &str, damage: &dyn Fn(&mut Vec<u8>) -> bool) -> usize {
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    let states = populate_with_ends(d.path(), &ix);
    if file == INDEX_FILE {
        // Damage an index that holds the records, with an empty log beside it.
        ix.compact().unwrap();
    }
    drop(ix);
    // Damage to the log can at worst look like a crash before some commit (a cut at a
    // record boundary or inside the last commit record is indistinguishable from one):
    // any earlier state is an answer the files really had. The index must be exact.
    let allowed: Vec<IndexSnapshot> = if file == LOG_FILE {
        states.iter().map(|s| s.1.clone()).collect()
    } else {
        vec![states.last().unwrap().1.clone()]
    };
    let known: std::collections::HashMap<Key, u32> = states
        .iter()
        .flat_map(|(_, s)| s.records.iter().map(|r| (r.key.clone(), r.uid)))
        .collect();
    let path = d.path().join(file);
    let orig = fs::read(&path).unwrap();
    let mut corrupted = 0;
    for case in 0.. {
        let mut b = orig.clone();
        if !damage_case(&mut b, case, damage) {
            break;
        }
        fs::write(&path, &b).unwrap();
        match Index::open_unshared(d.path(), &opts()) {
            Ok(ix) => {
                let s = ix.refresh().unwrap();
                assert!(allowed.contains(&s), "case {case}: wrong answer {s:?}");
            }
            Err(Error::Corrupted { .. }) => {
                corrupted += 1;
                assert!(
                    !Index::verify(d.path()).is_empty(),
                    "case {case}: verify found nothing"
                );
            }
            Err(e) => panic!("case {case}: {e}"),
        }
        let sv = Index::salvage(d.path());
        for r in &sv.records {
            assert_eq!(
                known.get(&r.key),
                Some(&r.uid),
                "case {case}: salvage invented {r:?}"
            );
        }
        fs::write(&path, &orig).unwrap();
    }
    corrupted
}

fn damage_case(b: &mut Vec<u8>, case: usize, f: &dyn Fn(&mut Vec<u8>) -> bool) -> bool {
    let _ = case;
    f(b)
}

#[test]
fn fault_injection_index_and_log() {
    for file in [INDEX_FILE, LOG_FILE] {
        // Truncation at many offsets.
        let cuts = std::cell::Cell::new(0usize);
        let n = check_damage(file, &|b| {
            let c = cuts.get();
            cuts.set(c + 3);
            if c >= b.len() {
                return false;
            }
            b.truncate(c);
            true
        });
        if file == INDEX_FILE {
            // Every cut but none at all is detected.
            assert!(n > 150, "{file}: {n}");
        }
        // Flipped bytes (deterministic pseudo-random positions).
        let seed = std::cell::Cell::new(0x9e3779b97f4a7c15u64);
        let count = std::cell::Cell::new(0);
        check_damage(file, &|b| {
            count.set(count.get() + 1);
            if count.get() > 300 {
                return false;
            }
            let x = seed
                .get()
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed.set(x);
            let i = (x >> 33) as usize % b.len();
            b[i] ^= ((x >> 8) as u8) | 1;
            true
        });
        // A zeroed page, at each page of the file (and a zeroed whole file).
        let page = std::cell::Cell::new(0usize);
        check_damage(file, &|b| {
            let p = page.get();
            page.set(p + 64);
            if p > b.len() {
                return false;
            }
            let end = (p + 4096).min(b.len());
            b[p..end].fill(0);
            true
        });
    }
}

#[test]
fn newer_version_swapped_and_deleted_files() {
    let d = tempfile::tempdir().unwrap();
    let o = tempfile::tempdir().unwrap();
    for dir in [d.path(), o.path()] {
        let ix = Index::open_unshared(dir, &opts()).unwrap();
        populate(&ix);
    }
    // Another mailbox's index swapped in.
    let ipath = d.path().join(INDEX_FILE);
    let orig = fs::read(&ipath).unwrap();
    fs::copy(o.path().join(INDEX_FILE), &ipath).unwrap();
    match Index::open_unshared(d.path(), &opts()) {
        Err(Error::Corrupted { what, .. }) => assert!(what.contains("pair id"), "{what}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    fs::write(&ipath, &orig).unwrap();
    // A file from a newer version.
    let mut b = orig.clone();
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    let c = format::crc(&[&b[..124]]);
    b[124..128].copy_from_slice(&c.to_le_bytes());
    fs::write(&ipath, &b).unwrap();
    match Index::open_unshared(d.path(), &opts()) {
        Err(Error::Corrupted { what, .. }) => {
            assert_eq!(what, "version 2 is newer than this Loft (1)")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    fs::write(&ipath, &orig).unwrap();
    // Deleted while in use.
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    let before = ix.refresh().unwrap();
    fs::remove_file(d.path().join(LOG_FILE)).unwrap();
    assert!(matches!(ix.refresh(), Err(Error::Corrupted { .. })));
    assert!(ix.begin().is_err());
    fs::remove_file(&ipath).unwrap();
    assert!(matches!(ix.refresh(), Err(Error::Corrupted { .. })));
    // Salvage is empty but harmless; rebuild from the state brings everything back.
    let rebuilt = Index::rebuild(
        d.path(),
        &opts(),
        before.header,
        before.keywords.clone(),
        before.records.iter().cloned().collect(),
    )
    .unwrap();
    assert_eq!(rebuilt.refresh().unwrap().records, before.records);
    assert_eq!(*ix.refresh().unwrap(), *rebuilt.refresh().unwrap());
    assert!(Index::verify(d.path()).is_empty());
    // Index gone but the log holds changes: corrupted (salvage reads the log).
    let mut t = ix.begin().unwrap();
    t.append(b"late", 0, 0, 1, 1);
    t.commit().unwrap();
    fs::remove_file(&ipath).unwrap();
    assert!(matches!(
        Index::open_unshared(d.path(), &opts()),
        Err(Error::Corrupted { .. })
    ));
    let sv = Index::salvage(d.path());
    assert_eq!(sv.records.len(), 1);
    assert_eq!(&*sv.records[0].key, b"late");
}

#[test]
fn salvage_keeps_uids_around_damage_and_rebuild_renames_aside() {
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    let states = populate(&ix);
    ix.compact().unwrap();
    let mut t = ix.begin().unwrap();
    t.append(b"after-compaction", 2, 0, 9, 9);
    let good = t.commit().unwrap();
    drop(ix);
    let ipath = d.path().join(INDEX_FILE);
    let mut b = fs::read(&ipath).unwrap();
    // Damage the header checksum and the second record.
    b[124] ^= 0xff;
    b[format::INDEX_HEADER_LEN + format::RECORD_LEN + 7] ^= 0x10;
    fs::write(&ipath, &b).unwrap();
    let problems = Index::verify(d.path());
    assert!(!problems.is_empty());
    let sv = Index::salvage(d.path());
    let uids: Vec<u32> = sv.records.iter().map(|r| r.uid).collect();
    // uid 2 (second record) is lost; the log replays on top of the rest.
    assert_eq!(uids, [1, 4, 5, 6, 7, 8]);
    for r in &sv.records {
        assert_eq!(good.get(r.uid).unwrap().key, r.key);
    }
    assert!(matches!(
        Index::open_unshared(d.path(), &opts()),
        Err(Error::Corrupted { .. })
    ));
    let header = Header {
        uid_validity: states[0].1.header.uid_validity,
        uid_next: sv.uid_next.unwrap(),
        ..Header::default()
    };
    let ix = Index::rebuild(
        d.path(),
        &opts(),
        header,
        sv.keywords.clone(),
        sv.records.clone(),
    )
    .unwrap();
    let s = ix.refresh().unwrap();
    assert_eq!(s.header.uid_validity, good.header.uid_validity);
    assert_eq!(s.header.uid_next, 9);
    // The state handed over by the rebuild (not read back) is what the files hold.
    let fresh = Index::open_unshared(d.path(), &opts()).unwrap();
    assert_eq!(*fresh.refresh().unwrap(), *s);
    // And the handed-over instance follows later commits of another instance.
    let mut t = fresh.begin().unwrap();
    t.append(b"from-another", 0, 0, 1, 1);
    t.commit().unwrap();
    assert_eq!(*ix.refresh().unwrap(), *fresh.refresh().unwrap());
    assert_eq!(ix.refresh().unwrap().records.len(), s.records.len() + 1);
    assert!(fs::read_dir(d.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("loft.index.broken-")));
    assert!(Index::verify(d.path()).is_empty());
}

#[test]
fn compaction_crash_states() {
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    let last = populate(&ix).pop().unwrap().1;
    let old_log = fs::read(d.path().join(LOG_FILE)).unwrap();
    let old_index = fs::read(d.path().join(INDEX_FILE)).unwrap();
    ix.compact().unwrap();
    drop(ix);
    // Crash after the new index was renamed, before the new log: the old log is stale.
    fs::write(d.path().join(LOG_FILE), &old_log).unwrap();
    fs::write(d.path().join("loft.index.tmp"), b"half-written garbage").unwrap();
    assert_eq!(fresh(d.path()), last);
    assert!(Index::verify(d.path()).is_empty());
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    let mut t = ix.begin().unwrap();
    t.expunge(1);
    let s = t.commit().unwrap();
    assert_eq!(fresh(d.path()), *s);
    // Crash before the index rename: the old pair is intact.
    fs::write(d.path().join(INDEX_FILE), &old_index).unwrap();
    fs::write(d.path().join(LOG_FILE), &old_log).unwrap();
    assert_eq!(fresh(d.path()), last);
    // A log of a newer generation than the index cannot come from a crash.
    let mut ix2 = fs::read(d.path().join(INDEX_FILE)).unwrap();
    let l = Index::open_unshared(d.path(), &opts()).unwrap();
    l.compact().unwrap();
    let new_log = fs::read(d.path().join(LOG_FILE)).unwrap();
    ix2.truncate(ix2.len());
    fs::write(d.path().join(INDEX_FILE), &old_index).unwrap();
    fs::write(d.path().join(LOG_FILE), &new_log).unwrap();
    match Index::open_unshared(d.path(), &opts()) {
        Err(Error::Corrupted { what, .. }) => {
            assert!(what.contains("newer than index generation"), "{what}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

fn concurrent(method: LockMethod) {
    let d = tempfile::tempdir().unwrap();
    let o = Options {
        lock_method: method,
        log_compact_bytes: 4096,
        ..opts()
    };
    Index::open_unshared(d.path(), &o).unwrap();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let dir = d.path().to_path_buf();
            let o = o.clone();
            std::thread::spawn(move || {
                let ix = Index::open_unshared(&dir, &o).unwrap();
                for i in 0..150u32 {
                    let mut tx = ix.begin().unwrap();
                    let n = tx.snapshot().records.len() as u32;
                    tx.append(format!("t{t}-{i}").as_bytes(), 0, 0, u64::from(n), 0);
                    // Read-modify-write of a shared counter: the first message's size.
                    if let Some(first) = tx.snapshot().records.first() {
                        let (uid, kw) = (first.uid, first.keywords);
                        tx.set_flags(uid, 0, kw + 1, false);
                    }
                    tx.commit().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = fresh(d.path());
    assert_eq!(s.records.len(), 300);
    assert_eq!(s.records.last().unwrap().uid, 300);
    // Every transaction but the very first incremented the counter exactly once.
    assert_eq!(s.records[0].keywords, 299);
    assert!(Index::verify(d.path()).is_empty());
}

#[test]
fn concurrent_writers_lose_nothing_fcntl() {
    concurrent(LockMethod::Fcntl);
}

/// Two storage contexts of one process (each with its own in-process gate) on one
/// folder: the fcntl lock alone must keep them apart, and closing one's descriptor must
/// not drop the other's lock (classic per-process fcntl locks fail both).
#[test]
fn separate_contexts_exclude_each_other_fcntl() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().canonicalize().unwrap();
    let a = Dir::open(&dir).unwrap();
    let b = Dir::open(&dir).unwrap();
    let short = std::time::Duration::from_millis(50);
    let (ga, gb) = (
        Arc::new(lock::Gate::default()),
        Arc::new(lock::Gate::default()),
    );
    let held = lock::acquire(&a, LockMethod::Fcntl, short, &ga, &Default::default()).unwrap();
    assert!(matches!(
        lock::acquire(&b, LockMethod::Fcntl, short, &gb, &Default::default()),
        Err(Error::Locked { .. })
    ));
    // Another descriptor of the lock file opened and closed in this process.
    drop(fs::File::open(dir.join(lock::LOCK_FILE)).unwrap());
    assert!(matches!(
        lock::acquire(&b, LockMethod::Fcntl, short, &gb, &Default::default()),
        Err(Error::Locked { .. })
    ));
    drop(held);
    lock::acquire(&b, LockMethod::Fcntl, short, &gb, &Default::default()).unwrap();
}

/// The lock file is kept open between holders of one index; one removed (or replaced)
/// meanwhile is not locked again as an orphan: the next holder opens the file now at the
/// lock's path, so it still excludes whoever locked that one.
#[test]
fn a_kept_lock_file_removed_meanwhile_is_not_trusted() {
    for method in [LockMethod::Fcntl, LockMethod::Flock] {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        let (a, b) = (Dir::open(&dir).unwrap(), Dir::open(&dir).unwrap());
        let short = std::time::Duration::from_millis(50);
        let (ga, gb) = (
            Arc::new(lock::Gate::default()),
            Arc::new(lock::Gate::default()),
        );
        let kept = lock::KeptLock::default();
        drop(lock::acquire(&a, method, short, &ga, &kept).unwrap());
        let first = kept
            .lock()
            .unwrap()
            .as_ref()
            .map(|(_, id)| *id)
            .expect("kept");
        drop(lock::acquire(&a, method, short, &ga, &kept).unwrap());
        assert_eq!(
            kept.lock().unwrap().as_ref().map(|(_, id)| *id),
            Some(first),
            "{method:?}: reused"
        );
        fs::remove_file(dir.join(lock::LOCK_FILE)).unwrap();
        let other = lock::acquire(&b, method, short, &gb, &Default::default()).unwrap();
        assert!(
            matches!(
                lock::acquire(&a, method, short, &ga, &kept),
                Err(Error::Locked { .. })
            ),
            "{method:?}: the orphan was locked"
        );
        drop(other);
        drop(lock::acquire(&a, method, short, &ga, &kept).unwrap());
        assert_ne!(
            kept.lock().unwrap().as_ref().map(|(_, id)| *id),
            Some(first),
            "{method:?}"
        );
    }
}

#[test]
fn concurrent_writers_lose_nothing_flock() {
    concurrent(LockMethod::Flock);
}

#[test]
fn concurrent_writers_lose_nothing_dotlock_nfs() {
    let d = tempfile::tempdir().unwrap();
    let o = Options {
        nfs: true,
        fsync: FsyncMode::Always,
        ..opts()
    };
    let ix = Index::open_unshared(d.path(), &o).unwrap();
    populate(&ix);
    assert!(!d.path().join(lock::DOTLOCK_FILE).exists());
    concurrent(LockMethod::Dotlock);
}

#[test]
fn stale_dotlock_is_taken_over_and_fresh_one_waits() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().canonicalize().unwrap();
    let lck = dir.join(lock::DOTLOCK_FILE);
    fs::write(&lck, b"1\n").unwrap();
    let held_dir = Dir::open(&dir).unwrap();
    let gate = Arc::new(lock::Gate::default());
    let r = lock::acquire(
        &held_dir,
        LockMethod::Dotlock,
        std::time::Duration::from_millis(50),
        &gate,
        &Default::default(),
    );
    assert!(matches!(r, Err(Error::Locked { .. })));
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    fs::File::options()
        .write(true)
        .open(&lck)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let held = lock::acquire(
        &held_dir,
        LockMethod::Dotlock,
        std::time::Duration::from_millis(50),
        &gate,
        &Default::default(),
    )
    .unwrap();
    drop(held);
    assert!(!lck.exists());
}

#[test]
fn uid_validity_reset_drops_records() {
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    populate(&ix);
    let mut t = ix.begin().unwrap();
    t.append(b"dropped", 0, 0, 1, 1);
    t.reset_uid_validity(4242);
    assert_eq!(t.append(b"first", 0, 0, 1, 1), 1);
    let s = t.commit().unwrap();
    assert_eq!(s.header.uid_validity, 4242);
    assert_eq!(s.records.len(), 1);
    assert_eq!(fresh(d.path()), *s);
}

#[test]
#[ignore]
fn timings_100k() {
    let d = tempfile::tempdir().unwrap();
    let o = Options {
        fsync: FsyncMode::Always,
        ..Options::default()
    };
    let ix = Index::open_unshared(d.path(), &o).unwrap();
    let mut t = ix.begin().unwrap();
    for i in 0..100_000u32 {
        t.append(
            format!("1700000000.M{i}P1.host,S=2000").as_bytes(),
            0,
            0,
            2000,
            1_700_000_000,
        );
    }
    let t0 = Instant::now();
    t.commit().unwrap();
    eprintln!("append 100k in one txn + compaction: {:?}", t0.elapsed());
    drop(ix);
    let t0 = Instant::now();
    let ix = Index::open_unshared(d.path(), &o).unwrap();
    ix.refresh().unwrap();
    eprintln!(
        "open + refresh of a compacted 100k index: {:?}",
        t0.elapsed()
    );
    let t0 = Instant::now();
    for _ in 0..1000 {
        ix.refresh().unwrap();
    }
    eprintln!("refresh without change: {:?}", t0.elapsed() / 1000);
    let t0 = Instant::now();
    let mut t = ix.begin().unwrap();
    for uid in 1..=100_000 {
        t.set_flags(uid, 4, 0, true);
    }
    t.commit().unwrap();
    eprintln!("set flags on 100k + commit (fsync): {:?}", t0.elapsed());
    let t0 = Instant::now();
    let mut t = ix.begin().unwrap();
    t.append(b"one-more", 0, 0, 1, 1);
    t.commit().unwrap();
    eprintln!("append one + commit (fsync): {:?}", t0.elapsed());
    drop(ix);
    let o = Options {
        fsync: FsyncMode::Never,
        ..Options::default()
    };
    let ix = Index::open_unshared(d.path(), &o).unwrap();
    let t0 = Instant::now();
    for i in 0..100 {
        let mut t = ix.begin().unwrap();
        t.append(format!("nosync-{i}").as_bytes(), 0, 0, 1, 1);
        t.commit().unwrap();
    }
    eprintln!(
        "append one + commit (no fsync, 100k index): {:?}",
        t0.elapsed() / 100
    );
}

/// Child half of `two_processes_lose_nothing` (does nothing when run directly).
#[test]
#[ignore]
fn child_writer() {
    let (Some(dir), Some(tag)) = (
        std::env::var_os("LOFT_INDEX_CHILD_DIR"),
        std::env::var("LOFT_INDEX_CHILD_TAG").ok(),
    ) else {
        return;
    };
    let method = match std::env::var("LOFT_INDEX_CHILD_LOCK").as_deref() {
        Ok("flock") => LockMethod::Flock,
        Ok("dotlock") => LockMethod::Dotlock,
        _ => LockMethod::Fcntl,
    };
    let o = Options {
        lock_method: method,
        log_compact_bytes: 4096,
        ..opts()
    };
    let ix = Index::open(Path::new(&dir), &o).unwrap();
    for i in 0..100u32 {
        let mut tx = ix.begin().unwrap();
        tx.append(format!("{tag}-{i}").as_bytes(), 0, 0, 0, 0);
        if let Some(first) = tx.snapshot().records.first() {
            let (uid, kw) = (first.uid, first.keywords);
            tx.set_flags(uid, 0, kw + 1, false);
        }
        tx.commit().unwrap();
    }
}

#[test]
fn two_processes_lose_nothing() {
    let exe = std::env::current_exe().unwrap();
    for method in ["fcntl", "flock", "dotlock"] {
        let d = tempfile::tempdir().unwrap();
        Index::open_unshared(d.path(), &opts()).unwrap();
        let kids: Vec<_> = (0..2)
            .map(|t| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "index::tests::child_writer",
                        "--ignored",
                        "--test-threads=1",
                    ])
                    .env("LOFT_INDEX_CHILD_DIR", d.path())
                    .env("LOFT_INDEX_CHILD_TAG", format!("p{t}"))
                    .env("LOFT_INDEX_CHILD_LOCK", method)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut k in kids {
            assert!(k.wait().unwrap().success(), "{method}: child failed");
        }
        let s = fresh(d.path());
        assert_eq!(s.records.len(), 200, "{method}");
        assert_eq!(s.records[0].keywords, 199, "{method}: lost update");
        assert!(Index::verify(d.path()).is_empty());
    }
}

/// Child half of `kill_9_during_appends_and_compactions` (does nothing when run directly):
/// commits forever, printing each uid once its commit returned.
#[test]
#[ignore]
fn child_crasher() {
    let Some(dir) = std::env::var_os("LOFT_INDEX_CRASH_DIR") else {
        return;
    };
    let o = Options {
        fsync: FsyncMode::Always,
        log_compact_bytes: 2048,
        ..Options::default()
    };
    let ix = Index::open(Path::new(&dir), &o).unwrap();
    let mut out = std::io::stdout();
    loop {
        let mut t = ix.begin().unwrap();
        let next = t.snapshot().header.uid_next;
        let uid = t.append(format!("crash-{next}").as_bytes(), 0, 0, 0, 0);
        assert_eq!(uid, next);
        if uid > 1 {
            t.set_flags(uid - 1, 1, 0, false);
        }
        t.commit().unwrap();
        use std::io::Write;
        writeln!(out, "{uid}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_during_appends_and_compactions() {
    use std::io::BufRead;
    let exe = std::env::current_exe().unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut done = 0u32;
    for round in 0..4 {
        let mut kid = std::process::Command::new(&exe)
            .args([
                "--exact",
                "index::tests::child_crasher",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LOFT_INDEX_CRASH_DIR", d.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(kid.stdout.take().unwrap()).lines();
        let target = 20 + round * 17;
        let mut seen = 0;
        while seen < target {
            let l = lines.next().unwrap().unwrap();
            if let Ok(uid) = l.trim().parse::<u32>() {
                done = done.max(uid);
                seen += 1;
            }
        }
        kid.kill().unwrap();
        kid.wait().unwrap();
        let s = match Index::open_unshared(d.path(), &opts()) {
            Ok(ix) => ix.refresh().unwrap(),
            Err(e) => panic!("round {round}: {e}"),
        };
        // Every commit that returned is there, in order, with its key.
        assert!(
            s.records.len() as u32 >= done,
            "round {round}: {} < {done}",
            s.records.len()
        );
        for (i, r) in s.records.iter().enumerate() {
            assert_eq!(r.uid, i as u32 + 1);
            assert_eq!(&*r.key, format!("crash-{}", r.uid).as_bytes());
        }
        assert!(
            Index::verify(d.path()).is_empty(),
            "{:?}",
            Index::verify(d.path())
        );
    }
}

#[test]
#[ignore]
fn timings_decode_breakdown() {
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    let mut t = ix.begin().unwrap();
    for i in 0..100_000u32 {
        t.append(
            format!("1700000000.M{i}P1.host,S=2000").as_bytes(),
            0,
            0,
            2000,
            1_700_000_000,
        );
    }
    t.commit().unwrap();
    let b = fs::read(d.path().join(INDEX_FILE)).unwrap();
    let t0 = Instant::now();
    let f = format::decode_index(&b).unwrap();
    eprintln!("decode_index: {:?}", t0.elapsed());
    let t0 = Instant::now();
    let _ = format::crc(&[&b]);
    eprintln!("crc of whole file ({} bytes): {:?}", b.len(), t0.elapsed());
    let t0 = Instant::now();
    let keys: Vec<Key> = f.records.iter().map(|r| r.key.clone()).collect();
    eprintln!("100k key boxes: {:?}", t0.elapsed());
    drop(keys);
    let t0 = Instant::now();
    drop(f);
    eprintln!("drop: {:?}", t0.elapsed());
}

/// Damage done in place (same inode) to the files of an open index, as another program
/// truncating or rewriting them: the next refresh rewrites the pair from the state in
/// memory, and a write made right after is read back by a new instance.
#[test]
fn damage_in_place_while_open_is_healed_from_memory() {
    use std::os::unix::fs::FileExt;
    type Damage = fn(&fs::File, u64);
    let cases: Vec<(&str, &str, Damage)> = vec![
        (LOG_FILE, "truncated to 0", |f, _| f.set_len(0).unwrap()),
        (LOG_FILE, "truncated in the header", |f, _| {
            f.set_len(20).unwrap()
        }),
        (LOG_FILE, "truncated to the header", |f, _| {
            f.set_len(40).unwrap()
        }),
        (LOG_FILE, "truncated mid-log", |f, n| {
            f.set_len(n / 2).unwrap()
        }),
        (LOG_FILE, "last byte cut", |f, n| f.set_len(n - 1).unwrap()),
        (LOG_FILE, "header garbled", |f, _| {
            f.write_all_at(b"\xff\xff", 18).unwrap()
        }),
        (LOG_FILE, "first record garbled", |f, _| {
            f.write_all_at(b"\xff\xff", 46).unwrap()
        }),
        (LOG_FILE, "last commit garbled", |f, n| {
            f.write_all_at(b"\xff", n - 2).unwrap()
        }),
        (INDEX_FILE, "truncated to 0", |f, _| f.set_len(0).unwrap()),
        (INDEX_FILE, "truncated mid-records", |f, _| {
            f.set_len(200).unwrap()
        }),
        (INDEX_FILE, "record garbled", |f, _| {
            f.write_all_at(b"\xff", 130).unwrap()
        }),
        (INDEX_FILE, "extended with zeros", |f, n| {
            f.set_len(n + 4096).unwrap()
        }),
    ];
    for (file, what, damage) in cases {
        let d = tempfile::tempdir().unwrap();
        let ix = Index::open_unshared(d.path(), &opts()).unwrap();
        populate(&ix);
        if file == INDEX_FILE {
            ix.compact().unwrap();
            let mut t = ix.begin().unwrap();
            t.set_flags(1, 2, 0, true);
            t.commit().unwrap();
        }
        let before = (*ix.refresh().unwrap()).clone();
        // A clock tick later: a rewrite at the same length shows in the ctime.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let path = d.path().join(file);
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        damage(&f, f.metadata().unwrap().len());
        drop(f);
        let now = ix
            .refresh()
            .unwrap_or_else(|e| panic!("{file} {what}: {e}"));
        assert_eq!(*now, before, "{file} {what}: state changed");
        let mut t = ix.begin().unwrap();
        t.set_flags(4, 4, 0, true);
        let after = (*t.commit().unwrap()).clone();
        assert_eq!(after.get(4).unwrap().flags, 4, "{file} {what}");
        drop(ix);
        assert!(
            Index::verify(d.path()).is_empty(),
            "{file} {what}: {:?}",
            Index::verify(d.path())
        );
        assert_eq!(fresh(d.path()), after, "{file} {what}: lost across reopen");
    }
}

/// On a file system stamping ctime from a coarse clock, a rewrite in the same tick as the
/// last append leaves size and ctime as they were: the log is then checked by content
/// until its ctime is old enough to prove anything.
#[test]
fn rewrite_in_the_same_clock_tick_is_found_by_content() {
    use std::os::unix::fs::FileExt;
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    populate(&ix);
    let before = (*ix.refresh().unwrap()).clone();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(d.path().join(LOG_FILE))
        .unwrap();
    f.write_all_at(b"\xff\xff", 50).unwrap();
    drop(f);
    ix.inner.lock().unwrap().hide_log_ctime_change(d.path());
    assert_eq!(*ix.refresh().unwrap(), before);
    let mut t = ix.begin().unwrap();
    t.set_flags(1, 4, 0, true);
    let after = (*t.commit().unwrap()).clone();
    drop(ix);
    assert_eq!(
        fresh(d.path()),
        after,
        "the write after the damage was lost"
    );
}

/// Every file of a directory: name -> (bytes, mtime).
fn files_of(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>, std::time::SystemTime)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            (
                e.file_name(),
                fs::read(e.path()).unwrap(),
                m.modified().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The folder directory renamed away after the index was opened and a link to another
/// user's folder put in its place (issue 10, containment): refresh, commit, compaction
/// and cache reads and writes all stay in the original directory, found through the
/// descriptor held since the open; the other folder is untouched, byte for byte.
#[test]
fn folder_swapped_for_a_link_after_open_reaches_nothing_else() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join(".A"), root.path().join(".B"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    {
        // Bob's folder: an index with messages and a cached envelope.
        let ix = Index::open_unshared(&b, &opts()).unwrap();
        populate(&ix);
        assert_eq!(ix.cache().get(5, "imap.envelope", 5), None);
        ix.cache().offer(5, "imap.envelope", b"bob's envelope", 5);
        ix.cache().flush().unwrap();
    }
    let before = files_of(&b);
    let ix = Index::open_unshared(&a, &opts()).unwrap();
    let mut t = ix.begin().unwrap();
    t.append(b"a1", 0, 0, 1, 1);
    t.commit().unwrap();
    assert_eq!(ix.cache().get(5, "imap.envelope", 5), None);
    ix.cache().flush().unwrap();

    let moved = root.path().join(".A-moved");
    fs::rename(&a, &moved).unwrap();
    std::os::unix::fs::symlink(".B", &a).unwrap();

    assert_eq!(ix.refresh().unwrap().records.len(), 1);
    let mut t = ix.begin().unwrap();
    t.append(b"a2", 0, 0, 2, 2);
    assert_eq!(t.commit().unwrap().records.len(), 2);
    ix.cache().refresh().unwrap();
    assert_eq!(ix.cache().get(5, "imap.envelope", 5), None);
    ix.cache().offer(5, "imap.envelope", b"alice's envelope", 5);
    ix.cache().flush().unwrap();
    ix.compact().unwrap();
    drop(ix);

    assert!(files_of(&b) == before, "the other folder's files changed");
    let s = fresh(&moved);
    let keys: Vec<&[u8]> = s.records.iter().map(|r| &*r.key).collect();
    assert_eq!(keys, [&b"a1"[..], b"a2"]);
    let c = cache::Cache::open(&moved, &opts()).unwrap();
    assert_eq!(
        c.get(5, "imap.envelope", 5).as_deref(),
        Some(&b"alice's envelope"[..])
    );
}

/// A folder path that is a link, or a name under which another directory is found than
/// the one opened, is refused (`ELOOP`) rather than bound to an index.
#[test]
fn folder_path_that_is_a_link_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let b = root.path().join(".B");
    fs::create_dir(&b).unwrap();
    let link = root.path().join(".A");
    std::os::unix::fs::symlink(".B", &link).unwrap();
    for r in [
        Index::open(&link, &opts()).map(drop),
        Index::open_unshared(&link, &opts()).map(drop),
        cache::Cache::open(&link, &opts()).map(drop),
    ] {
        match r {
            Err(Error::Io { err, .. }) => assert_eq!(err.raw_os_error(), Some(libc::ELOOP)),
            Err(e) => panic!("{e}"),
            Ok(()) => panic!("a folder that is a link was opened"),
        }
    }
    assert_eq!(
        fs::read_dir(&b).unwrap().count(),
        0,
        "files made through the link"
    );
    // An intermediate link is resolved: the index binds to the real directory.
    let via = root.path().join("via");
    std::os::unix::fs::symlink(root.path(), &via).unwrap();
    let ix = Index::open_unshared(&via.join(".B"), &opts()).unwrap();
    assert_eq!(ix.dir(), fs::canonicalize(&b).unwrap());
    assert!(b.join(INDEX_FILE).exists());
}

/// Dir::open's identity check: a descriptor and a path naming different directories
/// are refused.
#[test]
fn dir_bound_to_its_path_by_inode() {
    let root = tempfile::tempdir().unwrap();
    let a = root.path().join("a");
    fs::create_dir(&a).unwrap();
    let d = Dir::open(&a).unwrap();
    assert_eq!(d.path(), fs::canonicalize(&a).unwrap());
    assert_eq!(d.file(INDEX_FILE), d.path().join(INDEX_FILE));
    // Names with a slash or dot-dot never leave the directory.
    for bad in ["../x", "x/y", "..", ".", ""] {
        let e = d.open_ro(bad).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
    }
}

/// A small mailbox changed all the time: its log is compacted once it is much bigger
/// than the index (every write compares a racy log whole), long before
/// `log_compact_bytes`; nothing is lost on the way.
#[test]
fn a_log_much_bigger_than_its_index_is_compacted() {
    let d = tempfile::tempdir().unwrap();
    let ix = Index::open_unshared(d.path(), &opts()).unwrap();
    populate(&ix);
    for k in 0..3000u32 {
        let mut t = ix.begin().unwrap();
        t.set_flags(1 + k % 5, (k % 2) as u8, 0, true);
        t.commit().unwrap();
    }
    let log = log_len(d.path());
    assert!(log <= (64 << 10) + 4096, "log of {log} bytes not compacted");
    let want = (*ix.refresh().unwrap()).clone();
    drop(ix);
    assert_eq!(fresh(d.path()), want);
}

/// Two users of one instance (sessions of one folder): the first refresh finds the log
/// truncated in place and goes for the write lock to heal it; a second refresh in between
/// must not take the shorter log as the truth (it loads cleanly: a truncated log reads as
/// a torn tail), or committed changes are lost before the heal. Found by
/// `index_faults::disk_changes_under_sessions_never_kill_the_server` in CI.
#[test]
fn refresh_between_finding_damage_and_healing_it_loses_nothing() {
    type Cut = (&'static str, fn(u64) -> u64);
    let cuts: [Cut; 3] = [
        ("to the header", |_| format::LOG_HEADER_LEN as u64),
        ("mid-log", |n| n / 2),
        ("last byte", |n| n - 1),
    ];
    for (what, cut) in cuts {
        let d = tempfile::tempdir().unwrap();
        let ix = Index::open_unshared(d.path(), &opts()).unwrap();
        populate(&ix);
        let before = (*ix.refresh().unwrap()).clone();
        let f = fs::OpenOptions::new()
            .write(true)
            .open(d.path().join(LOG_FILE))
            .unwrap();
        f.set_len(cut(f.metadata().unwrap().len())).unwrap();
        drop(f);
        // The first user finds the damage (and would now wait for the write lock).
        let found = {
            let mut inner = ix.inner.lock().unwrap();
            state::refresh(&ix.dir, &ix.opts, &mut inner)
        };
        assert!(found.is_err(), "{what}: damage not found");
        // The second user refreshes before the heal.
        let second = {
            let mut inner = ix.inner.lock().unwrap();
            state::refresh(&ix.dir, &ix.opts, &mut inner)
        };
        if let Ok(s) = &second {
            assert_eq!(
                **s, before,
                "{what}: a refresh before the heal lost changes"
            );
        }
        // Both go on through the public path: healed once, nothing lost.
        assert_eq!(*ix.refresh().unwrap(), before, "{what}");
        assert_eq!(*ix.refresh().unwrap(), before, "{what}");
        drop(ix);
        assert_eq!(fresh(d.path()), before, "{what}: lost across reopen");
    }
}

/// A rebuild takes records in any order (sorted on the way in), refuses a UID given
/// twice and the UIDs 0 and `u32::MAX`, and stores only the flag bits the format has.
#[test]
fn rebuild_checks_and_orders_its_records() {
    let d = tempfile::tempdir().unwrap();
    let rec = |uid: u32, flags: u8| Record {
        uid,
        flags,
        dirty: false,
        keywords: 0,
        modseq: 1,
        size: 10,
        internal_date: 0,
        key: Key::new(format!("k{uid}").as_bytes()),
    };
    let header = Header {
        uid_validity: 7,
        uid_next: 1,
        ..Header::default()
    };
    let rebuild = |v: Vec<Record>| Index::rebuild(d.path(), &opts(), header, Vec::new(), v);
    let many: Vec<Record> = (1..=600).rev().map(|u| rec(u, 0xff)).collect();
    let ix = rebuild(many).unwrap();
    let snap = ix.refresh().unwrap();
    let uids: Vec<u32> = snap.records.iter().map(|r| r.uid).collect();
    assert_eq!(uids, (1..=600).collect::<Vec<_>>());
    assert!(snap.records.iter().all(|r| r.flags == format::FLAG_MASK));
    assert_eq!(snap.header.uid_next, 601);
    drop(ix);
    for bad in [
        vec![rec(3, 0), rec(1, 0), rec(3, 0)],
        vec![rec(0, 0), rec(1, 0)],
        vec![rec(1, 0), rec(u32::MAX, 0)],
    ] {
        assert!(matches!(rebuild(bad), Err(Error::Invalid { .. })));
    }
}

/// `refresh_seen` with a caller's `lstat`s: those that show the files as this instance
/// read them answer without looking again; newer ones, and older ones (taken before this
/// instance's own last commit), are looked at again: never a stale answer taken for
/// damage, never a change missed once the caller looks again.
#[test]
fn refresh_with_the_callers_stats() {
    let d = tempfile::tempdir().unwrap();
    let seen = || Seen {
        index: crate::beneath::lstat_at(&dirfd(d.path()), INDEX_FILE.as_ref()).unwrap(),
        log: crate::beneath::lstat_at(&dirfd(d.path()), LOG_FILE.as_ref()).unwrap(),
    };
    let a = Index::open_unshared(d.path(), &opts()).unwrap();
    let b = Index::open_unshared(d.path(), &opts()).unwrap();
    populate(&a);
    let first = a.refresh().unwrap();
    let old = seen();
    assert!(Arc::ptr_eq(&a.refresh_seen(Some(&old)).unwrap(), &first));
    // Another instance commits: stats from before that still describe what `a` read.
    let mut t = b.begin().unwrap();
    t.set_flags(1, 4, 0, true);
    t.commit().unwrap();
    assert!(Arc::ptr_eq(&a.refresh_seen(Some(&old)).unwrap(), &first));
    let now = a.refresh_seen(Some(&seen())).unwrap();
    assert_eq!(now.get(1).unwrap().flags, 4);
    // Our own commit moves past the caller's old stats: looked at again, no damage.
    let mut t = a.begin().unwrap();
    t.set_flags(2, 4, 0, true);
    let mine = t.commit().unwrap();
    let pair = seen();
    let again = a.refresh_seen(Some(&old)).unwrap();
    assert_eq!(*again, *mine);
    assert_eq!(seen(), pair, "taken for damage and rewritten");
    assert!(Index::verify(d.path()).is_empty());
}

fn dirfd(p: &Path) -> std::os::fd::OwnedFd {
    crate::beneath::open_dir_nofollow(p).unwrap()
}

/// The shared instance of a folder is handed out again only while the folder's path
/// still names that very directory: a folder renamed away and replaced gets an index of
/// its own (the old instance, still held, keeps to the old directory).
#[test]
fn a_replaced_folder_gets_its_own_shared_index() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().canonicalize().unwrap().join("f");
    fs::create_dir(&path).unwrap();
    let o = opts();
    let old = Index::open(&path, &o).unwrap();
    populate(&old);
    let n = old.refresh().unwrap().records.len();
    assert!(n > 0);
    let again = Index::open(&path, &o).unwrap();
    assert!(Arc::ptr_eq(&old, &again), "same folder, same instance");
    fs::rename(&path, d.path().join("moved")).unwrap();
    fs::create_dir(&path).unwrap();
    let new = Index::open(&path, &o).unwrap();
    assert!(!Arc::ptr_eq(&old, &new));
    assert_eq!(new.refresh().unwrap().records.len(), 0);
    assert_eq!(old.refresh().unwrap().records.len(), n);
    assert!(Arc::ptr_eq(&Index::open(&path, &o).unwrap(), &new));
}

/// UIDVALIDITYs handed out through one set of options only grow, also within one second
/// (a folder rebuilt or replaced in the second it was made gets a greater one), and two
/// storage contexts keep their own counters (no process-wide state).
#[test]
fn fresh_uid_validities_never_repeat() {
    let shared = Shared::default();
    let (a, b, c) = (
        shared.fresh_uid_validity(),
        shared.fresh_uid_validity(),
        shared.fresh_uid_validity(),
    );
    assert!(a >= 1 && b > a && c > b, "{a} {b} {c}");
    assert!(
        Shared::default().fresh_uid_validity() <= a,
        "another context starts at the clock"
    );
}
