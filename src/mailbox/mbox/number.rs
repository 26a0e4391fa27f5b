//! Giving the messages of an mbox file their UIDs after a scan: keeping the UIDs the file
//! or the index already gave them, never reusing one, and always ascending in file order
//! (the file's order is the mailbox's sequence order).
//!
//! * **With the index** (what Loft knew at its last sync, same UIDVALIDITY as the file's
//!   `X-IMAPbase`, or the file has none yet): a message keeps a known UID when its
//!   `X-UID` names it and its fingerprint (the header lines clients see and the body's
//!   length) is the one known — a rewrite by mutt keeps both — or, when it has no usable
//!   `X-UID` (a tool dropped the field, or Loft had not written it yet), when its
//!   fingerprint matches a known message's further on. Anything else is new mail and gets
//!   the next UID above everything known; `X-UID`s in new mail are not believed (a sender
//!   could write any). Known UIDs not found are expunged.
//! * **Without the index, or with a file of another UIDVALIDITY** (first open, a
//!   migration from Dovecot, a file restored from elsewhere): with `X-IMAPbase`, its
//!   UIDVALIDITY is kept and so are the `X-UID`s that ascend in file order and stay below
//!   its UIDNEXT plus the number of messages (so a forged `X-UID: 4000000000` cannot use
//!   up the UID space); UIDNEXT is the larger of `X-IMAPbase`'s (Dovecot lets it lag) and
//!   the highest kept `X-UID` + 1. Without `X-IMAPbase` (a spool never served by an IMAP
//!   server) every message is numbered from 1 under a fresh UIDVALIDITY.
//!
//! A message that cannot keep its UID (an `X-UID` out of order) gets a new one above all
//! others, and the messages after it too when theirs are lower. The caller writes the
//! UIDs back (`X-UID`, `X-IMAPbase`) for the messages listed in `rewrite`.
//!
//! This module knows UIDs and fingerprints, nothing of files.

use std::collections::{HashMap, HashSet, VecDeque};

use super::meta::Base;

/// What tells a message again: the CRC of the header lines clients see, and the body's
/// length without its last line end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Print {
    pub header_crc: u32,
    pub body_len: u64,
}

/// A message of the file as the scan found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub x_uid: Option<u32>,
    pub print: Print,
}

/// What the index knew at the last sync.
#[derive(Clone, Debug, Default)]
pub struct Known {
    pub uid_validity: u32,
    pub uid_next: u32,
    /// Ascending UIDs.
    pub messages: Vec<(u32, Print)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Numbered {
    pub uid_validity: u32,
    pub uid_next: u32,
    /// The UID of each message, in file order (ascending).
    pub uids: Vec<u32>,
    /// The messages (indexes in file order) whose `X-UID` is missing or not their UID.
    pub rewrite: Vec<usize>,
    /// Known UIDs whose messages are gone.
    pub expunged: Vec<u32>,
    /// The known UIDs do not apply (no index, or another UIDVALIDITY): clients resync.
    pub renumbered: bool,
}

/// Numbers `seen` (file order). `fresh_validity` is asked only when a new UIDVALIDITY is
/// needed.
pub fn number(
    base: Option<&Base>,
    seen: &[Seen],
    known: Option<&Known>,
    fresh_validity: impl FnOnce() -> u32,
) -> Numbered {
    match known {
        Some(k) if base.is_none_or(|b| b.uid_validity == k.uid_validity) => {
            with_index(base, seen, k)
        }
        _ => from_file(base, seen, fresh_validity, known.is_some()),
    }
}

fn with_index(base: Option<&Base>, seen: &[Seen], k: &Known) -> Numbered {
    let prints: HashMap<u32, Print> = k.messages.iter().copied().collect();
    let mut by_print: HashMap<Print, VecDeque<u32>> = HashMap::new();
    for &(uid, p) in &k.messages {
        by_print.entry(p).or_default().push_back(uid);
    }
    // Another IMAP server may have numbered mail since (its X-IMAPbase ahead of ours).
    let mut next = k.uid_next.max(base.map_or(0, |b| b.uid_next)).max(1);
    let mut used: HashSet<u32> = HashSet::new();
    let mut last = 0u32;
    let mut uids = Vec::with_capacity(seen.len());
    for s in seen {
        let by_header = s
            .x_uid
            .filter(|&u| u > last && !used.contains(&u) && prints.get(&u) == Some(&s.print));
        let uid = by_header.or_else(|| {
            let q = by_print.get_mut(&s.print)?;
            while q.front().is_some_and(|&u| u <= last || used.contains(&u)) {
                q.pop_front();
            }
            q.pop_front()
        });
        let uid = match uid {
            Some(u) => u,
            None => {
                let u = next;
                next = next.saturating_add(1);
                u
            }
        };
        used.insert(uid);
        last = uid;
        uids.push(uid);
    }
    let expunged = k
        .messages
        .iter()
        .map(|m| m.0)
        .filter(|u| !used.contains(u))
        .collect();
    finish(
        k.uid_validity,
        next.max(last.saturating_add(1)),
        seen,
        uids,
        expunged,
        false,
    )
}

fn from_file(
    base: Option<&Base>,
    seen: &[Seen],
    fresh_validity: impl FnOnce() -> u32,
    had_index: bool,
) -> Numbered {
    let Some(b) = base else {
        let uids: Vec<u32> = (1..=seen.len() as u32).collect();
        let next = seen.len() as u32 + 1;
        return finish(fresh_validity(), next, seen, uids, Vec::new(), had_index);
    };
    // The X-UIDs kept: ascending, and below UIDNEXT plus the number of messages.
    let bound = u64::from(b.uid_next) + seen.len() as u64;
    let mut kept = vec![false; seen.len()];
    let mut last = 0u32;
    for (i, s) in seen.iter().enumerate() {
        if let Some(u) = s.x_uid.filter(|&u| u > last && u64::from(u) < bound) {
            kept[i] = true;
            last = u;
        }
    }
    let mut next = b.uid_next.max(last.saturating_add(1)).max(1);
    let mut last = 0u32;
    let mut uids = Vec::with_capacity(seen.len());
    for (s, keep) in seen.iter().zip(kept) {
        let uid = match s.x_uid {
            Some(u) if keep && u > last => u,
            _ => {
                let u = next;
                next = next.saturating_add(1);
                u
            }
        };
        last = uid;
        uids.push(uid);
    }
    finish(b.uid_validity, next, seen, uids, Vec::new(), had_index)
}

fn finish(
    uid_validity: u32,
    uid_next: u32,
    seen: &[Seen],
    uids: Vec<u32>,
    expunged: Vec<u32>,
    renumbered: bool,
) -> Numbered {
    let rewrite = seen
        .iter()
        .zip(&uids)
        .enumerate()
        .filter(|(_, (s, &u))| s.x_uid != Some(u))
        .map(|(i, _)| i)
        .collect();
    Numbered {
        uid_validity,
        uid_next,
        uids,
        rewrite,
        expunged,
        renumbered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u32) -> Print {
        Print {
            header_crc: n,
            body_len: u64::from(n) * 10,
        }
    }

    fn seen(list: &[(Option<u32>, u32)]) -> Vec<Seen> {
        list.iter()
            .map(|&(x_uid, n)| Seen { x_uid, print: p(n) })
            .collect()
    }

    fn base(v: u32, next: u32) -> Base {
        Base {
            uid_validity: v,
            uid_next: next,
            keywords: Vec::new(),
        }
    }

    fn no_validity() -> u32 {
        panic!("no new UIDVALIDITY expected")
    }

    #[test]
    fn a_spool_never_served_is_numbered_from_one() {
        let n = number(
            None,
            &seen(&[(None, 1), (Some(99), 2), (None, 3)]),
            None,
            || 77,
        );
        assert_eq!(
            (n.uid_validity, n.uid_next, n.uids.clone()),
            (77, 4, vec![1, 2, 3])
        );
        assert_eq!(n.rewrite, [0, 1, 2]);
        assert!(!n.renumbered);
    }

    #[test]
    fn a_dovecot_file_keeps_its_uids_even_with_a_lagging_uidnext() {
        // X-IMAPbase says 3 while X-UID 3 exists (as Dovecot leaves it).
        let s = seen(&[(Some(1), 1), (Some(2), 2), (Some(3), 3)]);
        let n = number(Some(&base(500, 3)), &s, None, no_validity);
        assert_eq!(
            (n.uid_validity, n.uid_next, n.uids.clone()),
            (500, 4, vec![1, 2, 3])
        );
        assert!(n.rewrite.is_empty());
        // Gaps (expunged messages) stay gaps.
        let s = seen(&[(Some(4), 1), (Some(9), 2)]);
        let n = number(Some(&base(500, 12)), &s, None, no_validity);
        assert_eq!((n.uid_next, n.uids.clone()), (12, vec![4, 9]));
    }

    #[test]
    fn forged_and_disordered_x_uids_are_not_kept() {
        // A delivered message claims 4000000000: beyond UIDNEXT + messages, renumbered.
        let s = seen(&[(Some(1), 1), (Some(4_000_000_000), 2), (Some(2), 3)]);
        let n = number(Some(&base(500, 3)), &s, None, no_validity);
        assert_eq!(n.uids, [1, 3, 4]);
        assert_eq!(n.uid_next, 5);
        assert_eq!(n.rewrite, [1, 2]);
        // Out of order: the one that goes back is renumbered above all.
        let s = seen(&[(Some(5), 1), (Some(3), 2), (Some(6), 3)]);
        let n = number(Some(&base(500, 7)), &s, None, no_validity);
        assert_eq!(n.uids, [5, 7, 8]);
        assert_eq!(n.uid_next, 9);
        // Without X-UID in the middle: a new UID, and those after it follow.
        let s = seen(&[(Some(1), 1), (None, 2), (Some(2), 3)]);
        let n = number(Some(&base(500, 3)), &s, None, no_validity);
        assert_eq!(n.uids, [1, 3, 4]);
    }

    #[test]
    fn with_the_index_new_mail_gets_new_uids_whatever_it_claims() {
        let k = Known {
            uid_validity: 500,
            uid_next: 10,
            messages: vec![(3, p(1)), (7, p(2))],
        };
        // Postfix appended two messages, one carrying a forged X-UID of a known message.
        let s = seen(&[(Some(3), 1), (None, 2), (Some(7), 8), (None, 9)]);
        let n = number(Some(&base(500, 8)), &s, Some(&k), no_validity);
        assert_eq!(n.uids, [3, 7, 10, 11]);
        assert_eq!(n.uid_next, 12);
        assert_eq!(n.rewrite, [1, 2, 3]);
        assert!(n.expunged.is_empty() && !n.renumbered);
    }

    #[test]
    fn a_rewrite_by_mutt_keeps_uids_and_finds_what_it_removed() {
        let k = Known {
            uid_validity: 500,
            uid_next: 6,
            messages: vec![(1, p(1)), (2, p(2)), (3, p(3)), (4, p(4)), (5, p(5))],
        };
        // mutt expunged 2 and 4 (flags changed elsewhere do not change the prints); a
        // tool dropped message 5's X-UID: found by its print.
        let s = seen(&[(Some(1), 1), (Some(3), 3), (None, 5)]);
        let n = number(Some(&base(500, 6)), &s, Some(&k), no_validity);
        assert_eq!(n.uids, [1, 3, 5]);
        assert_eq!(n.expunged, [2, 4]);
        assert_eq!(n.rewrite, [2]);
        assert_eq!(n.uid_next, 6);
        // Two identical messages keep their own UIDs, in order.
        let k = Known {
            uid_validity: 500,
            uid_next: 3,
            messages: vec![(1, p(1)), (2, p(1))],
        };
        let n = number(None, &seen(&[(None, 1), (None, 1)]), Some(&k), no_validity);
        assert_eq!((n.uids.clone(), n.expunged.clone()), (vec![1, 2], vec![]));
        // An X-UID naming a known UID on a different message is not believed.
        let n = number(None, &seen(&[(Some(1), 9)]), Some(&k), no_validity);
        assert_eq!((n.uids.clone(), n.expunged.clone()), (vec![3], vec![1, 2]));
    }

    #[test]
    fn a_file_of_another_uidvalidity_replaces_what_the_index_knew() {
        let k = Known {
            uid_validity: 500,
            uid_next: 3,
            messages: vec![(1, p(1)), (2, p(2))],
        };
        let s = seen(&[(Some(1), 7), (Some(2), 8)]);
        let n = number(Some(&base(900, 3)), &s, Some(&k), no_validity);
        assert_eq!((n.uid_validity, n.uids.clone()), (900, vec![1, 2]));
        assert!(n.renumbered);
    }

    #[test]
    fn uids_always_ascend_and_never_repeat() {
        // Every pattern of up to 6 messages, X-UIDs from a small range, with and without
        // an index.
        let k = Known {
            uid_validity: 1,
            uid_next: 5,
            messages: vec![(1, p(1)), (2, p(2)), (4, p(4))],
        };
        for code in 0..4096u32 {
            let list: Vec<(Option<u32>, u32)> = (0..6)
                .map(|i| {
                    let d = (code >> (2 * i)) & 3;
                    (if d == 0 { None } else { Some(d + i % 2) }, (code >> i) % 5)
                })
                .collect();
            let s = seen(&list);
            for known in [None, Some(&k)] {
                let n = number(Some(&base(1, 4)), &s, known, || 2);
                assert!(n.uids.windows(2).all(|w| w[0] < w[1]), "{list:?} {n:?}");
                assert!(
                    n.uids.iter().all(|&u| u >= 1 && u < n.uid_next),
                    "{list:?} {n:?}"
                );
                if known.is_some() {
                    // No known UID reused for a message that is not the known one.
                    for (u, s) in n.uids.iter().zip(&s) {
                        if let Some(&(_, pk)) = k.messages.iter().find(|m| m.0 == *u) {
                            assert_eq!(pk, s.print, "{list:?} {n:?}");
                        } else {
                            assert!(*u >= k.uid_next, "{list:?} {n:?}");
                        }
                    }
                }
            }
        }
    }
}
