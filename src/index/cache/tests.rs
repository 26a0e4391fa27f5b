use super::*;
use crate::index::FsyncMode;
use crate::index::LockMethod;
use std::time::Instant;

const DAY: u32 = 20_000;

fn opts() -> Options {
    Options {
        fsync: FsyncMode::Never,
        lock_method: LockMethod::Flock,
        nfs: false,
        log_compact_bytes: 1 << 20,
        cache_drop_days: 30,
        ..Options::default()
    }
}

fn ok<T>(r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{}", describe(&e)),
    }
}

fn open(dir: &Path) -> Cache {
    let c = ok(Cache::open(dir, &opts()));
    c.set_day(Some(DAY));
    c
}

fn info(c: &Cache, name: &str) -> Option<FieldInfo> {
    c.decisions().into_iter().find(|f| f.name == name)
}

fn env(uid: u32) -> Vec<u8> {
    format!("(\"envelope of {uid}\")").into_bytes()
}

/// A client pattern fetching ENVELOPE of new mail only, then once of old mail, then the
/// 30-day drop of a field nobody uses any more.
#[test]
fn decisions_follow_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    // Never asked for: not stored.
    c.offer(5, "imap.envelope", &env(5), 10);
    assert!(info(&c, "imap.envelope").is_none());
    assert!(!c.wants(5, "imap.envelope", 10));

    // New mail 10 fetched: Temp from uid 10.
    assert_eq!(c.get(10, "imap.envelope", 10), None);
    let f = info(&c, "imap.envelope").unwrap();
    assert_eq!(
        (f.decision, f.temp_since_uid, f.last_used_day),
        (Decision::Temp, 10, DAY)
    );
    c.offer(10, "imap.envelope", &env(10), 10);
    for uid in 11..=13 {
        assert_eq!(c.get(uid, "imap.envelope", uid), None);
        c.offer(uid, "imap.envelope", &env(uid), uid);
    }
    ok(c.flush());
    let f = info(&c, "imap.envelope").unwrap();
    assert_eq!((f.decision, f.records), (Decision::Temp, 4));
    assert_eq!(c.get(12, "imap.envelope", 13), Some(env(12)));

    // A Temp field stores what is offered for old mail too, but compaction keeps only
    // new mail's values of it.
    let uids: Vec<u32> = (1..=13).collect();
    assert!(c
        .get_many(&uids[..], "imap.bodystructure", 13)
        .iter()
        .all(Option::is_none));
    assert_eq!(
        info(&c, "imap.bodystructure").unwrap().decision,
        Decision::Temp
    );
    assert!(c.wants(4, "imap.bodystructure", 13));
    for &u in &uids {
        c.offer(u, "imap.bodystructure", b"bs", 13);
    }
    assert_eq!(info(&c, "imap.bodystructure").unwrap().records, 13);
    assert_eq!(
        c.get(13, "imap.bodystructure", 13).as_deref(),
        Some(&b"bs"[..])
    );
    ok(c.compact(&|_| true, DAY));
    let f = info(&c, "imap.bodystructure").unwrap();
    assert_eq!(
        (f.decision, f.records),
        (Decision::Temp, 1),
        "only uid 13 kept"
    );

    // A later lookup of old mail makes it Yes: every value is kept from then on, and
    // missing ones are back-filled as offered.
    assert_eq!(c.get(3, "imap.bodystructure", 13), None);
    assert_eq!(
        info(&c, "imap.bodystructure").unwrap().decision,
        Decision::Yes
    );
    c.offer(3, "imap.bodystructure", b"bs", 13);
    ok(c.compact(&|_| true, DAY));
    assert_eq!(
        c.get(3, "imap.bodystructure", 13).as_deref(),
        Some(&b"bs"[..])
    );
    assert_eq!(c.get(3, "imap.envelope", 13), None);
    assert_eq!(info(&c, "imap.envelope").unwrap().decision, Decision::Yes);
    c.offer(3, "imap.envelope", &env(3), 13);
    assert_eq!(c.get(3, "imap.envelope", 13), Some(env(3)));

    // A field used 40 days ago is dropped at compaction, the others kept.
    c.set_day(Some(DAY - 40));
    c.get(13, "hdr", 13);
    c.offer(13, "hdr", b"Subject: x", 13);
    c.set_day(Some(DAY));
    ok(c.flush());
    assert_eq!(info(&c, "hdr").unwrap().last_used_day, DAY - 40);
    ok(c.compact(&|_| true, DAY));
    assert!(info(&c, "hdr").is_none());
    assert_eq!(c.get(13, "imap.envelope", 13), Some(env(13)));
    drop(c);
    // The drop survives a reopen; asking again starts over at Temp.
    let c = open(dir.path());
    assert!(info(&c, "hdr").is_none());
    assert_eq!(info(&c, "imap.envelope").unwrap().decision, Decision::Yes);
    assert_eq!(c.get(13, "hdr", 13), None);
    assert_eq!(info(&c, "hdr").unwrap().decision, Decision::Temp);
}

#[test]
fn values_and_decisions_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = open(dir.path());
        c.get(1, "a", 100); // uid < newest: Temp(100); same call does not promote
        c.get(1, "a", 100); // now Yes
        for uid in 1..=100 {
            c.offer(uid, "a", format!("v{uid}").as_bytes(), 100);
        }
        c.offer(7, "a", b"newer", 100); // later value wins
        ok(c.flush());
        c.offer(8, "a", b"written on drop", 100);
    }
    let c = open(dir.path());
    let f = info(&c, "a").unwrap();
    assert_eq!((f.decision, f.records), (Decision::Yes, 100));
    assert_eq!(c.get(7, "a", 100).as_deref(), Some(&b"newer"[..]));
    assert_eq!(c.get(8, "a", 100).as_deref(), Some(&b"written on drop"[..]));
    assert_eq!(c.get(99, "a", 100).as_deref(), Some(&b"v99"[..]));
    // Values over the limit are not cached.
    c.offer(50, "a", &vec![1; MAX_VALUE + 1], 100);
    assert_eq!(c.get(50, "a", 100).as_deref(), Some(&b"v50"[..]));
}

#[test]
fn compaction_drops_expunged_uids_and_shrinks_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    c.get(1, "f", 2);
    c.get(1, "f", 2);
    for round in 0..3 {
        for uid in 1..=200 {
            c.offer(uid, "f", format!("{round}-{uid:0>50}").as_bytes(), 200);
        }
        ok(c.flush());
    }
    let before = std::fs::metadata(c.path()).unwrap().len();
    ok(c.compact(&|uid| uid % 2 == 0, DAY));
    let after = std::fs::metadata(c.path()).unwrap().len();
    assert!(after * 3 < before, "{after} vs {before}");
    assert_eq!(c.get(3, "f", 200), None);
    assert_eq!(
        c.get(4, "f", 200),
        Some(format!("2-{:0>50}", 4).into_bytes())
    );
    assert_eq!(info(&c, "f").unwrap().records, 100);
    drop(c);
    let c = open(dir.path());
    assert_eq!(info(&c, "f").unwrap().records, 100);
    assert_eq!(
        c.get(200, "f", 200),
        Some(format!("2-{:0>50}", 200).into_bytes())
    );
}

#[test]
fn uid_validity_change_drops_values_keeps_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    ok(c.bind_uid_validity(7));
    c.get(1, "f", 5);
    c.get(1, "f", 5);
    c.offer(1, "f", b"x", 5);
    ok(c.flush());
    ok(c.bind_uid_validity(7));
    assert_eq!(c.get(1, "f", 5), Some(b"x".to_vec()));
    ok(c.bind_uid_validity(8));
    assert_eq!(c.uid_validity(), 8);
    assert_eq!(c.get(1, "f", 5), None);
    assert_eq!(info(&c, "f").unwrap().decision, Decision::Yes);
}

fn filled(dir: &Path) -> Vec<u8> {
    let c = open(dir);
    c.get(1, "imap.envelope", 2);
    c.get(1, "imap.envelope", 2);
    c.get(1, "hdr", 2);
    c.get(1, "hdr", 2);
    for uid in 1..=40 {
        c.offer(uid, "imap.envelope", &env(uid), 40);
        c.offer(uid, "hdr", format!("h{uid}").as_bytes(), 40);
    }
    ok(c.flush());
    drop(c);
    std::fs::read(dir.join(FILE_NAME)).unwrap()
}

/// Opens damaged bytes: either `Corrupted`, or a cache whose every answer is a value
/// that was really stored for that uid (a valid prefix). Then rebuild works.
fn check_damaged(dir: &Path, bytes: &[u8]) {
    std::fs::write(dir.join(FILE_NAME), bytes).unwrap();
    match Cache::open(dir, &opts()) {
        Ok(c) => {
            for uid in 1..=40 {
                if let Some(v) = c.get(uid, "imap.envelope", 40) {
                    assert_eq!(v, env(uid));
                }
                if let Some(v) = c.get(uid, "hdr", 40) {
                    assert_eq!(v, format!("h{uid}").into_bytes());
                }
            }
            c.offer(41, "imap.envelope", &env(41), 41);
            if let Err(e) = c.flush() {
                assert!(matches!(e, Error::Corrupted { .. }), "{}", describe(&e));
            }
        }
        Err(Error::Corrupted { .. }) => {
            let c = ok(Cache::rebuild_empty(dir, &opts()));
            assert_eq!(c.get(1, "imap.envelope", 40), None);
            c.get(1, "x", 2);
            c.offer(2, "x", b"y", 2);
            ok(c.flush());
            drop(c);
            assert_eq!(open(dir).get(2, "x", 2), Some(b"y".to_vec()));
        }
        Err(e) => panic!("{}", describe(&e)),
    }
}

#[test]
fn truncation_at_every_offset_is_torn_tail_or_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let good = filled(dir.path());
    let start = (32 + 2 * 4096) as usize;
    for cut in (0..good.len()).step_by(7) {
        check_damaged(dir.path(), &good[..cut]);
        if cut > start + 100 {
            // Past the header, a cut is a torn tail: it opens with a prefix of the values.
            std::fs::write(dir.path().join(FILE_NAME), &good[..cut]).unwrap();
            let c = open(dir.path());
            assert_eq!(c.get(1, "imap.envelope", 40), Some(env(1)));
        }
    }
}

#[test]
fn flipped_bytes_and_zeroed_pages_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = filled(dir.path());
    let mut seed = 0x1234_5678_u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let mut b = good.clone();
        let at = (rnd() % b.len() as u64) as usize;
        b[at] ^= 1 << (rnd() % 8);
        check_damaged(dir.path(), &b);
    }
    for page in 0..good.len().div_ceil(4096) {
        let mut b = good.clone();
        let end = ((page + 1) * 4096).min(b.len());
        b[page * 4096..end].fill(0);
        check_damaged(dir.path(), &b);
    }
    // A flipped byte inside a record in the middle is reported as corruption.
    let mut b = good.clone();
    b[32 + 2 * 4096 + 12] ^= 0xff;
    std::fs::write(dir.path().join(FILE_NAME), &b).unwrap();
    assert!(matches!(
        Cache::open(dir.path(), &opts()),
        Err(Error::Corrupted { .. })
    ));
    check_damaged(dir.path(), b"garbage");
    check_damaged(dir.path(), &[]);
}

#[test]
fn torn_tail_is_ignored_then_cut_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = filled(dir.path());
    let len = b.len() as u64;
    b.extend_from_slice(&[7, 0, 0, 0, 0, 0, 200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(dir.path().join(FILE_NAME), &b).unwrap();
    let c = open(dir.path());
    assert_eq!(c.get(40, "imap.envelope", 40), Some(env(40)));
    c.offer(41, "imap.envelope", &env(41), 41);
    ok(c.flush());
    drop(c);
    let size = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
    assert_eq!(size, len + format::record_len(env(41).len() as u32));
    let c = open(dir.path());
    assert_eq!(c.get(41, "imap.envelope", 41), Some(env(41)));
}

#[test]
fn newer_version_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = filled(dir.path());
    b[8] = 9;
    let crc = crc32fast::hash(&b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(dir.path().join(FILE_NAME), &b).unwrap();
    match Cache::open(dir.path(), &opts()) {
        Err(Error::Corrupted { what, .. }) => assert!(what.contains("newer"), "{what}"),
        _ => panic!("newer version accepted"),
    }
    let c = ok(Cache::rebuild_empty(dir.path(), &opts()));
    assert!(c.decisions().is_empty());
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".broken-"))
        .count();
    assert_eq!(aside, 1);
}

#[test]
fn rebuild_keeps_decisions_when_the_header_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = filled(dir.path());
    let n = b.len();
    b[n - 30] ^= 0x55; // damage a record, not the header
    b.extend_from_slice(&[1; 64]);
    std::fs::write(dir.path().join(FILE_NAME), &b).unwrap();
    assert!(Cache::open(dir.path(), &opts()).is_err());
    let c = ok(Cache::rebuild_empty(dir.path(), &opts()));
    assert_eq!(info(&c, "hdr").unwrap().decision, Decision::Yes);
    assert_eq!(info(&c, "hdr").unwrap().records, 0);
}

#[test]
fn two_handles_in_threads_append_and_read() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let threads: Vec<_> = (0..2u32)
        .map(|t| {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let c = open(&dir);
                let field = format!("f{t}");
                c.get(1, &field, 2);
                c.get(1, &field, 2);
                c.get(1, "shared", 2);
                c.get(1, "shared", 2);
                for round in 0..20u32 {
                    for i in 0..25u32 {
                        let uid = round * 25 + i + 1;
                        c.offer(uid, &field, format!("{t}:{uid}").as_bytes(), uid);
                        c.offer(uid, "shared", format!("s{uid}").as_bytes(), uid);
                    }
                    ok(c.flush());
                    ok(c.refresh());
                    if round == 10 && t == 0 {
                        ok(c.compact(&|_| true, DAY));
                    }
                    for uid in 1..=round * 25 {
                        let got = c.get(uid, "shared", 500);
                        assert!(got.is_none() || got == Some(format!("s{uid}").into_bytes()));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = open(dir.path());
    for t in 0..2 {
        let f = info(&c, &format!("f{t}")).unwrap();
        assert_eq!((f.decision, f.records), (Decision::Yes, 500), "f{t}");
        assert_eq!(
            c.get(321, &format!("f{t}"), 500),
            Some(format!("{t}:321").into_bytes())
        );
    }
    assert_eq!(info(&c, "shared").unwrap().records, 500);
}

#[test]
fn nfs_mode_reads_without_a_map() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let o = Options {
        nfs: true,
        ..opts()
    };
    let c = ok(Cache::open(dir.path(), &o));
    assert_eq!(c.get(33, "hdr", 40), Some(b"h33".to_vec()));
}

/// Timing of the FETCH 1:* path and of open on 100,000 records of ~300 bytes (debug
/// build of this crate; dependencies optimized).
#[test]
fn timing_get_many_and_open_100k() {
    let dir = tempfile::tempdir().unwrap();
    let n = 100_000u32;
    let value = vec![b'e'; 300];
    {
        let c = open(dir.path());
        c.get(1, "imap.envelope", 1);
        c.get(1, "imap.envelope", n);
        for uid in 1..=n {
            c.offer(uid, "imap.envelope", &value, n);
        }
        ok(c.flush());
    }
    // Best of 5: the build machine is shared.
    let (mut open_ms, mut get_ms, mut with_ms, mut look_ms) =
        (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let uids: Vec<u32> = (1..=n).collect();
    let mut c = None;
    for _ in 0..5 {
        drop(c.take());
        let t = Instant::now();
        let cache = open(dir.path());
        open_ms = open_ms.min(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let got = cache.get_many(&uids, "imap.envelope", n);
        get_ms = get_ms.min(t.elapsed().as_secs_f64() * 1e3);
        assert!(got.iter().all(|v| v.as_deref() == Some(&value[..])));
        let mut out = Vec::with_capacity(32 << 20);
        let t = Instant::now();
        cache.get_many_with(&uids, "imap.envelope", n, &mut |_, v| {
            out.extend_from_slice(v.unwrap_or(b"NIL"));
        });
        with_ms = with_ms.min(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(out.len(), 300 * n as usize);
        let mut sum = 0usize;
        let t = Instant::now();
        cache.get_many_with(&uids, "imap.envelope", n, &mut |_, v| {
            sum += v.map_or(0, |v| usize::from(v[0]) + v.len());
        });
        look_ms = look_ms.min(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(sum, (300 + usize::from(b'e')) * n as usize);
        c = Some(cache);
    }
    let Some(c) = c else { return };
    let size = std::fs::metadata(c.path()).unwrap().len();
    eprintln!(
        "cache timing: open {open_ms:.1} ms ({size} bytes), get_many 100k {get_ms:.1} ms, \
         get_many_with into one buffer {with_ms:.1} ms, lookups only {look_ms:.1} ms"
    );
    assert!(open_ms < 2000.0 && get_ms < 2000.0);
}

#[test]
fn a_deleted_file_is_recreated_with_the_decisions() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    let c = open(dir.path());
    assert_eq!(c.get(2, "hdr", 40), Some(b"h2".to_vec()));
    std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
    ok(c.refresh());
    assert_eq!(c.get(2, "hdr", 40), None);
    assert_eq!(info(&c, "hdr").unwrap().decision, Decision::Yes);
    c.offer(2, "hdr", b"again", 40);
    ok(c.flush());
    drop(c);
    let c = open(dir.path());
    assert_eq!(c.get(2, "hdr", 40), Some(b"again".to_vec()));
}

/// The body of the `index_cache` fuzz target, over mutations of a real file.
fn fuzz_one(dir: &Path, data: &[u8]) {
    std::fs::write(dir.join(FILE_NAME), data).unwrap();
    let o = Options {
        nfs: data.len() % 2 == 1,
        ..opts()
    };
    let c = match Cache::open(dir, &o) {
        Ok(c) => c,
        Err(_) => ok(Cache::rebuild_empty(dir, &o)),
    };
    for f in c.decisions() {
        let _ = c.get_many(&[1, 2, 3, u32::MAX], &f.name, 10);
    }
    c.get(5, "imap.envelope", 5);
    c.get(1, "imap.envelope", 5);
    c.offer(6, "imap.envelope", b"value", 6);
    let _ = c.flush();
    let _ = c.compact(&|uid| uid % 2 == 0, DAY);
    drop(c);
    let _ = Cache::open(dir, &o);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn mutated_files_never_panic(
        edits in proptest::collection::vec((0usize..20_000, proptest::prelude::any::<u8>()), 0..8),
        cut in 0usize..20_000,
        junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut b = filled(dir.path());
        for (at, v) in edits {
            let n = b.len();
            b[at % n] = v;
        }
        b.truncate(cut.max(1));
        b.extend_from_slice(&junk);
        fuzz_one(dir.path(), &b);
        fuzz_one(dir.path(), &junk);
    }
}

#[test]
fn damage_found_after_open_is_healed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let good = filled(dir.path());
    let c = open(dir.path());
    assert_eq!(c.get(3, "hdr", 40), Some(b"h3".to_vec()));
    // Another "process" appends garbage followed by more data: corruption in the middle.
    let mut b = good.clone();
    b.extend_from_slice(&[9; 40]);
    b.extend_from_slice(&good[good.len() - 20..]);
    std::fs::write(dir.path().join(FILE_NAME), &b).unwrap();
    ok(c.refresh());
    assert_eq!(c.get(3, "hdr", 40), None);
    assert_eq!(info(&c, "hdr").unwrap().decision, Decision::Yes);
    c.offer(3, "hdr", b"h3", 40);
    ok(c.flush());
    drop(c);
    assert_eq!(open(dir.path()).get(3, "hdr", 40), Some(b"h3".to_vec()));
    // open_or_rebuild on a damaged file gives a usable empty cache.
    std::fs::write(dir.path().join(FILE_NAME), b"LOFTCCH\0garbage").unwrap();
    let c = ok(Cache::open_or_rebuild(dir.path(), &opts()));
    assert!(c.decisions().is_empty());
}

#[test]
fn a_field_table_outgrowing_its_slot_moves_to_a_bigger_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let names: Vec<String> = (0..300).map(|i| format!("hdr.{i:0>200}")).collect();
    for (i, name) in names.iter().enumerate() {
        let uid = i as u32 + 1;
        c.get(uid, name, uid);
        c.offer(uid, name, name.as_bytes(), uid);
        if i % 50 == 0 {
            ok(c.flush());
        }
    }
    assert_eq!(c.get(1, "hdr", 1), None);
    let too_long = "x".repeat(256);
    assert_eq!(c.get(1, &too_long, 1), None);
    drop(c);
    let c = open(dir.path());
    assert_eq!(c.decisions().len(), 301);
    assert!(info(&c, &too_long).is_none());
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            c.get(i as u32 + 1, name, 300).as_deref(),
            Some(name.as_bytes())
        );
    }
}

/// Another program truncating or rewriting the cache file while it is open: lookups
/// return the intact values or misses (never garbage, never a crash: the file is read,
/// not mapped), and the damaged file is replaced once by an empty one.
#[test]
fn file_truncated_or_rewritten_while_open() {
    use std::os::unix::fs::FileExt;
    for case in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        let uids: Vec<u32> = (1..=300).collect();
        // Asked twice: `Yes`, every value kept.
        c.get_many(&uids, "imap.envelope", 300);
        c.get_many(&uids, "imap.envelope", 300);
        for &u in &uids {
            c.offer(u, "imap.envelope", &env(u), 300);
        }
        ok(c.flush());
        let path = dir.path().join(FILE_NAME);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        match case {
            0 => f.set_len(len / 2).unwrap(),
            1 => f.set_len(0).unwrap(),
            2 => f.write_all_at(b"XXXX", len - 400).unwrap(),
            _ => f.write_all_at(b"X", len / 2).unwrap(),
        }
        let mut hits = 0;
        c.get_many_with(&uids, "imap.envelope", 300, &mut |i, v| {
            if let Some(v) = v {
                assert_eq!(v, env(uids[i]), "case {case}: uid {}", uids[i]);
                hits += 1;
            }
        });
        assert!(hits < uids.len(), "case {case}: damage not seen");
        // Healed: an empty file of the same decisions, values offered again are kept.
        let f = info(&c, "imap.envelope").unwrap();
        assert_eq!(f.decision, Decision::Yes, "case {case}");
        assert_eq!(c.get(7, "imap.envelope", 300), None, "case {case}");
        c.offer(7, "imap.envelope", &env(7), 300);
        ok(c.flush());
        assert_eq!(open(dir.path()).get(7, "imap.envelope", 300), Some(env(7)));
    }
}

/// A cache bigger than the scan window (4 MiB) is indexed window by window, records
/// straddling a window boundary included.
#[test]
fn big_file_is_scanned_in_windows() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path());
    let uids: Vec<u32> = (1..=12).collect();
    c.get_many(&uids, "big", 12);
    c.get_many(&uids, "big", 12);
    let value = |u: u32| vec![u as u8; 700_000 + u as usize];
    for &u in &uids {
        c.offer(u, "big", &value(u), 12);
    }
    ok(c.flush());
    drop(c);
    let c = open(dir.path());
    for &u in &uids {
        assert_eq!(c.get(u, "big", 12), Some(value(u)), "uid {u}");
    }
}

/// The index opens its cache lazily: header and field table at open, the records at
/// the first use (a SELECT that needs only flags never reads them). Values are there
/// when asked for; damage among the records found then is healed as damage found later.
#[test]
fn a_lazy_open_indexes_the_records_at_the_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let good = filled(dir.path());
    let lazy = |dir: &Path| {
        let c = ok(Cache::open_or_rebuild(dir, &opts()));
        c.set_day(Some(DAY));
        c
    };
    let c = lazy(dir.path());
    assert!(
        c.lock_unscanned().unscanned.is_some(),
        "nothing indexed at open"
    );
    let _ = c.uid_validity();
    ok(c.refresh());
    ok(c.flush());
    assert!(
        c.lock_unscanned().unscanned.is_some(),
        "header-only calls index nothing"
    );
    assert_eq!(c.get(3, "hdr", 40), Some(b"h3".to_vec()));
    assert_eq!(c.get(7, "imap.envelope", 40), Some(env(7)));
    assert!(c.lock_unscanned().unscanned.is_none());
    drop(c);
    // Garbage in the middle: eager open refuses it, the lazy one heals it at first use.
    let mut b = good.clone();
    b.extend_from_slice(&[9; 40]);
    b.extend_from_slice(&good[good.len() - 20..]);
    std::fs::write(dir.path().join(FILE_NAME), &b).unwrap();
    assert!(matches!(
        Cache::open(dir.path(), &opts()),
        Err(Error::Corrupted { .. })
    ));
    let c = lazy(dir.path());
    assert_eq!(c.get(3, "hdr", 40), None, "healed: an empty file");
    assert_eq!(
        info(&c, "hdr").unwrap().decision,
        Decision::Yes,
        "decisions kept"
    );
    assert_ne!(std::fs::read(dir.path().join(FILE_NAME)).unwrap(), b);
    c.offer(3, "hdr", b"h3", 40);
    ok(c.flush());
    drop(c);
    assert_eq!(lazy(dir.path()).get(3, "hdr", 40), Some(b"h3".to_vec()));
}
