use super::super::op::{self, Frame, Op};
use super::*;

fn rec(uid: u32, key: &str) -> Record {
    Record {
        uid,
        flags: (uid % 32) as u8,
        dirty: uid % 2 == 0,
        keywords: u64::from(uid) << 3,
        modseq: u64::from(uid),
        size: 1000 + u64::from(uid),
        internal_date: -5 + i64::from(uid),
        key: key.as_bytes().into(),
    }
}

fn sample() -> Vec<u8> {
    let records: Vec<Record> = (1..=5).map(|u| rec(u * 3, &format!("key-{u}"))).collect();
    let header = Header {
        uid_validity: 77,
        uid_next: 16,
        highest_modseq: 15,
        recent_uid: 9,
        ..Header::default()
    };
    let kw = vec!["$Forwarded".to_string(), "Junk".to_string()];
    encode_index(&IndexParts {
        header: &header,
        generation: 4,
        log_offset: 40,
        pair_id: 99,
        keywords: &kw,
        records: &records.clone().into(),
    })
}

#[test]
fn index_round_trip() {
    let b = sample();
    let f = decode_index(&b).unwrap();
    assert_eq!(f.generation, 4);
    assert_eq!(f.pair_id, 99);
    assert_eq!(f.records.len(), 5);
    assert_eq!(f.records[2], rec(9, "key-3"));
    assert_eq!(f.keywords, ["$Forwarded", "Junk"]);
    assert_eq!(f.header.messages, 5);
    assert_eq!(f.header.uid_validity, 77);
}

#[test]
fn every_truncation_and_flip_is_detected() {
    let b = sample();
    for cut in 0..b.len() {
        assert!(decode_index(&b[..cut]).is_err(), "cut {cut}");
    }
    for i in 0..b.len() {
        for bit in [0x01u8, 0x80] {
            let mut c = b.clone();
            c[i] ^= bit;
            assert!(decode_index(&c).is_err(), "flip at {i}");
        }
    }
}

#[test]
fn newer_version_is_named() {
    let mut b = sample();
    b[8..12].copy_from_slice(&9u32.to_le_bytes());
    let c = crc(&[&b[..124]]);
    b[124..128].copy_from_slice(&c.to_le_bytes());
    let e = decode_index(&b).unwrap_err();
    assert_eq!(e.what, "version 9 is newer than this Loft (1)");
}

#[test]
fn uid_order_is_checked() {
    let records = vec![rec(40, "a"), rec(12, "b")];
    let header = Header {
        uid_validity: 1,
        uid_next: 50,
        highest_modseq: 40,
        ..Header::default()
    };
    let b = encode_index(&IndexParts {
        header: &header,
        generation: 1,
        log_offset: 40,
        pair_id: 1,
        keywords: &[],
        records: &records.clone().into(),
    });
    let e = decode_index(&b).unwrap_err();
    assert_eq!(e.what, "record 1: uid 12 not above previous uid 40");
}

#[test]
fn record_count_claim_is_checked() {
    let mut b = sample();
    b[32..36].copy_from_slice(&900u32.to_le_bytes());
    let c = crc(&[&b[..124]]);
    b[124..128].copy_from_slice(&c.to_le_bytes());
    let e = decode_index(&b).unwrap_err();
    assert!(
        e.what
            .starts_with("header claims 900 records but file holds"),
        "{}",
        e.what
    );
}

#[test]
fn log_header_and_ops_round_trip() {
    let h = LogHeader {
        generation: 3,
        pair_id: 5,
        uid_validity: 8,
    };
    let b = encode_log_header(&h);
    assert_eq!(b.len(), LOG_HEADER_LEN);
    assert_eq!(decode_log_header(&b).unwrap(), h);
    let ops = vec![
        Op::Append(rec(7, "seven")),
        Op::Flags {
            modseq: 9,
            flags: 3,
            keywords: 1 << 63,
            dirty: true,
            ranges: vec![(1, 5), (9, 9)],
        },
        Op::Expunge {
            modseq: 10,
            ranges: vec![(2, 2)],
        },
        Op::KeywordNames {
            first: 0,
            names: vec!["a".into(), "ü".into()],
        },
        Op::UidValidity {
            uid_validity: 3,
            uid_next: 1,
        },
        Op::Recent { uid: 4 },
        Op::DirtyClear {
            ranges: vec![(1, 100)],
        },
        Op::SetKey {
            uid: 7,
            key: b"new".to_vec().into(),
        },
        Op::SetDates {
            dates: vec![(1, 1_700_000_000), (9, -5), (10, i64::MIN)],
        },
        Op::SetSizes {
            sizes: vec![(1, 0), (9, 1234), (10, u64::MAX)],
        },
        Op::Commit { modseq: 10, ops: 9 },
    ];
    let mut buf = Vec::new();
    for o in &ops {
        op::encode(o, &mut buf);
    }
    let mut pos = 0;
    for o in &ops {
        let Frame::Ok {
            kind,
            payload_at,
            len,
            end,
        } = op::frame(&buf, pos)
        else {
            panic!("frame at {pos}")
        };
        assert_eq!(
            &op::decode(kind, &buf[payload_at..payload_at + len], pos).unwrap(),
            o
        );
        pos = end;
    }
    assert_eq!(pos, buf.len());
    for cut in 0..buf.len() {
        let _ = super::super::log::scan(&buf[..cut], 40);
    }
}

/// An index large enough to be decoded in two halves at once: the same records as one
/// decode would give, and damage or disorder in either half (or across the halves) is
/// reported with the record's number and offset.
#[test]
fn a_large_index_decodes_in_two_halves_the_same() {
    let n = PARALLEL_RECORDS as u32 + 1001;
    let records: Vec<Record> = (1..=n).map(|u| rec(u * 2, &format!("k{u}"))).collect();
    let header = Header {
        uid_validity: 7,
        uid_next: 2 * n + 1,
        highest_modseq: 2 * u64::from(n),
        recent_uid: 1,
        ..Header::default()
    };
    let encode = |records: &[Record]| {
        encode_index(&IndexParts {
            header: &header,
            generation: 1,
            log_offset: 40,
            pair_id: 5,
            keywords: &[],
            records: &records.to_vec().into(),
        })
    };
    let b = encode(&records);
    let f = decode_index(&b).unwrap();
    assert_eq!(f.records.len(), n as usize);
    assert!(
        f.records.iter().eq(records.iter()),
        "same records in the same order"
    );
    assert_eq!(f.records.find(2 * (n / 2 + 3)), Ok(n as usize / 2 + 2));
    // A record of the second half damaged: named by its number.
    let i = n as usize - 10;
    let mut c = b.clone();
    c[INDEX_HEADER_LEN + i * RECORD_LEN + 20] ^= 1;
    let e = decode_index(&c).unwrap_err();
    assert!(e.what.contains(&format!("record {i} ")), "{}", e.what);
    // Disorder exactly where the halves meet.
    let mid = n as usize / 2;
    let mut bad = records.clone();
    bad[mid].uid = bad[mid - 1].uid;
    let e = decode_index(&encode(&bad)).unwrap_err();
    assert!(e.what.contains(&format!("record {mid}: uid")), "{}", e.what);
    assert_eq!(e.offset, (INDEX_HEADER_LEN + mid * RECORD_LEN) as u64);
}
