//! Storage errors: a kind the protocol layer maps to one response code, a client-safe
//! text, and (for the log only) the underlying cause.

use std::fmt;

/// What went wrong, as far as a client needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The mailbox (or message) does not exist. IMAP: `[NONEXISTENT]` (RFC 5530).
    NonExistent,
    /// A mailbox with that name exists already. IMAP: `[ALREADYEXISTS]`.
    AlreadyExists,
    /// The name is not acceptable (bad characters, escapes the mail root, too long).
    BadName,
    /// The operation is not allowed (e.g. deleting INBOX, writing a read-only mailbox).
    NoPerm,
    /// A configured limit was hit (message too large, too many mailboxes). IMAP: `[LIMIT]`.
    Limit,
    /// Over quota. IMAP: `[OVERQUOTA]`.
    OverQuota,
    /// The mailbox has children and cannot be deleted this way. IMAP: `[INUSE]`/plain NO.
    HasChildren,
    /// A message vanished (expunged by another session) while being read. IMAP: `[EXPUNGEISSUED]`.
    Expunged,
    /// Temporary failure: disk, lock timeout, I/O. IMAP: `[UNAVAILABLE]`/`[SERVERBUG]`.
    Temporary,
    /// Another holds what this needs for itself (the user lock: a conversion running, or
    /// sessions open when a conversion starts). IMAP: `[INUSE]` (RFC 5530 §3).
    InUse,
}

/// A storage error. `text` is safe to show to a client; `detail` goes to the log only.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub text: String,
    pub detail: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, text: impl Into<String>) -> Self {
        Error {
            kind,
            text: text.into(),
            detail: None,
        }
    }

    /// An I/O failure: the client sees a generic text, the log sees what and where.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NonExistent,
            std::io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            std::io::ErrorKind::PermissionDenied => ErrorKind::NoPerm,
            _ if is_disk_full(&err) => ErrorKind::OverQuota,
            _ => ErrorKind::Temporary,
        };
        let text = match kind {
            ErrorKind::OverQuota => "Disk full or over quota",
            ErrorKind::NonExistent => "Mailbox or message does not exist",
            ErrorKind::AlreadyExists => "Already exists",
            ErrorKind::NoPerm => "Permission denied",
            _ => "Internal error occurred. Refer to server log for more information.",
        };
        Error {
            kind,
            text: text.into(),
            detail: Some(format!("{what}: {err}")),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl From<crate::index::Error> for Error {
    /// An index failure as a client sees it: a lock timeout or damage is temporary.
    fn from(e: crate::index::Error) -> Error {
        use crate::index::Error as E;
        match e {
            E::Locked { file } => {
                Error::new(ErrorKind::Temporary, "Mailbox is locked, try again later")
                    .with_detail(format!("timeout locking {}", file.display()))
            }
            E::Io { file, err } => Error::io(file.display(), err),
            other => Error::new(ErrorKind::Temporary, "Mailbox index is damaged, try again")
                .with_detail(other.to_string()),
        }
    }
}

/// `ENOSPC` (the file system is full) or `EDQUOT` (the user's disk quota is used up).
pub fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || err.kind() == std::io::ErrorKind::StorageFull
        || err.kind() == std::io::ErrorKind::QuotaExceeded
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{} ({})", self.text, d),
            None => f.write_str(&self.text),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
