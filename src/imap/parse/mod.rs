//! The IMAP command parser: one framed command (RFC 3501 §9 grammar plus the extensions in
//! CAPABILITY) -> [`Request`]. Hand-written over bytes; recursion is bounded (SEARCH
//! nesting) and every failure is a [`ParseError`], never a panic.
//!
//! The parser knows the grammar only: it does not know the session state (which commands
//! are allowed when), mailbox name decoding (modified UTF-7) or storage.
//!
//! * [`cursor`] — tokens (atom, string, literal, number, sequence set).
//! * [`args`] — flags, STORE, LIST/LSUB/STATUS, ID, ENABLE, AUTHENTICATE.
//! * [`fetch`] — FETCH attributes and body sections.
//! * [`search`] — SEARCH keys and CHARSET conversion.
//! * [`append`] — the APPEND head, recognised before its message literal is read.

mod append;
mod args;
mod cursor;
mod fetch;
mod search;

#[cfg(test)]
mod tests;

pub use append::parse_append_head;

use crate::imap::command::{Command, ParseError, Request};
use cursor::{bad, shown, utf8, Cursor, PResult};

/// RFC 3501 `tag`: 1*<any ASTRING-CHAR except "+">.
fn is_tag_char(c: u8) -> bool {
    cursor::is_astring_char(c) && c != b'+'
}

/// Reads the tag. It counts as readable only when followed by a space or the end, so a
/// garbled first word is never echoed back as if it were the client's tag.
pub(crate) fn read_tag(c: &mut Cursor<'_>) -> PResult<String> {
    if c.at_end() {
        return Err(bad("Empty command"));
    }
    let tag = c.take_while(is_tag_char);
    if tag.is_empty() || !matches!(c.peek(), None | Some(b' ')) {
        return Err(bad("Invalid tag"));
    }
    // Tag chars are ASCII, so this is lossless.
    Ok(String::from_utf8_lossy(tag).into_owned())
}

/// Parses one framed command: the command line with any literals inline exactly as they
/// arrived (`{n}\r\n` or `{n+}\r\n` followed by n octets), without the final CRLF.
pub fn parse(input: &[u8]) -> Result<Request, ParseError> {
    parse_with_limit(input, search::MAX_DEPTH)
}

/// [`parse`] with the SEARCH nesting limit taken from the configuration.
pub fn parse_with_limit(input: &[u8], max_depth: usize) -> Result<Request, ParseError> {
    let mut c = Cursor::new(input);
    c.max_depth = max_depth;
    let tag = read_tag(&mut c).map_err(|f| f.into_error(None))?;
    let result = c.sp().and_then(|()| command(&mut c)).and_then(|cmd| {
        c.end()?;
        Ok(cmd)
    });
    match result {
        Ok(command) => Ok(Request { tag, command }),
        Err(f) => Err(f.into_error(Some(tag))),
    }
}

/// Commands that take no arguments.
fn no_args(name: &str) -> Option<Command> {
    Some(match name {
        "CAPABILITY" => Command::Capability,
        "NOOP" => Command::Noop,
        "LOGOUT" => Command::Logout,
        "STARTTLS" => Command::StartTls,
        "NAMESPACE" => Command::Namespace,
        "IDLE" => Command::Idle,
        "CHECK" => Command::Check,
        "CLOSE" => Command::Close,
        "UNSELECT" => Command::Unselect,
        "EXPUNGE" => Command::Expunge,
        _ => return None,
    })
}

/// The command after `tag SP` (names are case-insensitive).
fn command(c: &mut Cursor<'_>) -> PResult<Command> {
    let name = c.keyword().map_err(|_| bad("Missing command"))?;
    if let Some(cmd) = no_args(&name) {
        return Ok(cmd);
    }
    let one_mailbox = |c: &mut Cursor<'_>| -> PResult<String> {
        c.sp()?;
        c.mailbox()
    };
    Ok(match name.as_str() {
        "AUTHENTICATE" => args::authenticate(c)?,
        "LOGIN" => {
            c.sp()?;
            let user = utf8(c.astring()?)?;
            c.sp()?;
            let password = utf8(c.astring()?)?;
            Command::Login { user, password }
        }
        "SELECT" => Command::Select {
            mailbox: one_mailbox(c)?,
        },
        "EXAMINE" => Command::Examine {
            mailbox: one_mailbox(c)?,
        },
        "CREATE" => Command::Create {
            mailbox: one_mailbox(c)?,
        },
        "DELETE" => Command::Delete {
            mailbox: one_mailbox(c)?,
        },
        "SUBSCRIBE" => Command::Subscribe {
            mailbox: one_mailbox(c)?,
        },
        "UNSUBSCRIBE" => Command::Unsubscribe {
            mailbox: one_mailbox(c)?,
        },
        "RENAME" => {
            let from = one_mailbox(c)?;
            let to = one_mailbox(c)?;
            Command::Rename { from, to }
        }
        "LIST" => args::list(c)?,
        "LSUB" => {
            let reference = one_mailbox(c)?;
            c.sp()?;
            let pattern = c.list_mailbox()?;
            Command::Lsub { reference, pattern }
        }
        "STATUS" => args::status(c)?,
        "APPEND" => append::append_in_parse(c)?,
        "ENABLE" => args::enable(c)?,
        "ID" => args::id(c)?,
        "SEARCH" => search::search(c, false)?,
        "FETCH" => fetch::fetch(c, false)?,
        "STORE" => args::store(c, false)?,
        "COPY" => copy_move(c, false, false)?,
        "MOVE" => copy_move(c, false, true)?,
        "UID" => uid_command(c)?,
        _ => return Err(bad(format!("Unknown command {}", shown(name.as_bytes())))),
    })
}

/// `UID SP (copy / move / fetch / search / store / expunge)` (RFC 3501, 4315, 6851).
fn uid_command(c: &mut Cursor<'_>) -> PResult<Command> {
    c.sp()?;
    let name = c.keyword()?;
    match name.as_str() {
        "FETCH" => fetch::fetch(c, true),
        "SEARCH" => search::search(c, true),
        "STORE" => args::store(c, true),
        "COPY" => copy_move(c, true, false),
        "MOVE" => copy_move(c, true, true),
        "EXPUNGE" => {
            c.sp()?;
            Ok(Command::UidExpunge { set: c.seqset()? })
        }
        _ => Err(bad(format!(
            "Unknown UID command {}",
            shown(name.as_bytes())
        ))),
    }
}

/// `COPY/MOVE SP sequence-set SP mailbox`.
fn copy_move(c: &mut Cursor<'_>, uid: bool, is_move: bool) -> PResult<Command> {
    c.sp()?;
    let set = c.seqset()?;
    c.sp()?;
    let mailbox = c.mailbox()?;
    Ok(if is_move {
        Command::Move { uid, set, mailbox }
    } else {
        Command::Copy { uid, set, mailbox }
    })
}
