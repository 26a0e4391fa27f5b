//! Applies committed log transactions to an in-memory snapshot, checking every
//! invariant (uids strictly ascending and below UIDNEXT, keyword names contiguous).
//!
//! This module knows the meaning of each [`Op`], not where it came from.

use super::format::{counts, Bad, DELETED, SEEN};
use super::op::{Op, Range};
use super::IndexSnapshot;

/// The positions of the records in each UID range of `ranges` (ascending, as a
/// transaction writes them: found in one walk, which a replay of the log does for every
/// range of every transaction since the index file was written).
fn spans(s: &IndexSnapshot, ranges: &[Range]) -> Vec<std::ops::Range<usize>> {
    let mut seek = s.records.seeker();
    (ranges.iter())
        .map(|&(a, b)| {
            let lo = seek.find(a).unwrap_or_else(|i| i);
            let hi = seek.find(b).map_or_else(|i| i, |i| i + 1);
            lo..hi.max(lo)
        })
        .collect()
}

/// Applies one transaction (its `Commit` included); `at` = its offset, for errors.
pub fn apply_txn(s: &mut IndexSnapshot, ops: &[Op], at: u64) -> Result<(), Bad> {
    let fail = |what: String| Err(Bad { what, offset: at });
    for o in ops {
        match o {
            Op::Append(r) => {
                let prev = s.records.last().map_or(0, |l| l.uid);
                if r.uid <= prev {
                    return fail(format!(
                        "appended uid {} not above previous uid {prev}",
                        r.uid
                    ));
                }
                if r.uid < s.header.uid_next || r.uid == u32::MAX {
                    return fail(format!(
                        "appended uid {} below UIDNEXT {}",
                        r.uid, s.header.uid_next
                    ));
                }
                s.header.uid_next = r.uid + 1;
                tally(&mut s.header, r.flags, 1);
                s.records.push(r.clone());
            }
            Op::Flags {
                modseq,
                flags,
                keywords,
                dirty,
                ranges,
            } => {
                for sp in spans(s, ranges) {
                    let h = &mut s.header;
                    s.records.update_range(sp, |r| {
                        tally(h, r.flags, -1);
                        tally(h, *flags, 1);
                        r.flags = *flags;
                        r.keywords = *keywords;
                        r.dirty = *dirty;
                        r.modseq = *modseq;
                    });
                }
            }
            Op::Expunge { ranges, .. } => {
                let mut i = 0;
                let h = &mut s.header;
                s.records.retain(|r| {
                    while i < ranges.len() && ranges[i].1 < r.uid {
                        i += 1;
                    }
                    let gone = i < ranges.len() && ranges[i].0 <= r.uid;
                    if gone {
                        tally(h, r.flags, -1);
                    }
                    !gone
                });
            }
            Op::KeywordNames { first, names } => {
                let first = *first as usize;
                if first > s.keywords.len() {
                    return fail(format!(
                        "keyword {first} named before keyword {}",
                        s.keywords.len()
                    ));
                }
                for (i, n) in names.iter().enumerate() {
                    match s.keywords.get_mut(first + i) {
                        Some(k) => *k = n.clone(),
                        None => s.keywords.push(n.clone()),
                    }
                }
            }
            Op::UidValidity {
                uid_validity,
                uid_next,
            } => {
                s.records.clear();
                (s.header.messages, s.header.unseen, s.header.deleted) = (0, 0, 0);
                s.header.uid_validity = *uid_validity;
                s.header.uid_next = *uid_next;
                s.header.recent_uid = *uid_next;
            }
            Op::Recent { uid } => {
                if *uid > s.header.uid_next {
                    return fail(format!(
                        "recent uid {uid} above UIDNEXT {}",
                        s.header.uid_next
                    ));
                }
                s.header.recent_uid = *uid;
            }
            Op::DirtyClear { ranges } => {
                for sp in spans(s, ranges) {
                    s.records.update_range(sp, |r| r.dirty = false);
                }
            }
            Op::SetKey { uid, key } => {
                if let Ok(i) = s.records.find(*uid) {
                    s.records
                        .update_range(i..i + 1, |r| r.key = key.clone().into());
                }
            }
            Op::SetDates { dates } => s.records.update_uids(dates, |r, d| r.internal_date = *d),
            Op::SetSizes { sizes } => s.records.update_uids(sizes, |r, n| r.size = *n),
            Op::Commit { modseq, .. } => {
                s.header.highest_modseq = s.header.highest_modseq.max(*modseq);
            }
        }
    }
    debug_assert_eq!(
        {
            let (m, u, d, _) = counts(&s.records);
            (m, u, d)
        },
        (s.header.messages, s.header.unseen, s.header.deleted),
        "counts kept while applying differ from a recount"
    );
    Ok(())
}

/// Counts a record with system flags `flags` in (`n` = 1) or out (-1) of the header's
/// message, unseen and deleted counts: kept as changes are applied, so applying one
/// transaction does not walk every record.
fn tally(h: &mut super::Header, flags: u8, n: i32) {
    let add = |v: &mut u32, yes: bool| {
        if yes {
            *v = v.wrapping_add_signed(n);
        }
    };
    add(&mut h.messages, true);
    add(&mut h.unseen, flags & SEEN == 0);
    add(&mut h.deleted, flags & DELETED != 0);
}

/// Sets the header's counts from the records (one pass).
pub fn recount(s: &mut IndexSnapshot) {
    let (m, u, d, _) = counts(&s.records);
    s.header.messages = m;
    s.header.unseen = u;
    s.header.deleted = d;
}
