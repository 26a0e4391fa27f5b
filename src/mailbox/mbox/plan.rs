//! What a rewrite must change so that an mbox file says what the index says: expunged
//! messages removed, and each kept message's hidden fields (`X-UID`, `Status`,
//! `X-Status`, `X-Keywords`, `Content-Length`, and `X-IMAPbase` on the first message
//! only) as wanted.
//!
//! A message whose hidden fields lie together and have room for the new ones (the spaces
//! after `X-Keywords` that Loft and Dovecot leave) gets them in that room, padded to the
//! same length: nothing after it moves. Otherwise its hidden fields are removed where they
//! are and written anew at the end of its header. When no message moved, the plan ends
//! after the last change ([`Plan::rest`]); otherwise it runs to the end of the file.
//!
//! This module knows scanned messages and byte ranges, nothing of files or the index.

use std::ops::Range;

use super::folder::Msg;
use super::meta::{self, Base, Meta};
use super::rewrite::{Piece, Plan};
use super::scan::Mail;

/// Where a message lies and what its hidden fields say: a scanned [`Mail`] or a synced
/// [`Msg`].
pub trait Placed {
    fn from(&self) -> u64;
    fn next(&self) -> Option<u64>;
    fn meta(&self) -> &Meta;
    fn hidden(&self) -> &[Range<u64>];
    fn blank(&self) -> u64;
    fn body_len(&self) -> u64;
}

macro_rules! placed {
    ($t:ty) => {
        impl Placed for $t {
            fn from(&self) -> u64 {
                self.from
            }
            fn next(&self) -> Option<u64> {
                self.next
            }
            fn meta(&self) -> &Meta {
                &self.meta
            }
            fn hidden(&self) -> &[Range<u64>] {
                &self.hidden
            }
            fn blank(&self) -> u64 {
                self.blank
            }
            fn body_len(&self) -> u64 {
                self.end - self.body
            }
        }
    };
}
placed!(Mail);
placed!(Msg);

/// What a kept message's hidden fields must say (`uid`, `flags`, `keywords` are used).
#[derive(Clone, Debug)]
pub struct Want {
    pub keep: bool,
    pub meta: Meta,
}

/// Spaces after `X-Keywords` in fields written anew (room for later keywords).
pub const PAD: usize = 50;

/// One change: `range` of the old file replaced by `bytes`.
struct Edit {
    range: Range<u64>,
    bytes: Vec<u8>,
}

/// The plan that makes the file of `mails` (its length `file_len`) hold `wants` (one per
/// message, in file order), `base` on the first kept message (`None`: no `X-IMAPbase`,
/// for a store that never writes its fields). `None`: nothing to change.
/// (UW-IMAP's pseudo message is the caller's to keep or drop: kept first, it gets `base`.)
pub fn plan<P: Placed>(
    mails: &[P],
    wants: &[Want],
    base: Option<&Base>,
    file_len: u64,
) -> Option<Plan> {
    let mut edits = Vec::new();
    let mut first = true;
    for (m, w) in mails.iter().zip(wants) {
        let next = m.next().unwrap_or(file_len);
        if !w.keep {
            edits.push(Edit {
                range: m.from()..next,
                bytes: Vec::new(),
            });
            continue;
        }
        let want_base = base.filter(|_| first);
        first = false;
        if !needs_fields(m, &w.meta, want_base) {
            continue;
        }
        fields(m, &w.meta, want_base, &mut edits);
    }
    let start = edits.first()?.range.start;
    // Nothing moves only when every edit keeps its length: edits that only cancel out
    // (a message removed, the next ones grown by as much) move what lies between them.
    let in_place = (edits.iter()).all(|e| e.bytes.len() as u64 == e.range.end - e.range.start);
    let mut pieces = Vec::new();
    let mut cursor = start;
    for e in edits {
        if e.range.start > cursor {
            pieces.push(Piece::Keep(cursor..e.range.start));
        }
        if !e.bytes.is_empty() {
            pieces.push(Piece::Bytes(e.bytes));
        }
        cursor = e.range.end;
    }
    let rest = in_place.then_some(cursor);
    if rest.is_none() && cursor < file_len {
        pieces.push(Piece::Keep(cursor..file_len));
    }
    Some(Plan {
        offset: start,
        pieces,
        rest,
        lazy: false,
    })
}

/// The kept messages (indexes) whose hidden fields [`plan`] changes.
pub fn changed<P: Placed>(mails: &[P], wants: &[Want], base: Option<&Base>) -> Vec<usize> {
    let mut first = true;
    let mut out = Vec::new();
    for (i, (m, w)) in mails.iter().zip(wants).enumerate() {
        if !w.keep {
            continue;
        }
        let want_base = base.filter(|_| first);
        first = false;
        if needs_fields(m, &w.meta, want_base) {
            out.push(i);
        }
    }
    out
}

/// Whether the message's hidden fields say something else than wanted.
fn needs_fields(m: &impl Placed, want: &Meta, base: Option<&Base>) -> bool {
    let has = m.meta();
    has.uid != want.uid
        || has.flags != want.flags
        || has.keywords != want.keywords
        || has.base.as_ref() != base
}

/// The edits that give `m` its new hidden fields.
fn fields(m: &impl Placed, want: &Meta, base: Option<&Base>, edits: &mut Vec<Edit>) {
    let body_len = m.body_len();
    let hidden = m.hidden();
    let mut block = Vec::new();
    meta::format(&mut block, base, want, 0, body_len);
    // Together (each field right after the one before) and with room: in place.
    let together = hidden.windows(2).all(|w| w[0].end == w[1].start);
    if let (true, Some(first), Some(last)) = (together, hidden.first(), hidden.last()) {
        let room = (last.end - first.start) as usize;
        if block.len() <= room {
            block.clear();
            meta::format(
                &mut block,
                base,
                want,
                room - block_len(base, want, body_len),
                body_len,
            );
            edits.push(Edit {
                range: first.start..last.end,
                bytes: block,
            });
            return;
        }
    }
    for h in hidden {
        edits.push(Edit {
            range: h.clone(),
            bytes: Vec::new(),
        });
    }
    block.clear();
    meta::format(&mut block, base, want, PAD, body_len);
    edits.push(Edit {
        range: m.blank()..m.blank(),
        bytes: block,
    });
}

/// The length of the fields without padding.
fn block_len(base: Option<&Base>, want: &Meta, body_len: u64) -> usize {
    let mut b = Vec::new();
    meta::format(&mut b, base, want, 0, body_len);
    b.len()
}
