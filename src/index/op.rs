//! The changes a transaction log record carries ([`Op`]) and their byte layout:
//! `len u32 | kind u8 | payload[len] | crc32(len, kind, payload)`, little-endian.
//! Decoding never panics; a malformed payload is a [`Bad`].
//!
//! This module knows record bytes, not files or how changes are applied.

use super::format::{bad, crc, Bad, Cur, FLAG_MASK, MAX_KEYWORDS, MAX_LOG_PAYLOAD};
use super::Record;

pub const APPEND: u8 = 1;
pub const FLAGS: u8 = 2;
pub const EXPUNGE: u8 = 3;
pub const KEYWORD_NAMES: u8 = 4;
pub const UID_VALIDITY: u8 = 5;
pub const RECENT: u8 = 6;
pub const DIRTY_CLEAR: u8 = 7;
pub const COMMIT: u8 = 8;
pub const SET_KEY: u8 = 9;
pub const SET_DATES: u8 = 10;
/// Most (uid, date) pairs in one `SetDates` record (12 bytes each).
pub const MAX_DATES_PER_OP: usize = 4096;
pub const SET_SIZES: u8 = 11;
/// Most (uid, size) pairs in one `SetSizes` record (12 bytes each).
pub const MAX_SIZES_PER_OP: usize = 4096;
/// Bytes around a payload: len (4) + kind (1) + crc (4).
pub const FRAME: usize = 9;
pub const COMMIT_PAYLOAD: u32 = 12;

/// Inclusive uid range.
pub type Range = (u32, u32);

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A new message; its uid is above every uid before it.
    Append(Record),
    /// Every existing record with a uid in `ranges` gets these flags.
    Flags {
        modseq: u64,
        flags: u8,
        keywords: u64,
        dirty: bool,
        ranges: Vec<Range>,
    },
    Expunge {
        modseq: u64,
        ranges: Vec<Range>,
    },
    /// Names for keyword bits `first..first+names.len()`.
    KeywordNames {
        first: u8,
        names: Vec<String>,
    },
    /// New UIDVALIDITY: every record is dropped, UIDNEXT restarts at `uid_next`.
    UidValidity {
        uid_validity: u32,
        uid_next: u32,
    },
    /// Messages with uid >= this are \Recent for the next session that claims them.
    Recent {
        uid: u32,
    },
    /// The flags of these records were written to the storage: clear `dirty`.
    DirtyClear {
        ranges: Vec<Range>,
    },
    SetKey {
        uid: u32,
        key: Box<[u8]>,
    },
    /// Internal dates found out after the append (uids ascending; no modseq change: the
    /// date of a message never changes, it only becomes known).
    SetDates {
        dates: Vec<(u32, i64)>,
    },
    /// Sizes computed after the append, which recorded [`super::UNKNOWN_SIZE`] (uids
    /// ascending; no modseq change: a message's size never changes, it only becomes
    /// known).
    SetSizes {
        sizes: Vec<(u32, u64)>,
    },
    /// Ends a transaction: the `ops` records before it are applied together.
    Commit {
        modseq: u64,
        ops: u32,
    },
}

fn put_ranges(p: &mut Vec<u8>, ranges: &[Range]) {
    p.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
    for (a, b) in ranges {
        p.extend_from_slice(&a.to_le_bytes());
        p.extend_from_slice(&b.to_le_bytes());
    }
}

/// Appends the framed record for `op` to `out`.
pub fn encode(op: &Op, out: &mut Vec<u8>) {
    let mut p = Vec::new();
    let kind = match op {
        Op::Append(r) => {
            p.extend_from_slice(&r.uid.to_le_bytes());
            p.push(r.flags & FLAG_MASK);
            p.push(r.dirty as u8);
            p.extend_from_slice(&r.keywords.to_le_bytes());
            p.extend_from_slice(&r.modseq.to_le_bytes());
            p.extend_from_slice(&r.size.to_le_bytes());
            p.extend_from_slice(&r.internal_date.to_le_bytes());
            p.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
            p.extend_from_slice(&r.key);
            APPEND
        }
        Op::Flags {
            modseq,
            flags,
            keywords,
            dirty,
            ranges,
        } => {
            p.extend_from_slice(&modseq.to_le_bytes());
            p.push(flags & FLAG_MASK);
            p.push(*dirty as u8);
            p.extend_from_slice(&keywords.to_le_bytes());
            put_ranges(&mut p, ranges);
            FLAGS
        }
        Op::Expunge { modseq, ranges } => {
            p.extend_from_slice(&modseq.to_le_bytes());
            put_ranges(&mut p, ranges);
            EXPUNGE
        }
        Op::KeywordNames { first, names } => {
            p.push(*first);
            p.push(names.len() as u8);
            for n in names {
                let b = &n.as_bytes()[..n.len().min(u16::MAX as usize)];
                p.extend_from_slice(&(b.len() as u16).to_le_bytes());
                p.extend_from_slice(b);
            }
            KEYWORD_NAMES
        }
        Op::UidValidity {
            uid_validity,
            uid_next,
        } => {
            p.extend_from_slice(&uid_validity.to_le_bytes());
            p.extend_from_slice(&uid_next.to_le_bytes());
            UID_VALIDITY
        }
        Op::Recent { uid } => {
            p.extend_from_slice(&uid.to_le_bytes());
            RECENT
        }
        Op::DirtyClear { ranges } => {
            put_ranges(&mut p, ranges);
            DIRTY_CLEAR
        }
        Op::SetKey { uid, key } => {
            p.extend_from_slice(&uid.to_le_bytes());
            p.extend_from_slice(&(key.len() as u32).to_le_bytes());
            p.extend_from_slice(key);
            SET_KEY
        }
        Op::SetDates { dates } => {
            p.extend_from_slice(&(dates.len() as u32).to_le_bytes());
            for (uid, date) in dates {
                p.extend_from_slice(&uid.to_le_bytes());
                p.extend_from_slice(&date.to_le_bytes());
            }
            SET_DATES
        }
        Op::SetSizes { sizes } => {
            p.extend_from_slice(&(sizes.len() as u32).to_le_bytes());
            for (uid, size) in sizes {
                p.extend_from_slice(&uid.to_le_bytes());
                p.extend_from_slice(&size.to_le_bytes());
            }
            SET_SIZES
        }
        Op::Commit { modseq, ops } => {
            p.extend_from_slice(&modseq.to_le_bytes());
            p.extend_from_slice(&ops.to_le_bytes());
            COMMIT
        }
    };
    let start = out.len();
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&p);
    let c = crc(&[&out[start..]]);
    out.extend_from_slice(&c.to_le_bytes());
}

/// What is at one position of a log.
pub enum Frame {
    /// A complete record with a good CRC; `end` = offset after it.
    Ok {
        kind: u8,
        payload_at: usize,
        len: usize,
        end: usize,
    },
    /// Too short, too long or a CRC mismatch.
    Broken(&'static str),
}

pub fn frame(buf: &[u8], at: usize) -> Frame {
    let mut c = Cur::new(buf, at);
    let (Some(len), Some(kind)) = (c.u32(), c.u8()) else {
        return Frame::Broken("record header cut short");
    };
    if len > MAX_LOG_PAYLOAD {
        return Frame::Broken("record length implausibly large");
    }
    let payload_at = c.pos;
    let (Some(_), Some(stored)) = (c.take(len as usize), c.u32()) else {
        return Frame::Broken("record runs past the end of the file");
    };
    if crc(&[&buf[at..payload_at + len as usize]]) != stored {
        return Frame::Broken("checksum mismatch");
    }
    Frame::Ok {
        kind,
        payload_at,
        len: len as usize,
        end: c.pos,
    }
}

fn ranges(c: &mut Cur, at: usize) -> Result<Vec<Range>, Bad> {
    let Some(n) = c.u32() else {
        return bad("range count missing", at);
    };
    let room = (c.buf.len() - c.pos.min(c.buf.len())) / 8;
    if n as usize > room {
        return bad(format!("record claims {n} uid ranges but holds {room}"), at);
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut prev_end: Option<u32> = None;
    for _ in 0..n {
        let (a, b) = (c.u32().unwrap_or(0), c.u32().unwrap_or(0));
        if a == 0 || a > b || prev_end.is_some_and(|p| a <= p) {
            return bad(
                format!("uid range {a}:{b} is empty, zero or out of order"),
                at,
            );
        }
        prev_end = Some(b);
        out.push((a, b));
    }
    Ok(out)
}

/// The `n u32, n × (uid u32, value)` payload of SetDates and SetSizes (at most 4096).
fn uid_values<T>(
    c: &mut Cur,
    at: usize,
    what: &str,
    value: impl Fn(&mut Cur) -> Option<T>,
) -> Result<Vec<(u32, T)>, Bad> {
    let short = || bad(format!("{what} record at offset {at} is cut short"), at);
    let Some(n) = c.u32() else {
        return short();
    };
    if n as usize > MAX_DATES_PER_OP.max(MAX_SIZES_PER_OP) {
        return bad(format!("{what} record with {n} values at offset {at}"), at);
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (Some(uid), Some(v)) = (c.u32(), value(c)) else {
            return short();
        };
        out.push((uid, v));
    }
    Ok(out)
}

/// Decodes the payload of a record whose frame checked out; `at` = record offset.
pub fn decode(kind: u8, payload: &[u8], at: usize) -> Result<Op, Bad> {
    let mut c = Cur::new(payload, 0);
    let short = |what: &str| bad(format!("{what} record at offset {at} is cut short"), at);
    let op = match kind {
        APPEND => {
            let (
                Some(uid),
                Some(flags),
                Some(dirty),
                Some(keywords),
                Some(modseq),
                Some(size),
                Some(date),
                Some(kl),
            ) = (
                c.u32(),
                c.u8(),
                c.u8(),
                c.u64(),
                c.u64(),
                c.u64(),
                c.i64(),
                c.u32(),
            )
            else {
                return short("append");
            };
            let Some(key) = c.take(kl as usize) else {
                return short("append");
            };
            if flags & !FLAG_MASK != 0 || dirty > 1 || uid == 0 {
                return bad(format!("append of uid {uid} has invalid fields"), at);
            }
            Op::Append(Record {
                uid,
                flags,
                dirty: dirty == 1,
                keywords,
                modseq,
                size,
                internal_date: date,
                key: key.into(),
            })
        }
        FLAGS => {
            let (Some(modseq), Some(flags), Some(dirty), Some(keywords)) =
                (c.u64(), c.u8(), c.u8(), c.u64())
            else {
                return short("flags");
            };
            if flags & !FLAG_MASK != 0 || dirty > 1 {
                return bad("flags record has invalid flag bits", at);
            }
            Op::Flags {
                modseq,
                flags,
                keywords,
                dirty: dirty == 1,
                ranges: ranges(&mut c, at)?,
            }
        }
        EXPUNGE => {
            let Some(modseq) = c.u64() else {
                return short("expunge");
            };
            Op::Expunge {
                modseq,
                ranges: ranges(&mut c, at)?,
            }
        }
        KEYWORD_NAMES => {
            let (Some(first), Some(n)) = (c.u8(), c.u8()) else {
                return short("keyword");
            };
            if first as usize + n as usize > MAX_KEYWORDS {
                return bad("keyword names past bit 63", at);
            }
            let mut names = Vec::new();
            for _ in 0..n {
                let Some(b) = c.u16().and_then(|l| c.take(l as usize)) else {
                    return short("keyword");
                };
                let Ok(s) = std::str::from_utf8(b) else {
                    return bad("keyword name is not UTF-8", at);
                };
                names.push(s.to_string());
            }
            Op::KeywordNames { first, names }
        }
        UID_VALIDITY => {
            let (Some(uid_validity), Some(uid_next)) = (c.u32(), c.u32()) else {
                return short("uidvalidity");
            };
            if uid_validity == 0 || uid_next == 0 {
                return bad("UIDVALIDITY record with a zero value", at);
            }
            Op::UidValidity {
                uid_validity,
                uid_next,
            }
        }
        RECENT => match c.u32() {
            Some(uid) => Op::Recent { uid },
            None => return short("recent"),
        },
        DIRTY_CLEAR => Op::DirtyClear {
            ranges: ranges(&mut c, at)?,
        },
        SET_KEY => {
            let (Some(uid), Some(kl)) = (c.u32(), c.u32()) else {
                return short("set-key");
            };
            let Some(key) = c.take(kl as usize) else {
                return short("set-key");
            };
            Op::SetKey {
                uid,
                key: key.into(),
            }
        }
        SET_DATES => Op::SetDates {
            dates: uid_values(&mut c, at, "set-dates", |c| c.i64())?,
        },
        SET_SIZES => Op::SetSizes {
            sizes: uid_values(&mut c, at, "set-sizes", |c| c.u64())?,
        },
        COMMIT => {
            let (Some(modseq), Some(ops)) = (c.u64(), c.u32()) else {
                return short("commit");
            };
            Op::Commit { modseq, ops }
        }
        k => return bad(format!("unknown record kind {k}"), at),
    };
    if c.pos != payload.len() {
        return bad(
            format!(
                "record at offset {at} has {} trailing bytes",
                payload.len() - c.pos
            ),
            at,
        );
    }
    Ok(op)
}
