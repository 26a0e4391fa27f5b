//! [`Mailbox`] for one mbox file opened by one session, and [`AppendSink`] for saving
//! into one: the work is the shared [`FileState`]'s; this adds what is per session (a
//! read-only open's `\Recent` reports) and the conversions the protocols expect (CRLF
//! line ends, RFC822.SIZE).
//!
//! This module must not know about IMAP.

use std::sync::Arc;

use super::state::{FileState, Part, FLUSH_AFTER};
use super::store::MboxStore;
use crate::mailbox::crlf::to_crlf;
use crate::mailbox::{
    AppendSink, CopyResult, Error, ErrorKind, Flags, Mailbox, MessageData, Result, StoreOp,
    SyncResult, Uid,
};

pub struct MboxMailbox {
    state: Arc<FileState>,
    read_only: bool,
    /// Read-only opens: the highest UID already reported as `\Recent`.
    recent_reported: Uid,
    /// The user's store (COPY finds its destination there).
    store: MboxStore,
    /// [`Mailbox::close`] ran.
    closed: bool,
}

fn no_write() -> Error {
    Error::new(ErrorKind::NoPerm, "Mailbox is read-only")
}

impl MboxMailbox {
    pub fn open(store: MboxStore, state: Arc<FileState>, read_only: bool) -> MboxMailbox {
        state.enter();
        MboxMailbox {
            state,
            read_only,
            recent_reported: 0,
            store,
            closed: false,
        }
    }

    fn cache_target(&self) -> Option<(Arc<crate::index::Index>, Uid)> {
        let ix = self.state.index()?;
        let newest = self.state.snapshot().uid_next.saturating_sub(1);
        Some((ix, newest))
    }

    fn log_flush(&self, r: Result<()>) {
        if let Err(e) = r {
            tracing::warn!(mailbox = %self.state.place.path.display(), "mbox: writing flags into the file failed: {e}");
        }
    }
}

/// The last session of the process on the file went: what is pending is written into
/// the file, the cache's offered values to the cache, and the state kept a while for the
/// next session ([`MboxStore::linger`]; it saves its sync when it goes).
fn last_close(store: &MboxStore, state: Arc<FileState>) {
    if let Err(e) = state.flush_if(|_| true) {
        tracing::warn!(mailbox = %state.place.path.display(), "mbox: writing flags into the file failed: {e}");
    }
    if let Some(ix) = state.index() {
        let _ = ix.cache().flush();
    }
    store.linger(state);
}

impl Drop for MboxMailbox {
    /// Dropped without [`Mailbox::close`] (a connection lost, perhaps on an async
    /// thread): the last close's write-back runs on a thread of its own.
    fn drop(&mut self) {
        if self.closed || !self.state.leave() {
            return;
        }
        let (store, state) = (self.store.clone(), self.state.clone());
        let spawned = std::thread::Builder::new()
            .name("mbox-close".into())
            .spawn(move || last_close(&store, state));
        if let Err(e) = spawned {
            tracing::warn!("mbox: no thread for the write-back at close: {e}");
        }
    }
}

impl Mailbox for MboxMailbox {
    fn name(&self) -> &str {
        &self.state.name
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn change_signal(&self) -> Option<std::fs::File> {
        // The file's directory (mail appended, the file rewritten or replaced) and the
        // index's (flags stored by another session).
        let dir = self.state.place.path.parent()?.to_path_buf();
        crate::mailbox::watch::change_signal(&[dir, self.state.place.index_dir.clone()])
    }

    fn sync(&mut self) -> Result<SyncResult> {
        if !self.read_only {
            self.log_flush(self.state.flush_if(|t| t.elapsed() >= FLUSH_AFTER));
        }
        let (snapshot, mut new_recent) = self.state.refresh(!self.read_only)?;
        if self.read_only {
            // EXAMINE claims nothing but reports what is still \Recent for whichever
            // session claims it next (RFC 3501 §6.3.2, §7.3.2).
            let threshold = self.state.recent_threshold().saturating_sub(1);
            let after = threshold.max(self.recent_reported);
            let from = snapshot.messages.count_uids(|u| u <= after);
            new_recent = snapshot.messages.uids().skip(from).collect();
            if let Some(last) = new_recent.last() {
                self.recent_reported = *last;
            }
        }
        if let Some((ix, _)) = self.cache_target() {
            let _ = ix.cache().flush();
        }
        Ok(SyncResult {
            snapshot,
            new_recent,
        })
    }

    fn fetch_message(&self, uid: Uid) -> Result<MessageData> {
        let b = self.state.read(uid, Part::Whole)?;
        Ok(MessageData::Owned(to_crlf(&b)))
    }

    fn fetch_for_search(&self, uid: Uid) -> Result<MessageData> {
        Ok(MessageData::Owned(self.state.read(uid, Part::Whole)?))
    }

    fn fetch_header(&self, uid: Uid) -> Result<MessageData> {
        let b = self.state.read(uid, Part::Header)?;
        Ok(MessageData::Owned(to_crlf(&b)))
    }

    fn cache_lookup(&self, uids: &[Uid], field: &str, f: &mut dyn FnMut(usize, Option<&[u8]>)) {
        match self.cache_target() {
            Some((ix, newest)) => ix.cache().get_many_with(uids, field, newest, f),
            None => (0..uids.len()).for_each(|i| f(i, None)),
        }
    }

    fn cache_offer(&self, uid: Uid, field: &str, value: &[u8]) {
        if let Some((ix, newest)) = self.cache_target() {
            ix.cache().offer(uid, field, value, newest);
        }
    }

    fn internal_date(&self, uid: Uid) -> Option<i64> {
        self.state.date(uid)
    }

    fn sizes(&self, uids: &[Uid]) -> Vec<Option<u64>> {
        self.state.sizes(uids)
    }

    fn store(&mut self, uids: &[Uid], op: StoreOp, flags: &Flags) -> Result<Vec<(Uid, Flags)>> {
        if self.read_only {
            return Err(no_write());
        }
        self.state.store(uids, op, flags)
    }

    fn expunge(&mut self, only: Option<&[Uid]>) -> Result<Vec<Uid>> {
        if self.read_only {
            return Err(no_write());
        }
        self.state.expunge(only)
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            if self.state.leave() {
                last_close(&self.store, self.state.clone());
            }
        }
    }

    fn copy_to(&mut self, uids: &[Uid], dest: &str) -> Result<CopyResult> {
        let mut wanted = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let dest = self.store.state(dest)?;
        copy(&self.state, &dest, &wanted)
    }
}

/// Copies `uids` of `src` into `dest`, keeping flags and internal dates.
fn copy(src: &FileState, dest: &FileState, uids: &[Uid]) -> Result<CopyResult> {
    let mut result = CopyResult::default();
    // A batch at a time: a COPY of a whole mailbox is never held in memory at once.
    for chunk in uids.chunks(64) {
        for (uid, bytes, flags, date) in src.export(chunk)? {
            let (v, new) = dest.append(&to_crlf(&bytes), &flags, date)?;
            result.dest_uid_validity = v;
            result.source_uids.push(uid);
            result.dest_uids.push(new);
        }
    }
    if result.dest_uid_validity == 0 {
        result.dest_uid_validity = dest.refresh(false)?.0.uid_validity;
    }
    Ok(result)
}

/// RENAME INBOX (RFC 3501 §6.3.5): its messages move to a new mailbox `to`, INBOX stays,
/// empty.
pub fn move_inbox(store: &MboxStore, to: &str) -> Result<()> {
    let (inbox, dest) = store.rename_pair(to)?;
    let (snap, _) = inbox.refresh(false)?;
    let uids: Vec<Uid> = snap.messages.uids().collect();
    copy(&inbox, &dest, &uids)?;
    inbox.remove(&uids)?;
    Ok(())
}

/// A message being saved: held in memory until committed (APPEND is bounded by the
/// protocol's `append_limit`).
pub struct MboxAppend {
    state: Arc<FileState>,
    bytes: Vec<u8>,
}

impl MboxAppend {
    pub fn new(state: Arc<FileState>) -> MboxAppend {
        MboxAppend {
            state,
            bytes: Vec::new(),
        }
    }
}

impl AppendSink for MboxAppend {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    fn commit(self: Box<Self>, flags: &Flags, internal_date: Option<i64>) -> Result<(u32, Uid)> {
        let date = internal_date.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        self.state.append(&self.bytes, flags, date)
    }

    fn abort(self: Box<Self>) {}
}
