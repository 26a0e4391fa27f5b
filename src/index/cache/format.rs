//! Byte layout of `loft.index.cache` (see `docs/index-cache-format.md`): the preamble, the
//! two header slots holding the field table, and the appended value records. Pure functions
//! over byte slices: encoding, and decoding that checks every length, offset and CRC and
//! reports damage as `(what, offset)` instead of panicking. Knows nothing of files or locks.

use super::Decision;

pub(super) const MAGIC: &[u8; 8] = b"LOFTCCH\0";
pub(super) const VERSION: u32 = 1;
/// Preamble: magic, version, slot size, UIDVALIDITY, two reserved words, CRC32.
pub(super) const PREAMBLE_LEN: u64 = 32;
pub(super) const MIN_SLOT: u32 = 4096;
/// Largest header slot a file may declare (1024 fields of 255-byte names fit in 512 KiB).
pub(super) const MAX_SLOT: u32 = 1 << 20;
/// Record head: uid u32, field id u16, len u32.
pub(super) const REC_HEAD: usize = 10;
pub(super) const REC_CRC: usize = 4;
/// A single value larger than this is never cached.
pub const MAX_VALUE: usize = 1 << 20;
/// At most this many field names per cache file.
pub(super) const MAX_FIELDS: usize = 1024;
pub(super) const MAX_NAME: usize = 255;
const SLOT_HEAD: usize = 16;
const ENTRY_HEAD: usize = 12;

/// Damage found while decoding: what is wrong and at which absolute file offset.
pub(super) type Damage = (String, u64);

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The fixed start of the file; rewritten only by replacing the whole file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Preamble {
    pub slot_size: u32,
    pub uid_validity: u32,
}

impl Preamble {
    pub fn records_start(&self) -> u64 {
        PREAMBLE_LEN + 2 * u64::from(self.slot_size)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(PREAMBLE_LEN as usize);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.slot_size.to_le_bytes());
        b.extend_from_slice(&self.uid_validity.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the first 32 bytes. A newer version is reported with the word "newer" so
    /// the caller can set the file aside instead of overwriting it.
    pub fn decode(b: &[u8]) -> Result<Preamble, Damage> {
        if b.len() < PREAMBLE_LEN as usize {
            return Err((
                format!("file too short for the preamble ({} bytes)", b.len()),
                0,
            ));
        }
        if &b[..8] != MAGIC {
            return Err(("bad magic".into(), 0));
        }
        let version = u32_at(b, 8).unwrap_or(0);
        let crc = u32_at(b, 28).unwrap_or(0);
        if crc != crc32fast::hash(&b[..28]) {
            return Err(("preamble CRC mismatch".into(), 28));
        }
        if version > VERSION {
            return Err((
                format!("version {version} is newer than supported {VERSION}"),
                8,
            ));
        }
        if version != VERSION {
            return Err((format!("unknown version {version}"), 8));
        }
        let slot_size = u32_at(b, 12).unwrap_or(0);
        if !(MIN_SLOT..=MAX_SLOT).contains(&slot_size) || slot_size % MIN_SLOT != 0 {
            return Err((format!("bad header slot size {slot_size}"), 12));
        }
        Ok(Preamble {
            slot_size,
            uid_validity: u32_at(b, 16).unwrap_or(0),
        })
    }
}

/// One row of the field table as stored in a header slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub id: u16,
    pub name: String,
    pub decision: Decision,
    pub last_used_day: u32,
    pub temp_since_uid: u32,
}

/// Encodes a header slot (`seq`, field table, CRC); `None` when it exceeds `slot_size`.
pub(super) fn encode_slot(seq: u64, entries: &[Entry], slot_size: u32) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    for e in entries {
        let name = e.name.as_bytes();
        body.extend_from_slice(&e.id.to_le_bytes());
        body.push(e.decision as u8);
        body.push(u8::try_from(name.len()).ok()?);
        body.extend_from_slice(&e.last_used_day.to_le_bytes());
        body.extend_from_slice(&e.temp_since_uid.to_le_bytes());
        body.extend_from_slice(name);
    }
    let mut b = Vec::with_capacity(SLOT_HEAD + body.len() + 4);
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&u32::try_from(body.len()).ok()?.to_le_bytes());
    b.extend_from_slice(&u16::try_from(entries.len()).ok()?.to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&body);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    (b.len() <= slot_size as usize).then_some(b)
}

/// Bytes a slot needs for `entries`.
pub(super) fn slot_need(entries: &[Entry]) -> usize {
    SLOT_HEAD
        + 4
        + entries
            .iter()
            .map(|e| ENTRY_HEAD + e.name.len())
            .sum::<usize>()
}

/// Smallest allowed slot size holding `need` bytes with room to grow.
pub(super) fn slot_size_for(need: usize) -> u32 {
    let mut s = MIN_SLOT as usize;
    while s < need.saturating_mul(2) && s < MAX_SLOT as usize {
        s *= 2;
    }
    s as u32
}

/// Decodes one header slot found at absolute offset `at`. Returns its sequence number and
/// field table; a slot never written (all zero) or torn by a crash is `Err`.
pub(super) fn decode_slot(b: &[u8], at: u64) -> Result<(u64, Vec<Entry>), Damage> {
    let bad = |what: &str, off: usize| Err((what.to_string(), at + off as u64));
    let (Some(seq), Some(body_len), Some(count)) = (u64_at(b, 0), u32_at(b, 8), u16_at(b, 12))
    else {
        return bad("header slot truncated", 0);
    };
    let end = SLOT_HEAD + body_len as usize;
    let Some(crc) = u32_at(b, end) else {
        return bad("header slot length out of range", 8);
    };
    if seq == 0 || crc != crc32fast::hash(&b[..end]) {
        return bad("header slot CRC mismatch", end);
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(usize::from(count).min(MAX_FIELDS));
    let mut p = SLOT_HEAD;
    for _ in 0..count {
        let (Some(id), Some(&dec), Some(&nlen), Some(day), Some(temp)) = (
            u16_at(b, p),
            b.get(p + 2),
            b.get(p + 3),
            u32_at(b, p + 4),
            u32_at(b, p + 8),
        ) else {
            return bad("field entry truncated", p);
        };
        let name_at = p + ENTRY_HEAD;
        let name_end = name_at + usize::from(nlen);
        if name_end > end {
            return bad("field name past the slot body", p);
        }
        let Ok(name) = std::str::from_utf8(&b[name_at..name_end]) else {
            return bad("field name is not UTF-8", name_at);
        };
        let Some(decision) = Decision::from_u8(dec) else {
            return bad("bad decision byte", p + 2);
        };
        if name.is_empty() || entries.len() >= MAX_FIELDS {
            return bad("empty field name or too many fields", p);
        }
        if entries.iter().any(|e| e.id == id || e.name == name) {
            return bad("duplicate field id or name", p);
        }
        entries.push(Entry {
            id,
            name: name.to_string(),
            decision,
            last_used_day: day,
            temp_since_uid: temp,
        });
        p = name_end;
    }
    if p != end {
        return bad("slot body length does not match its entries", 8);
    }
    Ok((seq, entries))
}

/// Appends one value record to `out`.
pub(super) fn encode_record(out: &mut Vec<u8>, uid: u32, id: u16, value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&uid.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Total size of a record holding `len` value bytes.
pub(super) fn record_len(len: u32) -> u64 {
    (REC_HEAD + REC_CRC) as u64 + u64::from(len)
}

/// Checks the record starting at `b[0]` (the full record, `record_len` bytes) and returns
/// its value, or `None` when its CRC does not match.
pub(super) fn record_value(b: &[u8]) -> Option<&[u8]> {
    let len = u32_at(b, 6)? as usize;
    let end = REC_HEAD + len;
    let crc = u32_at(b, end)?;
    (crc == crc32fast::hash(b.get(..end)?)).then(|| &b[REC_HEAD..end])
}

/// The value of a record indexed earlier, read again at `b[0]`: its head must still say
/// `uid` and `len` and its CRC must match. Another program may have rewritten any byte
/// since the record was indexed, and a value is never served unchecked (the CRC costs
/// about as much as copying the value).
pub(super) fn record_checked(b: &[u8], uid: u32, len: u32) -> Option<&[u8]> {
    if u32_at(b, 0)? != uid || u32_at(b, 6)? != len {
        return None;
    }
    record_value(b.get(..record_len(len) as usize)?)
}

/// Where a scan of records stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ScanEnd {
    /// Absolute offset just past the last good record.
    pub valid_end: u64,
    /// Bytes after `valid_end` were a torn or zeroed tail (a crash artefact).
    pub torn: bool,
}

/// Scans the records in `b`, which starts at absolute offset `base`. Calls `emit(uid, id,
/// record_offset, value_len)` for every good record. A short, CRC-failing or all-zero
/// remainder at the very end is a torn tail; anything bad before more data is `Err`.
/// `known(id)` says whether a field id is in the field table.
pub(super) fn scan(
    b: &[u8],
    base: u64,
    known: &dyn Fn(u16) -> bool,
    emit: &mut dyn FnMut(u32, u16, u64, u32),
) -> Result<ScanEnd, Damage> {
    let mut p = 0usize;
    let torn = |p: usize| {
        Ok(ScanEnd {
            valid_end: base + p as u64,
            torn: true,
        })
    };
    while p < b.len() {
        let rest = &b[p..];
        let at = base + p as u64;
        // Zeros up to the end are a crash artefact (size extended, data never written).
        let bad = |what: String, off: u64| {
            if rest.iter().all(|&x| x == 0) {
                torn(p)
            } else {
                Err((what, off))
            }
        };
        let (Some(uid), Some(id), Some(len)) = (u32_at(rest, 0), u16_at(rest, 4), u32_at(rest, 6))
        else {
            return torn(p);
        };
        if len as usize > MAX_VALUE {
            return bad(format!("record length {len} exceeds the limit"), at + 6);
        }
        let total = record_len(len) as usize;
        if total > rest.len() {
            return torn(p);
        }
        if record_value(&rest[..total]).is_none() {
            if total == rest.len() {
                return torn(p);
            }
            return bad("record CRC mismatch".into(), at);
        }
        if uid == 0 {
            return bad("record with uid 0".into(), at);
        }
        if !known(id) {
            return bad(format!("record for unknown field id {id}"), at + 4);
        }
        emit(uid, id, at, len);
        p += total;
    }
    Ok(ScanEnd {
        valid_end: base + p as u64,
        torn: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u16, name: &str) -> Entry {
        Entry {
            id,
            name: name.into(),
            decision: Decision::Yes,
            last_used_day: 20000,
            temp_since_uid: 7,
        }
    }

    #[test]
    fn preamble_round_trip_and_damage() {
        let p = Preamble {
            slot_size: 8192,
            uid_validity: 42,
        };
        let b = p.encode();
        assert_eq!(Preamble::decode(&b), Ok(p));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(Preamble::decode(&c).is_err(), "flip at {i}");
        }
        assert!(Preamble::decode(&b[..31]).is_err());
    }

    #[test]
    fn slot_round_trip_and_limits() {
        let es = vec![entry(0, "imap.envelope"), entry(5, "hdr")];
        let b = encode_slot(9, &es, 4096).unwrap();
        assert_eq!(b.len(), slot_need(&es));
        assert_eq!(decode_slot(&b, 32), Ok((9, es.clone())));
        assert!(encode_slot(9, &es, 40).is_none());
        assert!(decode_slot(&[0; 64], 32).is_err());
        let dup = vec![entry(1, "a"), entry(1, "b")];
        assert!(decode_slot(&encode_slot(1, &dup, 4096).unwrap(), 0).is_err());
    }

    #[test]
    fn scan_tells_torn_tail_from_corruption() {
        let mut b = Vec::new();
        encode_record(&mut b, 1, 0, b"one");
        encode_record(&mut b, 2, 0, b"two");
        let full = b.len();
        let mut seen = Vec::new();
        let end = scan(&b, 100, &|id| id == 0, &mut |u, _, off, len| {
            seen.push((u, off, len))
        })
        .unwrap();
        assert_eq!(
            end,
            ScanEnd {
                valid_end: 100 + full as u64,
                torn: false
            }
        );
        assert_eq!(seen, vec![(1, 100, 3), (2, 117, 3)]);
        // Every truncation inside the second record is a torn tail after the first.
        for cut in 18..full {
            let end = scan(&b[..cut], 0, &|_| true, &mut |_, _, _, _| {}).unwrap();
            assert_eq!(
                end,
                ScanEnd {
                    valid_end: 17,
                    torn: true
                }
            );
        }
        // A flipped byte in the first record, with more following, is corruption.
        let mut c = b.clone();
        c[11] ^= 1;
        assert!(scan(&c, 0, &|_| true, &mut |_, _, _, _| {}).is_err());
        // Zeros after good records are a torn tail.
        let mut z = b.clone();
        z.extend_from_slice(&[0; 100]);
        assert_eq!(
            scan(&z, 0, &|_| true, &mut |_, _, _, _| {})
                .unwrap()
                .valid_end,
            full as u64
        );
        // Unknown field ids are corruption.
        assert!(scan(&b, 0, &|_| false, &mut |_, _, _, _| {}).is_err());
    }
}
