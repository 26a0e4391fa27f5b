//! Sections inside a message (`1.2`, `2.MIME`, `1.HEADER.FIELDS (…)`) answered from its
//! part map ([`PartMap`], the `mime.parts` cache value) by reading only the byte ranges
//! they cover (RFC 3501 §6.4.5), with the same octets a full parse gives.

use crate::mailbox::message::{section, Located, PartMap, Section};
use crate::mailbox::{Mailbox, MessageData, Result, Uid};

fn into_vec(d: MessageData) -> Vec<u8> {
    match d {
        MessageData::Owned(v) => v,
    }
}

/// `bytes` cut to the partial `<origin.count>` (RFC 3501 §6.4.5).
pub(super) fn cut(len: usize, partial: Option<(u32, u32)>) -> std::ops::Range<usize> {
    match partial {
        Some((origin, count)) => {
            let start = (origin as usize).min(len);
            start..start.saturating_add(count as usize).min(len)
        }
        None => 0..len,
    }
}

/// The octets of `s` (cut to `partial`) read by range as `map` places them; empty when
/// the message has no such section. `Ok(None)`: the store cannot read a range of this
/// message now (the caller reads the whole message).
pub(super) fn read(
    mailbox: &dyn Mailbox,
    uid: Uid,
    map: &PartMap,
    s: &Section,
    partial: Option<(u32, u32)>,
) -> Result<Option<Vec<u8>>> {
    match map.locate(s) {
        None => Ok(Some(Vec::new())),
        Some(Located::Range(r)) => {
            // Only the octets a partial fetch returns.
            let r = match partial {
                Some((origin, count)) => {
                    let start = r.start.saturating_add(u64::from(origin)).min(r.end);
                    start..start.saturating_add(u64::from(count)).min(r.end)
                }
                None => r,
            };
            if r.is_empty() {
                return Ok(Some(Vec::new()));
            }
            Ok(mailbox.fetch_range(uid, r)?.map(into_vec))
        }
        Some(Located::Fields {
            header,
            names,
            keep,
        }) => {
            let Some(hdr) = mailbox.fetch_range(uid, header)? else {
                return Ok(None);
            };
            let mut v = section::header_fields(&hdr, names, keep);
            let r = cut(v.len(), partial);
            v.truncate(r.end);
            v.drain(..r.start);
            Ok(Some(v))
        }
    }
}
