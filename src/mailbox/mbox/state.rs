//! One mbox file as this process serves it, shared by every session on it: the file's
//! messages as the last sync found them ([`Folder`]), the index beside it (UIDs, flags,
//! keywords, sizes, `\Recent`, the cache) and the snapshot sessions see.
//!
//! The file and the index are kept in step at every sync ([`FileState::refresh`]):
//! messages the file gained get index records under the UIDs the file's numbering gave
//! them; records whose messages left the file are expunged; a file that another program
//! rewrote with other flags (mutt) gives its flags to the index unless the index holds
//! changes not yet written ("dirty"). Flags a client stores go to the index at once and
//! into the file lazily ([`FileState::flush`]: at the last close, after
//! [`FLUSH_AFTER`], before an expunge), as Dovecot's `mbox_lazy_writes`.
//!
//! One mutex per file serialises this process's work on it; locks on the file itself
//! (against other programs) are [`super::file`]'s, taken per operation and never held
//! between commands.
//!
//! This module must not know about IMAP.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::file::{FileError, MboxFile};
use super::folder::{Delta, Folder, Msg};
use super::meta::{Base, Meta};
use super::number::{Known, Print};
use super::plan::Want;
use super::store::{Place, StorageCtx};
use super::write;
use crate::index::{self, Index, IndexSnapshot, Record, UNKNOWN_SIZE};
use crate::mailbox::messages::keyword_names;
use crate::mailbox::{Error, ErrorKind, Flags, Messages, Result, Snapshot, StoreOp, SysFlags, Uid};

/// Flags stored by clients reach the file at the latest this long after the first change.
pub const FLUSH_AFTER: Duration = Duration::from_secs(5);

pub struct FileState {
    /// The client's name of the mailbox.
    pub name: String,
    pub place: Place,
    storage: Arc<StorageCtx>,
    inner: Mutex<Inner>,
    /// Sessions that have the mailbox open ([`FileState::enter`], [`FileState::leave`]).
    sessions: std::sync::atomic::AtomicUsize,
    /// The mailbox was deleted or renamed: this state is not handed out again (its
    /// holders keep it until they let go).
    gone: std::sync::atomic::AtomicBool,
    /// A write-back of flags and fields holds `inner` (a last close): the file is being
    /// rewritten, the index already has everything it writes.
    writing: std::sync::atomic::AtomicBool,
    /// The snapshot when that write-back began: what a session opening the mailbox
    /// meanwhile is given, instead of waiting for the whole file to be written.
    published: Mutex<(Arc<Snapshot>, Option<Arc<Index>>)>,
}

#[derive(Default)]
struct Inner {
    file: Option<MboxFile>,
    folder: Folder,
    index: Option<Arc<Index>>,
    snapshot: Arc<Snapshot>,
    /// When the oldest flag change not yet in the file was made.
    dirty_since: Option<Instant>,
    /// Sizes computed since the last sync, recorded in the index at the next.
    sizes: Vec<(Uid, u64)>,
    /// The file was synced once (the index's knowledge was used as the seed).
    synced: bool,
    /// The tail of the folder last saved to disk ([`super::saved`]).
    saved: Option<super::change::Tail>,
    /// The folder's messages are still only on disk, in the save whose header the first
    /// sync read ([`super::saved::peek`]): the file has not changed since, so nothing
    /// needed them. `folder` holds everything else; [`FileState::materialize`] reads
    /// them when something does.
    lazy: Option<super::change::Tail>,
    /// A save turned out damaged or stale: the next first sync scans the file.
    no_saved: bool,
    /// Messages the file syncs read, in all (what the syncs cost).
    scanned: usize,
}

/// A message to copy: UID, visible bytes, flags, internal date.
pub type Exported = (Uid, Vec<u8>, Flags, i64);

/// What a message read is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Whole,
    Header,
}

/// The index key of a message: its fingerprint.
fn key_of(p: &Print) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&p.header_crc.to_le_bytes());
    k[4..].copy_from_slice(&p.body_len.to_le_bytes());
    k
}

fn print_of(key: &[u8]) -> Print {
    let crc = key.get(..4).and_then(|b| b.try_into().ok());
    let len = key.get(4..12).and_then(|b| b.try_into().ok());
    match (crc, len, key.len()) {
        (Some(c), Some(l), 12) => Print {
            header_crc: u32::from_le_bytes(c),
            body_len: u64::from_le_bytes(l),
        },
        // Not a key this store wrote: matches no message (it gets a new UID).
        _ => Print {
            header_crc: 0,
            body_len: u64::MAX,
        },
    }
}

fn file_err(st: &FileState, e: FileError) -> Error {
    match e {
        // Not a lock held by another program: the lock could not be made (disk full,
        // no right to create the dotlock).
        FileError::Lock(super::lock::LockError::Io { method, error }) => {
            let what = format!("{} ({} lock)", st.place.path.display(), method.name());
            Error::io(what, error)
        }
        FileError::Lock(l) => Error::new(
            ErrorKind::Temporary,
            "Mailbox is locked by another program, try again later",
        )
        .with_detail(format!("{}: {l}", st.place.path.display())),
        FileError::Io(io) => Error::io(st.place.path.display(), io),
        other => Error::new(
            ErrorKind::Temporary,
            "Internal error occurred. Refer to server log for more information.",
        )
        .with_detail(format!("{}: {other}", st.place.path.display())),
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bits of `names` in the index's keyword list (added when new); `None` past 64.
fn keyword_bits(txn: &mut index::Transaction<'_>, names: &[String]) -> Option<u64> {
    let mut bits = 0u64;
    for n in names {
        bits |= 1u64 << txn.keyword_index(n)?;
    }
    Some(bits)
}

impl FileState {
    pub fn new(name: String, place: Place, storage: Arc<StorageCtx>) -> FileState {
        FileState {
            name,
            place,
            storage,
            inner: Mutex::new(Inner::default()),
            sessions: Default::default(),
            gone: Default::default(),
            writing: Default::default(),
            published: Default::default(),
        }
    }

    /// Runs `f` as a write-back of flags would leave others: the state held, `writing`
    /// set, the snapshot and index published (tests).
    #[cfg(test)]
    pub(super) fn while_writing(&self, f: impl FnOnce()) {
        use std::sync::atomic::Ordering::Release;
        let c = lock(&self.inner);
        *self.published.lock().unwrap() = (c.snapshot.clone(), c.index.clone());
        self.writing.store(true, Release);
        f();
        self.writing.store(false, Release);
    }

    fn published_snapshot(&self) -> Arc<Snapshot> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// The state to work on, or `None` while a write-back of flags holds it: whoever
    /// waited would wait for the whole file to be written (the first write-back of the
    /// fields into a file no server has served moves all of it).
    fn unless_writing(&self) -> Option<std::sync::MutexGuard<'_, Inner>> {
        use std::sync::atomic::Ordering::Acquire;
        match self.inner.try_lock() {
            Ok(c) => Some(c),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if self.writing.load(Acquire) => None,
            Err(std::sync::TryLockError::WouldBlock) => Some(lock(&self.inner)),
        }
    }

    /// The mailbox was deleted or renamed away.
    pub fn set_gone(&self) {
        self.gone.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_gone(&self) -> bool {
        self.gone.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A session opens the mailbox.
    pub fn enter(&self) {
        self.sessions
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A session lets go of it; `true` when it was the last one.
    pub fn leave(&self) -> bool {
        self.sessions
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
    }

    fn write_headers(&self) -> bool {
        self.storage.cfg.mbox.write_headers
    }

    /// A UIDVALIDITY above every one handed out in this store (`.loft-index/
    /// loft-uidvalidity`, RFC 3501 §2.3.1.1): a mailbox deleted and made again, even
    /// after a restart, gets a greater one.
    fn fresh_uid_validity(&self) -> u32 {
        let fresh = self.storage.fresh_uid_validity();
        let dir = &self.place.loft_dir;
        crate::mailbox::rootfiles::next_uid_validity(dir, self.storage.cfg.fsync, fresh)
            .unwrap_or_else(|e| {
                tracing::warn!(dir = %dir.display(), "UIDVALIDITY state: {e}");
                fresh
            })
    }

    /// The current snapshot without looking at the file (may be the empty default
    /// before a first sync).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.unless_writing() {
            Some(c) => c.snapshot.clone(),
            None => self.published_snapshot(),
        }
    }

    /// The index, for the cache (after a first sync).
    pub fn index(&self) -> Option<Arc<Index>> {
        match self.unless_writing() {
            Some(c) => c.index.clone(),
            None => (self.published.lock().unwrap_or_else(|p| p.into_inner()).1).clone(),
        }
    }

    /// Looks at the file and returns the snapshot and, when `claim`, the UIDs this caller
    /// claimed as `\Recent`.
    ///
    /// While a write-back of flags holds the state, the snapshot it began with is given
    /// at once, without a look at the file (the index has all it writes; mail another
    /// program would append waits for the write lock) and without claiming `\Recent`:
    /// those messages stay unclaimed for the next session (RFC 3501 §2.3.2).
    pub fn refresh(&self, claim: bool) -> Result<(Arc<Snapshot>, Vec<Uid>)> {
        let Some(mut c) = self.unless_writing() else {
            return Ok((self.published_snapshot(), Vec::new()));
        };
        self.sync_locked(&mut c)?;
        let claimed = match claim {
            true => self.claim_recent(&mut c)?,
            false => Vec::new(),
        };
        Ok((c.snapshot.clone(), claimed))
    }

    /// The index's `\Recent` threshold (messages at or above it are unclaimed).
    pub fn recent_threshold(&self) -> Uid {
        // During a write-back of flags: nothing is reported as \Recent (as `refresh`).
        let Some(c) = self.unless_writing() else {
            return self.published_snapshot().uid_next;
        };
        c.index.as_ref().map_or(1, |ix| {
            ix.refresh().map_or(1, |s| s.header.recent_uid.max(1))
        })
    }

    fn open_index(&self, c: &mut Inner) -> Result<Arc<Index>> {
        if let Some(ix) = &c.index {
            return Ok(ix.clone());
        }
        let opts = self.storage.index_options();
        let ix = match Index::open(&self.place.index_dir, &opts) {
            Ok(ix) => ix,
            Err(e @ index::Error::Corrupted { .. }) => {
                // Logged once; the seed from what can be salvaged keeps the UIDs.
                tracing::warn!(mailbox = %self.place.path.display(), "index corrupted: {e}; rebuilding from the mbox file");
                let s = Index::salvage(&self.place.index_dir);
                let header = index::Header {
                    uid_validity: s.uid_validity.unwrap_or(0),
                    uid_next: s.uid_next.unwrap_or(1),
                    ..Default::default()
                };
                let seed = (s.complete && header.uid_validity != 0).then(|| Known {
                    uid_validity: header.uid_validity,
                    uid_next: header.uid_next,
                    messages: s
                        .records
                        .iter()
                        .map(|r| (r.uid, print_of(&r.key)))
                        .collect(),
                });
                c.folder.seed = seed;
                c.synced = true; // the seed is set; the rebuild below comes from the file
                Index::rebuild(&self.place.index_dir, &opts, header, s.keywords, Vec::new())?
            }
            Err(e) => return Err(e.into()),
        };
        c.index = Some(ix.clone());
        Ok(ix)
    }

    /// Messages the syncs of this state read from the file, in all (tests).
    #[cfg(test)]
    pub fn scanned(&self) -> usize {
        lock(&self.inner).scanned
    }

    /// Whether the folder's messages are still only in the save on disk (tests).
    #[cfg(test)]
    pub fn messages_on_disk(&self) -> bool {
        lock(&self.inner).lazy.is_some()
    }

    /// Takes the folder saved at the last close ([`super::saved`]) when it is this file's
    /// and holds exactly the index's UIDVALIDITY and UIDs (as its header says: only the
    /// header is read here).
    fn load_saved(&self, c: &mut Inner, ix: &Index) -> Result<bool> {
        self.open_file(c)?;
        let Some(Ok((dev, ino))) = c.file.as_ref().map(|f| f.identity()) else {
            return Ok(false);
        };
        if c.no_saved {
            return Ok(false);
        }
        let Some(p) = super::saved::peek(&self.place.index_dir, dev, ino) else {
            return Ok(false);
        };
        let snap = ix.refresh()?;
        let same = p.uid_validity == snap.header.uid_validity
            && p.count as usize == snap.records.len()
            && p.uids_crc == super::saved::uids_crc(snap.records.iter().map(|r| r.uid));
        if !same {
            tracing::debug!(mailbox = %self.place.path.display(), "mbox: the saved sync does not match the index; scanning");
            return Ok(false);
        }
        // The messages are read only when the file changed since, or when something
        // needs them ([`FileState::materialize`]).
        c.folder = Folder {
            uid_validity: p.uid_validity,
            uid_next: p.uid_next,
            messages: Vec::new(),
            base: p.base,
            pseudo: p.pseudo,
            tail: Some(p.tail),
            seed: None,
        };
        c.saved = Some(p.tail);
        c.lazy = Some(p.tail);
        if p.uid_missing && self.write_headers() && c.dirty_since.is_none() {
            c.dirty_since = Some(Instant::now());
        }
        Ok(true)
    }

    /// Reads the messages a first sync left on disk ([`Inner::lazy`]); `false` when the
    /// save turned out damaged or replaced meanwhile: then it is not used again, and the
    /// file was scanned whole instead (numbered by the index, as without a save).
    fn materialize(&self, c: &mut Inner) -> Result<bool> {
        let Some(tail) = c.lazy.take() else {
            return Ok(true);
        };
        let loaded = super::saved::load(&self.place.index_dir, tail.dev, tail.ino)
            .filter(|f| f.tail == Some(tail));
        if let Some(f) = loaded {
            c.folder.messages = f.messages;
            return Ok(true);
        }
        tracing::info!(mailbox = %self.place.path.display(), "mbox: the saved sync is damaged or was replaced; scanning the file");
        c.no_saved = true;
        c.synced = false;
        c.saved = None;
        c.folder = Folder::default();
        self.sync_locked(c).map(|_| false)
    }

    /// Saves the folder for the next process or session ([`super::saved`]) when it
    /// changed since it was last saved.
    pub fn save(&self) {
        let mut c = lock(&self.inner);
        if !c.synced || c.folder.tail.is_none() || c.folder.tail == c.saved {
            return;
        }
        match super::saved::save(&self.place.index_dir, &c.folder) {
            Ok(()) => c.saved = c.folder.tail,
            Err(e) => {
                tracing::debug!(mailbox = %self.place.path.display(), "mbox: scan not saved: {e}")
            }
        }
    }

    /// A new index (no message ever numbered in it) takes a UIDVALIDITY from the store's
    /// state, so that a mailbox deleted and made again gets a greater one even across
    /// restarts (RFC 3501 §2.3.1.1).
    fn fresh_index(&self, ix: &Index) -> Result<()> {
        let mut txn = ix.begin()?;
        let h = txn.snapshot().header;
        if txn.snapshot().records.is_empty() && h.uid_next <= 1 {
            txn.reset_uid_validity(self.fresh_uid_validity());
            txn.commit()?;
        }
        Ok(())
    }

    /// The file, opened again when the name now leads to another one; `None` when there
    /// is no file (an empty mailbox: a spool not created yet, or removed by a reader).
    fn open_file(&self, c: &mut Inner) -> Result<()> {
        if c.file.as_ref().is_some_and(|f| !f.replaced()) {
            return Ok(());
        }
        let locks = self.storage.lock_config();
        let lazy = self.storage.cfg.fsync != crate::config::FsyncMode::Always;
        c.file = match MboxFile::open(&self.place.dir, &self.place.name, locks) {
            Ok(f) => Some(f.lazy_flags(lazy)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.storage.io_err(&self.place.path, e)),
        };
        Ok(())
    }

    fn sync_locked(&self, c: &mut Inner) -> Result<()> {
        let ix = self.open_index(c)?;
        self.record_sizes(c, &ix)?;
        // An index just made knows nothing: it gets a UIDVALIDITY above every one this
        // store handed out, and does not seed the numbering (its UIDVALIDITY is only the
        // time: the file's `X-IMAPbase`, written in the same second by Dovecot, could be
        // equal to it).
        if !c.synced && ix.created() {
            self.fresh_index(&ix)?;
        } else if !c.synced && self.load_saved(c, &ix)? {
            // The last sync of before, as it was saved: only changes since are read.
        } else if !c.synced {
            let snap = ix.refresh()?;
            if snap.header.uid_validity != 0 {
                c.folder.seed = Some(Known {
                    uid_validity: snap.header.uid_validity,
                    uid_next: snap.header.uid_next,
                    messages: (snap.records.iter())
                        .map(|r| (r.uid, print_of(&r.key)))
                        .collect(),
                });
            }
        }
        self.open_file(c)?;
        // UIDs the index handed out are never given again (an expunged last message).
        c.folder.uid_next = c.folder.uid_next.max(c.snapshot.uid_next);
        if let Some(tail) = c.lazy {
            let same = match &c.file {
                Some(f) => f.unchanged_since(&tail).map_err(|e| file_err(self, e))?,
                None => false,
            };
            if same {
                return self.first_reconcile(c, &ix, &Delta::default());
            }
            if !self.materialize(c)? {
                return Ok(()); // synced whole by the scan
            }
        }
        let delta = match &c.file {
            Some(f) => {
                let fresh = || self.fresh_uid_validity();
                f.sync(&mut c.folder, fresh)
                    .map_err(|e| file_err(self, e))?
            }
            None => {
                let known = ix.refresh()?;
                self.file_gone(c, &known.header)
            }
        };
        c.scanned += delta.scanned;
        self.first_reconcile(c, &ix, &delta)
    }

    /// The index brought in step with the file after a sync (always after the first).
    fn first_reconcile(&self, c: &mut Inner, ix: &Arc<Index>, delta: &Delta) -> Result<()> {
        let first = !c.synced;
        c.synced = true;
        if first || *delta != Delta::default() {
            self.reconcile(c, ix, delta)?;
        }
        Ok(())
    }

    /// No file: every message is gone (the file keeps its UIDVALIDITY and UIDNEXT for
    /// when it comes back with mail).
    fn file_gone(&self, c: &mut Inner, index: &index::Header) -> Delta {
        let expunged: Vec<Uid> = c.folder.messages.iter().map(|m| m.uid).collect();
        let (v, n) = match c.folder.seed.take() {
            Some(k) => (k.uid_validity, k.uid_next),
            None if c.folder.uid_validity != 0 => (c.folder.uid_validity, c.folder.uid_next),
            None => (index.uid_validity, index.uid_next),
        };
        // The file's first mail when it comes back is numbered on from here.
        c.folder = Folder {
            uid_validity: v,
            uid_next: n,
            seed: (v != 0).then(|| Known {
                uid_validity: v,
                uid_next: n,
                messages: Vec::new(),
            }),
            ..Folder::default()
        };
        Delta {
            expunged,
            full: true,
            ..Delta::default()
        }
    }

    /// Brings the index in step with the folder the file sync left.
    fn reconcile(&self, c: &mut Inner, ix: &Arc<Index>, delta: &Delta) -> Result<()> {
        let snap = ix.refresh()?;
        let f = &c.folder;
        let validity = match f.uid_validity {
            0 if f.messages.is_empty() => snap.header.uid_validity,
            v => v,
        };
        let appendable = |snap: &IndexSnapshot| {
            let known_last = snap.records.last().map_or(0, |r| r.uid);
            with_records(&f.messages, &snap.records)
                .filter(|(_, r)| r.is_none())
                .all(|(m, _)| m.uid >= snap.header.uid_next && m.uid > known_last)
        };
        // `pending`: the file lacks something the index has (flags, UIDs).
        let (snap, pending) = if validity != snap.header.uid_validity || !appendable(&snap) {
            self.rebuild_index(c, &snap)?
        } else {
            self.update_index(c, ix, delta)?
        };
        if pending && c.dirty_since.is_none() {
            c.dirty_since = Some(Instant::now());
        }
        c.snapshot = Arc::new(snapshot_of(&snap));
        let cache = ix.cache();
        if snap.header.uid_validity != 0 && cache.uid_validity() != snap.header.uid_validity {
            if let Err(e) = cache.bind_uid_validity(snap.header.uid_validity) {
                tracing::warn!(mailbox = %self.place.path.display(), "index cache: {e}");
            }
        }
        Ok(())
    }

    /// Flags and keywords of a message as its file says them, as index values.
    fn file_flags(txn: &mut index::Transaction<'_>, m: &Msg) -> (u8, u64) {
        let kw = keyword_bits(txn, &m.meta.keywords).unwrap_or(0);
        (m.meta.flags.0, kw)
    }

    /// Whether the file must be written for `m` (its `X-UID` is missing or wrong).
    fn needs_uid(&self, m: &Msg) -> bool {
        self.write_headers() && m.meta.uid != Some(m.uid)
    }

    fn update_index(
        &self,
        c: &Inner,
        ix: &Arc<Index>,
        delta: &Delta,
    ) -> Result<(Arc<IndexSnapshot>, bool)> {
        let f = &c.folder;
        let mut txn = ix.begin()?;
        let snap = txn.snapshot().clone();
        let in_file = |uid: Uid| f.messages.binary_search_by_key(&uid, |m| m.uid).is_ok();
        let gone: Vec<Uid> = match delta.full {
            true => (snap.records.iter().map(|r| r.uid))
                .filter(|u| !in_file(*u))
                .collect(),
            false => delta.expunged.clone(),
        };
        for u in gone {
            txn.expunge(u);
        }
        let mut pending = false;
        for (m, record) in with_records(&f.messages, &snap.records) {
            pending |= self.needs_uid(m);
            match record {
                None => {
                    let (flags, kw) = Self::file_flags(&mut txn, m);
                    let key = key_of(&m.print);
                    txn.append_with_uid(m.uid, &key, flags, kw, UNKNOWN_SIZE, m.date, false);
                }
                // The file's flags changed by another program (a client's change not
                // yet written stays).
                Some(r) if delta.full && !r.dirty && self.write_headers() => {
                    let (flags, kw) = Self::file_flags(&mut txn, m);
                    if (flags, kw) != (r.flags, r.keywords) {
                        txn.set_flags(m.uid, flags, kw, false);
                    }
                }
                Some(_) => {}
            }
        }
        Ok((txn.commit()?, pending))
    }

    /// A new index from the file (another UIDVALIDITY, or UIDs the index cannot take
    /// as appends): flags from the old records where the UID is the same message.
    fn rebuild_index(&self, c: &Inner, old: &IndexSnapshot) -> Result<(Arc<IndexSnapshot>, bool)> {
        let f = &c.folder;
        let same = old.header.uid_validity == f.uid_validity;
        let mut names: Vec<String> = if same {
            old.keywords.clone()
        } else {
            Vec::new()
        };
        let mut bit = |k: &String| crate::mailbox::messages::keyword_bit(&mut names, k);
        let mut records = Vec::with_capacity(f.messages.len());
        for m in &f.messages {
            let kept = (same.then(|| old.records.by_uid(m.uid)).flatten())
                .filter(|r| r.key.as_ref() == key_of(&m.print));
            let (flags, keywords, size, dirty) = match kept {
                Some(r) => (r.flags, r.keywords, r.size, r.dirty),
                None => {
                    let kw = m.meta.keywords.iter().map(&mut bit).fold(0, |a, b| a | b);
                    (m.meta.flags.0, kw, UNKNOWN_SIZE, false)
                }
            };
            records.push(Record {
                uid: m.uid,
                flags,
                dirty,
                keywords,
                modseq: 1,
                size,
                internal_date: m.date,
                key: key_of(&m.print)[..].into(),
            });
        }
        let pending =
            records.iter().any(|r| r.dirty) || f.messages.iter().any(|m| self.needs_uid(m));
        let header = index::Header {
            uid_validity: f.uid_validity.max(1),
            uid_next: f.uid_next.max(records.last().map_or(1, |r| r.uid + 1)),
            highest_modseq: old.header.highest_modseq + 1,
            recent_uid: match same {
                true => old.header.recent_uid,
                false => 1,
            },
            ..Default::default()
        };
        let opts = self.storage.index_options();
        let fresh = Index::rebuild(&self.place.index_dir, &opts, header, names, records)?;
        Ok((fresh.refresh()?, pending))
    }

    /// Claims every message at or above the index's `\Recent` threshold.
    fn claim_recent(&self, c: &mut Inner) -> Result<Vec<Uid>> {
        let Some(ix) = c.index.clone() else {
            return Ok(Vec::new());
        };
        let snap = ix.refresh()?;
        let from = snap.header.recent_uid;
        if snap.header.uid_next <= from.max(1) {
            return Ok(Vec::new());
        }
        let mut txn = ix.begin()?;
        let snap = txn.snapshot().clone();
        let from = snap.header.recent_uid;
        let claimed: Vec<Uid> = (snap.records.iter())
            .filter(|r| r.uid >= from)
            .map(|r| r.uid)
            .collect();
        txn.set_recent_uid(snap.header.uid_next);
        let snap = txn.commit()?;
        c.snapshot = Arc::new(snapshot_of(&snap));
        Ok(claimed)
    }

    fn record_sizes(&self, c: &mut Inner, ix: &Index) -> Result<()> {
        if c.sizes.is_empty() {
            return Ok(());
        }
        let mut txn = ix.begin()?;
        for (uid, size) in c.sizes.drain(..) {
            txn.set_size(uid, size);
        }
        let snap = txn.commit()?;
        c.snapshot = Arc::new(snapshot_of(&snap));
        Ok(())
    }

    /// The visible bytes (hidden fields left out, line ends as stored) of `uid`: the
    /// whole message or its header (through the blank line).
    pub fn read(&self, uid: Uid, part: Part) -> Result<Vec<u8>> {
        let mut c = lock(&self.inner);
        for attempt in 0..2 {
            if attempt == 1 {
                self.sync_locked(&mut c)?;
            }
            self.materialize(&mut c)?;
            let Some(file) = &c.file else {
                continue;
            };
            let Ok(i) = c.folder.messages.binary_search_by_key(&uid, |m| m.uid) else {
                continue;
            };
            let m = &c.folder.messages[i];
            let range = match part {
                Part::Whole => m.header..m.end,
                Part::Header => m.header..m.body,
            };
            let got = file
                .read_visible(&c.folder, range, &m.hidden)
                .map_err(|e| file_err(self, e))?;
            if let Some(bytes) = got {
                // A size read twice before the next sync is recorded twice (the index
                // keeps the last): cheaper than looking through the pending ones.
                let unknown = c.snapshot.messages.records().by_uid(uid);
                if part == Part::Whole
                    && unknown.is_some_and(|r| r.size == UNKNOWN_SIZE)
                    && c.sizes.len() < 100_000
                {
                    let size = bytes.len() as u64 + crate::mailbox::crlf::bare_lfs(&bytes);
                    c.sizes.push((uid, size));
                }
                return Ok(bytes);
            }
        }
        Err(Error::new(ErrorKind::Expunged, "Message was expunged"))
    }

    /// The internal date (the `From ` line's) of `uid`.
    pub fn date(&self, uid: Uid) -> Option<i64> {
        let mut c = lock(&self.inner);
        self.materialize(&mut c).ok()?;
        let i = c
            .folder
            .messages
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()?;
        Some(c.folder.messages[i].date)
    }

    /// Changes flags in the index (the file follows lazily).
    pub fn store(&self, uids: &[Uid], op: StoreOp, change: &Flags) -> Result<Vec<(Uid, Flags)>> {
        let mut c = lock(&self.inner);
        if !c.synced {
            self.sync_locked(&mut c)?;
        }
        let ix = self.open_index(&mut c)?;
        let mut txn = ix.begin()?;
        let snap = txn.snapshot().clone();
        let mut out = Vec::new();
        let mut changed = false;
        let mut seek = snap.records.seeker();
        for &uid in uids {
            let Some(r) = seek.record(uid) else {
                continue;
            };
            let old = Flags {
                sys: SysFlags(r.flags),
                keywords: keyword_names(r.keywords, &snap.keywords),
            };
            let new = old.apply(op, change);
            if new != old {
                let Some(kw) = keyword_bits(&mut txn, &new.keywords) else {
                    return Err(Error::new(
                        ErrorKind::Limit,
                        "Too many keywords in this mailbox",
                    ));
                };
                txn.set_flags(uid, new.sys.0, kw, self.write_headers());
                changed = true;
            }
            out.push((uid, new));
        }
        let snap = txn.commit()?;
        c.snapshot = Arc::new(snapshot_of(&snap));
        if changed && self.write_headers() && c.dirty_since.is_none() {
            c.dirty_since = Some(Instant::now());
        }
        Ok(out)
    }

    /// Writes what the index has and the file not (flags, keywords, UIDs) into the file,
    /// when something is pending and `due` says so.
    /// While it writes, sessions that open the mailbox are not held up ([`FileState::
    /// refresh`]); a write-back already running is not waited for.
    pub fn flush_if(&self, due: impl Fn(Instant) -> bool) -> Result<()> {
        use std::sync::atomic::Ordering::Release;
        let Some(mut c) = self.unless_writing() else {
            return Ok(());
        };
        match c.dirty_since {
            Some(t) if self.write_headers() && due(t) => {
                *self.published.lock().unwrap_or_else(|p| p.into_inner()) =
                    (c.snapshot.clone(), c.index.clone());
                self.writing.store(true, Release);
                let done = self.write_back(&mut c, &[]).map(|_| ());
                self.writing.store(false, Release);
                done
            }
            _ => Ok(()),
        }
    }

    /// Writes the file: the messages of `expunge` removed, every other message's hidden
    /// fields as the index has them (when written at all). Returns the UIDs removed.
    fn write_back(&self, c: &mut Inner, expunge: &[Uid]) -> Result<Vec<Uid>> {
        self.sync_locked(c)?;
        self.materialize(c)?;
        if expunge.is_empty() && c.dirty_since.is_none() {
            return Ok(Vec::new());
        }
        let Some(ix) = c.index.clone() else {
            return Ok(Vec::new());
        };
        if c.file.is_none() {
            return Ok(Vec::new());
        }
        let snap = ix.refresh()?;
        let write = self.write_headers();
        let base = match write {
            true => Some(Base {
                uid_validity: snap.header.uid_validity,
                uid_next: snap.header.uid_next,
                keywords: snap.keywords.clone(),
            }),
            false => c.folder.base.clone(),
        };
        // The plan asks message by message, in file order (ascending UIDs).
        let seek = std::cell::RefCell::new(snap.records.seeker());
        let want = |m: &Msg| {
            let keep = expunge.binary_search(&m.uid).is_err();
            let record = seek.borrow_mut().record(m.uid);
            let meta = match (write, record) {
                // The file has what the index has (nothing pending, its X-UID right):
                // as it is, without building the fields to compare them.
                (true, Some(r)) if !r.dirty && m.meta.uid == Some(m.uid) => m.meta.clone(),
                (true, Some(r)) => Meta {
                    uid: Some(m.uid),
                    flags: SysFlags(r.flags),
                    old: true,
                    keywords: keyword_names(r.keywords, &snap.keywords),
                    ..Meta::default()
                },
                _ => m.meta.clone(),
            };
            Want { keep, meta }
        };
        let before: Vec<Uid> = c.folder.messages.iter().map(|m| m.uid).collect();
        let file = c.file.as_ref().expect("checked above");
        let meanwhile = file
            .write_back(&mut c.folder, want, base.as_ref())
            .map_err(|e| file_err(self, e))?;
        // Both in ascending UIDs: one merge walk (not a search per message).
        let mut after = c.folder.messages.iter().map(|m| m.uid).peekable();
        let removed: Vec<Uid> = (before.into_iter())
            .filter(|u| {
                while after.next_if(|a| a < u).is_some() {}
                after.peek() != Some(u)
            })
            .collect();
        let mut txn = ix.begin()?;
        for u in &removed {
            txn.expunge(*u);
        }
        if write {
            for r in snap.records.iter().filter(|r| r.dirty) {
                txn.clear_dirty(r.uid);
            }
        }
        let snap = txn.commit()?;
        c.snapshot = Arc::new(snapshot_of(&snap));
        c.dirty_since = None;
        // Mail another program appended (or a rewrite it made) while this write-back
        // waited for its lock: found by the write-back's own sync, now in the folder, and
        // into the index here (no later sync sees the file change again).
        c.scanned += meanwhile.scanned;
        if !meanwhile.added.is_empty() || meanwhile.renumbered || meanwhile.full {
            let rest = Delta {
                expunged: Vec::new(),
                ..meanwhile
            };
            self.reconcile(c, &ix, &rest)?;
        }
        Ok(removed)
    }

    /// Removes the messages flagged `\Deleted` (of `only`, when given) from the file.
    pub fn expunge(&self, only: Option<&[Uid]>) -> Result<Vec<Uid>> {
        let mut c = lock(&self.inner);
        self.sync_locked(&mut c)?;
        let only: Option<std::collections::HashSet<Uid>> =
            only.map(|o| o.iter().copied().collect());
        let doomed: Vec<Uid> = (c.snapshot.messages.records().iter())
            .filter(|r| r.flags & SysFlags::DELETED.0 != 0)
            .filter(|r| only.as_ref().is_none_or(|o| o.contains(&r.uid)))
            .map(|r| r.uid)
            .collect();
        Self::removed_of(self.write_back(&mut c, &doomed)?, &doomed)
    }

    /// Removes `uids` (ascending) from the file, flagged `\Deleted` or not (RENAME
    /// INBOX moves every message out).
    pub fn remove(&self, uids: &[Uid]) -> Result<Vec<Uid>> {
        let mut c = lock(&self.inner);
        Self::removed_of(self.write_back(&mut c, uids)?, uids)
    }

    /// Of the messages a write-back removed, those asked for (the others were removed
    /// by another program meanwhile).
    fn removed_of(removed: Vec<Uid>, asked: &[Uid]) -> Result<Vec<Uid>> {
        Ok(removed
            .into_iter()
            .filter(|u| asked.binary_search(u).is_ok())
            .collect())
    }

    /// Appends one message (as a client gave it) with `flags` and `date`; returns its
    /// (UIDVALIDITY, UID).
    pub fn append(&self, message: &[u8], flags: &Flags, date: i64) -> Result<(u32, Uid)> {
        let mut c = lock(&self.inner);
        if c.file.is_none() {
            self.create_file()?;
        }
        self.sync_locked(&mut c)?;
        self.materialize(&mut c)?;
        let Some(ix) = c.index.clone() else {
            return Err(Error::new(
                ErrorKind::Temporary,
                "Mailbox index unavailable",
            ));
        };
        let snap = ix.refresh()?;
        let uid = c.folder.uid_next.max(1);
        let mut keywords = flags.keywords.clone();
        keywords.sort();
        let write = self.write_headers();
        let meta = Meta {
            uid: write.then_some(uid),
            flags: flags.sys,
            old: true,
            keywords: if write { keywords } else { Vec::new() },
            ..Meta::default()
        };
        let base = (write && c.folder.messages.is_empty()).then(|| Base {
            uid_validity: snap.header.uid_validity.max(c.folder.uid_validity),
            uid_next: uid + 1,
            keywords: snap.keywords.clone(),
        });
        let stamp = write::Stamp {
            sender: "",
            date,
            meta: &meta,
            base: base.as_ref(),
            pad: if write { super::plan::PAD } else { 0 },
            fields: write,
        };
        let inner = &mut *c;
        let file = inner.file.as_ref().expect("created above");
        let delta = file
            .append(&mut inner.folder, message, &stamp)
            .map_err(|e| file_err(self, e))?;
        let Some(&got) = delta.added.last() else {
            return Err(
                Error::new(ErrorKind::Temporary, "Message not saved").with_detail(format!(
                    "{}: appended message not found",
                    self.place.path.display()
                )),
            );
        };
        self.reconcile(&mut c, &ix, &delta)?;
        // The client's flags and keywords (the file may not carry them).
        let mut txn = ix.begin()?;
        if let Some(kw) = keyword_bits(&mut txn, &flags.keywords) {
            txn.set_flags(got, flags.sys.0, kw, false);
        }
        let snap = txn.commit()?;
        c.snapshot = Arc::new(snapshot_of(&snap));
        Ok((snap.header.uid_validity, got))
    }

    /// Creates the empty file (mode 0600) for a first APPEND.
    fn create_file(&self) -> Result<()> {
        match crate::beneath::create_new_at(&self.place.dir, &self.place.name, 0o600) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(self.storage.io_err(&self.place.path, e)),
        }
    }

    /// Sizes (RFC822.SIZE) of `uids`, reading the messages whose size is unknown.
    pub fn sizes(&self, uids: &[Uid]) -> Vec<Option<u64>> {
        uids.iter()
            .map(|&u| {
                self.read(u, Part::Whole)
                    .ok()
                    .map(|b| b.len() as u64 + crate::mailbox::crlf::bare_lfs(&b))
            })
            .collect()
    }

    /// Messages to copy: each of `uids` that exists.
    pub fn export(&self, uids: &[Uid]) -> Result<Vec<Exported>> {
        let snap = self.snapshot();
        let mut out = Vec::new();
        for &uid in uids {
            let Some(meta) = snap
                .messages
                .find(uid)
                .ok()
                .and_then(|i| snap.messages.get(i))
            else {
                continue;
            };
            match self.read(uid, Part::Whole) {
                Ok(b) => out.push((uid, b, meta.flags, meta.internal_date)),
                Err(e) if e.kind == ErrorKind::Expunged => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `loft index rebuild`: pending flags written into the file, then the index made
    /// again from the file, every UID kept.
    pub fn rebuild_now(&self) -> Result<Snapshot> {
        let mut c = lock(&self.inner);
        self.write_back(&mut c, &[])?;
        let Some(ix) = c.index.clone() else {
            return Ok(Snapshot::default());
        };
        let old = ix.refresh()?;
        let (snap, _) = self.rebuild_index(&c, &old)?;
        c.snapshot = Arc::new(snapshot_of(&snap));
        Ok((*c.snapshot).clone())
    }

    /// `loft index verify`: records and messages of the file that do not match one to
    /// one (UID and fingerprint), after the index files' own check.
    pub fn verify(&self) -> Result<Vec<String>> {
        let mut problems = Index::verify(&self.place.index_dir);
        if !problems.is_empty() {
            return Ok(problems);
        }
        let mut c = lock(&self.inner);
        self.open_file(&mut c)?;
        let mut file = Folder::default();
        if let Some(f) = &c.file {
            f.sync(&mut file, || 1).map_err(|e| file_err(self, e))?;
        }
        let Some(ix) = c
            .index
            .clone()
            .or_else(|| Index::open(&self.place.index_dir, &self.storage.index_options()).ok())
        else {
            return Ok(vec!["no index files yet".into()]);
        };
        let snap = ix.refresh()?;
        if file
            .base
            .as_ref()
            .is_some_and(|b| b.uid_validity != snap.header.uid_validity)
        {
            problems.push(format!(
                "the file's X-IMAPbase names UIDVALIDITY {}, the index {} (the next sync takes the file's)",
                file.base.as_ref().map_or(0, |b| b.uid_validity),
                snap.header.uid_validity
            ));
        }
        for r in snap.records.iter() {
            let found = file
                .messages
                .iter()
                .any(|m| m.meta.uid == Some(r.uid) || key_of(&m.print) == *r.key);
            if !found {
                problems.push(format!("UID {} is in the index but not in the file (expunged behind Loft's back; the next sync drops it)", r.uid));
            }
        }
        let keys: std::collections::HashSet<&[u8]> = snap.records.iter().map(|r| &*r.key).collect();
        for m in &file.messages {
            if !keys.contains(&key_of(&m.print)[..]) {
                problems.push(format!("the message at offset {} has no UID in the index yet (delivered behind Loft's back; the next sync gives it one)", m.from));
            }
        }
        Ok(problems)
    }
}

impl Drop for FileState {
    /// The state goes (its last holder let go, or it was kept a while after the last
    /// session, or the server stops): its sync is saved for the next one.
    fn drop(&mut self) {
        if !self.is_gone() {
            self.save();
        }
    }
}

/// Each message with its index record (`None`: not in the index), in one walk of both
/// (each in ascending UID order): no lookup per message.
fn with_records<'a>(
    messages: &'a [Msg],
    records: &'a index::Records,
) -> impl Iterator<Item = (&'a Msg, Option<&'a index::Record>)> {
    let mut rs = records.iter().peekable();
    messages.iter().map(move |m| {
        while rs.next_if(|r| r.uid < m.uid).is_some() {}
        (m, rs.next_if(|r| r.uid == m.uid))
    })
}

/// The snapshot sessions see, from the index.
fn snapshot_of(snap: &IndexSnapshot) -> Snapshot {
    Snapshot {
        uid_validity: snap.header.uid_validity,
        uid_next: snap.header.uid_next,
        messages: Messages::from(snap),
        keywords: snap.keywords.clone(),
    }
}
