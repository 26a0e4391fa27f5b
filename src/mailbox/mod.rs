//! The storage API seen by protocol code.
//!
//! A [`Store`] is one user's set of mailboxes; a [`Mailbox`] is one mailbox opened by one
//! session. Protocol code (IMAP, POP3) talks only to these traits and to the message-access
//! layer built on them ([`access`]); the on-disk formats
//! (`maildir`, later `mbox` and the index engine) are private to this module.
//!
//! Names given to and returned by this API are UTF-8 with `/` as the hierarchy separator
//! (the wire encoding — modified UTF-7 — is the protocol layer's business). `INBOX` is
//! matched case-insensitively (RFC 3501 §5.1) by [`normalize_name`].
//!
//! This module must not know about IMAP, POP3, quirks or Lua.

pub mod access;
mod admin;
pub mod convert;
mod crlf;
pub mod date;
pub mod error;
mod fsio;
mod heap;
mod location;
mod maildir;
mod mbox;
pub mod message;
mod messages;
mod registry;
mod rootfiles;
pub mod userlock;
pub use messages::Messages;
pub mod search;
pub mod utf7;
mod watch;

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// Cheap UID-keyed hash tables (the index engine's hasher), for the protocol layers.
pub use crate::index::{UidHashMap, UidHashSet};
pub use error::{Error, ErrorKind, Result};
#[doc(hidden)]
pub use maildir::fuzz_check_text as fuzz_maildir_text;
pub use mbox::fuzz_check as fuzz_mbox;

/// A message UID (RFC 3501 §2.3.1.1): strictly ascending, never reused within a UIDVALIDITY.
pub type Uid = u32;

/// The hierarchy separator presented to clients.
pub const SEPARATOR: char = '/';

/// The five permanent system flags (RFC 3501 §2.3.2). `\Recent` is session state and is
/// not stored here.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct SysFlags(pub u8);

impl SysFlags {
    pub const SEEN: SysFlags = SysFlags(1);
    pub const ANSWERED: SysFlags = SysFlags(2);
    pub const FLAGGED: SysFlags = SysFlags(4);
    pub const DELETED: SysFlags = SysFlags(8);
    pub const DRAFT: SysFlags = SysFlags(16);
    pub const ALL: [(SysFlags, &'static str); 5] = [
        (SysFlags::ANSWERED, "\\Answered"),
        (SysFlags::FLAGGED, "\\Flagged"),
        (SysFlags::DELETED, "\\Deleted"),
        (SysFlags::SEEN, "\\Seen"),
        (SysFlags::DRAFT, "\\Draft"),
    ];

    pub fn contains(self, other: SysFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn insert(&mut self, other: SysFlags) {
        self.0 |= other.0;
    }
    pub fn remove(&mut self, other: SysFlags) {
        self.0 &= !other.0;
    }
    /// The IMAP name of a system flag, e.g. `\Seen` (case-insensitive lookup).
    pub fn from_name(name: &str) -> Option<SysFlags> {
        SysFlags::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(f, _)| *f)
    }
}

/// The flags of one message: system flags plus keywords. Keywords are kept sorted and
/// unique; comparisons of keyword names are case-insensitive (RFC 3501 §2.3.2 flag-keyword
/// is an atom; Dovecot and most clients treat them case-insensitively).
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Flags {
    pub sys: SysFlags,
    pub keywords: Vec<String>,
}

impl Flags {
    pub fn has_keyword(&self, kw: &str) -> bool {
        self.keywords.iter().any(|k| k.eq_ignore_ascii_case(kw))
    }
    pub fn add_keyword(&mut self, kw: &str) {
        if !self.has_keyword(kw) {
            self.keywords.push(kw.to_string());
            self.keywords.sort();
        }
    }
    pub fn remove_keyword(&mut self, kw: &str) {
        self.keywords.retain(|k| !k.eq_ignore_ascii_case(kw));
    }
    /// Applies a STORE operation and returns the result.
    pub fn apply(&self, op: StoreOp, change: &Flags) -> Flags {
        let mut out = match op {
            StoreOp::Replace => Flags::default(),
            _ => self.clone(),
        };
        match op {
            StoreOp::Replace | StoreOp::Add => {
                out.sys.insert(change.sys);
                for k in &change.keywords {
                    out.add_keyword(k);
                }
            }
            StoreOp::Remove => {
                out.sys.remove(change.sys);
                for k in &change.keywords {
                    out.remove_keyword(k);
                }
            }
        }
        out
    }
}

/// STORE FLAGS / +FLAGS / -FLAGS.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StoreOp {
    Replace,
    Add,
    Remove,
}

/// What a store knows about one message without opening it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: Uid,
    pub flags: Flags,
    /// RFC822.SIZE: the exact number of octets [`Mailbox::fetch_message`] returns (CRLF
    /// line ends); [`UNKNOWN_SIZE`] while the store has not computed it (then
    /// [`Mailbox::sizes`] asks).
    pub size: u64,
    /// INTERNALDATE as seconds since the Unix epoch (UTC); [`UNKNOWN_DATE`] while the
    /// store has not looked it up yet (then [`Mailbox::internal_date`] asks).
    pub internal_date: i64,
}

/// `MessageMeta::internal_date` not looked up yet.
pub const UNKNOWN_DATE: i64 = crate::index::UNKNOWN_DATE;

/// `MessageMeta::size` not computed yet (then [`Mailbox::sizes`] asks).
pub const UNKNOWN_SIZE: u64 = crate::index::UNKNOWN_SIZE;

/// `snapshot` with every size known, for what needs all of them (POP3's STAT, STATUS
/// SIZE): unknown sizes are asked of `mailbox` in one call; a message gone meanwhile
/// counts 0 octets.
pub fn with_sizes(mailbox: &dyn Mailbox, snapshot: Arc<Snapshot>) -> Arc<Snapshot> {
    let unknown: Vec<Uid> = (snapshot.messages.records().iter())
        .filter(|r| r.size == UNKNOWN_SIZE)
        .map(|r| r.uid)
        .collect();
    if unknown.is_empty() {
        return snapshot;
    }
    let sizes = mailbox.sizes(&unknown);
    let mut s = (*snapshot).clone();
    for (k, uid) in unknown.iter().enumerate() {
        if let Ok(i) = s.messages.find(*uid) {
            s.messages
                .set_size(i, sizes.get(k).copied().flatten().unwrap_or(0));
        }
    }
    Arc::new(s)
}

/// The state of a mailbox at one moment. Messages are in ascending UID order.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub messages: Messages,
    /// Keywords that may appear in this mailbox (for FLAGS / PERMANENTFLAGS).
    pub keywords: Vec<String>,
}

impl Snapshot {
    /// `next` when it differs from `self` as a client sees it (header, keywords, or any
    /// message); `None` when nothing does (the caller keeps `self`, and sessions holding
    /// it see at once that nothing changed).
    pub fn succeed(&self, next: Snapshot) -> Option<Snapshot> {
        let same_header = self.uid_validity == next.uid_validity
            && self.uid_next == next.uid_next
            && self.keywords == next.keywords;
        if same_header && self.messages.diff(&next.messages).is_empty() {
            return None;
        }
        Some(next)
    }
}

/// The result of [`Mailbox::sync`].
#[derive(Clone, Debug)]
pub struct SyncResult {
    /// The current state. When nothing changed since the previous sync the same `Arc` is
    /// returned, so callers can skip diffing with `Arc::ptr_eq`.
    pub snapshot: Arc<Snapshot>,
    /// UIDs that this session (and no other) sees as `\Recent` for the first time
    /// (RFC 3501 §2.3.2). For read-only opens (EXAMINE): the messages, not reported to
    /// this session before, that are still `\Recent` for the session that claims them
    /// next (claimed by nobody).
    pub new_recent: Vec<Uid>,
}

/// Counts for STATUS (RFC 3501 §6.3.10), computed without opening messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusInfo {
    pub messages: u32,
    pub recent: u32,
    pub uid_next: Uid,
    pub uid_validity: u32,
    pub unseen: u32,
    /// Sum of RFC822.SIZE over all messages (STATUS=SIZE, RFC 8438).
    pub size: u64,
}

/// Special-use attributes (RFC 6154).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
}

impl SpecialUse {
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }
}

/// One entry of [`Store::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxEntry {
    /// Full UTF-8 name with `/` separators; INBOX is spelled `INBOX`.
    pub name: String,
    /// A name that exists only as the parent of others (`\Noselect`, RFC 3501 §7.2.2).
    pub noselect: bool,
    pub has_children: bool,
    pub special_use: Option<SpecialUse>,
}

/// The result of COPY/MOVE for COPYUID (RFC 4315 §3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyResult {
    pub dest_uid_validity: u32,
    pub source_uids: Vec<Uid>,
    pub dest_uids: Vec<Uid>,
}

/// Message bytes read into memory. Always CRLF line ends, exactly [`MessageMeta::size`]
/// octets (unless the file changed behind the store's back).
///
/// Never a memory map of the mail file: another program may truncate the file at any
/// moment, and a mapped page past its new end would kill the whole daemon with SIGBUS
/// (see "Reading files" in docs/index-format.md). Stores read what a command needs (the
/// header, a byte range through [`Mailbox::fetch_range`], or the whole message).
pub enum MessageData {
    Owned(Vec<u8>),
}

impl Deref for MessageData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            MessageData::Owned(v) => v,
        }
    }
}

/// One user's mailboxes.
///
/// All methods do blocking file I/O: async callers run them on the blocking pool
/// (`tokio::task::block_in_place` / `spawn_blocking`).
pub trait Store: Send + Sync {
    /// Every mailbox, including `INBOX` and `\Noselect` parents, in no particular order.
    fn list(&self) -> Result<Vec<MailboxEntry>>;
    /// Creates a mailbox (and any missing parents, RFC 3501 §6.3.3). A trailing separator
    /// is ignored.
    fn create(&self, name: &str, special_use: Option<SpecialUse>) -> Result<()>;
    /// Deletes a mailbox and its messages. INBOX cannot be deleted; a mailbox with children
    /// becomes `\Noselect` instead (RFC 3501 §6.3.4).
    fn delete(&self, name: &str) -> Result<()>;
    /// Renames a mailbox and its children. Renaming INBOX moves its messages to the new
    /// mailbox and leaves INBOX empty (RFC 3501 §6.3.5).
    fn rename(&self, from: &str, to: &str) -> Result<()>;
    fn subscriptions(&self) -> Result<Vec<String>>;
    fn set_subscribed(&self, name: &str, subscribed: bool) -> Result<()>;
    fn status(&self, name: &str) -> Result<StatusInfo>;
    /// [`Store::status`]; `size`: whether [`StatusInfo::size`] is wanted (a store that
    /// computes sizes on first need leaves it 0 when not).
    fn status_sized(&self, name: &str, size: bool) -> Result<StatusInfo> {
        let _ = size;
        self.status(name)
    }
    /// Whether [`Store::status_sized`] of `name` is known to be short now, without I/O:
    /// the mailbox is open in this process with at most `max_messages` messages (and,
    /// when `size` is wanted, every size known), so a status is a look and at most a
    /// small listing. `false` when the store cannot tell.
    fn status_is_small(&self, name: &str, max_messages: usize, size: bool) -> bool {
        let _ = (name, max_messages, size);
        false
    }
    /// Whether [`Store::list`] is known to be short: this store's last listing found at
    /// most `max` mailboxes. `false` when the store cannot tell (before a first listing).
    fn list_is_small(&self, max: usize) -> bool {
        let _ = max;
        false
    }
    fn open(&self, name: &str, read_only: bool) -> Result<Box<dyn Mailbox>>;
    /// Starts saving one message into `name`. Bytes arrive in chunks as the client sends
    /// them; nothing is visible until [`AppendSink::commit`].
    fn append(&self, name: &str) -> Result<Box<dyn AppendSink>>;
    /// Makes sure the special-use mailboxes exist (first login).
    fn ensure_special_use(&self) -> Result<()>;
    /// Writes mailbox `folder` whole with the messages `next` gives, keeping their UIDs,
    /// flags, keywords and dates, and the folder's UIDVALIDITY and UIDNEXT (`loft
    /// convert`, [`convert`]). The mailbox must not exist yet (INBOX: must hold no mail).
    /// Returns how many messages were written.
    fn import(&self, folder: &ImportFolder<'_>, next: NextMessage<'_>) -> Result<u64>;
}

/// One mailbox for [`Store::import`].
pub struct ImportFolder<'a> {
    pub name: &'a str,
    pub uid_validity: u32,
    /// Above every message's UID (the importer raises it when it is not).
    pub uid_next: Uid,
    /// The mailbox's keywords, in the source's order (those no message has included).
    pub keywords: &'a [String],
    pub special_use: Option<SpecialUse>,
}

/// One message for [`Store::import`]; they come in ascending UID order.
pub struct ImportMessage {
    pub uid: Uid,
    pub flags: Flags,
    pub internal_date: i64,
    /// The message as the source served it (CRLF line ends).
    pub data: MessageData,
}

/// Gives the next message of an import; `Ok(None)` after the last.
pub type NextMessage<'a> = &'a mut dyn FnMut() -> Result<Option<ImportMessage>>;

/// A message being saved.
pub trait AppendSink: Send {
    fn write(&mut self, chunk: &[u8]) -> Result<()>;
    /// fsyncs and publishes the message. Returns (UIDVALIDITY, UID) for APPENDUID.
    fn commit(self: Box<Self>, flags: &Flags, internal_date: Option<i64>) -> Result<(u32, Uid)>;
    /// Throws the partial message away.
    fn abort(self: Box<Self>);
}

/// One mailbox opened by one session.
///
/// This is the backend boundary: a mail format implements it with what depends on its
/// files. Protocol code reads messages through [`access::Message`], [`access::Batch`] and
/// [`access::search()`], which decide between cache, ranges, header and whole reads;
/// only they call the `fetch_*` and `cache_*` methods.
pub trait Mailbox: Send + Sync {
    fn name(&self) -> &str;
    fn read_only(&self) -> bool;
    /// Looks at the storage for changes made by anybody (this session, other sessions,
    /// other programs such as an MTA delivering into `new/`).
    fn sync(&mut self) -> Result<SyncResult>;
    /// A non-blocking descriptor that becomes readable when the mailbox may have changed,
    /// so that IDLE can [`Mailbox::sync`] at once instead of at its next poll; the caller
    /// reads it empty after each wake. `None` (the default): poll only.
    fn change_signal(&self) -> Option<std::fs::File> {
        None
    }
    /// The full message, CRLF line ends. [`ErrorKind::Expunged`] if it vanished.
    fn fetch_message(&self, uid: Uid) -> Result<MessageData>;
    /// The full message with its line ends as stored (bare LF or CRLF), for content
    /// SEARCH keys: they match decoded text, where line ends do not matter, and a store
    /// that keeps LF files saves converting every message of a mailbox-wide search.
    fn fetch_for_search(&self, uid: Uid) -> Result<MessageData> {
        self.fetch_message(uid)
    }
    /// Only the header block (through the empty line that ends it), CRLF line ends: what
    /// ENVELOPE, BODY[HEADER…] and header SEARCH keys need. Byte-identical to the start of
    /// [`Mailbox::fetch_message`].
    fn fetch_header(&self, uid: Uid) -> Result<MessageData> {
        self.fetch_message(uid)
    }
    /// Octets `range` of the message as [`Mailbox::fetch_message`] would return it, read
    /// without the rest of the message (a FETCH of one part of a big message).
    /// `Ok(None)`: this store cannot do that for this message now (e.g. its file has line
    /// ends that must be converted, or no longer has the size the index knows) — the
    /// caller reads the whole message instead. Also `Ok(None)` when `range` goes beyond
    /// the message.
    fn fetch_range(&self, uid: Uid, range: std::ops::Range<u64>) -> Result<Option<MessageData>> {
        let _ = (uid, range);
        Ok(None)
    }
    /// Looks up cached values of one field (opaque name, e.g. `imap.envelope`) for many
    /// messages; `f(i, value)` is called once for every `uids[i]`, with `None` on a miss.
    /// Each lookup also tells the store's cache which fields this user's clients use
    /// (the self-optimizing caching decisions of the index engine).
    fn cache_lookup(&self, uids: &[Uid], field: &str, f: &mut dyn FnMut(usize, Option<&[u8]>)) {
        let _ = field;
        for i in 0..uids.len() {
            f(i, None);
        }
    }
    /// The internal date of `uid` when its `MessageMeta` says [`UNKNOWN_DATE`] (asked
    /// of the storage now). `None`: the message is gone.
    fn internal_date(&self, uid: Uid) -> Option<i64> {
        let _ = uid;
        None
    }
    /// RFC822.SIZE of messages whose `MessageMeta` says [`UNKNOWN_SIZE`] (computed now
    /// and remembered by the store), in the order of `uids`; `None` for a message that
    /// is gone. The default: a store that always knows its sizes.
    fn sizes(&self, uids: &[Uid]) -> Vec<Option<u64>> {
        vec![None; uids.len()]
    }
    /// Offers a value computed after a miss; the cache keeps it if its decision for the
    /// field says so.
    fn cache_offer(&self, uid: Uid, field: &str, value: &[u8]) {
        let _ = (uid, field, value);
    }
    /// Changes flags; returns the new flags of every message that exists.
    fn store(&mut self, uids: &[Uid], op: StoreOp, flags: &Flags) -> Result<Vec<(Uid, Flags)>>;
    /// Removes messages flagged `\Deleted` (only those in `only`, when given: UID EXPUNGE).
    /// Returns the UIDs removed, ascending.
    fn expunge(&mut self, only: Option<&[Uid]>) -> Result<Vec<Uid>>;
    /// Copies messages into another mailbox of the same store, keeping flags and dates.
    fn copy_to(&mut self, uids: &[Uid], dest: &str) -> Result<CopyResult>;
    /// The session is done with the mailbox (CLOSE, UNSELECT, another SELECT, LOGOUT,
    /// POP3 QUIT): work the store leaves for the last close (an mbox file's pending flag
    /// write-back) is done now, in the caller's blocking context. A mailbox dropped
    /// without it (a connection lost) does that work on a thread of its own.
    fn close(&mut self) {}
}

/// The storage of this process: the `[storage]` settings and what every store shares
/// (open folders, their indexes and in-process locks). Created once (at server start,
/// or once per admin command) and passed to whoever opens a store: no process-wide
/// state stands behind it.
pub struct Storage {
    format: crate::config::StorageFormat,
    maildir: Arc<maildir::StorageCtx>,
    mbox: Arc<mbox::store::StorageCtx>,
    trimmer: heap::Trimmer,
}

impl Storage {
    pub fn new(cfg: &crate::config::StorageConfig) -> Arc<Storage> {
        heap::configure();
        Arc::new(Storage {
            format: cfg.format,
            maildir: maildir::StorageCtx::new(cfg),
            mbox: mbox::store::StorageCtx::new(cfg),
            trimmer: heap::Trimmer::default(),
        })
    }

    /// Called by a session after each command (`took`: how long it ran): after a big
    /// one, the memory it freed is given back to the system ([`heap`]). `Some(d)`: the
    /// caller calls [`Storage::trim_deferred`] in `d` (off the async threads).
    pub fn after_command(&self, took: std::time::Duration) -> Option<std::time::Duration> {
        match self.trimmer.due(took) {
            heap::Due::No => None,
            heap::Due::Now => {
                heap::trim();
                None
            }
            heap::Due::Later(d) => Some(d),
        }
    }

    /// The server stops (its sessions are gone): what stores keep for sessions to come
    /// is let go, each saving what it saves (an mbox file's sync). Blocking.
    pub fn shutdown(&self) {
        self.mbox.let_go();
    }

    /// The trim [`Storage::after_command`] promised.
    pub fn trim_deferred(&self) {
        self.trimmer.deferred();
        heap::trim();
    }

    /// Opens the store of one user for a session: it holds the user lock shared
    /// ([`userlock`]) until dropped, and fails while a conversion holds it.
    pub fn open_store(&self, user: &str, home: Option<&Path>) -> Result<Arc<dyn Store>> {
        self.open_store_as(user, home, userlock::Mode::Session)
    }

    /// Opens the store of one user holding the user lock in `mode`.
    pub fn open_store_as(
        &self,
        user: &str,
        home: Option<&Path>,
        mode: userlock::Mode,
    ) -> Result<Arc<dyn Store>> {
        match self.format {
            crate::config::StorageFormat::Maildir => {
                maildir::open_store(&self.maildir, user, home, mode)
            }
            crate::config::StorageFormat::Mbox => {
                mbox::store::open_store(&self.mbox, user, home, mode)
            }
        }
    }
}

/// The index options `[storage]` sets (lock method, NFS, fsync, cache drop days), with a
/// fresh shared state for the indexes of one storage context.
fn index_options(cfg: &crate::config::StorageConfig) -> crate::index::Options {
    crate::index::Options {
        fsync: cfg.fsync,
        lock_method: cfg.lock_method,
        nfs: cfg.nfs,
        cache_drop_days: cfg.cache_drop_days,
        ..crate::index::Options::default()
    }
}

/// `loft index rebuild USER [MAILBOX]`: rebuilds the index files from the mail files,
/// keeping every UID; one line per mailbox.
pub fn index_rebuild(
    cfg: &crate::config::StorageConfig,
    user: &str,
    home: Option<&Path>,
    mailbox: Option<&str>,
) -> Result<Vec<String>> {
    if cfg.format == crate::config::StorageFormat::Mbox {
        let st = mbox::store::StorageCtx::new(cfg);
        return mbox::store::MboxStore::open(&st, user, home)?.index_rebuild(mailbox);
    }
    maildir::admin::rebuild(
        &maildir::ctx(&maildir::StorageCtx::new(cfg), user, home)?,
        mailbox,
    )
}

/// `loft index verify USER [MAILBOX]`: every inconsistency found; empty when all is well.
pub fn index_verify(
    cfg: &crate::config::StorageConfig,
    user: &str,
    home: Option<&Path>,
    mailbox: Option<&str>,
) -> Result<Vec<String>> {
    if cfg.format == crate::config::StorageFormat::Mbox {
        let st = mbox::store::StorageCtx::new(cfg);
        return mbox::store::MboxStore::open(&st, user, home)?.index_verify(mailbox);
    }
    maildir::admin::verify(
        &maildir::ctx(&maildir::StorageCtx::new(cfg), user, home)?,
        mailbox,
    )
}

/// `loft index show USER MAILBOX`: header, counts, cache decisions, sizes.
pub fn index_show(
    cfg: &crate::config::StorageConfig,
    user: &str,
    home: Option<&Path>,
    mailbox: &str,
) -> Result<String> {
    if cfg.format == crate::config::StorageFormat::Mbox {
        let st = mbox::store::StorageCtx::new(cfg);
        return mbox::store::MboxStore::open(&st, user, home)?.index_show(mailbox);
    }
    maildir::admin::show(
        &maildir::ctx(&maildir::StorageCtx::new(cfg), user, home)?,
        mailbox,
    )
}

/// Case-folds a leading `INBOX` (RFC 3501 §5.1: INBOX is case-insensitive) and strips a
/// trailing separator.
pub fn normalize_name(name: &str) -> String {
    let trimmed = name.strip_suffix(SEPARATOR).unwrap_or(name);
    let head = trimmed.split(SEPARATOR).next().unwrap_or("");
    if head.eq_ignore_ascii_case("INBOX") {
        format!("INBOX{}", &trimmed[head.len()..])
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_inbox() {
        assert_eq!(normalize_name("inbox"), "INBOX");
        assert_eq!(normalize_name("InBox/Sub/"), "INBOX/Sub");
        assert_eq!(normalize_name("Inboxes"), "Inboxes");
    }

    #[test]
    fn apply_store_ops() {
        let mut f = Flags::default();
        f.sys.insert(SysFlags::SEEN);
        f.add_keyword("$Label1");
        let mut change = Flags::default();
        change.sys.insert(SysFlags::FLAGGED);
        change.add_keyword("$label1");
        let added = f.apply(StoreOp::Add, &change);
        assert!(added.sys.contains(SysFlags::SEEN) && added.sys.contains(SysFlags::FLAGGED));
        assert_eq!(added.keywords.len(), 1);
        let removed = added.apply(StoreOp::Remove, &change);
        assert!(!removed.sys.contains(SysFlags::FLAGGED) && removed.keywords.is_empty());
        let replaced = f.apply(StoreOp::Replace, &change);
        assert!(!replaced.sys.contains(SysFlags::SEEN));
    }
}
