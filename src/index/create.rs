//! Creating and rebuilding index files: a fresh pair on first open (the empty log
//! first, then the index), and a rebuild from records gathered by the caller, renaming
//! unreadable old files aside. Both run under the write lock.
//!
//! This module knows files and generations, not what callers store in records.

use std::io::ErrorKind;

use super::apply::recount;
use super::format::{self, decode_index, decode_log_header, IndexParts, LogHeader, LOG_HEADER_LEN};
use super::state::{corrupt, load, new_pair_id, now_secs, sync_dir, Inner};
use super::Records;
use super::{lock, log, Dir, Error, FsyncMode, Header, IndexSnapshot, Options, Record};
use super::{INDEX_FILE, LOG_FILE};

/// Writes a fresh pair: log first (an empty log alone reads as "no index yet"), then
/// the index, then the directory.
fn write_pair(
    dir: &Dir,
    opts: &Options,
    gen: u64,
    pair_id: u64,
    s: &IndexSnapshot,
) -> Result<(), Error> {
    let sync = opts.fsync != FsyncMode::Never;
    let lh = LogHeader {
        generation: gen,
        pair_id,
        uid_validity: s.header.uid_validity,
    };
    log::create(dir, &lh, sync).map_err(Error::io(dir.file(LOG_FILE)))?;
    write_index(dir, opts, gen, pair_id, s)?;
    sync_dir(dir, opts)
}

pub(super) fn write_index(
    dir: &Dir,
    opts: &Options,
    gen: u64,
    pair_id: u64,
    s: &IndexSnapshot,
) -> Result<(), Error> {
    let parts = IndexParts {
        header: &s.header,
        generation: gen,
        log_offset: LOG_HEADER_LEN as u64,
        pair_id,
        keywords: &s.keywords,
        records: &s.records,
    };
    let sync = opts.fsync != FsyncMode::Never;
    log::replace_file_with(dir, INDEX_FILE, sync, |w| {
        format::encode_index_to(&parts, w)
    })
    .map_err(Error::io(dir.file(INDEX_FILE)))
}

/// `records` in ascending UID order (sorted when given otherwise), flags masked to the
/// stored bits; `Invalid` for a UID given twice, 0 or `u32::MAX`.
fn checked_records(mut records: Records) -> Result<Records, Error> {
    let sorted = (records.iter().zip(records.iter().skip(1))).all(|(a, b)| a.uid < b.uid);
    if !sorted {
        let mut v: Vec<Record> = records.iter().cloned().collect();
        v.sort_by_key(|r| r.uid);
        if let Some(w) = v.windows(2).find(|w| w[0].uid == w[1].uid) {
            return Err(Error::Invalid {
                what: format!("uid {} given twice", w[0].uid),
            });
        }
        records = v.into();
    }
    let (first, last) = (records.get(0).map(|r| r.uid), records.last().map(|r| r.uid));
    if first == Some(0) || last == Some(u32::MAX) {
        return Err(Error::Invalid {
            what: "uid 0 or 4294967295 given".into(),
        });
    }
    if records.iter().any(|r| r.flags & !format::FLAG_MASK != 0) {
        records.update_range(0..records.len(), |r| r.flags &= format::FLAG_MASK);
    }
    Ok(records)
}

pub fn open_or_create(dir: &Dir, opts: &Options) -> Result<(Inner, bool), Error> {
    if let Some(i) = load(dir, opts)? {
        return Ok((i, false));
    }
    let _held = lock::of_index(dir, opts, &Default::default())?;
    if let Some(i) = load(dir, opts)? {
        return Ok((i, false));
    }
    let mut s = IndexSnapshot::default();
    s.header.uid_validity = opts.shared.fresh_uid_validity();
    s.header.uid_next = 1;
    s.header.recent_uid = 1;
    write_pair(dir, opts, 1, new_pair_id(), &s)?;
    match load(dir, opts)? {
        Some(i) => Ok((i, true)),
        None => Err(corrupt(
            dir.file(INDEX_FILE),
            "index vanished right after creation",
            0,
        )),
    }
}

/// Copies of unreadable files kept per file name (the newest; older ones are removed, so
/// that a program damaging the files again and again cannot fill the disk through us).
const BROKEN_KEPT: usize = 3;

/// Renames an unreadable file `name` of `dir` aside to `<name>.broken-<unix time>`
/// (the damage itself was logged by whoever found it: this is detail, at info level).
pub(super) fn aside(dir: &Dir, name: &str) {
    let to = format!("{name}.broken-{}", now_secs());
    match dir.rename(name, &to) {
        Ok(()) => {
            tracing::info!(
                "unreadable index file {} renamed to {}",
                dir.file(name).display(),
                dir.file(&to).display()
            );
            prune_broken(dir, name);
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("could not rename {} aside: {e}", dir.file(name).display()),
    }
}

/// Removes all but the [`BROKEN_KEPT`] newest `<name>.broken-<time>` beside `name`.
pub(super) fn prune_broken(dir: &Dir, name: &str) {
    let prefix = format!("{name}.broken-");
    let Ok(entries) = dir.names() else {
        return;
    };
    let mut copies: Vec<(u64, String)> = entries
        .into_iter()
        .filter_map(|n| {
            let n = n.into_string().ok()?;
            let t = n.strip_prefix(&prefix)?.parse().ok()?;
            Some((t, n))
        })
        .collect();
    copies.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    for (_, n) in copies.into_iter().skip(BROKEN_KEPT) {
        let _ = dir.remove(&n);
    }
}

/// Replaces the files of `dir` with an index of exactly these records; returns the state
/// of the new pair (taken from what was written, not read back).
pub fn rebuild(
    dir: &Dir,
    opts: &Options,
    header: Header,
    keywords: Vec<String>,
    records: Records,
) -> Result<Inner, Error> {
    if keywords.len() > format::MAX_KEYWORDS {
        return Err(Error::Invalid {
            what: format!("{} keywords, at most 64", keywords.len()),
        });
    }
    let records = checked_records(records)?;
    let _held = lock::of_index(dir, opts, &Default::default())?;
    let lpath = dir.file(LOG_FILE);
    let mut gen = 0u64;
    if let Ok(b) = dir.read_file(INDEX_FILE) {
        if let Ok(h) = format::decode_index_header(&b) {
            gen = gen.max(h.generation);
        }
        if decode_index(&b).is_err() {
            aside(dir, INDEX_FILE);
        }
    }
    if let Ok(b) = dir.read_file(LOG_FILE) {
        match decode_log_header(&b) {
            Ok(h) => {
                gen = gen.max(h.generation);
                if log::scan(
                    b.get(LOG_HEADER_LEN..).unwrap_or(&[]),
                    LOG_HEADER_LEN as u64,
                )
                .is_err()
                {
                    aside(dir, LOG_FILE);
                }
            }
            Err(_) => aside(dir, LOG_FILE),
        }
    }
    let last = records.last().map_or(0, |r| r.uid);
    let mut s = IndexSnapshot {
        header,
        keywords,
        records,
    };
    s.header.uid_next = s.header.uid_next.max(last + 1).max(1);
    s.header.recent_uid = s.header.recent_uid.min(s.header.uid_next);
    s.header.highest_modseq = s
        .records
        .iter()
        .map(|r| r.modseq)
        .fold(s.header.highest_modseq, u64::max);
    if s.header.uid_validity == 0 {
        s.header.uid_validity = opts.shared.fresh_uid_validity();
    }
    recount(&mut s);
    // The index goes first here: a crash before the log is replaced leaves a pair whose
    // ids differ, which reads as corrupted and is rebuilt again.
    let pair = new_pair_id();
    write_index(dir, opts, gen + 1, pair, &s)?;
    let lh = LogHeader {
        generation: gen + 1,
        pair_id: pair,
        uid_validity: s.header.uid_validity,
    };
    log::create(dir, &lh, opts.fsync != FsyncMode::Never).map_err(Error::io(lpath))?;
    sync_dir(dir, opts)?;
    super::state::written(dir, s, gen + 1, pair)
}
