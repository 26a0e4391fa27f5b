//! APPEND (RFC 3501 §6.3.11): `tag APPEND mailbox [SP flag-list] [SP date-time] SP literal`.
//!
//! The message literal can be huge, so the session streams it to storage instead of
//! framing it: it calls [`parse_append_head`] on the command so far as soon as a literal
//! marker ends a line, and only uses [`super::parse`] for everything else.

use super::args::flag_list;
use super::cursor::{bad, literal_marker, Cursor, PResult};
use super::read_tag;
use crate::imap::command::{AppendHead, Command, ParseError};
use crate::imap::syntax::datetime::parse_date_time;
use crate::mailbox::Flags;

/// Is `rest` exactly one literal marker `{n}` / `{n+}` and nothing else?
fn final_marker(rest: &[u8]) -> Option<(u64, bool)> {
    match literal_marker(rest) {
        Some((n, non_sync, used)) if used == rest.len() => Some((n, non_sync)),
        _ => None,
    }
}

/// `SP mailbox [SP flag-list] [SP date-time] SP`, leaving the cursor on the message literal.
fn head_args(c: &mut Cursor<'_>) -> PResult<(String, Flags, Option<i64>)> {
    c.sp()?;
    let mailbox = c.mailbox()?;
    c.sp()?;
    let mut flags = Flags::default();
    if c.peek() == Some(b'(') {
        flags = flag_list(c)?;
        c.sp()?;
    }
    let mut date = None;
    if c.peek() == Some(b'"') {
        let text = c.quoted()?;
        date = Some(parse_date_time(&text).ok_or_else(|| bad("Invalid date-time"))?);
        c.sp()?;
    }
    Ok((mailbox, flags, date))
}

/// Recognises the head of an APPEND whose message literal is about to follow. `input` is the
/// command so far, ending with the literal marker `{n}` / `{n+}` (no CRLF). Returns `None`
/// when this is not an APPEND message literal (another command, an unreadable tag, or a
/// literal mailbox name still to come), `Some(Err)` for a malformed APPEND.
pub fn parse_append_head(input: &[u8]) -> Option<Result<AppendHead, ParseError>> {
    let mut c = Cursor::new(input);
    let tag = read_tag(&mut c).ok()?;
    c.sp().ok()?;
    if !c.atom().ok()?.eq_ignore_ascii_case(b"APPEND") {
        return None;
    }
    // `tag APPEND {n}`: the literal is the mailbox name.
    if c.rest().first() == Some(&b' ') && final_marker(c.rest().get(1..)?).is_some() {
        return None;
    }
    let result = head_args(&mut c).and_then(|(mailbox, flags, date)| {
        let (size, non_sync) =
            final_marker(c.rest()).ok_or_else(|| bad("Expected message literal"))?;
        Ok(AppendHead {
            tag: tag.clone(),
            mailbox,
            flags,
            date,
            size,
            non_sync,
        })
    });
    Some(result.map_err(|f| f.into_error(Some(tag))))
}

/// APPEND reaching [`super::parse`]: the head is checked so a malformed one gets its precise
/// error, but a well-formed APPEND is the session's to stream, never a [`Command`].
pub(super) fn append_in_parse(c: &mut Cursor<'_>) -> PResult<Command> {
    head_args(c)?;
    c.literal()?;
    c.end()?;
    Err(bad("APPEND must be streamed (see parse_append_head)"))
}
