//! Synchronising the in-process view of a folder with the disk: change detection, UID
//! assignment, `\Recent` claiming, `new/` → `cur/` moves and snapshot building.
//!
//! One [`FolderState`] per folder path is shared by every session of this process (a
//! registry of weak references in the storage context, [`super::StorageCtx`]), so the file map and the snapshot exist once, and a
//! change is rescanned once for all sessions: a session that waited while another
//! rescanned takes that result.
//!
//! Change detection is cheap: the mtimes of `cur/`, `new/`, the uid list and the keywords
//! file, plus the in-process change counter of the folder. Only when one of them moved (or
//! the fingerprint is "racy": taken within 2 seconds of a directory change, to cover
//! coarse timestamps) is the folder rescanned; when the rescan finds exactly the same
//! state, the previous `Arc<Snapshot>` is returned unchanged.
//!
//! The directory is listed without the folder lock; the lock is taken only to reconcile
//! the listing with the uid list and write it. UIDs are assigned in delivery order (mtime,
//! then name). A file that disappears from a listing is re-checked with a second listing
//! before its UID is dropped, because `readdir` may miss a file renamed concurrently; a new
//! file is re-checked before it gets a UID when another writer changed the list meanwhile.
//!
//! This module must not know about IMAP.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::filemap::{FileMap, Kept};
use super::filename;
use super::folder::{FileInfo, Folder, Sub};
use super::fsio;
use super::keywords::{self, Keywords};
use super::lock::FolderLock;
use super::quiet::{Token, Touched};
use super::uidlist::{self, UidList};
use super::uidstore;
use crate::config::FsyncMode;
use crate::index::{Index, IndexSnapshot, Records};
use crate::mailbox::{Messages, Result, Snapshot, SysFlags, Uid};

/// How often a folder's `tmp/` is looked through for crash leftovers while it is in use.
const TMP_CLEAN_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether `tmp/` is due for cleaning: at the first scan, then once an hour.
fn tmp_clean_due(last: Option<std::time::Instant>, now: std::time::Instant) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= TMP_CLEAN_EVERY)
}

#[cfg(test)]
mod tmp_clean_tests {
    use super::*;

    #[test]
    fn tmp_cleaned_at_first_scan_then_hourly() {
        let t = std::time::Instant::now();
        assert!(tmp_clean_due(None, t));
        assert!(!tmp_clean_due(
            Some(t),
            t + std::time::Duration::from_secs(60)
        ));
        assert!(tmp_clean_due(Some(t), t + TMP_CLEAN_EVERY));
    }
}

/// `loft.index.scan`: the mtimes of `cur/` and `new/` (ns) as of the last complete scan
/// and when it started (ns). While both directories still have these mtimes (and the
/// stamp is not racy), the index holds every message: STATUS reads it without listing.
pub const SCAN_STAMP: &str = "loft.index.scan";

/// Directory timestamps closer than this to the moment a fingerprint was taken make it
/// racy, on file systems with 1-second (or 2-second) timestamps and on NFS, where the
/// server's clock stamps the directory.
const RACY_WINDOW_COARSE: i128 = 2_000_000_000;
/// The same for local file systems with sub-second timestamps. Linux stamps directories
/// from its coarse clock, which advances once per timer tick (at most 10 ms) and lags the
/// precise clock read here by up to one tick; a change made after the fingerprint was
/// taken therefore gets a later stamp once the last change is more than two ticks old.
/// 100 ms leaves a wide margin.
const RACY_WINDOW_FINE: i128 = 100_000_000;

/// In a scan's numbering: a file not in the uid list yet (0 is never a UID).
const NEW: Uid = 0;
/// In a scan's numbering: a file to leave out (gone, or an unrenamable duplicate). UIDs
/// stay below `u32::MAX` (RFC 3501 §2.3.1.1 and the exhaustion check of the scan).
const GONE: Uid = u32::MAX;

/// Up to this many new files a scan asks for their mtimes at once; more (the first scan
/// of an existing Maildir) leave their dates to [`super::dates::fill`].
const STAT_NOW: usize = 1000;

/// How close to `taken` a directory stamped `mtime` (ns) makes a fingerprint racy. A stamp
/// with no sub-second part is taken to come from a coarse file system (a fine one gives
/// such a stamp once in 10^9 changes, which costs one needless rescan).
fn racy_window(mtime: i128, nfs: bool) -> i128 {
    if nfs || mtime % 1_000_000_000 == 0 {
        RACY_WINDOW_COARSE
    } else {
        RACY_WINDOW_FINE
    }
}

/// Whether a directory stamped `mtime` had changed too recently before `taken` for an
/// unchanged stamp to prove that nothing changed since.
fn racy_stamp(mtime: i128, taken: i128, nfs: bool) -> bool {
    taken - mtime < racy_window(mtime, nfs)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Fingerprint {
    cur: i128,
    new: i128,
    /// The index log: mtime, length and inode (a compaction replaces it).
    list: i128,
    list_len: u64,
    list_ino: u64,
    kw: i128,
    /// The index file's ctime: it is replaced only with a new log, so a change alone is
    /// damage done in place, which the catch-up's refresh finds and repairs.
    index: i128,
    /// Device and inode of the directory at the folder's path: another one there (the
    /// folder renamed away and a copy put in its place) is another folder.
    dir: (u64, u64),
}

/// One look at a folder: its fingerprint, and the `lstat`s of the index files it was
/// made of, which the index's refresh then need not take again.
#[derive(Clone, Copy, Debug)]
struct Look {
    fp: Fingerprint,
    seen: Option<crate::index::Seen>,
}

impl Fingerprint {
    /// Five `lstat`s of one path component each, relative to the folder's descriptor
    /// (opened beneath the mail root once and kept: a stat by full path walked the whole
    /// path five times per look, an eighth of the CPU of a busy server), after one of the
    /// folder itself relative to the mail root (none for INBOX, the root) that checks
    /// the kept descriptor is still the folder's. Anything missing or unreachable reads
    /// as 0.
    fn take(f: &Folder) -> Fingerprint {
        Self::look(f, true).fp
    }

    /// Only the index files' part (`cur`, `new` and `kw` left 0): two `lstat`s (and the
    /// folder's own), for a catch-up that reads the index and lists nothing.
    fn take_index(f: &Folder) -> Fingerprint {
        Self::look(f, false).fp
    }

    /// The fingerprint (of the index files only unless `dirs`) with the index files'
    /// `lstat`s it was made of.
    fn look(f: &Folder, dirs: bool) -> Look {
        let (top, here) = f.top();
        let m = |name: &str| {
            let top = top.as_ref()?;
            crate::beneath::lstat_at(top, std::ffi::OsStr::new(name)).ok()
        };
        let t = |st: &Option<crate::beneath::Stat>| {
            st.map_or(0, |s| {
                i128::from(s.mtime) * 1_000_000_000 + i128::from(s.mtime_nsec)
            })
        };
        let list = m(crate::index::LOG_FILE);
        let index = m(crate::index::INDEX_FILE);
        let dir = |name: &str| if dirs { t(&m(name)) } else { 0 };
        let fp = Fingerprint {
            cur: dir("cur"),
            new: dir("new"),
            list: t(&list),
            list_len: list.map_or(0, |s| s.size),
            list_ino: list.map_or(0, |s| s.ino),
            kw: dir(keywords::FILE),
            index: index.map_or(0, |s| {
                i128::from(s.ctime) * 1_000_000_000 + i128::from(s.ctime_nsec)
            }),
            dir: here.unwrap_or((0, 0)),
        };
        let seen = match (index, list) {
            (Some(index), Some(log)) => Some(crate::index::Seen { index, log }),
            _ => None,
        };
        Look { fp, seen }
    }

    /// Takes the index files' part of `other`.
    fn index_from(&mut self, other: &Fingerprint) {
        self.list = other.list;
        self.list_len = other.list_len;
        self.list_ino = other.list_ino;
        self.index = other.index;
    }

    /// Only the index files moved (flag changes committed by a session or process):
    /// the directories need no listing.
    fn same_dirs(&self, other: &Fingerprint) -> bool {
        self.cur == other.cur && self.new == other.new && self.kw == other.kw
    }

    /// "Racy" fingerprint (like git's racy index entries): taken at `taken` (before the
    /// listing), it proves nothing when a directory changed less than [`racy_window`]
    /// before, because a later change may land on the same coarse timestamp. Once the
    /// fingerprint is taken well after the last change, equal mtimes do prove that nothing
    /// changed, so a change costs a bounded number of rescans instead of one per sync for
    /// a time window.
    fn racy(&self, taken: i128, nfs: bool) -> bool {
        racy_stamp(self.cur, taken, nfs) || racy_stamp(self.new, taken, nfs)
    }
}

/// A touched entry: the file `.1` in `.0` is there (`.2`) or not.
type Wanted<'a> = (Sub, &'a [u8], bool);

/// Whether the entries `touched` since the file map held `len` files (and matched the
/// directories) leave the directories holding exactly the map's files: each touched entry
/// of `cur/` or `new/` is there exactly when the map has it, the count moved by what came
/// and went, and neither directory itself was made, moved or removed. Entries not touched
/// are as they were.
fn agrees(files: &FileMap, records: &Records, len: usize, touched: &[Touched]) -> bool {
    use super::quiet::Place;
    let mut want: HashMap<(Sub, &[u8]), bool> = HashMap::new();
    let mut count = len as i64;
    for t in touched {
        let sub = match t.place {
            Place::Folder if t.name == b"cur" || t.name == b"new" => return false,
            Place::Folder => continue,
            Place::Cur => Sub::Cur,
            Place::New => Sub::New,
        };
        count += i64::from(t.is) - i64::from(t.was);
        want.insert((sub, &t.name[..]), t.is);
    }
    if count != files.len() as i64 {
        return false;
    }
    if want.is_empty() {
        return true;
    }
    // The map keeps no names: the touched names by base (a record's key), then one pass
    // over the files with their records.
    let mut by_base: NameMap<&[u8], Vec<Wanted<'_>>> = NameMap::default();
    for (&(sub, name), &is) in &want {
        let base = name.split(|&c| c == b':').next().unwrap_or(name);
        by_base.entry(base).or_default().push((sub, name, is));
    }
    let mut found = 0;
    let mut recs = records.iter().peekable();
    for (uid, k) in files.iter() {
        while recs.next_if(|r| r.uid < uid).is_some() {}
        let Some(r) = recs.next_if(|r| r.uid == uid) else {
            return false; // a file without its record: cannot tell
        };
        let Some(named) = by_base.get(&r.key[..]) else {
            continue;
        };
        for &(sub, name, is) in named {
            match (k.is(&r.key, sub, name), is) {
                (true, true) => found += 1,
                (true, false) => return false,
                (false, _) => {}
            }
        }
    }
    found == want.values().filter(|&&is| is).count()
}

/// Whether `listed` (as many files as the map holds) names exactly the map's files: each
/// listed file is found by its base (a record's key) and is that file, in the same place.
fn listing_is(files: &FileMap, records: &Records, listed: &[FileInfo]) -> bool {
    let mut by_key: NameMap<&[u8], Uid> = NameMap::default();
    by_key.reserve(files.len());
    let mut recs = records.iter().peekable();
    for &uid in files.uids() {
        while recs.next_if(|r| r.uid < uid).is_some() {}
        match recs.next_if(|r| r.uid == uid) {
            Some(r) => by_key.insert(&r.key[..], uid),
            None => return false,
        };
    }
    listed.iter().all(|f| {
        let base = f.base().as_bytes();
        by_key
            .get(base)
            .and_then(|&u| files.get(u))
            .is_some_and(|k| k.is(base, f.sub, f.name.as_bytes()))
    })
}

impl Current {
    /// The file of `uid`, whole (its name made from the snapshot's record).
    pub fn file(&self, uid: Uid) -> Option<FileInfo> {
        let r = self.snapshot.messages.records().by_uid(uid)?;
        self.files.file(uid, &r.key)
    }
}

/// Whether the snapshot holds messages nobody claimed as `\Recent` yet.
fn unclaimed(c: &Current) -> bool {
    c.snapshot.uid_next.saturating_sub(1) > c.recent_threshold
}

/// Whether `new/` or `cur/` holds anything that may be a message (a name not starting
/// with `.`). Stops at the first one.
pub(super) fn has_message_files(f: &Folder) -> bool {
    ["new", "cur"].iter().any(|d| {
        std::fs::read_dir(f.path.join(d)).is_ok_and(|mut rd| {
            rd.any(|e| e.is_ok_and(|e| !e.file_name().as_encoded_bytes().starts_with(b".")))
        })
    })
}

/// A uid list that parses but belongs to another folder (copied or restored over this
/// one) must not be used: its entries match no file, and numbering every message from its
/// UIDNEXT under its UIDVALIDITY would hide the fault. Such a list is recognised when more
/// than half of its entries match no file, more than half of the files match no entry,
/// and some unmatched file was already in the folder when the list was last written (its
/// ctime is not after the list's mtime): Loft writes every file it sees into the list, so
/// that cannot happen to a list of this folder. The last rule keeps mail deleted and
/// delivered by another program between two scans from looking like a foreign list.
fn looks_foreign<'a>(
    listed: usize,
    missing: usize,
    files: usize,
    unknown_count: usize,
    mut unknown: impl Iterator<Item = &'a FileInfo>,
    folder: &Folder,
    list_mtime: i128,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    if listed == 0 || missing * 2 <= listed || unknown_count * 2 <= files {
        return false;
    }
    unknown.any(|f| {
        std::fs::symlink_metadata(folder.file_path(f.sub, &f.name)).is_ok_and(|md| {
            i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()) <= list_mtime
        })
    })
}

/// What every session of this process sees of one folder (one per folder path, see
/// [`FolderState::get`]): the file of every UID, the snapshot, the keywords.
pub struct Current {
    pub files: Arc<FileMap>,
    pub snapshot: Arc<Snapshot>,
    pub keywords: Arc<Keywords>,
    /// The recent threshold as of the last scan.
    pub recent_threshold: Uid,
    /// The fingerprint and the moment (ns) it was taken, before the listing it covers.
    fingerprint: Option<(Fingerprint, i128)>,
    /// Set by [`FolderState::published`]: until this moment (ns) the fingerprint is
    /// trusted although our own renames just made it racy; the first sync after it lists
    /// the folder once (to find a change by another program in the same clock tick).
    handover_until: Option<i128>,
    seen_changes: u64,
    /// Bumped by every completed rescan: a session that waited for a rescan uses its result.
    pub(super) scans: u64,
    /// Full rescans (listing reconciled under the folder lock) since the state was made.
    pub rescans: u64,
    /// Listings compared with the file map ([`FolderState::listing_matches`]).
    pub(super) listings: u64,
    /// The folder's index, once a scan opened it.
    pub index: Option<Arc<Index>>,
    /// The folder's directories watched for changes ([`super::quiet`]), from the first
    /// sync that asks; none on NFS or when they cannot be watched (`watch_refused` holds
    /// the fingerprint with which that was found, so that it is tried again only once
    /// the folder changed).
    watched: Option<super::quiet::Watched>,
    watch_refused: Option<Fingerprint>,
    /// When the folder was last found exact: the watch's token taken just before the look
    /// or listing that found it so (while the token stays, so does the folder), that
    /// look, and how many files the file map held then (what the events since must
    /// account for, [`agrees`]).
    quiet: Option<(super::quiet::Token, Look, usize)>,
}

/// Scan-only state, guarded by the scan mutex (one rescan at a time per folder).
struct Scanner {
    /// When `tmp/` was last cleaned of crash leftovers (at most once an hour).
    tmp_cleaned: Option<std::time::Instant>,
    index: Option<Arc<Index>>,
    /// The next rescan rebuilds the index files (`loft index rebuild`).
    force_rebuild: bool,
}

impl Scanner {
    /// Whether the index held (if any) is that of the directory `dir` (device, inode) now
    /// at the folder's path; one of a directory renamed away is let go, so that the next
    /// use opens the index of the folder that is there (never writes one that moved).
    fn index_is_here(&mut self, dir: (u64, u64)) -> bool {
        let here = self.index.as_ref().is_none_or(|ix| ix.dir_id() == dir);
        if !here {
            self.index = None;
        }
        here
    }
}

/// The in-process state of one folder shared by every session that opened it. A rescan
/// happens once per change for all of them; the folder lock is taken only after the
/// listing, to reconcile it with the uid list and write that.
pub struct FolderState {
    pub folder: Folder,
    pub fsync: FsyncMode,
    scan: Mutex<Scanner>,
    cur: Mutex<Current>,
    /// When the oldest flag change not yet in the file names was made.
    pub dirty_since: Mutex<Option<std::time::Instant>>,
    dirty_found: std::sync::atomic::AtomicBool,
    /// A scan left internal dates unknown (see [`super::dates::fill`]).
    dates_unknown: std::sync::atomic::AtomicBool,
    /// Sizes computed but not recorded in the index yet ([`super::sizes`]): recorded in
    /// batches, not one index transaction per FETCH chunk.
    pub sizes_pending: Mutex<HashMap<Uid, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_nanos() -> i128 {
    fsio::unix_nanos(Ok(std::time::SystemTime::now()))
}

impl FolderState {
    /// The shared state of `folder` (created on first use, dropped with its last user).
    pub fn get(folder: Folder, fsync: FsyncMode) -> Arc<FolderState> {
        let storage = folder.storage.clone();
        let path = folder.path.clone();
        storage.folders.get_or_make(&path, || FolderState {
            folder,
            fsync,
            scan: Mutex::new(Scanner {
                tmp_cleaned: None,
                index: None,
                force_rebuild: false,
            }),
            cur: Mutex::new(Current {
                files: Arc::new(FileMap::default()),
                snapshot: Arc::new(Snapshot::default()),
                keywords: Arc::new(Keywords::default()),
                recent_threshold: 0,
                fingerprint: None,
                handover_until: None,
                seen_changes: 0,
                scans: 0,
                rescans: 0,
                listings: 0,
                index: None,
                watched: None,
                watch_refused: None,
                quiet: None,
            }),
            dirty_since: Mutex::new(None),
            dirty_found: std::sync::atomic::AtomicBool::new(false),
            dates_unknown: std::sync::atomic::AtomicBool::new(false),
            sizes_pending: Mutex::new(HashMap::new()),
        })
    }

    /// The state of `path` if some session of this storage context has it open.
    pub fn existing(
        storage: &super::StorageCtx,
        path: &std::path::Path,
    ) -> Option<Arc<FolderState>> {
        storage.folders.get(path)
    }

    /// Runs `f` on the current state (briefly locked: no I/O inside).
    pub fn with<R>(&self, f: impl FnOnce(&Current) -> R) -> R {
        f(&lock(&self.cur))
    }

    /// `Some((true, _))`: nothing changed; `Some((false, look))`: only the index changed
    /// (catch up without listing, from this look); `None`: rescan.
    fn unchanged(&self, c: &mut Current) -> Option<(bool, Look)> {
        let (fp, taken) = c.fingerprint?;
        if c.seen_changes != self.folder.shared.changes() {
            return None;
        }
        // The state was exact when the token was taken (before the look or listing that
        // made it so) and no event came since: nothing changed, racy stamps or not.
        let token = self.quiet_token(c);
        if let (Some(t), Some((at, look, _))) = (token, c.quiet) {
            if t == at {
                return Some((true, look));
            }
        }
        if !self.trusted(c, &fp, taken) {
            return None;
        }
        let now = Fingerprint::look(&self.folder, true);
        if now.fp == fp {
            self.record_quiet(c, token, now);
            Some((true, now))
        } else if now.fp.same_dirs(&fp) {
            Some((false, now))
        } else {
            None
        }
    }

    /// Records that the folder was exact as of `token` (taken before `look`).
    fn record_quiet(&self, c: &mut Current, token: Option<Token>, look: Look) {
        // A look that began earlier than the one recorded (another session's, while this
        // one listed) proves less: keep the later.
        if let (Some(t), Some((held, ..))) = (token, c.quiet) {
            if super::quiet::Changes::later(held, t) {
                return;
            }
        }
        c.quiet = token.map(|t| (t, look, c.files.len()));
        if let (Some(t), Some(w)) = (token, &c.watched) {
            self.folder.storage.changes.forget(w, t);
        }
    }

    /// The entries events named since the folder was last exact, with the file map's
    /// size then (for [`agrees`], run after the state's lock is let go: it reads the
    /// whole map); `None` when the events cannot tell.
    fn events_since_exact(
        &self,
        c: &Current,
        token: Option<Token>,
    ) -> Option<(Vec<Touched>, usize)> {
        let (Some(to), Some((from, _, len)), Some(w)) = (token, c.quiet, &c.watched) else {
            return None;
        };
        let touched = self.folder.storage.changes.touched(w, from, to)?;
        Some((touched, len))
    }

    /// The token of the folder's watches now (watching it first if need be); `None` on
    /// NFS or when the folder cannot be watched.
    fn quiet_token(&self, c: &mut Current) -> Option<super::quiet::Token> {
        if self.folder.storage.nfs() {
            return None;
        }
        let fp = c.fingerprint.map(|(fp, _)| fp).unwrap_or_default();
        let changes = &self.folder.storage.changes;
        if let Some(w) = &c.watched {
            if let Some(t) = changes.token(w) {
                return Some(t);
            }
            // A watched directory went away: watch the folder as it is now, once.
            c.watched = None;
            c.watch_refused = None;
            c.quiet = None;
        }
        if c.watch_refused == Some(fp) {
            return None;
        }
        let (top, _) = self.folder.top();
        c.watched = top.and_then(|top| changes.watch(&top));
        if c.watched.is_none() {
            c.watch_refused = Some(fp);
        }
        changes.token(c.watched.as_ref()?)
    }

    /// Whether the fingerprint proves what it says: not racy, or racy only through our own
    /// renames within the hand-over window.
    fn trusted(&self, c: &Current, fp: &Fingerprint, taken: i128) -> bool {
        !fp.racy(taken, self.folder.storage.nfs())
            || c.handover_until.is_some_and(|until| now_nanos() < until)
    }

    /// Looks for changes (rescanning when something moved) and returns the snapshot and
    /// the UIDs this caller claimed as `\Recent` (when `claim`).
    pub fn refresh(&self, claim: bool) -> Result<(Arc<Snapshot>, Vec<Uid>)> {
        let same = |u: &Option<(bool, Look)>| u.as_ref().is_some_and(|(same, _)| *same);
        let (scans, first) = {
            let mut c = lock(&self.cur);
            let u = self.unchanged(&mut c);
            if same(&u) && !(claim && unclaimed(&c)) {
                return Ok((c.snapshot.clone(), Vec::new()));
            }
            (c.scans, u)
        };
        let mut sc = lock(&self.scan);
        let state = {
            let mut c = lock(&self.cur);
            if c.scans == scans {
                // Nobody caught up or rescanned while we waited for the scan mutex: the
                // look just taken still tells what to do (a change made since is found
                // by the next sync, as one made just after this look would be).
                first
            } else {
                let u = self.unchanged(&mut c);
                // A rescan finished while we waited: it is as fresh as ours would be.
                if same(&u) && !(claim && unclaimed(&c)) {
                    return Ok((c.snapshot.clone(), Vec::new()));
                }
                u
            }
        };
        let look = state.map(|(_, look)| look);
        if look.is_some() && self.catch_up_index(&mut sc, false, look)? {
            // Messages someone took in without claiming them (our own APPEND, a scan
            // by STATUS or EXAMINE): claimed in the index, without a listing, when
            // their files are in `cur/` already (claiming moves `new/` files).
            let claimable = {
                let c = lock(&self.cur);
                claim && unclaimed(&c) && {
                    let t = c.recent_threshold;
                    let from = c.files.uids().partition_point(|u| *u <= t);
                    c.files.uids()[from..]
                        .iter()
                        .all(|u| c.files.get(*u).is_some_and(|f| f.sub() == Sub::Cur))
                }
            };
            if !claimable {
                let c = lock(&self.cur);
                if !(claim && unclaimed(&c)) {
                    return Ok((c.snapshot.clone(), Vec::new()));
                }
            } else if let Some(claimed) = self.claim_recent(&mut sc)? {
                let c = lock(&self.cur);
                return Ok((c.snapshot.clone(), claimed));
            }
        }
        if look.is_none() {
            if let Some((listed, token)) = self.listing_matches(claim)? {
                if self.catch_up_index(&mut sc, true, Some(listed))? {
                    let mut c = lock(&self.cur);
                    self.record_quiet(&mut c, token, listed);
                    return Ok((c.snapshot.clone(), Vec::new()));
                }
            }
        }
        let new_recent = self.rescan(&mut sc, claim)?;
        let c = lock(&self.cur);
        Ok((c.snapshot.clone(), new_recent))
    }

    /// The content check of a fingerprint that proves nothing (racy, or moved by this
    /// process's own renames and deliveries, which already updated the file map): lists
    /// `cur/` and `new/` and compares the names with the file map. Equal: the directories
    /// hold exactly the files we know, so the index alone can have changed, and the
    /// fingerprint taken before the listing becomes the current one; no folder lock,
    /// no uid list, no index write (a full rescan does all of those). In a folder
    /// changed all the time the fingerprint is always racy, and this is what most
    /// syncs cost. The caller holds the scan mutex.
    fn listing_matches(&self, claim: bool) -> Result<Option<(Look, Option<Token>)>> {
        let (files, keywords_seen, token, events) = {
            let mut c = lock(&self.cur);
            if claim && unclaimed(&c) {
                return Ok(None); // messages to claim as \Recent: the rescan does that
            }
            // Before the look and the listing: what they find is exact as of this token.
            let token = self.quiet_token(&mut c);
            let events = self.events_since_exact(&c, token);
            match c.fingerprint {
                Some((fp, _)) => ((c.files.clone(), c.snapshot.clone()), fp.kw, token, events),
                None => return Ok(None),
            }
        };
        let changes = self.folder.shared.changes();
        let taken = now_nanos();
        let look = Fingerprint::look(&self.folder, true);
        let fp = look.fp;
        if fp.kw != keywords_seen {
            return Ok(None);
        }
        let (files, snapshot) = files;
        let records = snapshot.messages.records();
        let agreed = events.is_some_and(|(ev, len)| agrees(&files, records, len, &ev));
        if !agreed {
            lock(&self.cur).listings += 1;
            let listed = self.folder.scan()?;
            if listed.len() != files.len() || !listing_is(&files, records, &listed) {
                return Ok(None);
            }
        }
        let mut c = lock(&self.cur);
        if let Some((old, _)) = c.fingerprint {
            // The index parts are the catch-up's to move (it compares them).
            let mut fp = fp;
            fp.index_from(&old);
            c.fingerprint = Some((fp, taken));
        }
        c.seen_changes = changes;
        Ok(Some((look, token)))
    }

    /// Claims for the caller every message at or above the index's `\Recent` threshold
    /// that this process has the file of, in one index transaction under the folder lock
    /// (messages appended meanwhile by another process stay for the next claimer).
    /// `None`: not possible without a listing (no index yet).
    fn claim_recent(&self, sc: &mut Scanner) -> Result<Option<Vec<Uid>>> {
        let Some(ix) = sc.index.clone() else {
            return Ok(None);
        };
        let known = self.with(|c| c.files.uids().last().copied()).unwrap_or(0);
        let claimed = {
            let _lock = FolderLock::acquire(&self.folder.path, self.folder.shared.clone())?;
            let mut txn = ix.begin().map_err(uidstore::map_err)?;
            let snap = txn.snapshot().clone();
            let from = snap.header.recent_uid;
            let claimed: Vec<Uid> = (snap.records.iter())
                .filter(|r| r.uid >= from && r.uid <= known)
                .map(|r| r.uid)
                .collect();
            if known >= from {
                txn.set_recent_uid(known + 1);
                txn.commit().map_err(uidstore::map_err)?;
            }
            claimed
        };
        // A message of another process's since is found by the next sync (a listing).
        let _ = self.catch_up_index(sc, false, None)?;
        Ok(Some(claimed))
    }

    /// Only the index changed: takes its flags and expunges without listing the
    /// directories. `false` when that is not enough (a message this process has no file
    /// name for, damage): the caller rescans.
    ///
    /// `listed`: a listing just found exactly the files of the file map, so every file
    /// must still have its record too (a record gone with its file still there, or an
    /// index of another UIDVALIDITY, is for the rescan to sort out).
    ///
    /// `look`: the caller's look at the folder, taken just before (else one is taken).
    fn catch_up_index(&self, sc: &mut Scanner, listed: bool, look: Option<Look>) -> Result<bool> {
        let look = look.unwrap_or_else(|| Fingerprint::look(&self.folder, false));
        if !sc.index_is_here(look.fp.dir) {
            return Ok(false);
        }
        let Some(ix) = sc.index.clone() else {
            return Ok(false);
        };
        let now = look.fp;
        let Ok(snap) = ix.refresh_seen(look.seen.as_ref()) else {
            return Ok(false);
        };
        let mut c = lock(&self.cur);
        if snap.header.uid_validity != c.snapshot.uid_validity
            || listed && snap.records.len() != c.files.len()
        {
            return Ok(false);
        }
        // Every record must have a file. Those of the snapshot taken in last had one (the
        // file map loses entries only with their records: EXPUNGE, the retain below), so
        // only records added since are looked up; chunks both share are skipped unread.
        let added = (c
            .snapshot
            .messages
            .records()
            .diff(&snap.records, |_, _| false))
        .into_iter()
        .filter(|u| snap.records.find(*u).is_ok());
        for u in added {
            if c.files.get(u).is_none() {
                return Ok(false);
            }
        }
        if c.files.len() != snap.records.len() {
            Arc::make_mut(&mut c.files).retain(|u, _| snap.get(u).is_some());
        }
        let snapshot = snapshot_from_index(&c.keywords, &snap);
        if let Some(next) = c.snapshot.succeed(snapshot) {
            c.snapshot = Arc::new(next);
        }
        c.recent_threshold = snap.header.recent_uid.saturating_sub(1);
        if let Some((fp, _)) = c.fingerprint.as_mut() {
            fp.index_from(&now);
        }
        c.index = Some(ix);
        c.scans += 1;
        Ok(true)
    }

    /// Rebuilds the index files from the mail files now, keeping every UID.
    pub fn rebuild_now(&self) -> Result<()> {
        let mut sc = lock(&self.scan);
        sc.force_rebuild = true;
        self.rescan(&mut sc, false).map(|_| ())
    }

    /// Rescans now whatever the fingerprint says (after a write of this process).
    pub fn rescan_now(&self) -> Result<()> {
        let mut sc = lock(&self.scan);
        self.rescan(&mut sc, false).map(|_| ())
    }

    /// Lists the folder, then reconciles the listing with the uid list under the folder
    /// lock. The caller holds the scan mutex and not the folder lock.
    fn rescan(&self, sc: &mut Scanner, claim: bool) -> Result<Vec<Uid>> {
        let taken = now_nanos();
        let fp = Fingerprint::take(&self.folder);
        let changes = self.folder.shared.changes();
        let now = std::time::Instant::now();
        if tmp_clean_due(sc.tmp_cleaned, now) {
            self.folder.clean_tmp();
            sc.tmp_cleaned = Some(now);
        }
        let mut scanned = self.folder.scan()?;
        // An index of a directory no longer at the folder's path is not this folder's.
        sc.index_is_here(fp.dir);

        let _lock = FolderLock::acquire(&self.folder.path, self.folder.shared.clone())?;
        // What other writers did between the listing and the lock; our own writes below
        // (creating or importing the index) are not such changes.
        let locked = Fingerprint::take(&self.folder);
        let locked_changes = self.folder.shared.changes();
        let force = std::mem::take(&mut sc.force_rebuild);
        let loaded = uidstore::load_or_rebuild(
            &self.folder,
            self.fsync,
            &mut sc.index,
            || self.known(),
            force,
        )?;
        let mut list = loaded.list;
        let mut base = loaded.base;
        let from_file = loaded.from_index;
        let keywords = Keywords::load(&self.folder.path);
        // The uid list changed since the listing started (another writer): a file it no
        // longer names may have been expunged after the listing; re-check those.
        let after = Fingerprint::take(&self.folder);
        let list_moved = locked.list != fp.list
            || locked.list_len != fp.list_len
            || locked.list_ino != fp.list_ino
            || locked.index != fp.index
            || locked_changes != changes;

        let missing = !list.is_empty() && {
            let listed: NameSet<&[u8]> = scanned.iter().map(|f| f.base().as_bytes()).collect();
            list.entries().any(|(_, base)| !listed.contains(base))
        };
        if missing {
            // readdir may miss a file renamed while we listed: look once more.
            let again = self.folder.scan()?;
            let bases: NameSet<String> = again.iter().map(|f| f.base().to_string()).collect();
            let mut merged = again;
            for f in scanned {
                if !bases.contains(f.base()) && self.folder.file_path(f.sub, &f.name).exists() {
                    merged.push(f);
                }
            }
            scanned = merged;
        }

        // The UID of every listed file: from the uid list by base name, NEW for a file
        // not in it, GONE for one to leave out. The files stay where the listing put
        // them until they are ordered by UID at the end.
        let mut uid_of: Vec<Uid> = vec![NEW; scanned.len()];
        // A base name listed twice (the same message in new/ and cur/, or two files
        // named alike by a broken delivery agent): the second file gets a fresh base.
        {
            let mut seen: NameSet<&str> = NameSet::default();
            seen.reserve(scanned.len());
            let mut duplicate = Vec::new();
            for (i, f) in scanned.iter().enumerate() {
                if !seen.insert(f.base()) {
                    duplicate.push(i);
                }
            }
            drop(seen);
            for i in duplicate {
                match self.rename_duplicate(&scanned[i]) {
                    Some(g) => scanned[i] = g,
                    None => uid_of[i] = GONE,
                }
            }
        }
        let mut matched_count = 0;
        if !list.is_empty() {
            let by_base: NameMap<&[u8], Uid> = list.entries().map(|(u, b)| (b, u)).collect();
            for (f, u) in scanned.iter().zip(uid_of.iter_mut()) {
                if *u == NEW {
                    if let Some(known) = by_base.get(f.base().as_bytes()) {
                        *u = *known;
                        matched_count += 1;
                    }
                }
            }
        }
        if list_moved {
            // Gone since the listing: expunged (or moved, then it is found by the next
            // scan); never give a vanished file a UID.
            for (f, u) in scanned.iter().zip(uid_of.iter_mut()) {
                if *u == NEW && !self.folder.file_path(f.sub, &f.name).exists() {
                    *u = GONE;
                }
            }
        }
        let unknown_count = uid_of.iter().filter(|u| **u == NEW).count();
        let before = list.len();
        let foreign = from_file
            && looks_foreign(
                before,
                before - matched_count,
                matched_count + unknown_count,
                unknown_count,
                scanned
                    .iter()
                    .zip(&uid_of)
                    .filter(|(_, u)| **u == NEW)
                    .map(|(f, _)| f),
                &self.folder,
                after.list,
            );
        if unknown_count <= STAT_NOW {
            // Few new files (new mail): their dates now, in order of delivery. A file
            // gone since the listing was expunged or moved: it gets no UID.
            for (f, u) in scanned.iter_mut().zip(uid_of.iter_mut()) {
                if *u == NEW {
                    f.set_mtime(f.stat_mtime(&self.folder));
                    if f.mtime().is_none() {
                        *u = GONE;
                    }
                }
            }
        }
        // Else a first scan of a big folder: UIDs in the order of the names' delivery
        // times (as Dovecot does); the dates are filled in afterwards (`super::dates`).
        let exhausted = u64::from(list.uid_next) + unknown_count as u64 >= u64::from(u32::MAX);
        let lost_next = loaded.uid_next_uncertain && unknown_count > 0;
        if foreign || exhausted || lost_next {
            // UIDs exhausted (RFC 3501 §2.3.1.1), or a list that is not this folder's:
            // only a new UIDVALIDITY helps. It is above the list's own, so no UID of that
            // list is ever reused for another message under its UIDVALIDITY.
            let v = self
                .folder
                .storage
                .fresh_uid_validity()
                .max(list.uid_validity.saturating_add(1));
            if lost_next {
                tracing::warn!(folder = %self.folder.path.display(), uidvalidity = v, old_uidvalidity = list.uid_validity, "index damaged beyond its UIDNEXT and messages have no known UID; UIDs reassigned under a new UIDVALIDITY");
            } else if foreign {
                tracing::warn!(file = %self.folder.path.join(uidlist::FILE).display(), uidvalidity = v, old_uidvalidity = list.uid_validity, "uid list belongs to another folder (most entries match no file, most files have no entry); rebuilt, UIDs reassigned under a new UIDVALIDITY");
            } else {
                tracing::warn!(folder = %self.folder.path.display(), uidvalidity = v, "UID space exhausted; UIDVALIDITY changed, all messages renumbered");
            }
            for u in uid_of.iter_mut().filter(|u| **u != GONE) {
                *u = NEW;
            }
            list = uidstore::Known::new(v);
            base = None;
        }
        // New UIDs in delivery order; no list entry (no copy of the name): the size
        // is the name's `W=`, or not known yet (computed on first need).
        for i in delivery_order(&scanned, &uid_of) {
            uid_of[i] = list.assign();
        }
        if uid_of.contains(&GONE) {
            let mut i = 0;
            scanned.retain(|_| {
                i += 1;
                uid_of[i - 1] != GONE
            });
            uid_of.retain(|u| *u != GONE);
        }
        let mut matched: FileMap<FileInfo> = FileMap::from_parts(uid_of, scanned);

        let mut new_recent = Vec::new();
        if claim {
            let recent = list.recent;
            let from = matched.uids().partition_point(|u| *u <= recent);
            new_recent = matched.uids()[from..].to_vec();
            list.recent = list.recent.max(list.uid_next - 1);
            self.move_new_to_cur(&mut matched);
        }

        // RFC822.SIZE of a file whose name has no `W=` is not computed here: the index
        // records it unknown and `super::sizes` computes it on first need.
        // The index changed while we listed (a flag flush renamed files): a listed name
        // whose flags differ from its clean record may be the old name of a renamed file,
        // not a change by another program. Such names are checked; gone ones are stale.
        let stale: HashSet<Uid> = match (&base, list_moved) {
            (Some(b), true) => matched
                .iter()
                .filter(|(u, f)| {
                    uidstore::name_differs(b, *u, f, &keywords)
                        && !self.folder.file_path(f.sub, &f.name).exists()
                })
                .map(|(u, _)| u)
                .collect(),
            _ => HashSet::new(),
        };
        let post = uidstore::save(
            &self.folder,
            self.fsync,
            &mut sc.index,
            base.as_ref(),
            &list,
            &matched,
            &keywords,
            &stale,
        )?;
        // Our own write (under the lock) is not a change to rescan for.
        let mut fp = fp;
        let saved = Fingerprint::take_index(&self.folder);
        fp.index_from(&saved);
        // What this scan proves, for STATUS without a listing (see `quick_status`). A
        // racy fingerprint proves nothing there, so such a scan leaves the older stamp
        // (whose mtimes no longer match): in a folder changed all the time that saves a
        // file creation (temp file + rename) per command.
        if !fp.racy(taken, self.folder.storage.nfs()) {
            self.write_stamp(&fp, taken, &post.header);
        }
        drop(_lock);

        // Flags, sizes and dates come from the index (flags of dirty records are newer
        // than the file names); the files only tell which messages exist.
        let same_uids = matched.len() == post.records.len()
            && matched
                .uids()
                .iter()
                .zip(&post.records)
                .all(|(u, r)| *u == r.uid);
        if !same_uids {
            matched.retain(|u, _| post.get(u).is_some());
        }
        let snapshot = snapshot_from_index(&keywords, &post);
        let mut c = lock(&self.cur);
        c.index = sc.index.clone();
        if let Some(next) = c.snapshot.succeed(snapshot) {
            c.snapshot = Arc::new(next);
        }
        c.files = Arc::new(matched.kept());
        c.keywords = Arc::new(keywords);
        c.recent_threshold = post.header.recent_uid.saturating_sub(1);
        c.fingerprint = Some((fp, taken));
        c.handover_until = None;
        c.seen_changes = changes;
        c.scans += 1;
        c.rescans += 1;
        drop(c);
        if post.records.iter().any(|r| r.dirty) {
            self.dirty_found
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if post
            .records
            .iter()
            .any(|r| r.internal_date == crate::index::UNKNOWN_DATE)
        {
            self.dates_unknown
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(new_recent)
    }

    /// Writes `loft.index.scan` for a complete scan whose fingerprint was taken at `taken`.
    fn write_stamp(&self, fp: &Fingerprint, taken: i128, header: &crate::index::Header) {
        let stamp = encode_stamp(&Stamp {
            cur: fp.cur,
            new: fp.new,
            taken,
            uid_validity: header.uid_validity,
            uid_next: header.uid_next,
        });
        if let Err(e) = fsio::write_atomic(
            &self.folder.path.join(SCAN_STAMP),
            stamp.as_bytes(),
            FsyncMode::Never,
        ) {
            tracing::debug!(error = %e, "cannot write the scan stamp");
        }
    }

    /// Whether a scan found records whose flags are not in their file names yet (and
    /// forgets it): the caller arms the flush.
    pub fn take_dirty_found(&self) -> bool {
        self.dirty_found
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a scan left internal dates unknown (and forgets it): the caller starts
    /// [`super::dates::fill`].
    pub fn take_dates_unknown(&self) -> bool {
        self.dates_unknown
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Records internal dates found out after the scan, in one index transaction, and
    /// takes them into the shared snapshot.
    pub fn record_dates(&self, dates: &[(Uid, i64)]) -> Result<()> {
        self.record(|txn| {
            for &(uid, date) in dates {
                txn.set_date(uid, date);
            }
        })
    }

    /// Records sizes computed after the scan (see [`super::sizes`]), in one index
    /// transaction, and takes them into the shared snapshot.
    pub fn record_sizes(&self, sizes: &[(Uid, u64)]) -> Result<()> {
        self.record(|txn| {
            for &(uid, size) in sizes {
                txn.set_size(uid, size);
            }
        })
    }

    /// One index transaction made by `fill` under the folder lock, then taken into the
    /// shared snapshot.
    fn record(&self, fill: impl FnOnce(&mut crate::index::Transaction<'_>)) -> Result<()> {
        let mut sc = lock(&self.scan);
        let Some(ix) = sc.index.clone() else {
            return Ok(());
        };
        {
            let _lock = FolderLock::acquire(&self.folder.path, self.folder.shared.clone())?;
            let mut txn = ix.begin().map_err(uidstore::map_err)?;
            fill(&mut txn);
            txn.commit().map_err(uidstore::map_err)?;
        }
        self.catch_up_index(&mut sc, false, None)?;
        Ok(())
    }

    /// The UIDs this process last knew (to repair index files damaged under it).
    fn known(&self) -> Option<UidList> {
        let c = lock(&self.cur);
        if c.snapshot.uid_validity == 0 {
            return None;
        }
        let mut list = UidList::new(c.snapshot.uid_validity);
        list.uid_next = c.snapshot.uid_next;
        list.recent = c.recent_threshold;
        for m in c.snapshot.messages.records() {
            if c.files.get(m.uid).is_some() {
                list.entries.insert(
                    m.uid,
                    uidlist::Entry {
                        base: String::from_utf8_lossy(&m.key).into_owned(),
                        size: Some(m.size),
                    },
                );
            }
        }
        Some(list)
    }

    /// Files this process just published under the folder lock (APPEND, COPY): taken
    /// into the file map and, from the index, into the snapshot, without listing the
    /// folder. Only when the last scan's view of `cur/` was still current just before
    /// the renames (its mtime was `cur_before`) and no other writer of this process
    /// changed the folder since (`changes_before`); otherwise the next sync rescans, as
    /// for any change. The fingerprint takes `cur/`'s new mtime and is trusted for one
    /// racy window from the first hand-over of a series; the first sync after the
    /// window lists the folder (a change by another program in the same clock tick as
    /// ours is found then). A stream of APPENDs thus lists once per window, not once
    /// per message.
    pub fn published(
        &self,
        files: Vec<(Uid, FileInfo)>,
        cur_before: i128,
        cur_after: i128,
        changes_before: u64,
    ) {
        if files.is_empty() {
            return;
        }
        let mut sc = lock(&self.scan);
        {
            let mut c = lock(&self.cur);
            // A racy fingerprint (the last listing was close to a change) is taken over
            // as it is: the listing at the end of the window settles it either way.
            let current = c.fingerprint.is_some_and(|(fp, _)| fp.cur == cur_before)
                && c.seen_changes == changes_before
                && sc.index.is_some();
            if !current {
                return;
            }
            if let Some((fp, _)) = c.fingerprint.as_mut() {
                fp.cur = cur_after;
            }
            // The first hand-over of a series opens the window; later ones do not
            // extend it, so a stream of APPENDs still lists once per window.
            if c.handover_until.is_none() {
                let window = racy_window(cur_after, self.folder.storage.nfs());
                c.handover_until = Some(now_nanos() + window);
            }
            c.seen_changes = changes_before + 1;
            let map = Arc::make_mut(&mut c.files);
            for (uid, f) in files {
                map.insert(uid, Kept::of(&f));
            }
        }
        if !matches!(self.catch_up_index(&mut sc, false, None), Ok(true)) {
            // The index does not match the map after all: the next sync lists.
            lock(&self.cur).fingerprint = None;
        }
    }

    /// Files this process unlinked (EXPUNGE, `uids` ascending): their records leave the
    /// index in one transaction and their entries the file map, so the next sync lists
    /// the folder only to find the names it expects (no full rescan). The caller holds the
    /// folder lock. `false` when no index is open yet: the caller rescans.
    pub fn expunged(&self, uids: &[Uid]) -> Result<bool> {
        let Some(ix) = self.with(|c| c.index.clone()) else {
            return Ok(false);
        };
        uidstore::expunge_records(&ix, uids)?;
        let mut c = lock(&self.cur);
        Arc::make_mut(&mut c.files).retain(|u, _| uids.binary_search(&u).is_err());
        Ok(true)
    }

    /// Records files renamed by this process (flag flush), so that the next operation
    /// finds them without a rescan.
    pub fn renamed(&self, changes: Vec<(Uid, FileInfo)>) {
        if changes.is_empty() {
            return;
        }
        let mut c = lock(&self.cur);
        let files = Arc::make_mut(&mut c.files);
        for (uid, f) in changes {
            files.insert(uid, Kept::of(&f));
        }
    }

    /// The keywords file was rewritten by this process.
    pub fn set_keywords(&self, kw: Keywords) {
        let mut c = lock(&self.cur);
        let names = kw.names();
        c.keywords = Arc::new(kw);
        if c.snapshot.keywords != names {
            let mut s = (*c.snapshot).clone();
            s.keywords = names;
            if let Some(next) = c.snapshot.succeed(s) {
                c.snapshot = Arc::new(next);
            }
        }
    }

    /// A second file with a base name already in use gets a fresh base so that both
    /// messages stay visible.
    fn rename_duplicate(&self, f: &FileInfo) -> Option<FileInfo> {
        let base = super::save::unique_name();
        let name = match f.name.split_once(':') {
            Some((_, info)) => format!("{base}:{info}"),
            None => base.clone(),
        };
        let from = self.folder.file_path(f.sub, &f.name);
        let to = self.folder.file_path(f.sub, &name);
        match self.folder.fs().rename(&from, &to) {
            Ok(()) => {
                tracing::warn!(file = %from.display(), new = %name, "duplicate Maildir base name; renamed the second file");
                let parsed = filename::parse(&name)?;
                Some(FileInfo::new(f.sub, &name, parsed, f.mtime()))
            }
            Err(e) => {
                tracing::warn!(file = %from.display(), error = %e, "duplicate Maildir base name; cannot rename, file ignored");
                None
            }
        }
    }

    fn move_new_to_cur(&self, matched: &mut FileMap<FileInfo>) {
        matched.for_each_mut(|_, f| {
            if f.sub != Sub::New {
                return;
            }
            let letters = filename::flag_letters(
                f.parsed.sys,
                &f.parsed.keyword_letters(),
                &filename::other_letters(&f.name),
            );
            let name = filename::cur_name(f.base(), &letters);
            let from = self.folder.file_path(Sub::New, &f.name);
            let to = self.folder.file_path(Sub::Cur, &name);
            match self.folder.fs().rename(&from, &to) {
                Ok(()) => {
                    f.sub = Sub::Cur;
                    if let Some(p) = filename::parse(&name) {
                        f.parsed = p;
                    }
                    f.name = name.into();
                }
                Err(e) => {
                    tracing::debug!(file = %from.display(), error = %e, "could not move new/ file to cur/")
                }
            }
        });
    }
}

/// A hasher for file names in one folder's listing, 8 bytes at a time (SipHash was a
/// visible share of a 100,000-file scan). Names are made by delivery agents and by Loft,
/// not chosen by a client, so no flooding defence is needed.
#[derive(Default)]
struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        // Spread the high bits down: hashbrown takes its bucket from the low bits.
        self.0 ^ (self.0 >> 29)
    }
}

type NameMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<NameHasher>>;
type NameSet<K> = HashSet<K, std::hash::BuildHasherDefault<NameHasher>>;

/// The indexes of the files numbered [`NEW`] in delivery order (see
/// [`FileInfo::delivery_key`]), then by name; keys computed once, small entries sorted.
fn delivery_order(files: &[FileInfo], uid_of: &[Uid]) -> Vec<usize> {
    let mut order: Vec<(i64, usize)> = files
        .iter()
        .zip(uid_of)
        .enumerate()
        .filter(|(_, (_, u))| **u == NEW)
        .map(|(i, (f, _))| (f.delivery_key(), i))
        .collect();
    // Names are looked at only for equal keys (each look is a cache miss on 100,000).
    order.sort_unstable_by(|a, b| {
        (a.0.cmp(&b.0)).then_with(|| files[a.1].name.cmp(&files[b.1].name))
    });
    order.into_iter().map(|(_, i)| i).collect()
}

/// The snapshot sessions see, from the index.
fn snapshot_from_index(keywords: &Keywords, snap: &IndexSnapshot) -> Snapshot {
    // The index's own records (shared chunks): nothing copied per message.
    let messages = Messages::from(snap);
    let mut names = keywords.names();
    for k in &snap.keywords {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(k)) {
            names.push(k.clone());
        }
    }
    Snapshot {
        uid_validity: snap.header.uid_validity,
        uid_next: snap.header.uid_next,
        messages,
        keywords: names,
    }
}

/// What a complete scan proves (`loft.index.scan`): while `cur/` and `new/` keep these
/// mtimes, an index of this UIDVALIDITY and UIDNEXT holds every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    /// mtimes (ns) of `cur/` and `new/`.
    cur: i128,
    new: i128,
    /// When the scan started (ns).
    taken: i128,
    uid_validity: u32,
    uid_next: u32,
}

/// The content of `loft.index.scan`: the five numbers of [`Stamp`] and the CRC32 (hex)
/// of the text before it.
fn encode_stamp(s: &Stamp) -> String {
    let nums = format!(
        "{} {} {} {} {}",
        s.cur, s.new, s.taken, s.uid_validity, s.uid_next
    );
    format!("{nums} {:08x}\n", crc32fast::hash(nums.as_bytes()))
}

/// Reads a scan stamp: `Ok(None)` for the three-number stamp of earlier versions (not
/// trusted, not damage either), `Err(what)` for anything else that is not a stamp.
fn decode_stamp(b: &[u8]) -> std::result::Result<Option<Stamp>, String> {
    let bad = |what: &str| Err(format!("scan stamp {what}"));
    let Ok(text) = std::str::from_utf8(b) else {
        return bad("is not text");
    };
    let Some(body) = text.strip_suffix('\n') else {
        return bad("does not end with a line end (truncated?)");
    };
    let w: Vec<&str> = body.split(' ').collect();
    let n: Vec<Option<i128>> = w.iter().take(5).map(|x| x.parse().ok()).collect();
    if w.len() == 3 && n.iter().all(Option::is_some) {
        return Ok(None);
    }
    let (6, [Some(cur), Some(new), Some(taken), Some(uv), Some(un)], Some(crc)) = (
        w.len(),
        n.as_slice(),
        w.last()
            .filter(|c| c.len() == 8)
            .and_then(|c| u32::from_str_radix(c, 16).ok()),
    ) else {
        return bad("is not five numbers and a checksum");
    };
    if crc != crc32fast::hash(&body.as_bytes()[..body.len() - 9]) {
        return bad("checksum mismatch (rewritten by another program?)");
    }
    let (Ok(uid_validity), Ok(uid_next)) = (u32::try_from(*uv), u32::try_from(*un)) else {
        return bad("holds a UID out of range");
    };
    Ok(Some(Stamp {
        cur: *cur,
        new: *new,
        taken: *taken,
        uid_validity,
        uid_next,
    }))
}

/// Fuzzing: any bytes decode without a panic, and a stamp that decodes encodes back to
/// the same stamp.
pub(super) fn fuzz_stamp(b: &[u8]) {
    if let Ok(Some(s)) = decode_stamp(b) {
        assert_eq!(decode_stamp(encode_stamp(&s).as_bytes()), Ok(Some(s)));
    }
}

/// Logs a damaged or contradicted scan stamp once: the stamp is removed (the next
/// complete scan writes a new one).
fn reject_stamp(folder: &Folder, what: &str) {
    let path = folder.path.join(SCAN_STAMP);
    tracing::warn!(
        "index corrupted: {}: {what}; removed, the folder is listed again",
        path.display()
    );
    let _ = std::fs::remove_file(&path);
}

/// STATUS from the index alone when the last complete scan's stamp proves that the
/// directories did not change since (a stat of `cur/` and `new/`, a read of the stamp and
/// of the index). `None`: a scan is needed.
pub fn quick_status(folder: &Folder, fsync: FsyncMode) -> Option<crate::mailbox::StatusInfo> {
    if !folder.path.join(crate::index::INDEX_FILE).is_file() {
        return None;
    }
    // Beneath the mail root, never through a link (a link in its place reads as damage).
    let text = {
        use std::io::Read;
        let mut f = folder.open_read(&folder.path.join(SCAN_STAMP)).ok()?;
        let mut v = Vec::new();
        f.by_ref().take(4096).read_to_end(&mut v).ok()?;
        v
    };
    let stamp = match decode_stamp(&text) {
        Ok(s) => s?,
        Err(what) => {
            reject_stamp(folder, &what);
            return None;
        }
    };
    let (cur, new, taken) = (stamp.cur, stamp.new, stamp.taken);
    let fp = Fingerprint::take(folder);
    let nfs = folder.storage.nfs();
    if fp.cur != cur || fp.new != new || racy_stamp(cur, taken, nfs) || racy_stamp(new, taken, nfs)
    {
        return None;
    }
    let ix = Index::open(&folder.path, &folder.storage.index_options(fsync)).ok()?;
    if ix.created() {
        return None;
    }
    let snap = ix.refresh().ok()?;
    // The index must be the one the scan wrote: one that went back (committed
    // transactions cut off by another program) would hide messages.
    if (snap.header.uid_validity, snap.header.uid_next) != (stamp.uid_validity, stamp.uid_next) {
        let what = format!(
            "the last complete scan left UIDVALIDITY {} UIDNEXT {}, the index now holds {} {}",
            stamp.uid_validity, stamp.uid_next, snap.header.uid_validity, snap.header.uid_next
        );
        reject_stamp(folder, &what);
        return None;
    }
    let recent_from = snap.header.recent_uid;
    Some(crate::mailbox::StatusInfo {
        messages: snap.records.len() as u32,
        recent: snap.records.iter().filter(|r| r.uid >= recent_from).count() as u32,
        uid_next: snap.header.uid_next,
        uid_validity: snap.header.uid_validity,
        unseen: snap
            .records
            .iter()
            .filter(|r| !SysFlags(r.flags).contains(SysFlags::SEEN))
            .count() as u32,
        // UNKNOWN_SIZE when some size was not computed yet (the caller decides).
        size: snap
            .records
            .iter()
            .try_fold(0u64, |sum, r| {
                (r.size != crate::index::UNKNOWN_SIZE).then(|| sum.saturating_add(r.size))
            })
            .unwrap_or(crate::index::UNKNOWN_SIZE),
    })
}

#[cfg(test)]
mod stamp_tests {
    use super::{decode_stamp, encode_stamp, Stamp};

    #[test]
    fn scan_stamp_round_trip_and_damage() {
        let st = Stamp {
            cur: 1_700_000_000_123_456_789,
            new: 1_700_000_001_000_000_000,
            taken: 1_700_000_005_000_000_000,
            uid_validity: 1_700_000_000,
            uid_next: 42,
        };
        let s = encode_stamp(&st);
        assert_eq!(decode_stamp(s.as_bytes()), Ok(Some(st)));
        // The stamp of earlier versions: not trusted, not damage.
        assert_eq!(decode_stamp(b"1 2 3\n"), Ok(None));
        // Every truncation and every changed byte is damage (never a stamp to trust).
        for n in 0..s.len() {
            assert!(decode_stamp(&s.as_bytes()[..n]).is_err(), "cut at {n}");
        }
        for i in 0..s.len() - 1 {
            for x in [b'0', b'9', b'a', b' ', b'x'] {
                let mut b = s.clone().into_bytes();
                if b[i] == x {
                    continue;
                }
                b[i] = x;
                let r = decode_stamp(&b);
                assert!(!matches!(r, Ok(Some(_))), "byte {i} -> {x}: {r:?}");
            }
        }
        assert!(decode_stamp(b"12 garbage\n").is_err());
        assert!(decode_stamp(b"\xff\n").is_err());
    }

    proptest::proptest! {
        /// Any bytes (also near-stamps: six words, eight hex digits last) decode without a
        /// panic, and what decodes encodes back to itself (the fuzz hook's property).
        #[test]
        fn any_bytes_decode_without_panic(
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
            words in proptest::collection::vec("[-+0-9a-f]{1,12}", 6),
        ) {
            super::fuzz_stamp(&raw);
            super::fuzz_stamp(format!("{}\n", words.join(" ")).as_bytes());
        }

        #[test]
        fn every_stamp_round_trips(cur in proptest::num::i128::ANY, new in proptest::num::i128::ANY,
                                   taken in proptest::num::i128::ANY, uid_validity in 0u32.., uid_next in 0u32..) {
            let st = Stamp { cur, new, taken, uid_validity, uid_next };
            proptest::prop_assert_eq!(decode_stamp(encode_stamp(&st).as_bytes()), Ok(Some(st)));
        }
    }
}
