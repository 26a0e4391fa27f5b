//! Writing one message as mbox bytes: its `From ` line, its header without any of the
//! hidden fields it came with (a client cannot smuggle a UID or flags in), Loft's hidden
//! fields, its body, and the blank line before the next message.
//!
//! Line ends are stored as LF (CRLF from a client becomes LF; a bare CR inside a line
//! stays). Every line
//! that starts with `From ` — in the body, and in a header (a message saved with its own
//! `From ` line) — is written as `>From ` (mboxo), so that no reader (mutt, Python's
//! `mailbox`, procmail, Dovecot, Loft) splits the message there; bodies are never
//! unquoted on reading, so all of them read the same bytes. `Content-Length` gives the
//! stored body's length, so a body whose last line has no line end keeps it that way.
//!
//! This module knows bytes, nothing of files or locks.

use memchr::memmem;

use super::from_line;
use super::meta::{self, Base, Meta};

/// What to write beside the message.
pub struct Stamp<'a> {
    /// The envelope sender for the `From ` line (empty: `MAILER-DAEMON`).
    pub sender: &'a str,
    /// The internal date.
    pub date: i64,
    pub meta: &'a Meta,
    /// `X-IMAPbase` when this is the file's first message.
    pub base: Option<&'a Base>,
    /// Spaces of room after `X-Keywords`.
    pub pad: usize,
    /// Write Loft's fields at all (`[storage] mbox_write_headers`); without them the
    /// message is stored as given (its hidden fields still removed, `From ` lines quoted).
    pub fields: bool,
}

/// Appends `message` (as a client gave it) to `out` as one mbox message.
pub fn append_mail(out: &mut Vec<u8>, message: &[u8], stamp: &Stamp<'_>) {
    let lf = to_lf(message);
    let (header, body) = if lf.first() == Some(&b'\n') {
        (&lf[..0], Some(&lf[1..]))
    } else {
        match memmem::find(&lf, b"\n\n") {
            Some(i) => (&lf[..i + 1], Some(&lf[i + 2..])),
            None => (&lf[..], None),
        }
    };
    out.extend_from_slice(&from_line::format(stamp.sender, stamp.date));
    write_header(out, header);
    let mut stored_body = Vec::new();
    if let Some(b) = body {
        quote_into(&mut stored_body, b);
    }
    if stamp.fields {
        meta::format(
            out,
            stamp.base,
            stamp.meta,
            stamp.pad,
            stored_body.len() as u64,
        );
    }
    out.push(b'\n');
    out.extend_from_slice(&stored_body);
    if !stored_body.is_empty() && !stored_body.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// `message` with CRLF line ends made LF; a lone CR stays, but not before a line end
/// (`CR CR LF` is one line end: served as CRLF it could not be told apart anyway, and a
/// stored `CR LF` would read as a CRLF file's line end).
fn to_lf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = memchr::memchr(b'\n', rest) {
        let line = &rest[..i];
        let kept = line.len() - line.iter().rev().take_while(|&&c| c == b'\r').count();
        out.extend_from_slice(&line[..kept]);
        out.push(b'\n');
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out
}

/// The header's lines without the hidden fields (and their continuation lines), quoted;
/// the last line given a line end.
fn write_header(out: &mut Vec<u8>, header: &[u8]) {
    let mut dropping = false;
    for line in header.split_inclusive(|&c| c == b'\n') {
        let continued = matches!(line.first(), Some(b' ' | b'\t'));
        if !continued {
            dropping = meta::field_of(line).is_some();
        }
        if dropping {
            continue;
        }
        // A last line without its line end gets one, without the CRs it ended in (a
        // stored `CR LF` would read as a CRLF file's blank line).
        let line = match line.strip_suffix(b"\n") {
            Some(_) => line,
            None => &line[..line.len() - line.iter().rev().take_while(|&&c| c == b'\r').count()],
        };
        if line.is_empty() {
            continue;
        }
        if line.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
}

/// `body` with `>` before every line that starts with `From `.
fn quote_into(out: &mut Vec<u8>, body: &[u8]) {
    out.reserve(body.len());
    if body.starts_with(b"From ") {
        out.push(b'>');
    }
    let mut last = 0;
    for i in memmem::find_iter(body, b"\nFrom ") {
        out.extend_from_slice(&body[last..=i]);
        out.push(b'>');
        last = i + 1;
    }
    out.extend_from_slice(&body[last..]);
}
