//! `Index::verify`: reads the files of one folder without the registry or the lock and
//! lists every inconsistency it finds (each as `<file>: <what> at offset <n>`): each
//! file on its own, each damaged record of the main index, and the pair together
//! (ids, generations, the log applied to the index). A torn log tail is a normal crash
//! artefact and not reported.
//!
//! This module reports; it never repairs.

use std::path::Path;

use super::apply::apply_txn;
use super::format::{self, Bad, INDEX_HEADER_LEN, LOG_HEADER_LEN, RECORD_LEN};
use super::{log, IndexSnapshot, INDEX_FILE, LOG_FILE};

fn line(name: &str, b: &Bad) -> String {
    format!("{name}: {} at offset {}", b.what, b.offset)
}

/// Reports each record whose checksum or key reference is bad (at most 20).
fn bad_records(buf: &[u8], out: &mut Vec<String>) {
    let Ok(h) = format::decode_index_header(buf) else {
        return;
    };
    let keys_end = h.keys_off.saturating_add(h.keys_len.saturating_sub(4));
    let keys = buf
        .get(h.keys_off as usize..keys_end as usize)
        .unwrap_or(&[]);
    let room = (buf.len() - INDEX_HEADER_LEN) / RECORD_LEN;
    let mut found = 0;
    for i in 0..(h.header.messages as usize).min(room) {
        if let Err(b) = format::decode_record(buf, INDEX_HEADER_LEN + i * RECORD_LEN, keys, i) {
            found += 1;
            if found <= 20 {
                out.push(line(INDEX_FILE, &b));
            }
        }
    }
    if found > 20 {
        out.push(format!("{INDEX_FILE}: {} more damaged records", found - 20));
    }
}

pub fn verify(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let dir = match super::Dir::open(dir) {
        Ok(d) => d,
        Err(e) => return vec![format!("{}: {e}", dir.display())],
    };
    let idx = match dir.read_file(INDEX_FILE) {
        Err(e) => {
            out.push(format!("{INDEX_FILE}: {e}"));
            None
        }
        Ok(b) => match format::decode_index(&b) {
            Ok(i) => Some(i),
            Err(bad) => {
                let first = line(INDEX_FILE, &bad);
                out.push(first.clone());
                let mut more = Vec::new();
                bad_records(&b, &mut more);
                out.extend(more.into_iter().filter(|l| *l != first));
                None
            }
        },
    };
    let lg = match dir.read_file(LOG_FILE) {
        Err(e) => {
            out.push(format!("{LOG_FILE}: {e}"));
            None
        }
        Ok(b) => match format::decode_log_header(&b) {
            Ok(h) => Some((h, b)),
            Err(bad) => {
                out.push(line(LOG_FILE, &bad));
                None
            }
        },
    };
    let Some((lh, lb)) = lg else { return out };
    let Some(idx) = idx else {
        if let Err(bad) = log::scan(
            lb.get(LOG_HEADER_LEN..).unwrap_or(&[]),
            LOG_HEADER_LEN as u64,
        ) {
            out.push(line(LOG_FILE, &bad));
        }
        return out;
    };
    if lh.pair_id != idx.pair_id {
        out.push(format!(
            "{LOG_FILE}: belongs to another index (pair id {:#x}, index {:#x}) at offset 24",
            lh.pair_id, idx.pair_id
        ));
    } else if lh.generation > idx.generation {
        out.push(format!(
            "{LOG_FILE}: generation {} is newer than the index's {} at offset 16",
            lh.generation, idx.generation
        ));
    } else if lh.generation < idx.generation {
        if idx.log_offset != LOG_HEADER_LEN as u64 {
            out.push(format!(
                "{INDEX_FILE}: newer generation than its log but starts mid-log at offset 64"
            ));
        }
    } else if idx.log_offset < LOG_HEADER_LEN as u64 || idx.log_offset > lb.len() as u64 {
        out.push(format!(
            "{INDEX_FILE}: includes the log up to offset {} but the log holds {} bytes at offset 64",
            idx.log_offset,
            lb.len()
        ));
    } else {
        let off = idx.log_offset;
        match log::scan(&lb[off as usize..], off) {
            Err(bad) => out.push(line(LOG_FILE, &bad)),
            Ok(sc) => {
                let mut snap = IndexSnapshot {
                    header: idx.header,
                    keywords: idx.keywords,
                    records: idx.records,
                };
                for (at, txn) in &sc.txns {
                    if let Err(bad) = apply_txn(&mut snap, txn, *at) {
                        out.push(line(LOG_FILE, &bad));
                        break;
                    }
                }
            }
        }
    }
    out
}
