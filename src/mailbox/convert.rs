//! `loft convert USER --to maildir|mbox`: one user's mail copied from the configured store
//! into a new store of the other format, keeping every mailbox's UIDVALIDITY and UIDNEXT,
//! every message's UID, flags, keywords and INTERNALDATE, the subscriptions and the
//! special-use attributes — so clients keep their caches and POP3 UIDLs (made from UID
//! and UIDVALIDITY, `[pop3] uidl_format`) stay the same once the server serves the new
//! store.
//!
//! * Both stores are opened holding the user lock exclusively ([`super::userlock`]): the
//!   conversion refuses to start while the user has sessions, and logins wait out the
//!   conversion (refused as temporarily unavailable) instead of changing mail already
//!   copied. Mail files are read through the source store as a session reads them, under
//!   its locks (mbox: the read lock per read), so an MTA delivering meanwhile is safe; a
//!   message delivered after its mailbox was copied is not in the copy.
//! * The target must be empty: the conversion never overwrites mail.
//! * Each mailbox is written whole by the target store ([`Store::import`]), then read
//!   back through it and compared with what was sent (the source is read once; each
//!   message's length and CRC-32 are taken as it is imported): the same UIDVALIDITY,
//!   UIDNEXT, UIDs, flags, keywords, dates and bytes. The only difference accepted is
//!   mbox's quoting
//!   (RFC 4155 §2: a line that starts with `From ` is stored, and so served, as
//!   `>From `). Anything else stops the conversion with the mailbox and UID named.
//! * The source's mail is left as it was (its index is brought up to date, as by any
//!   session): the admin switches `[storage]` and removes it.
//!
//! This module knows stores, not formats (beyond the quoting rule it checks for).

use std::path::{Path, PathBuf};

use super::userlock::Mode;
use super::{
    Error, ErrorKind, Flags, ImportFolder, ImportMessage, Mailbox, MailboxEntry, Snapshot, Storage,
    Store, UNKNOWN_DATE,
};
use crate::config::{StorageConfig, StorageFormat};

/// What to convert.
pub struct Job<'a> {
    pub user: &'a str,
    pub home: Option<&'a Path>,
    pub source: &'a StorageConfig,
    pub target: &'a StorageConfig,
}

/// Why a conversion did not happen or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("the source and the target are both {0:?}: nothing to convert")]
    SameFormat(StorageFormat),
    #[error("{user}'s mail is in use (sessions are open, or another conversion runs); try again when they have logged out")]
    InUse { user: String },
    #[error("the target {} is not empty: the conversion never writes over mail", .0.display())]
    TargetNotEmpty(PathBuf),
    #[error("mbox cannot keep messages in a mailbox that has sub-mailboxes: {0} (move the messages or the sub-mailboxes first)")]
    FileWithChildren(String),
    #[error("{mailbox}: {err}{}", .err.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Mailbox { mailbox: String, err: Error },
    #[error("{mailbox}: the copy differs from the source: {what}")]
    Mismatch { mailbox: String, what: String },
    #[error("{err}{}", .err.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Store { err: Error },
}

/// What was converted, per mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Converted {
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: u64,
    /// RFC822.SIZE summed over the source's messages.
    pub bytes: u64,
    /// Messages whose `From ` lines the mbox target quotes.
    pub quoted: u64,
    /// Messages another program removed from the source while it was read.
    pub vanished: u64,
}

/// The whole conversion.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub mailboxes: Vec<Converted>,
    /// Empty mailboxes with sub-mailboxes that became `\Noselect` parents (mbox: a
    /// directory cannot hold messages).
    pub parents: Vec<String>,
    pub subscriptions: usize,
}

/// Converts `job.user`'s mail; see the module documentation.
pub fn run(job: &Job<'_>) -> Result<Report, ConvertError> {
    if job.source.format == job.target.format {
        return Err(ConvertError::SameFormat(job.source.format));
    }
    check_target_empty(job)?;
    let open = |cfg: &StorageConfig| {
        Storage::new(cfg)
            .open_store_as(job.user, job.home, Mode::Exclusive)
            .map_err(|err| match err.kind {
                ErrorKind::InUse => ConvertError::InUse {
                    user: job.user.to_string(),
                },
                _ => ConvertError::Store { err },
            })
    };
    let source = open(job.source)?;
    let target = open(job.target)?;
    let store_err = |err| ConvertError::Store { err };
    let mut entries = source.list().map_err(store_err)?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut report = Report::default();
    if job.target.format == StorageFormat::Mbox {
        report.parents = parents_for_mbox(source.as_ref(), &entries)?;
    }
    let parent = |e: &&MailboxEntry| report.parents.contains(&e.name);
    for e in entries.iter().filter(|e| !e.noselect && !parent(e)) {
        let done = convert_mailbox(source.as_ref(), target.as_ref(), e, job.target.format)?;
        report.mailboxes.push(done);
    }
    for name in source.subscriptions().map_err(store_err)? {
        target.set_subscribed(&name, true).map_err(store_err)?;
        report.subscriptions += 1;
    }
    Ok(report)
}

/// The target's location (and mbox INBOX file) holds nothing yet.
fn check_target_empty(job: &Job<'_>) -> Result<(), ConvertError> {
    let expand = |t: &str| {
        super::location::expand(t, job.user, job.home)
            .map(PathBuf::from)
            .map_err(|err| ConvertError::Store { err })
    };
    let root = expand(&job.target.location)?;
    let busy = match std::fs::read_dir(&root) {
        Ok(mut d) => d.next().is_some(),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    };
    if busy {
        return Err(ConvertError::TargetNotEmpty(root));
    }
    if let (StorageFormat::Mbox, Some(t)) = (job.target.format, &job.target.inbox) {
        let inbox = expand(t)?;
        if std::fs::symlink_metadata(&inbox).is_ok_and(|m| m.len() > 0 || !m.is_file()) {
            return Err(ConvertError::TargetNotEmpty(inbox));
        }
    }
    Ok(())
}

/// An mbox file cannot have children: a selectable mailbox with sub-mailboxes (INBOX
/// aside, a file of its own) becomes a `\Noselect` directory when it holds no message
/// (Maildir makes such parents on CREATE of `A/B`), and stops the conversion when it
/// does. Returns those that become parents.
fn parents_for_mbox(
    source: &dyn Store,
    entries: &[MailboxEntry],
) -> Result<Vec<String>, ConvertError> {
    let mut out = Vec::new();
    for e in entries
        .iter()
        .filter(|e| !e.noselect && e.has_children && e.name != "INBOX")
    {
        let st = source
            .status(&e.name)
            .map_err(|err| ConvertError::Mailbox {
                mailbox: e.name.clone(),
                err,
            })?;
        if st.messages > 0 {
            return Err(ConvertError::FileWithChildren(e.name.clone()));
        }
        out.push(e.name.clone());
    }
    Ok(out)
}

/// Copies one mailbox, then checks the copy against what was sent (the source is read
/// once: each message's length and CRC-32 are taken as it is imported).
fn convert_mailbox(
    source: &dyn Store,
    target: &dyn Store,
    entry: &MailboxEntry,
    to: StorageFormat,
) -> Result<Converted, ConvertError> {
    let name = entry.name.as_str();
    let fail = |err| ConvertError::Mailbox {
        mailbox: name.to_string(),
        err,
    };
    let mut from = source.open(name, true).map_err(fail)?;
    let snap = from.sync().map_err(fail)?.snapshot;
    let folder = ImportFolder {
        name,
        uid_validity: snap.uid_validity,
        uid_next: snap.uid_next,
        keywords: &snap.keywords,
        special_use: entry.special_use,
    };
    let quote = to == StorageFormat::Mbox;
    let mut metas = snap.messages.iter();
    let (mut sent, mut vanished) = (Vec::new(), 0u64);
    let mut next = || -> super::Result<Option<ImportMessage>> {
        for meta in metas.by_ref() {
            match read_message(from.as_ref(), meta.uid, meta.flags, meta.internal_date)? {
                Some(m) => {
                    sent.push(Sent::of(&m, quote));
                    return Ok(Some(m));
                }
                None => vanished += 1,
            }
        }
        Ok(None)
    };
    let messages = target.import(&folder, &mut next).map_err(fail)?;
    from.close();
    Check { name, snap: &snap }.against(target, &sent)?;
    Ok(Converted {
        name: name.to_string(),
        uid_validity: snap.uid_validity,
        uid_next: snap.uid_next,
        messages,
        bytes: sent.iter().map(|m| m.source_len).sum(),
        quoted: sent.iter().filter(|m| m.quoted).count() as u64,
        vanished,
    })
}

/// One source message; `None` when another program removed it meanwhile.
fn read_message(
    from: &dyn Mailbox,
    uid: u32,
    flags: Flags,
    date: i64,
) -> super::Result<Option<ImportMessage>> {
    let data = match from.fetch_message(uid) {
        Ok(d) => d,
        Err(e) if e.kind == ErrorKind::Expunged || e.kind == ErrorKind::NonExistent => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let internal_date = match date {
        UNKNOWN_DATE => from.internal_date(uid).unwrap_or(0),
        d => d,
    };
    Ok(Some(ImportMessage {
        uid,
        flags,
        internal_date,
        data,
    }))
}

/// What was sent of one message, to check the copy against.
struct Sent {
    uid: u32,
    flags: Flags,
    internal_date: i64,
    source_len: u64,
    /// Length and CRC-32 of the bytes the copy must read back as.
    len: u64,
    crc: u32,
    /// Some line starts with `From `: the mbox target stores it quoted.
    quoted: bool,
}

impl Sent {
    fn of(m: &ImportMessage, quote: bool) -> Sent {
        let (len, crc, quoted) = digest(&m.data, quote);
        Sent {
            uid: m.uid,
            flags: m.flags.clone(),
            internal_date: m.internal_date,
            source_len: m.data.len() as u64,
            len,
            crc,
            quoted,
        }
    }
}

/// Length and CRC-32 of `message`, with `>` before every line that starts with `From `
/// when `quote` (RFC 4155 §2, as an mbox store keeps it); and whether one does.
fn digest(message: &[u8], quote: bool) -> (u64, u32, bool) {
    let mut crc = crc32fast::Hasher::new();
    let (mut len, mut quoted) = (0u64, false);
    for line in message.split_inclusive(|&c| c == b'\n') {
        if line.starts_with(b"From ") {
            quoted = true;
            if quote {
                crc.update(b">");
                len += 1;
            }
        }
        crc.update(line);
        len += line.len() as u64;
    }
    (len, crc.finalize(), quoted && quote)
}

/// The comparison of a written mailbox with what was sent.
struct Check<'a> {
    name: &'a str,
    snap: &'a Snapshot,
}

impl Check<'_> {
    fn differs(&self, what: String) -> ConvertError {
        ConvertError::Mismatch {
            mailbox: self.name.to_string(),
            what,
        }
    }

    /// Reads the copy back through `target` and compares it with `sent`.
    fn against(&self, target: &dyn Store, sent: &[Sent]) -> Result<(), ConvertError> {
        let fail = |err| ConvertError::Mailbox {
            mailbox: self.name.to_string(),
            err,
        };
        let mut copy = target.open(self.name, true).map_err(fail)?;
        let got = copy.sync().map_err(fail)?.snapshot;
        if got.uid_validity != self.snap.uid_validity || got.uid_next != self.snap.uid_next {
            return Err(self.differs(format!(
                "UIDVALIDITY/UIDNEXT {}/{} where the source has {}/{}",
                got.uid_validity, got.uid_next, self.snap.uid_validity, self.snap.uid_next
            )));
        }
        if got.messages.len() != sent.len() {
            return Err(self.differs(format!(
                "{} messages where the source has {}",
                got.messages.len(),
                sent.len()
            )));
        }
        for (want, g) in sent.iter().zip(got.messages.iter()) {
            self.message(copy.as_ref(), want, &g)?;
        }
        copy.close();
        Ok(())
    }

    /// One message: UID, flags, date and bytes.
    fn message(
        &self,
        copy: &dyn Mailbox,
        want: &Sent,
        got: &super::MessageMeta,
    ) -> Result<(), ConvertError> {
        let uid = want.uid;
        if got.uid != uid {
            return Err(self.differs(format!("UID {} where the source has UID {uid}", got.uid)));
        }
        if !same_flags(&got.flags, &want.flags) {
            return Err(self.differs(format!(
                "UID {uid}: flags {:?} where the source has {:?}",
                got.flags, want.flags
            )));
        }
        let date = match got.internal_date {
            UNKNOWN_DATE => copy.internal_date(uid).unwrap_or(0),
            d => d,
        };
        if date != want.internal_date {
            return Err(self.differs(format!(
                "UID {uid}: INTERNALDATE {date} where the source has {}",
                want.internal_date
            )));
        }
        let bytes = copy
            .fetch_message(uid)
            .map_err(|err| ConvertError::Mailbox {
                mailbox: self.name.to_string(),
                err,
            })?;
        let (len, crc, _) = digest(&bytes, false);
        if (len, crc) != (want.len, want.crc) {
            return Err(self.differs(format!(
                "UID {uid}: the message reads back as {len} bytes that differ from the {} sent",
                want.len
            )));
        }
        Ok(())
    }
}

/// The same system flags and keywords (keyword names compare without case).
fn same_flags(a: &Flags, b: &Flags) -> bool {
    let lower = |f: &Flags| {
        let mut k: Vec<String> = f.keywords.iter().map(|k| k.to_ascii_lowercase()).collect();
        k.sort();
        k
    };
    a.sys == b.sys && lower(a) == lower(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check reads the copy back: a message damaged in it (same length, one byte
    /// changed, as a disk or another program may leave it) is reported with its UID and
    /// mailbox; the copy as written passes.
    #[test]
    fn a_damaged_copy_fails_the_check() {
        use crate::mailbox::mbox::store::{MboxStore, StorageCtx};
        let d = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::for_tests(d.path()).storage;
        cfg.format = StorageFormat::Mbox;
        cfg.location = d.path().join("mail/%u").to_string_lossy().into_owned();
        cfg.autocreate_special_use = false;
        let inbox = d.path().join("mail/alice/INBOX");
        std::fs::create_dir_all(inbox.parent().unwrap()).unwrap();
        let date = "Mon Dec  7 16:49:14 2026";
        let text = format!(
            "From a@b  {date}\nSubject: one\n\nfirst body\n\nFrom a@b  {date}\nSubject: two\n\nsecond body\n"
        );
        std::fs::write(&inbox, &text).unwrap();
        let store = MboxStore::open(&StorageCtx::new(&cfg), "alice", None).unwrap();
        let mut mb = store.open("INBOX", false).unwrap();
        let snap = mb.sync().unwrap().snapshot;
        let sent: Vec<Sent> = (snap.messages.iter())
            .map(|m| {
                let data = mb.fetch_message(m.uid).unwrap();
                Sent::of(
                    &ImportMessage {
                        uid: m.uid,
                        flags: m.flags.clone(),
                        internal_date: m.internal_date,
                        data,
                    },
                    false,
                )
            })
            .collect();
        mb.close();
        drop(mb);
        let check = Check {
            name: "INBOX",
            snap: &snap,
        };
        check.against(&store, &sent).expect("the copy as written");
        let mut bytes = std::fs::read(&inbox).unwrap();
        let at = bytes.windows(6).position(|w| w == b"second").unwrap();
        bytes[at] = b'S';
        std::fs::write(&inbox, &bytes).unwrap();
        let second = sent[1].uid;
        match check.against(&store, &sent) {
            Err(ConvertError::Mismatch { mailbox, what }) => {
                assert_eq!(mailbox, "INBOX");
                assert!(what.contains(&format!("UID {second}:")), "{what}");
            }
            Err(e) => panic!("{e}"),
            Ok(()) => panic!("a damaged copy passed the check"),
        }
    }

    #[test]
    fn the_digest_quotes_only_lines_that_start_with_from() {
        let m = b"From: a\r\n\r\nFrom here\r\n>From there\r\n From x\r\nFrom ";
        let quoted = b"From: a\r\n\r\n>From here\r\n>From there\r\n From x\r\n>From ";
        let (len, crc, _) = digest(quoted, false);
        assert_eq!(digest(m, true), (len, crc, true));
        assert_eq!(
            digest(m, false),
            (m.len() as u64, crc32fast::hash(m), false)
        );
        assert!(!digest(b"From: a\r\n\r\nhi\r\n", true).2);
    }
}
