//! `Index::salvage`: best-effort recovery of key -> (uid, flags, keywords) from damaged
//! index files, for a rebuild that keeps UIDs. Every record of the main index is taken
//! on its own checksum (which covers its key), whatever the rest of the file looks like;
//! then the log's committed transactions are replayed over them, resynchronising after
//! damaged stretches. Never fails and never panics.
//!
//! This module only reads.

use super::Dir;
use std::collections::{BTreeMap, HashSet};

use super::format::{self, Cur, INDEX_HEADER_LEN, INDEX_MAGIC, LOG_HEADER_LEN, RECORD_LEN};
use super::op::{self, Frame, Op};
use super::{Record, INDEX_FILE, LOG_FILE};

/// What could be read back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Salvage {
    pub uid_validity: Option<u32>,
    pub uid_next: Option<u32>,
    /// Names of keyword bits, as far as known.
    pub keywords: Vec<String>,
    /// Ascending uid; each key once (the lowest uid wins).
    pub records: Vec<Record>,
    /// The index and the whole log were read without damage: every UID ever handed out
    /// is below `uid_next`. When false, UIDs at or above `uid_next` may have been lost
    /// with the damaged part, so new messages cannot safely get UIDs under this
    /// UIDVALIDITY.
    pub complete: bool,
}

/// Largest record payload considered while resynchronising after damage.
const RESYNC_MAX: usize = 1 << 20;

fn from_index(
    buf: &[u8],
    s: &mut Salvage,
    map: &mut BTreeMap<u32, Record>,
) -> Option<(u64, u64, u64)> {
    if buf.len() < INDEX_HEADER_LEN || &buf[..8] != INDEX_MAGIC {
        return None;
    }
    let hdr = format::decode_index_header(buf).ok();
    if let Some(h) = &hdr {
        s.uid_validity = Some(h.header.uid_validity).filter(|v| *v != 0);
        s.uid_next = Some(h.header.uid_next);
        if let Ok(body) = format::block(buf, h.kw_off, h.kw_len, "keyword") {
            s.keywords = format::decode_keywords(body, 0).unwrap_or_default();
        }
    }
    // The block offsets are read even when the header checksum fails: each record's
    // own checksum (covering its key) tells whether the guess was right.
    let mut c = Cur::new(buf, 72);
    let (kw_off, _kw_len, keys_off, keys_len) = (c.u64()?, c.u64()?, c.u64()?, c.u64()?);
    let keys_end = keys_off
        .saturating_add(keys_len.saturating_sub(4))
        .min(buf.len() as u64);
    let keys = buf.get(keys_off as usize..keys_end as usize).unwrap_or(&[]);
    let recs_end = if kw_off as usize > INDEX_HEADER_LEN && kw_off as usize <= buf.len() {
        kw_off as usize
    } else {
        buf.len()
    };
    let n = (recs_end - INDEX_HEADER_LEN) / RECORD_LEN;
    for i in 0..n {
        if let Ok(r) = format::decode_record(buf, INDEX_HEADER_LEN + i * RECORD_LEN, keys, i) {
            if r.uid != 0 {
                map.entry(r.uid).or_insert(r);
            }
        }
    }
    hdr.map(|h| (h.generation, h.pair_id, h.log_offset))
}

fn replay(ops: Vec<Op>, s: &mut Salvage, map: &mut BTreeMap<u32, Record>) {
    for o in ops {
        match o {
            Op::Append(r) => {
                map.entry(r.uid).or_insert(r);
            }
            Op::Flags {
                modseq,
                flags,
                keywords,
                dirty,
                ranges,
            } => {
                for (a, b) in ranges {
                    for r in map.range_mut(a..=b).map(|(_, r)| r) {
                        (r.flags, r.keywords, r.dirty, r.modseq) = (flags, keywords, dirty, modseq);
                    }
                }
            }
            Op::Expunge { ranges, .. } => {
                for (a, b) in ranges {
                    let gone: Vec<u32> = map.range(a..=b).map(|(u, _)| *u).collect();
                    for u in gone {
                        map.remove(&u);
                    }
                }
            }
            Op::KeywordNames { first, names } => {
                let first = first as usize;
                if first <= s.keywords.len() {
                    s.keywords.truncate(first);
                    s.keywords.extend(names);
                }
            }
            Op::UidValidity {
                uid_validity,
                uid_next,
            } => {
                map.clear();
                s.uid_validity = Some(uid_validity);
                s.uid_next = Some(uid_next);
            }
            Op::SetKey { uid, key } => {
                if let Some(r) = map.get_mut(&uid) {
                    r.key = key.into();
                }
            }
            Op::SetDates { dates } => {
                for (uid, date) in dates {
                    if let Some(r) = map.get_mut(&uid) {
                        r.internal_date = date;
                    }
                }
            }
            Op::Recent { .. } | Op::DirtyClear { .. } | Op::Commit { .. } => {}
        }
    }
}

/// Returns whether the log was read to its end without damage.
fn from_log(buf: &[u8], start: usize, s: &mut Salvage, map: &mut BTreeMap<u32, Record>) -> bool {
    let mut clean = true;
    let mut pos = start;
    let mut pending = Vec::new();
    let mut synced = true;
    while pos < buf.len() {
        // While resynchronising, only positions that look like a record start are
        // checksummed (keeps damaged stretches linear).
        let plausible = synced
            || {
                let mut c = Cur::new(buf, pos);
                matches!((c.u32(), c.u8()), (Some(l), Some(k)) if (l as usize) <= RESYNC_MAX && (1..=9).contains(&k))
            };
        let fr = if plausible {
            op::frame(buf, pos)
        } else {
            Frame::Broken("skipped")
        };
        match fr {
            Frame::Ok {
                kind,
                payload_at,
                len,
                end,
            } => {
                synced = true;
                match op::decode(kind, &buf[payload_at..payload_at + len], pos) {
                    Ok(Op::Commit { ops, .. }) if ops as usize == pending.len() => {
                        replay(std::mem::take(&mut pending), s, map);
                    }
                    Ok(Op::Commit { .. }) | Err(_) => pending.clear(),
                    Ok(o) => pending.push(o),
                }
                pos = end;
            }
            _ => {
                clean = false;
                pending.clear();
                synced = false;
                pos += 1;
            }
        }
    }
    clean
}

pub fn salvage(dir: &Dir) -> Salvage {
    let mut s = Salvage::default();
    let mut map = BTreeMap::new();
    let ib = dir.read_file(INDEX_FILE).unwrap_or_default();
    let ih = from_index(&ib, &mut s, &mut map);
    let lb = dir.read_file(LOG_FILE).unwrap_or_default();
    let lh = format::decode_log_header(&lb).ok();
    let start = match (ih, lh) {
        (Some((gen, pair, off)), Some(lh)) if lh.pair_id == pair && lh.generation == gen => {
            Some((off as usize).clamp(LOG_HEADER_LEN, lb.len().max(LOG_HEADER_LEN)))
        }
        (Some(_), Some(_)) => None,
        // The index header is unreadable: replaying the whole log is the best guess.
        _ => Some(LOG_HEADER_LEN),
    };
    if let Some(start) = start {
        if s.uid_validity.is_none() {
            s.uid_validity = lh.map(|h| h.uid_validity).filter(|v| *v != 0);
        }
        let clean = from_log(&lb, start, &mut s, &mut map);
        s.complete = clean && ih.is_some() && lh.is_some();
    }
    let mut seen = HashSet::new();
    s.records = map
        .into_values()
        .filter(|r| seen.insert(r.key.clone()))
        .collect();
    let top = s.records.last().map_or(0, |r| r.uid.saturating_add(1));
    s.uid_next = Some(s.uid_next.unwrap_or(1).max(top));
    s
}
