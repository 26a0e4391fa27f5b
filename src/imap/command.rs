//! IMAP commands as a typed tree (RFC 3501 §6 plus extensions), and the parser that turns one
//! framed command (line with its literals inline, `{n}\r\n` markers kept) into it.

use crate::mailbox::message::Section;
use crate::mailbox::search::{NumSet, SearchKey};
use crate::mailbox::{Flags, StoreOp};

/// A tagged command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub tag: String,
    pub command: Command,
}

/// A FETCH data item (RFC 3501 §6.4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchAtt {
    Envelope,
    Flags,
    InternalDate,
    /// RFC822 == BODY[]
    Rfc822,
    /// RFC822.HEADER == BODY.PEEK[HEADER]
    Rfc822Header,
    Rfc822Size,
    /// RFC822.TEXT == BODY[TEXT]
    Rfc822Text,
    /// BODY (non-extensible BODYSTRUCTURE)
    Body,
    BodyStructure,
    Uid,
    /// BODY[section]<partial> and BODY.PEEK[...]
    BodySection {
        peek: bool,
        section: Section,
        /// `<origin.count>`
        partial: Option<(u32, u32)>,
    },
}

/// STATUS data items (RFC 3501 §6.3.10, RFC 8438 SIZE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Size,
}

/// LIST selection/return options we understand (RFC 5258 / RFC 6154).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ListOptions {
    /// `LIST (SPECIAL-USE) ...` selection option.
    pub select_special_use: bool,
    /// `LIST (SUBSCRIBED) ...`
    pub select_subscribed: bool,
    /// `RETURN (SPECIAL-USE)`
    pub return_special_use: bool,
    /// `RETURN (CHILDREN)`
    pub return_children: bool,
    /// `RETURN (SUBSCRIBED)`
    pub return_subscribed: bool,
    /// Multiple patterns `LIST "" ("a" "b")` were given.
    pub extended: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    // Any state (RFC 3501 §6.1)
    Capability,
    Noop,
    Logout,
    // Not authenticated (§6.2)
    StartTls,
    Authenticate {
        mechanism: String,
        /// SASL-IR (RFC 4959): the base64 initial response as sent; `=` means empty.
        initial_response: Option<String>,
    },
    Login {
        user: String,
        password: String,
    },
    // Authenticated (§6.3). Mailbox names are the raw wire form (modified UTF-7);
    // the session decodes them.
    Select {
        mailbox: String,
    },
    Examine {
        mailbox: String,
    },
    Create {
        mailbox: String,
    },
    Delete {
        mailbox: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Subscribe {
        mailbox: String,
    },
    Unsubscribe {
        mailbox: String,
    },
    List {
        reference: String,
        patterns: Vec<String>,
        options: ListOptions,
    },
    Lsub {
        reference: String,
        pattern: String,
    },
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    // APPEND is not a `Command`: the session streams its message literal, using
    // `parse_append_head` to get an [`AppendHead`] first.
    Namespace,
    Enable {
        capabilities: Vec<String>,
    },
    /// ID (RFC 2971): `None` for `ID NIL`.
    Id {
        params: Option<Vec<(String, Option<String>)>>,
    },
    Idle,
    // Selected (§6.4)
    Check,
    Close,
    Unselect,
    Expunge,
    UidExpunge {
        set: NumSet,
    },
    Search {
        uid: bool,
        charset: Option<String>,
        key: SearchKey,
    },
    Fetch {
        uid: bool,
        set: NumSet,
        atts: Vec<FetchAtt>,
    },
    Store {
        uid: bool,
        set: NumSet,
        op: StoreOp,
        silent: bool,
        flags: Flags,
    },
    Copy {
        uid: bool,
        set: NumSet,
        mailbox: String,
    },
    Move {
        uid: bool,
        set: NumSet,
        mailbox: String,
    },
}

/// The part of an APPEND command before its message literal:
/// `tag APPEND mailbox [(flags)] ["date-time"] {n}` (RFC 3501 §6.3.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendHead {
    pub tag: String,
    pub mailbox: String,
    pub flags: Flags,
    /// Unix seconds (UTC) from the date-time argument.
    pub date: Option<i64>,
    /// Octets in the message literal.
    pub size: u64,
    /// `{n+}` (LITERAL+, RFC 7888): no continuation request.
    pub non_sync: bool,
}

/// Why a command could not be parsed. `tag` is present when the tag itself was readable,
/// so the session can answer `tag BAD message`; otherwise it answers `* BAD message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<String>,
    pub message: String,
    pub kind: ParseErrorKind,
}

/// How the session answers a [`ParseError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ParseErrorKind {
    /// Syntax error: `tag BAD message` (or `* BAD` without a tag).
    #[default]
    Bad,
    /// SEARCH with a CHARSET we cannot convert: `tag NO [BADCHARSET (US-ASCII UTF-8)]`
    /// (RFC 3501 §6.4.4).
    BadCharset,
}

/// The parser lives in [`crate::imap::parse`]; re-exported here beside the types it builds.
pub use super::parse::{parse, parse_append_head, parse_with_limit};
