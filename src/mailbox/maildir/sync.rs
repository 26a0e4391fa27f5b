//! Synchronising the in-process view of a folder with the disk: change detection, UID
//! assignment, `\Recent` claiming, `new/` → `cur/` moves and snapshot building.
//!
//! One [`FolderState`] per folder path is shared by every session of this process (a
//! registry of weak references), so the file map and the snapshot exist once, and a
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use super::filename;
use super::folder::{self, FileInfo, Folder, Sub};
use super::fsio;
use super::keywords::{self, Keywords};
use super::lock::FolderLock;
use super::migrate;
use super::uidlist::{self, Loaded, UidList};
use crate::config::FsyncMode;
use crate::mailbox::{Flags, MessageMeta, Result, Snapshot, Uid};

/// Directory timestamps closer than this to the moment a fingerprint was taken make it
/// racy (covers file systems with 1-second timestamps).
const RACY_WINDOW: i128 = 2_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Fingerprint {
    cur: i128,
    new: i128,
    list: i128,
    list_len: u64,
    kw: i128,
}

impl Fingerprint {
    fn take(f: &Folder) -> Fingerprint {
        let m = |p: std::path::PathBuf| std::fs::metadata(p).ok();
        let t = |md: &Option<std::fs::Metadata>| {
            md.as_ref()
                .map(|m| fsio::unix_nanos(m.modified()))
                .unwrap_or(0)
        };
        let list = m(f.path.join(uidlist::FILE));
        Fingerprint {
            cur: t(&m(f.path.join("cur"))),
            new: t(&m(f.path.join("new"))),
            list: t(&list),
            list_len: list.as_ref().map(|m| m.len()).unwrap_or(0),
            kw: t(&m(f.path.join(keywords::FILE))),
        }
    }

    /// "Racy" fingerprint (like git's racy index entries): taken at `taken` (before the
    /// listing), it proves nothing when a directory changed less than [`RACY_WINDOW`]
    /// before, because a later change may land on the same coarse timestamp. Once the
    /// fingerprint is taken well after the last change, equal mtimes do prove that nothing
    /// changed, so a change costs a bounded number of rescans instead of one per sync for
    /// a time window.
    fn racy(&self, taken: i128) -> bool {
        taken - self.cur < RACY_WINDOW || taken - self.new < RACY_WINDOW
    }
}

/// Loads the folder's uid list, adopting a foreign one or starting fresh. The bool says
/// whether the result must be written back.
pub fn load_or_init(f: &Folder) -> (UidList, bool) {
    match UidList::load(&f.path) {
        Loaded::Ok(l) => (l, false),
        Loaded::Missing => match migrate::adopt(&f.path) {
            Some(l) => (l, true),
            None => {
                let v = uidlist::fresh_uid_validity();
                // A new folder is the normal case and stays quiet; a folder that already
                // holds messages lost its list (or is an existing Maildir used for the
                // first time): say so, the UIDs clients knew are gone.
                if has_message_files(f) {
                    tracing::warn!(file = %f.path.join(uidlist::FILE).display(), uidvalidity = v, "uid list missing in a folder that has messages; UIDs reassigned under a new UIDVALIDITY (expected only on the first use of an existing Maildir)");
                }
                (UidList::new(v), true)
            }
        },
        Loaded::Garbled => match migrate::adopt(&f.path) {
            Some(l) => {
                tracing::warn!(folder = %f.path.display(), "uid list garbled; rebuilt from the foreign uid list");
                (l, true)
            }
            None => {
                let v = uidlist::fresh_uid_validity();
                tracing::warn!(folder = %f.path.display(), uidvalidity = v, "uid list garbled beyond repair; UIDVALIDITY changed, clients will resynchronise");
                (UidList::new(v), true)
            }
        },
    }
}

/// Whether `new/` or `cur/` holds anything that may be a message (a name not starting
/// with `.`). Stops at the first one.
fn has_message_files(f: &Folder) -> bool {
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
fn looks_foreign(
    listed: usize,
    missing: usize,
    files: usize,
    unknown: &[FileInfo],
    folder: &Folder,
    list_mtime: i128,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    if listed == 0 || missing * 2 <= listed || unknown.len() * 2 <= files {
        return false;
    }
    unknown.iter().any(|f| {
        std::fs::metadata(folder.file_path(f.sub, &f.name)).is_ok_and(|md| {
            i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()) <= list_mtime
        })
    })
}

/// What every session of this process sees of one folder (one per folder path, see
/// [`FolderState::get`]): the file of every UID, the snapshot, the keywords.
pub struct Current {
    pub files: Arc<BTreeMap<Uid, FileInfo>>,
    pub snapshot: Arc<Snapshot>,
    pub keywords: Arc<Keywords>,
    /// The recent threshold as of the last scan.
    pub recent_threshold: Uid,
    /// The fingerprint and the moment (ns) it was taken, before the listing it covers.
    fingerprint: Option<(Fingerprint, i128)>,
    seen_changes: u64,
    /// Bumped by every completed rescan: a session that waited for a rescan uses its result.
    scans: u64,
}

/// Scan-only state, guarded by the scan mutex (one rescan at a time per folder).
struct Scanner {
    mtimes: HashMap<(Sub, String), i64>,
    tmp_cleaned: bool,
}

/// The in-process state of one folder shared by every session that opened it. A rescan
/// happens once per change for all of them; the folder lock is taken only after the
/// listing, to reconcile it with the uid list and write that.
pub struct FolderState {
    pub folder: Folder,
    pub fsync: FsyncMode,
    scan: Mutex<Scanner>,
    cur: Mutex<Current>,
}

type Registry = HashMap<PathBuf, Weak<FolderState>>;

fn registry() -> &'static Mutex<Registry> {
    static REG: OnceLock<Mutex<Registry>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
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
        let mut reg = lock(registry());
        if let Some(s) = reg.get(&folder.path).and_then(Weak::upgrade) {
            return s;
        }
        reg.retain(|_, w| w.strong_count() > 0);
        let path = folder.path.clone();
        let s = Arc::new(FolderState {
            folder,
            fsync,
            scan: Mutex::new(Scanner {
                mtimes: HashMap::new(),
                tmp_cleaned: false,
            }),
            cur: Mutex::new(Current {
                files: Arc::new(BTreeMap::new()),
                snapshot: Arc::new(Snapshot::default()),
                keywords: Arc::new(Keywords::default()),
                recent_threshold: 0,
                fingerprint: None,
                seen_changes: 0,
                scans: 0,
            }),
        });
        reg.insert(path, Arc::downgrade(&s));
        s
    }

    /// Runs `f` on the current state (briefly locked: no I/O inside).
    pub fn with<R>(&self, f: impl FnOnce(&Current) -> R) -> R {
        f(&lock(&self.cur))
    }

    fn unchanged(&self, c: &Current, claim: bool) -> bool {
        let Some((fp, taken)) = c.fingerprint else {
            return false;
        };
        if claim && c.snapshot.uid_next.saturating_sub(1) > c.recent_threshold {
            // Someone scanned without claiming: this session claims now.
            return false;
        }
        !fp.racy(taken)
            && c.seen_changes == self.folder.shared.changes()
            && fp == Fingerprint::take(&self.folder)
    }

    /// Looks for changes (rescanning when something moved) and returns the snapshot and
    /// the UIDs this caller claimed as `\Recent` (when `claim`).
    pub fn refresh(&self, claim: bool) -> Result<(Arc<Snapshot>, Vec<Uid>)> {
        let scans = {
            let c = lock(&self.cur);
            if self.unchanged(&c, claim) {
                return Ok((c.snapshot.clone(), Vec::new()));
            }
            c.scans
        };
        let mut sc = lock(&self.scan);
        {
            // A rescan finished while we waited: it is as fresh as ours would be.
            let c = lock(&self.cur);
            if c.scans != scans && self.unchanged(&c, claim) {
                return Ok((c.snapshot.clone(), Vec::new()));
            }
        }
        let new_recent = self.rescan(&mut sc, claim)?;
        let c = lock(&self.cur);
        Ok((c.snapshot.clone(), new_recent))
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
        if !sc.tmp_cleaned {
            self.folder.clean_tmp();
            sc.tmp_cleaned = true;
        }
        let mut scanned = self.folder.scan(&sc.mtimes)?;

        let _lock = FolderLock::acquire(&self.folder.path, self.folder.shared.clone())?;
        let (mut list, mut dirty) = load_or_init(&self.folder);
        let from_file = !dirty;
        let keywords = Keywords::load(&self.folder.path);
        // The uid list changed since the listing started (another writer): a file it no
        // longer names may have been expunged after the listing; re-check those.
        let after = Fingerprint::take(&self.folder);
        let list_moved = after.list != fp.list
            || after.list_len != fp.list_len
            || self.folder.shared.changes() != changes;

        let listed: HashSet<&str> = scanned.iter().map(|f| f.parsed.base.as_str()).collect();
        let missing = list
            .entries
            .values()
            .any(|e| !listed.contains(e.base.as_str()));
        if missing {
            // readdir may miss a file renamed while we listed: look once more.
            let again = self.folder.scan(&sc.mtimes)?;
            let bases: HashSet<String> = again.iter().map(|f| f.parsed.base.clone()).collect();
            let mut merged = again;
            for f in scanned {
                if !bases.contains(&f.parsed.base) && self.folder.file_path(f.sub, &f.name).exists()
                {
                    merged.push(f);
                }
            }
            scanned = merged;
        }

        // Match files to uid list entries by base name.
        let by_base: HashMap<&str, Uid> = list
            .entries
            .iter()
            .map(|(u, e)| (e.base.as_str(), *u))
            .collect();
        let mut matched: BTreeMap<Uid, FileInfo> = BTreeMap::new();
        let mut unknown: Vec<FileInfo> = Vec::new();
        let mut seen_bases: HashSet<String> = HashSet::new();
        for f in scanned {
            if !seen_bases.insert(f.parsed.base.clone()) {
                if let Some(g) = self.rename_duplicate(&f) {
                    seen_bases.insert(g.parsed.base.clone());
                    unknown.push(g);
                }
                continue;
            }
            match by_base.get(f.parsed.base.as_str()) {
                Some(uid) => {
                    matched.insert(*uid, f);
                }
                None => unknown.push(f),
            }
        }
        drop(by_base);
        if list_moved {
            // Gone since the listing: expunged (or moved, then it is found by the next
            // scan); never give a vanished file a UID.
            unknown.retain(|f| self.folder.file_path(f.sub, &f.name).exists());
        }
        let before = list.entries.len();
        let foreign = from_file
            && looks_foreign(
                before,
                before - matched.len(),
                matched.len() + unknown.len(),
                &unknown,
                &self.folder,
                after.list,
            );
        list.entries.retain(|uid, _| matched.contains_key(uid));
        dirty |= list.entries.len() != before;
        unknown.sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.name.cmp(&b.name)));
        let exhausted = u64::from(list.uid_next) + unknown.len() as u64 >= u64::from(u32::MAX);
        if foreign || exhausted {
            // UIDs exhausted (RFC 3501 §2.3.1.1), or a list that is not this folder's:
            // only a new UIDVALIDITY helps. It is above the list's own, so no UID of that
            // list is ever reused for another message under its UIDVALIDITY.
            let v = uidlist::fresh_uid_validity().max(list.uid_validity.saturating_add(1));
            if foreign {
                tracing::warn!(file = %self.folder.path.join(uidlist::FILE).display(), uidvalidity = v, old_uidvalidity = list.uid_validity, "uid list belongs to another folder (most entries match no file, most files have no entry); rebuilt, UIDs reassigned under a new UIDVALIDITY");
            } else {
                tracing::warn!(folder = %self.folder.path.display(), uidvalidity = v, "UID space exhausted; UIDVALIDITY changed, all messages renumbered");
            }
            let mut all: Vec<FileInfo> = std::mem::take(&mut matched).into_values().collect();
            all.append(&mut unknown);
            all.sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.name.cmp(&b.name)));
            unknown = all;
            list = UidList::new(v);
            dirty = true;
        }
        for f in unknown {
            let uid = list.push(f.parsed.base.clone(), None);
            matched.insert(uid, f);
            dirty = true;
        }

        let mut new_recent = Vec::new();
        if claim {
            new_recent = matched
                .keys()
                .copied()
                .filter(|u| *u > list.recent)
                .collect();
            if list.uid_next - 1 > list.recent {
                list.recent = list.uid_next - 1;
                dirty = true;
            }
            self.move_new_to_cur(&mut matched);
        }

        // RFC822.SIZE for files whose name has no W=: compute once, remember.
        for (uid, f) in &matched {
            if f.parsed.vsize.is_some() {
                continue;
            }
            let Some(entry) = list.entries.get_mut(uid) else {
                continue;
            };
            if entry.size.is_none() {
                let p = self.folder.file_path(f.sub, &f.name);
                match folder::file_crlf_size(&p) {
                    Ok(s) => {
                        entry.size = Some(s);
                        dirty = true;
                    }
                    Err(e) => {
                        tracing::warn!(file = %p.display(), error = %e, "cannot read message to compute its size")
                    }
                }
            }
        }
        if dirty {
            list.save(&self.folder.path, self.fsync)?;
        }
        drop(_lock);

        sc.mtimes = matched
            .values()
            .map(|f| ((f.sub, f.name.clone()), f.mtime))
            .collect();
        let snapshot = build_snapshot(&keywords, &list, &matched);
        let mut c = lock(&self.cur);
        if !same_snapshot(&c.snapshot, &snapshot) {
            c.snapshot = Arc::new(snapshot);
        }
        c.files = Arc::new(matched);
        c.keywords = Arc::new(keywords);
        c.recent_threshold = list.recent;
        c.fingerprint = Some((fp, taken));
        c.seen_changes = changes;
        c.scans += 1;
        Ok(new_recent)
    }

    /// Records files renamed by this process (flag changes) and their new flags, so
    /// that the next operation finds them without a rescan.
    pub fn renamed(&self, changes: Vec<(Uid, FileInfo)>) {
        if changes.is_empty() {
            return;
        }
        let mut c = lock(&self.cur);
        let kw = c.keywords.clone();
        let mut snapshot = (*c.snapshot).clone();
        let files = Arc::make_mut(&mut c.files);
        for (uid, f) in changes {
            if let Ok(i) = snapshot.messages.binary_search_by_key(&uid, |m| m.uid) {
                snapshot.messages[i].flags = flags_of(&kw, &f);
            }
            files.insert(uid, f);
        }
        c.snapshot = Arc::new(snapshot);
    }

    /// The keywords file was rewritten by this process.
    pub fn set_keywords(&self, kw: Keywords) {
        let mut c = lock(&self.cur);
        let names = kw.names();
        c.keywords = Arc::new(kw);
        if c.snapshot.keywords != names {
            let mut s = (*c.snapshot).clone();
            s.keywords = names;
            c.snapshot = Arc::new(s);
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
        match std::fs::rename(&from, &to) {
            Ok(()) => {
                tracing::warn!(file = %from.display(), new = %name, "duplicate Maildir base name; renamed the second file");
                let parsed = filename::parse(&name)?;
                Some(FileInfo {
                    sub: f.sub,
                    name,
                    parsed,
                    mtime: f.mtime,
                })
            }
            Err(e) => {
                tracing::warn!(file = %from.display(), error = %e, "duplicate Maildir base name; cannot rename, file ignored");
                None
            }
        }
    }

    fn move_new_to_cur(&self, matched: &mut BTreeMap<Uid, FileInfo>) {
        for f in matched.values_mut().filter(|f| f.sub == Sub::New) {
            let letters = filename::flag_letters(
                f.parsed.sys,
                &f.parsed.keyword_letters,
                &f.parsed.other_letters,
            );
            let name = filename::cur_name(&f.parsed.base, &letters);
            let from = self.folder.file_path(Sub::New, &f.name);
            let to = self.folder.file_path(Sub::Cur, &name);
            match std::fs::rename(&from, &to) {
                Ok(()) => {
                    f.sub = Sub::Cur;
                    if let Some(p) = filename::parse(&name) {
                        f.parsed = p;
                    }
                    f.name = name;
                }
                Err(e) => {
                    tracing::debug!(file = %from.display(), error = %e, "could not move new/ file to cur/")
                }
            }
        }
    }
}

/// The flags a file name stands for.
pub fn flags_of(keywords: &Keywords, f: &FileInfo) -> Flags {
    let mut flags = Flags {
        sys: f.parsed.sys,
        keywords: Vec::new(),
    };
    for &l in &f.parsed.keyword_letters {
        if let Some(n) = keywords.name_of(l) {
            flags.add_keyword(n);
        }
    }
    flags
}

fn build_snapshot(
    keywords: &Keywords,
    list: &UidList,
    matched: &BTreeMap<Uid, FileInfo>,
) -> Snapshot {
    let messages = matched
        .iter()
        .map(|(uid, f)| MessageMeta {
            uid: *uid,
            flags: flags_of(keywords, f),
            size: f
                .parsed
                .vsize
                .or_else(|| list.entries.get(uid).and_then(|e| e.size))
                .unwrap_or(0),
            internal_date: f.mtime,
        })
        .collect();
    Snapshot {
        uid_validity: list.uid_validity,
        uid_next: list.uid_next,
        messages,
        keywords: keywords.names(),
    }
}

fn same_snapshot(a: &Snapshot, b: &Snapshot) -> bool {
    a.uid_validity == b.uid_validity
        && a.uid_next == b.uid_next
        && a.messages == b.messages
        && a.keywords == b.keywords
}
