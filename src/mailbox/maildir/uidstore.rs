//! The UID store of a Maildir folder: the index engine's files (`loft.index`,
//! `loft.index.log`, `loft.index.cache`, see `docs/index-format.md`) in the folder hold
//! UIDVALIDITY, UIDNEXT, the `\Recent` threshold and, per message, its key (the file's
//! base name), RFC822.SIZE, internal date, flags and keywords.
//!
//! [`load_or_rebuild`] gives what is [`Known`] before a scan: the index state itself
//! (nothing copied per message), or the list an import or a repair made; [`save`] writes
//! the differences back as one transaction (or rebuilds the files when UIDs are not
//! simply appended: import, repair, new UIDVALIDITY).
//!
//! Upgrade: a folder without index files imports once from `loft-uidlist` (which is then
//! left in place, unused), else from `dovecot-uidlist`/Courier ([`migrate`]), else starts
//! fresh. Damage: any [`index::Error::Corrupted`] is logged as one line and the files are
//! rebuilt from the mail files, keeping the UID of every message whose key
//! [`Index::salvage`] still finds, and UIDVALIDITY unless no UID can be kept (logged).
//!
//! Callers hold the folder lock around `load`..`save`. This module must not know about
//! directory scanning or IMAP.

use std::sync::Arc;

use super::filemap::FileMap;
use super::folder::{FileInfo, Folder};
use super::keywords::Keywords;
use super::migrate;
use super::uidlist::{self, Entry, Loaded as ListLoaded, UidList};
use crate::config::FsyncMode;
use crate::index::{self, Header, Index, IndexSnapshot, Record};
use crate::mailbox::{Error, ErrorKind, Result, Uid};

/// From this many messages an empty index is written whole instead of through the log.
const BUILD_DIRECTLY: usize = 1000;

/// The UIDs a scan starts from: UIDVALIDITY, UIDNEXT, the `\Recent` threshold, and
/// each known message's base name and size.
pub struct Known {
    pub uid_validity: u32,
    pub uid_next: Uid,
    /// Highest UID already announced as `\Recent`.
    pub recent: Uid,
    source: Source,
}

enum Source {
    /// The folder's own index: names and sizes are read from its records.
    Index(Arc<IndexSnapshot>),
    /// Imported from an old uid list, or salvaged from damaged files.
    List(std::collections::BTreeMap<Uid, Entry>),
}

impl Known {
    /// Nothing known yet under `uid_validity`.
    pub fn new(uid_validity: u32) -> Known {
        Known::from(UidList::new(uid_validity))
    }

    fn from_index(snap: Arc<IndexSnapshot>) -> Known {
        Known {
            uid_validity: snap.header.uid_validity.max(1),
            uid_next: snap.header.uid_next.max(1),
            recent: snap.header.recent_uid.saturating_sub(1),
            source: Source::Index(snap),
        }
    }

    pub fn len(&self) -> usize {
        match &self.source {
            Source::Index(s) => s.records.len(),
            Source::List(l) => l.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (UID, base name) of every known message, ascending.
    pub fn entries(&self) -> Box<dyn Iterator<Item = (Uid, &[u8])> + '_> {
        match &self.source {
            Source::Index(s) => Box::new(s.records.iter().map(|r| (r.uid, &r.key[..]))),
            Source::List(l) => Box::new(l.iter().map(|(u, e)| (*u, e.base.as_bytes()))),
        }
    }

    /// RFC822.SIZE of a known message, when computed.
    fn size(&self, uid: Uid) -> Option<u64> {
        match &self.source {
            Source::Index(s) => s
                .get(uid)
                .map(|r| r.size)
                .filter(|s| *s != index::UNKNOWN_SIZE),
            Source::List(l) => l.get(&uid).and_then(|e| e.size),
        }
    }

    /// The next UID.
    pub fn assign(&mut self) -> Uid {
        let uid = self.uid_next;
        self.uid_next = self.uid_next.saturating_add(1);
        uid
    }
}

impl From<UidList> for Known {
    fn from(l: UidList) -> Known {
        Known {
            uid_validity: l.uid_validity,
            uid_next: l.uid_next,
            recent: l.recent,
            source: Source::List(l.entries),
        }
    }
}

/// What [`load_or_rebuild`] found.
pub struct Loaded {
    pub list: Known,
    /// The index state the list was read from; `None`: the files must be rebuilt.
    pub base: Option<Arc<IndexSnapshot>>,
    /// The list was read from this folder's own index (not imported or salvaged).
    pub from_index: bool,
    /// Salvaged from damaged files that may have lost UIDs at or above UIDNEXT: a
    /// message without a known UID then needs a new UIDVALIDITY.
    pub uid_next_uncertain: bool,
}

/// Maps an index error to a mailbox error (after logging corruption once).
pub fn map_err(e: index::Error) -> Error {
    e.into()
}

/// Logs the one line an administrator looks for.
pub fn report(e: &index::Error) {
    if let index::Error::Corrupted { file, what, offset } = e {
        tracing::warn!(
            "index corrupted: {}: {what} at offset {offset}; rebuilding from mail files",
            file.display()
        );
    }
}

/// The old uid list, in order of preference, for a folder that has no index yet; `None`
/// when there is none that assigned any UID (the new index's own values stand).
fn import(folder: &Folder) -> Option<UidList> {
    if let ListLoaded::Ok(l) = UidList::load(&folder.path) {
        if l.uid_next > 1 {
            tracing::info!(file = %folder.path.join(uidlist::FILE).display(), uidvalidity = l.uid_validity, messages = l.entries.len(), "imported UIDs from loft-uidlist into the index (the old file stays, unused)");
            return Some(l);
        }
    }
    migrate::adopt(&folder.path).filter(|l| l.uid_next > 1)
}

/// What the damaged files still tell, merged with what this process knew (`known`: the
/// last state of a session that had the folder open, which survives files deleted under
/// it). UIDVALIDITY changes only when neither knows it.
fn salvaged(folder: &Folder, known: Option<UidList>) -> (UidList, bool) {
    let s = Index::salvage(&folder.path);
    let uncertain = !s.complete && known.is_none();
    let mut list = match (s.uid_validity, known) {
        (Some(v), Some(k)) if k.uid_validity == v => k,
        (Some(v), _) => UidList::new(v),
        (None, Some(k)) => k,
        (None, None) => {
            let v = folder.storage.fresh_uid_validity();
            tracing::warn!(folder = %folder.path.display(), uidvalidity = v, "index unreadable beyond its UIDVALIDITY; UIDs reassigned under a new UIDVALIDITY, clients will resynchronise");
            return (UidList::new(v), false);
        }
    };
    list.uid_next = list.uid_next.max(s.uid_next.unwrap_or(1));
    let known_bases: std::collections::HashSet<String> =
        list.entries.values().map(|e| e.base.clone()).collect();
    for r in &s.records {
        let Ok(base) = std::str::from_utf8(&r.key) else {
            continue;
        };
        if known_bases.contains(base) || list.entries.contains_key(&r.uid) {
            continue;
        }
        list.entries.insert(
            r.uid,
            Entry {
                base: base.to_string(),
                size: Some(r.size),
            },
        );
    }
    list.fix_next();
    // Whatever the old index knew was announced already.
    list.recent = list.uid_next - 1;
    (list, uncertain)
}

/// Reads the folder's UIDs (`slot` caches the open index between calls; `known` gives
/// what this process last knew, used only to repair damage), or with `force` the salvage path of damaged files on intact ones: the next
/// save rebuilds the files from the mail files, keeping every UID (`loft index rebuild`).
pub fn load_or_rebuild(
    folder: &Folder,
    fsync: FsyncMode,
    slot: &mut Option<Arc<Index>>,
    known: impl FnOnce() -> Option<UidList>,
    force: bool,
) -> Result<Loaded> {
    if force {
        tracing::info!(folder = %folder.path.display(), "rebuilding the index from mail files on request");
        let (list, uid_next_uncertain) = salvaged(folder, known());
        return Ok(Loaded {
            list: list.into(),
            base: None,
            from_index: false,
            uid_next_uncertain,
        });
    }
    Ok(match open(folder, fsync, slot)? {
        Opened::Ready(snap) => Loaded {
            list: Known::from_index(snap.clone()),
            base: Some(snap),
            from_index: true,
            uid_next_uncertain: false,
        },
        Opened::Import(list) => Loaded {
            list: list.into(),
            base: None,
            from_index: false,
            uid_next_uncertain: false,
        },
        Opened::Damaged => {
            let (list, uid_next_uncertain) = salvaged(folder, known());
            Loaded {
                list: list.into(),
                base: None,
                from_index: false,
                uid_next_uncertain,
            }
        }
    })
}

/// What [`open`] found.
enum Opened {
    /// The index, usable as it is.
    Ready(Arc<IndexSnapshot>),
    /// A new index in a folder with an old uid list: its UIDs are to be imported.
    Import(UidList),
    /// Damaged files (logged): to be rebuilt from the mail files.
    Damaged,
}

/// Opens (or takes from `slot`) the folder's index and reads it.
fn open(folder: &Folder, fsync: FsyncMode, slot: &mut Option<Arc<Index>>) -> Result<Opened> {
    let opened = match slot.clone() {
        Some(ix) => Ok(ix),
        None => Index::open(&folder.path, &folder.storage.index_options(fsync)),
    };
    let result = opened.and_then(|ix| {
        let snap = ix.refresh()?;
        Ok((ix, snap))
    });
    match result {
        Ok((ix, snap)) => {
            *slot = Some(ix.clone());
            if ix.created() && snap.records.is_empty() && snap.header.uid_next <= 1 {
                // No index before this process created it: take over the old UIDs.
                if let Some(list) = import(folder) {
                    return Ok(Opened::Import(list));
                }
                // A new folder is the normal case and stays quiet; an existing Maildir
                // used for the first time (or whose index files were all deleted) gets
                // new UIDs: say so.
                if super::sync::has_message_files(folder) {
                    tracing::warn!(folder = %folder.path.display(), uidvalidity = snap.header.uid_validity, "no index and no old uid list in a folder that has messages; UIDs assigned under a new UIDVALIDITY (expected only on the first use of an existing Maildir)");
                }
            }
            Ok(Opened::Ready(snap))
        }
        Err(e @ index::Error::Corrupted { .. }) => {
            report(&e);
            *slot = None;
            Ok(Opened::Damaged)
        }
        Err(e) => Err(map_err(e)),
    }
}

/// The folder's index state when the index is usable as it is (`slot` gets the index);
/// `None` when a full scan must import old UIDs or repair damage first.
pub fn ready(
    folder: &Folder,
    fsync: FsyncMode,
    slot: &mut Option<Arc<Index>>,
) -> Result<Option<Arc<IndexSnapshot>>> {
    Ok(match open(folder, fsync, slot)? {
        Opened::Ready(snap) => Some(snap),
        Opened::Import(_) | Opened::Damaged => None,
    })
}

/// System flags and keyword bits (by `names`, extended as needed) of a file.
fn flags_bits(f: &FileInfo, kw: &Keywords, names: &mut Vec<String>) -> (u8, u64) {
    let mut bits = 0u64;
    if f.parsed.keywords == 0 {
        return (f.parsed.sys.0, bits);
    }
    for l in f.parsed.keyword_letters() {
        let Some(n) = kw.name_of(l) else { continue };
        let i = match names.iter().position(|k| k.eq_ignore_ascii_case(n)) {
            Some(i) => i,
            None if names.len() < 64 => {
                names.push(n.to_string());
                names.len() - 1
            }
            None => continue,
        };
        bits |= 1 << i;
    }
    (f.parsed.sys.0, bits)
}

/// RFC822.SIZE from the name's `W=` or as known before; [`index::UNKNOWN_SIZE`] until
/// first needed (`super::sizes`).
fn size_of(list: &Known, uid: Uid, f: &FileInfo) -> u64 {
    f.vsize()
        .or_else(|| list.size(uid))
        .unwrap_or(index::UNKNOWN_SIZE)
}

/// Writes `list` (with the files it names) to the index: one transaction when it only
/// appends, expunges and changes flags relative to `base`; a rebuild otherwise.
/// `stale`: files whose listed name is out of date (renamed after the listing): their
/// name's flags are not taken in.
#[allow(clippy::too_many_arguments)]
pub fn save(
    folder: &Folder,
    fsync: FsyncMode,
    slot: &mut Option<Arc<Index>>,
    loaded_base: Option<&Arc<IndexSnapshot>>,
    list: &Known,
    files: &FileMap<FileInfo>,
    kw: &Keywords,
    stale: &std::collections::HashSet<Uid>,
) -> Result<Arc<IndexSnapshot>> {
    if let (Some(base), Some(ix)) = (loaded_base, slot.clone()) {
        // The first scan of a big folder: writing the main index at once is far cheaper
        // than logging every append and compacting the log afterwards.
        let first_build = base.records.is_empty() && files.len() >= BUILD_DIRECTLY;
        if base.header.uid_validity == list.uid_validity && !first_build {
            match commit(&ix, base, list, files, kw, stale) {
                Ok(true) => return ix.refresh().map_err(map_err),
                Ok(false) => {}
                Err(e @ index::Error::Corrupted { .. }) => report(&e),
                Err(e) => return Err(map_err(e)),
            }
        }
    }
    rebuild(folder, fsync, slot, list, files, kw)
}

/// `Ok(false)`: not expressible as a transaction on `base` (rebuild instead). Takes the
/// index write lock only when there is something to write.
fn commit(
    ix: &Index,
    base: &Arc<IndexSnapshot>,
    list: &Known,
    files: &FileMap<FileInfo>,
    kw: &Keywords,
    stale: &std::collections::HashSet<Uid>,
) -> std::result::Result<bool, index::Error> {
    let mut names = base.keywords.clone();
    // (uid, flags, keyword names, Some(file) when new)
    let mut changes: Vec<(Uid, u8, u64, Option<&FileInfo>)> = Vec::new();
    let mut expunges: Vec<u32> = Vec::new();
    // Files and records both in ascending UID order: one merge pass.
    let mut records = base.records.iter().peekable();
    for (uid, f) in files.iter() {
        while let Some(r) = records.next_if(|r| r.uid < uid) {
            expunges.push(r.uid);
        }
        let (flags, bits) = flags_bits(f, kw, &mut names);
        match records.next_if(|r| r.uid == uid) {
            // A dirty record's file name still shows older flags: not an external change.
            Some(r)
                if r.dirty || stale.contains(&uid) || (r.flags == flags && r.keywords == bits) => {}
            Some(_) => changes.push((uid, flags, bits, None)),
            None => changes.push((uid, flags, bits, Some(f))),
        }
    }
    expunges.extend(records.map(|r| r.uid));
    let recent = list.recent.saturating_add(1).min(list.uid_next);
    if expunges.is_empty() && changes.is_empty() && recent == base.header.recent_uid {
        return Ok(true);
    }
    let mut txn = ix.begin()?;
    let now = txn.snapshot().clone();
    if !Arc::ptr_eq(&now, base) && *now != **base {
        // Someone wrote without the folder lock (another tool): rebuild.
        return Ok(false);
    }
    for uid in expunges {
        txn.expunge(uid);
    }
    for (uid, flags, local, file) in changes {
        let bits = txn_bits(&mut txn, &names, local);
        match file {
            None => txn.set_flags(uid, flags, bits, false),
            Some(f) => {
                let got = txn.append(
                    f.base().as_bytes(),
                    flags,
                    bits,
                    size_of(list, uid, f),
                    f.mtime().unwrap_or(index::UNKNOWN_DATE),
                );
                if got != uid {
                    return Ok(false);
                }
            }
        }
    }
    if recent != base.header.recent_uid {
        txn.set_recent_uid(recent);
    }
    txn.commit()?;
    Ok(true)
}

fn rebuild(
    folder: &Folder,
    fsync: FsyncMode,
    slot: &mut Option<Arc<Index>>,
    list: &Known,
    files: &FileMap<FileInfo>,
    kw: &Keywords,
) -> Result<Arc<IndexSnapshot>> {
    let mut names = Vec::new();
    // Straight into the index's chunks: no vector of every record copied again.
    let mut records = index::Records::default();
    for (uid, f) in files.iter_prefetched() {
        let (flags, keywords) = flags_bits(f, kw, &mut names);
        records.push(Record {
            uid,
            flags,
            dirty: false,
            keywords,
            modseq: 1,
            size: size_of(list, uid, f),
            internal_date: f.mtime().unwrap_or(index::UNKNOWN_DATE),
            key: f.base().as_bytes().into(),
        });
    }
    let header = Header {
        uid_validity: list.uid_validity,
        uid_next: list.uid_next,
        highest_modseq: 1,
        recent_uid: list.recent.saturating_add(1).min(list.uid_next),
        ..Header::default()
    };
    let opts = folder.storage.index_options(fsync);
    let ix = Index::rebuild_from(&folder.path, &opts, header, names, records).map_err(map_err)?;
    if let Err(e) = ix.cache().bind_uid_validity(list.uid_validity) {
        tracing::warn!(error = %e, "cannot bind the index cache to the new UIDVALIDITY");
    }
    let snap = ix.refresh().map_err(map_err)?;
    *slot = Some(ix);
    Ok(snap)
}

/// `local` keyword bits (of `names`) as bits of the transaction's keyword table (names
/// it does not have yet are added).
fn txn_bits(txn: &mut index::Transaction<'_>, names: &[String], local: u64) -> u64 {
    let mut bits = 0u64;
    for (i, n) in names.iter().enumerate().take(64) {
        if local & (1 << i) != 0 {
            if let Some(b) = txn.keyword_index(n) {
                bits |= 1 << b;
            }
        }
    }
    bits
}

/// Records newly published files, numbered from `base`'s UIDNEXT on (the state read
/// under the folder lock), in one transaction. No per-message copy of the index is made.
pub fn append(
    ix: &Index,
    base: &Arc<IndexSnapshot>,
    files: &FileMap<FileInfo>,
    kw: &Keywords,
) -> Result<()> {
    let run = || -> std::result::Result<bool, index::Error> {
        let mut txn = ix.begin()?;
        let now = txn.snapshot().clone();
        if !Arc::ptr_eq(&now, base) && *now != **base {
            // Someone wrote without the folder lock (another tool).
            return Ok(false);
        }
        let mut names = base.keywords.clone();
        for (uid, f) in files.iter() {
            let (flags, local) = flags_bits(f, kw, &mut names);
            let bits = txn_bits(&mut txn, &names, local);
            let size = f.vsize().unwrap_or(index::UNKNOWN_SIZE);
            let date = f.mtime().unwrap_or(index::UNKNOWN_DATE);
            if txn.append(f.base().as_bytes(), flags, bits, size, date) != uid {
                return Ok(false);
            }
        }
        txn.commit()?;
        Ok(true)
    };
    match run() {
        Ok(true) => Ok(()),
        Ok(false) => Err(
            Error::new(ErrorKind::Temporary, "Mailbox changed, try again")
                .with_detail("index changed without the folder lock while publishing"),
        ),
        Err(e) => {
            report(&e);
            Err(map_err(e))
        }
    }
}

/// Makes sure the folder's index exists and is usable (importing old UIDs or repairing
/// damage with a full scan when needed). Call without the folder lock.
pub fn ensure(folder: &Folder, fsync: FsyncMode) -> Result<()> {
    if ready(folder, fsync, &mut None)?.is_some() {
        return Ok(());
    }
    super::sync::FolderState::get(folder.clone(), fsync)
        .rescan_now()
        .map(|_| ())
}

/// Whether the flags in a file's name differ from its clean index record.
pub fn name_differs(base: &IndexSnapshot, uid: Uid, f: &FileInfo, kw: &Keywords) -> bool {
    let Some(r) = base.get(uid) else {
        return false;
    };
    let mut names = base.keywords.clone();
    let (flags, bits) = flags_bits(f, kw, &mut names);
    !r.dirty && (r.flags != flags || r.keywords != bits)
}

/// Keyword names of a record's bits.
pub fn names_of(snap: &IndexSnapshot, bits: u64) -> Vec<String> {
    if bits == 0 {
        return Vec::new(); // most messages: no look at the keyword table
    }
    let mut v: Vec<String> = snap
        .keywords
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 64 && bits & (1u64 << i) != 0)
        .map(|(_, n)| n.clone())
        .collect();
    v.sort();
    v
}

/// Commits new flags (`dirty`: the file names do not show them yet). The caller holds
/// the folder lock.
pub fn store_flags(
    ix: &Index,
    changes: &[(Uid, u8, Vec<String>)],
    dirty: bool,
) -> Result<Arc<IndexSnapshot>> {
    let run = || -> std::result::Result<Arc<IndexSnapshot>, index::Error> {
        let mut txn = ix.begin()?;
        for (uid, flags, names) in changes {
            let mut bits = 0u64;
            for n in names {
                match txn.keyword_index(n) {
                    Some(b) => bits |= 1 << b,
                    None => {
                        return Err(index::Error::Invalid {
                            what: "more than 64 keywords".into(),
                        })
                    }
                }
            }
            txn.set_flags(*uid, *flags, bits, dirty);
        }
        txn.commit()
    };
    run().map_err(|e| match e {
        index::Error::Invalid { .. } => Error::new(ErrorKind::Limit, "Too many keywords"),
        e => {
            report(&e);
            map_err(e)
        }
    })
}

/// One index transaction applying `op` to each of `uids`, committed; index errors are
/// reported and mapped as for every write of this module.
fn per_uid_txn(
    ix: &Index,
    uids: &[Uid],
    op: fn(&mut index::Transaction, Uid),
) -> Result<Arc<IndexSnapshot>> {
    let run = || -> std::result::Result<Arc<IndexSnapshot>, index::Error> {
        let mut txn = ix.begin()?;
        for u in uids {
            op(&mut txn, *u);
        }
        txn.commit()
    };
    run().map_err(|e| {
        report(&e);
        map_err(e)
    })
}

/// Removes the records of messages whose files this process unlinked (EXPUNGE), in one
/// transaction. The caller holds the folder lock.
pub fn expunge_records(ix: &Index, uids: &[Uid]) -> Result<Arc<IndexSnapshot>> {
    per_uid_txn(ix, uids, |t, u| t.expunge(u))
}

/// The file names now show the flags of `uids`.
pub fn clear_dirty(ix: &Index, uids: &[Uid]) -> Result<Arc<IndexSnapshot>> {
    per_uid_txn(ix, uids, |t, u| t.clear_dirty(u))
}
