//! Rewrites in place stopped after each checkpoint, in the middle of a chunk, with the
//! bytes not yet forced to disk garbled (a power loss) or a checkpoint torn, in both
//! directions: recovery always ends exactly as planned, keeps mail appended after the
//! interruption, and survives being interrupted itself.

use super::super::tests::{corpus, leftovers, mbox, name, plan_for, planned, rw, Mbox};
use super::super::{apply, recover, recover_until, run as rewrite, Piece, Plan, Recovered, Stop};
use super::*;
use crate::mailbox::mbox::scan::scan_all;

/// Toward the start: the second message's `X-UID` one byte shorter (gaps of one byte:
/// staged), then every third message from the fifth on expunged (gaps of every size).
pub(in crate::mailbox::mbox) fn left_plan(file: &[u8]) -> Plan {
    let len = file.len() as u64;
    let mails = scan_all(file, len).unwrap();
    let uid = mails[1].hidden[0].clone();
    let mut line = file[uid.start as usize..uid.end as usize].to_vec();
    line.remove(6); // "X-UID: 2\n" -> "X-UID:2\n"
    let mut pieces = vec![Piece::Bytes(line)];
    let mut at = uid.end;
    for (i, m) in mails.iter().enumerate().skip(4) {
        if i % 3 == 1 {
            pieces.push(Piece::Keep(at..m.from));
            at = m.next.unwrap_or(len);
        }
    }
    pieces.push(Piece::Keep(at..len));
    Plan {
        offset: uid.start,
        pieces,
        rest: None,
        lazy: false,
    }
}

/// Toward the end: a field added to every message from the second on, and 53 KB of them
/// to the ninth (small gaps before it, large ones after).
pub(in crate::mailbox::mbox) fn right_plan(file: &[u8]) -> Plan {
    let len = file.len() as u64;
    let mails = scan_all(file, len).unwrap();
    let offset = mails[1].header;
    let (mut pieces, mut at) = (Vec::new(), offset);
    for (i, m) in mails.iter().enumerate().skip(1) {
        pieces.push(Piece::Keep(at..m.header));
        let mut f = format!("X-Added: {i}\n").into_bytes();
        if i == 8 {
            for k in 0..1000 {
                f.extend_from_slice(format!("X-Big: {k:045}\n").as_bytes());
            }
        }
        pieces.push(Piece::Bytes(f));
        at = m.header;
    }
    pieces.push(Piece::Keep(at..len));
    Plan {
        offset,
        pieces,
        rest: None,
        lazy: false,
    }
}

/// A field added to the second message, a larger message after it expunged: kept pieces
/// move both ways.
fn mixed_plan(file: &[u8]) -> Plan {
    let len = file.len() as u64;
    let mails = scan_all(file, len).unwrap();
    let big = (3..mails.len())
        .find(|&i| mails[i].next.unwrap_or(len) - mails[i].from > 1000)
        .unwrap();
    let offset = mails[1].header;
    Plan {
        offset,
        pieces: vec![
            Piece::Bytes(b"X-Added: yes\n".to_vec()),
            Piece::Keep(offset..mails[big].from),
            Piece::Keep(mails[big].next.unwrap()..len),
        ],
        rest: None,
        lazy: false,
    }
}

fn journal_mode(m: &Mbox) -> String {
    let j = std::fs::read_to_string(m.path.with_file_name(".box.loft-rewrite.journal")).unwrap();
    let line = j.lines().find(|l| l.starts_with("mode ")).unwrap();
    line["mode ".len()..].to_string()
}

#[test]
fn plans_that_move_one_way_are_moved_in_place() {
    let old = corpus(16);
    for (plan, mode) in [
        (left_plan(&old), "moves"),
        (right_plan(&old), "moves"),
        (plan_for(&old), "moves"),
        (mixed_plan(&old), "range"),
    ] {
        let want = planned(&old, &plan);
        let m = mbox(&old);
        rewrite(&m.dir, name(), &rw(&m), &plan, Stop::AfterJournal).unwrap();
        assert_eq!(journal_mode(&m), mode);
        recover(&m.dir, name(), &rw(&m)).unwrap();
        assert_eq!(std::fs::read(&m.path).unwrap(), want, "{mode}");
        let m = mbox(&old);
        apply(&m.dir, name(), &rw(&m), &plan).unwrap();
        assert_eq!(std::fs::read(&m.path).unwrap(), want, "{mode}");
        assert!(leftovers(&m).is_empty(), "{:?}", leftovers(&m));
    }
}

/// The walk of `plan` on `old` without the rest of a rewrite: what it did.
fn walk_alone(old: &[u8], plan: &Plan) -> Walked {
    let m = mbox(old);
    let f = rw(&m);
    let mv = of_plan(plan, old.len() as u64).unwrap().unwrap();
    if mv.new_len > old.len() as u64 {
        f.set_len(mv.new_len).unwrap();
    }
    let temp = tempfile::tempfile().unwrap();
    let (base, _) = write_temp(&temp, plan, &mv).unwrap();
    let w = run(&f, &temp, &mv, base, Stop::Never).unwrap();
    f.set_len(mv.new_len).unwrap();
    assert_eq!(std::fs::read(&m.path).unwrap(), planned(old, plan));
    w
}

#[test]
fn both_directions_stage_small_gaps_and_copy_large_ones_directly() {
    let old = corpus(16);
    for plan in [left_plan(&old), right_plan(&old)] {
        let w = walk_alone(&old, &plan);
        assert!(w.stages > 0, "{w:?}");
        assert!(
            w.records > w.stages,
            "no checkpoint of a direct copy: {w:?}"
        );
        let new_len = planned(&old, &plan).len() as u64;
        assert!(
            w.stages * STAGE < new_len - plan.offset,
            "all staged: {w:?}"
        );
    }
    eprintln!("plan_for: {:?}", walk_alone(&old, &plan_for(&old)));
}

/// Up to `n` values spread over `1..=max`, the ends included.
fn spread(max: u64, n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n)
        .map(|k| 1 + k * max.saturating_sub(1) / (n - 1))
        .collect();
    v.dedup();
    v
}

/// Where to stop a rewrite of `plan` on `old`: after each checkpoint (sampled), while a
/// checkpoint is written, after some bytes written (with and without a power loss).
fn stops(old: &[u8], plan: &Plan) -> Vec<Stop> {
    let w = walk_alone(old, plan);
    let total = planned(old, plan).len() as u64 - plan.offset;
    let mut out = vec![Stop::Copied(0), Stop::Lost(0), Stop::Lost(1)];
    for k in spread(w.records, 12) {
        out.extend([Stop::Records(k), Stop::Torn(k)]);
    }
    for n in spread(total + total / 3, 14) {
        out.extend([Stop::Copied(n), Stop::Lost(n), Stop::Lost(n + 4093)]);
    }
    out
}

#[test]
fn stopped_anywhere_the_next_opener_completes_it() {
    let old = corpus(16);
    for (which, plan) in [("left", left_plan(&old)), ("right", right_plan(&old))] {
        let want = planned(&old, &plan);
        for (k, stop) in stops(&old, &plan).into_iter().enumerate() {
            let m = mbox(&old);
            rewrite(&m.dir, name(), &rw(&m), &plan, stop).unwrap();
            if k % 3 == 1 {
                // Recovery killed too, after some bytes and a power loss.
                let again = Stop::Lost(10_000 * k as u64);
                recover_until(&m.dir, name(), &rw(&m), again).unwrap();
            }
            let got = recover(&m.dir, name(), &rw(&m)).unwrap();
            let now = std::fs::read(&m.path).unwrap();
            // (Nothing: a stop past the end, or a recovery that was not stopped.)
            let _ = got;
            assert!(now == want, "{which} {stop:?}: not as planned");
            assert!(
                leftovers(&m).is_empty(),
                "{which} {stop:?}: {:?}",
                leftovers(&m)
            );
            assert_eq!(
                recover(&m.dir, name(), &rw(&m)).unwrap(),
                Recovered::Nothing
            );
        }
    }
}

#[test]
fn mail_appended_after_an_interruption_in_place_is_kept() {
    let old = corpus(16);
    let late = b"From carol Mon Dec  7 17:00:00 2026\nSubject: late\n\nappended by Postfix\n\n";
    for plan in [left_plan(&old), right_plan(&old)] {
        let want = planned(&old, &plan);
        let half = (want.len() as u64 - plan.offset) / 2;
        for stop in [
            Stop::AfterJournal,
            Stop::Records(2),
            Stop::Torn(3),
            Stop::Lost(half),
            Stop::BeforeCut,
            Stop::AfterCut,
        ] {
            let m = mbox(&old);
            rewrite(&m.dir, name(), &rw(&m), &plan, stop).unwrap();
            let mut f = File::options().append(true).open(&m.path).unwrap();
            f.write_all(late).unwrap();
            drop(f);
            let got = recover(&m.dir, name(), &rw(&m)).unwrap();
            let kept = late.len() as u64;
            assert_eq!(got, Recovered::Completed { kept }, "{stop:?}");
            let mut expect = want.clone();
            expect.extend_from_slice(late);
            assert!(std::fs::read(&m.path).unwrap() == expect, "{stop:?}");
        }
    }
}

#[test]
fn without_a_readable_checkpoint_the_file_is_left_alone() {
    let old = corpus(8);
    let plan = left_plan(&old);
    let m = mbox(&old);
    rewrite(&m.dir, name(), &rw(&m), &plan, Stop::AfterJournal).unwrap();
    let temp = m.path.with_file_name(".box.loft-rewrite");
    let mut t = std::fs::read(&temp).unwrap();
    let base = t.len() - SLOT as usize;
    t[base + 3] ^= 1;
    std::fs::write(&temp, t).unwrap();
    assert!(matches!(
        recover(&m.dir, name(), &rw(&m)),
        Err(RewriteError::Journal(_))
    ));
    assert_eq!(std::fs::read(&m.path).unwrap(), old);
    // A table that does not add up is refused too.
    let f = tempfile::tempfile().unwrap();
    f.write_all_at(&[0xff; 40], 0).unwrap();
    assert!(matches!(
        read_temp(&f, 0, 100, 100, 40),
        Err(RewriteError::Journal(_))
    ));
}

#[test]
fn records_round_trip_and_torn_ones_are_refused() {
    let r = Record {
        seq: 7,
        pos: 123_456,
        staged: 42,
    };
    let mut b = r.encode();
    assert_eq!(Record::decode(&b), Some(r));
    b[9] ^= 0x10;
    assert_eq!(Record::decode(&b), None);
}

#[test]
fn a_file_that_grows_is_extended_under_the_journal() {
    let old = corpus(8);
    let plan = right_plan(&old);
    let want = planned(&old, &plan);
    let late = b"From carol Mon Dec  7 17:00:00 2026\nSubject: late\n\nappended\n\n";
    for (stop, appended) in [
        (Stop::Growing, false),
        (Stop::Growing, true),
        (Stop::Extended, false),
        (Stop::Extended, true),
    ] {
        let m = mbox(&old);
        rewrite(&m.dir, name(), &rw(&m), &plan, stop).unwrap();
        let mut expect = match stop {
            Stop::Growing => old.clone(),
            _ => want.clone(),
        };
        if appended {
            let mut f = File::options().append(true).open(&m.path).unwrap();
            f.write_all(late).unwrap();
            expect.extend_from_slice(late);
        }
        let kept = if appended { late.len() as u64 } else { 0 };
        let got = recover(&m.dir, name(), &rw(&m)).unwrap();
        match stop {
            // Not extended yet: nothing changed, the rewrite is dropped.
            Stop::Growing => assert_eq!(got, Recovered::Dropped),
            _ => assert_eq!(got, Recovered::Completed { kept }),
        }
        assert!(
            std::fs::read(&m.path).unwrap() == expect,
            "{stop:?} {appended}"
        );
        assert!(leftovers(&m).is_empty(), "{:?}", leftovers(&m));
    }
}

/// Bytes from `seed` (a file's content, not an mbox: a rewrite knows byte ranges only).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A plan of `edits` (where, bytes removed, bytes put in their place; `same`: as many as
/// removed) on a file of `len` bytes: `kind` 0 keeps every kept piece moving toward the
/// start (never more put in than removed), 1 toward the end, 2 either.
fn random_plan(len: u64, kind: u8, edits: &[(u32, u32, u32, bool)], seed: u64) -> Plan {
    let mut edits: Vec<_> = edits.to_vec();
    edits.sort();
    let (mut pieces, mut cursor, mut offset) = (Vec::new(), None::<u64>, 0);
    for (k, &(at, remove, put, same)) in edits.iter().enumerate() {
        let start = (u64::from(at) % (len + 1)).max(cursor.unwrap_or(0));
        let remove = u64::from(remove).min(len - start);
        let put = match (same, kind) {
            (true, _) => remove,
            (false, 0) => u64::from(put) % (remove + 1),
            (false, 1) => remove + u64::from(put),
            _ => u64::from(put),
        };
        match cursor {
            None => offset = start,
            Some(c) => pieces.push(Piece::Keep(c..start)),
        }
        pieces.push(Piece::Bytes(noise(seed ^ k as u64, put as usize)));
        cursor = Some(start + remove);
    }
    pieces.push(Piece::Keep(cursor.unwrap_or(len)..len));
    Plan {
        offset,
        pieces,
        rest: None,
        lazy: false,
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Any plan (moving one way or both, pieces that stay, new bytes of any length)
    /// stopped anywhere, with a power loss or not, its recovery perhaps stopped too,
    /// ends exactly as planned (or as before, when dropped before any change).
    #[test]
    fn any_plan_stopped_anywhere_ends_as_before_or_as_planned(
        seed in proptest::prelude::any::<u64>(),
        len in 1u64..300_000,
        kind in 0u8..3,
        edits in proptest::collection::vec(
            (proptest::prelude::any::<u32>(), 0u32..40_000, 0u32..40_000, proptest::prelude::any::<bool>()),
            1..12,
        ),
        stop in 0u8..10,
        n in proptest::prelude::any::<u64>(),
        again in proptest::option::of(proptest::prelude::any::<u64>()),
    ) {
        let old = noise(seed, len as usize);
        let plan = random_plan(len, kind, &edits, seed);
        let want = planned(&old, &plan);
        let total = want.len() as u64 - plan.offset + 1;
        let stop = match stop {
            0 => Stop::AfterTemp,
            1 => Stop::AfterJournal,
            2 => Stop::Growing,
            3 => Stop::Extended,
            4 => Stop::Records(n % 60 + 1),
            5 => Stop::Torn(n % 60 + 1),
            6 => Stop::Copied(n % total),
            7 => Stop::Lost(n % total),
            8 => Stop::BeforeCut,
            _ => Stop::AfterCut,
        };
        let m = mbox(&old);
        rewrite(&m.dir, name(), &rw(&m), &plan, stop).unwrap();
        let mut dropped = false;
        if let Some(a) = again {
            let r = recover_until(&m.dir, name(), &rw(&m), Stop::Lost(a % total)).unwrap();
            dropped |= r == Recovered::Dropped;
        }
        let r = recover(&m.dir, name(), &rw(&m)).unwrap();
        dropped |= r == Recovered::Dropped;
        let now = std::fs::read(&m.path).unwrap();
        let before = dropped || stop == Stop::AfterTemp;
        let expect = if before { &old } else { &want };
        proptest::prop_assert!(now == *expect, "{:?} {:?}: {} bytes, expected {}", stop, again, now.len(), expect.len());
        proptest::prop_assert!(leftovers(&m).is_empty());
    }
}
