//! The transaction log `loft.index.log`: scanning committed transactions from an offset
//! (a torn tail — an incomplete last transaction from a crash — is not there yet; a bad
//! record followed by a later valid commit is corruption), appending, and creating a new
//! empty log of a generation atomically (temp + fsync + rename + directory fsync).
//!
//! This module knows the log file, not what the changes mean.

use super::Dir;
use std::fs::{self, File};
use std::io::{self, Write};

use super::format::{bad, encode_log_header, Bad, LogHeader};
use super::op::{self, Frame, Op, COMMIT, COMMIT_PAYLOAD, FRAME};

/// Committed transactions found in a stretch of log.
#[derive(Debug, Default)]
pub struct Scan {
    /// Each transaction's offset and records, its `Commit` last.
    pub txns: Vec<(u64, Vec<Op>)>,
    /// Absolute offset just after the last commit (= where the next writer appends).
    pub end: u64,
    /// Records in `txns`, commits included.
    pub records: u64,
    /// Bytes follow `end` that are not a complete transaction (crash artefact or a
    /// transaction still being written).
    pub torn: bool,
}

/// True when a valid commit record starts anywhere in `buf[from..]`.
fn commit_after(buf: &[u8], from: usize) -> bool {
    let need = FRAME + COMMIT_PAYLOAD as usize;
    let mut p = from;
    while p + need <= buf.len() {
        if buf[p..p + 4] == COMMIT_PAYLOAD.to_le_bytes() && buf[p + 4] == COMMIT {
            if let Frame::Ok { .. } = op::frame(buf, p) {
                return true;
            }
        }
        p += 1;
    }
    false
}

/// Scans `buf`, the log's bytes from absolute offset `base` to its end.
pub fn scan(buf: &[u8], base: u64) -> Result<Scan, Bad> {
    let mut s = Scan {
        end: base,
        ..Scan::default()
    };
    let mut pending: Vec<Op> = Vec::new();
    let mut txn_start = 0usize;
    let mut pos = 0usize;
    let abs = |p: usize| (base as usize).saturating_add(p);
    while pos < buf.len() {
        match op::frame(buf, pos) {
            Frame::Broken(why) => {
                if commit_after(buf, pos + 1) {
                    return bad(
                        format!(
                            "record at offset {}: {why}, and committed records follow",
                            abs(pos)
                        ),
                        abs(pos),
                    );
                }
                s.torn = true;
                return Ok(s);
            }
            Frame::Ok {
                kind,
                payload_at,
                len,
                end,
            } => {
                let o = op::decode(kind, &buf[payload_at..payload_at + len], abs(pos))?;
                pos = end;
                if let Op::Commit { ops, .. } = o {
                    if ops as usize != pending.len() {
                        return bad(
                            format!(
                                "commit at offset {} counts {ops} records but {} precede it",
                                abs(pos),
                                pending.len()
                            ),
                            abs(txn_start),
                        );
                    }
                    pending.push(o);
                    s.records += pending.len() as u64;
                    s.txns
                        .push((abs(txn_start) as u64, std::mem::take(&mut pending)));
                    s.end = abs(pos) as u64;
                    txn_start = pos;
                } else {
                    pending.push(o);
                }
            }
        }
    }
    s.torn = !pending.is_empty();
    Ok(s)
}

/// Reads from `offset` to the end of the file (as it is now).
pub fn read_from(file: &File, offset: u64) -> io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
    let mut out = vec![0u8; len.saturating_sub(offset) as usize];
    let got = crate::beneath::read_full_at(file, &mut out, offset)?;
    out.truncate(got);
    Ok(out)
}

/// Writes `bytes` as `dir/name` atomically: temp file, fsync, rename (no directory fsync).
pub fn replace_file(dir: &Dir, name: &str, bytes: &[u8], sync: bool) -> io::Result<()> {
    replace_file_with(dir, name, sync, |f| f.write_all(bytes))
}

/// Like [`replace_file`], the content written by `fill` through a buffer.
pub fn replace_file_with(
    dir: &Dir,
    name: &str,
    sync: bool,
    fill: impl FnOnce(&mut io::BufWriter<&fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = format!("{name}.tmp");
    let f = dir.create_fresh(&tmp)?;
    let mut w = io::BufWriter::with_capacity(256 * 1024, &f);
    fill(&mut w)?;
    w.flush()?;
    drop(w);
    if sync {
        f.sync_all()?;
    }
    drop(f);
    dir.rename(&tmp, name)
}

/// Replaces the log by an empty one of `h.generation`.
pub fn create(dir: &Dir, h: &LogHeader, sync: bool) -> io::Result<()> {
    replace_file(dir, super::LOG_FILE, &encode_log_header(h), sync)
}

/// Encodes one transaction (its ops, then a commit).
pub fn encode_txn(ops: &[Op], modseq: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for o in ops {
        op::encode(o, &mut out);
    }
    op::encode(
        &Op::Commit {
            modseq,
            ops: ops.len() as u32,
        },
        &mut out,
    );
    out
}
