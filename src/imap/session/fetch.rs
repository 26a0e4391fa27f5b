//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2). Items come back in the order asked, with
//! UID first for UID FETCH. Message bodies are written from the store's buffer (often a
//! mapped file) without an extra copy.
//!
//! Sections inside a message (`BODY[1.2]`, `BODY[2.MIME]`, ...) are read by byte range
//! when the message's part map (`mime.parts`) is cached and the store can read ranges;
//! otherwise the message is read and parsed, and its part map offered to the cache.

use std::borrow::Cow;

mod ranges;

use super::{blocking, Session, Status};
use crate::imap::command::FetchAtt;
use crate::imap::response::ResponseCode;
use crate::imap::response::{push_astring, push_literal};
use crate::imap::syntax::{bodystructure, envelope};
use crate::mailbox::message::{self, PartMap, Section, SectionText};
use crate::mailbox::search::NumSet;
use crate::mailbox::{
    date, ErrorKind, Flags, Mailbox, StoreOp, SysFlags, UNKNOWN_DATE, UNKNOWN_SIZE,
};
use ranges::{is_part_section, read_ranges};

/// Cache field names for FETCH items whose encoded form is worth keeping (opaque to the
/// store; the index engine decides per user whether to keep them).
pub(super) const ENVELOPE_FIELD: &str = "imap.envelope";
const BODY_FIELD: &str = "imap.body";
const BODYSTRUCTURE_FIELD: &str = "imap.bodystructure";
/// The message's MIME structure with byte offsets ([`PartMap`]): lets sections inside
/// the message be read by range.
pub(super) const PARTS_FIELD: &str = "mime.parts";

/// Messages handled per cache lookup (bounds the memory of `FETCH 1:*`).
const CHUNK: usize = 512;

/// The cached values of one chunk, copied out of the cache under one lookup per field
/// into one reused buffer (no allocation per value).
#[derive(Default)]
struct ChunkCache {
    bytes: Vec<u8>,
    /// `spans[f * n + k]`: where field `f`'s value for message `k` of the chunk is.
    spans: Vec<Option<(usize, usize)>>,
    n: usize,
}

impl ChunkCache {
    fn fill(&mut self, mailbox: &dyn Mailbox, uids: &[u32], fields: &[&str]) {
        self.bytes.clear();
        self.spans.clear();
        self.n = uids.len();
        for field in fields {
            let base = self.spans.len();
            self.spans.resize(base + uids.len(), None);
            let (bytes, spans) = (&mut self.bytes, &mut self.spans);
            mailbox.cache_lookup(uids, field, &mut |k, v| {
                if let (Some(v), Some(slot)) = (v, spans.get_mut(base + k)) {
                    let start = bytes.len();
                    bytes.extend_from_slice(v);
                    *slot = Some((start, bytes.len()));
                }
            });
        }
    }

    /// Field `f`'s cached value for message `k` of the chunk.
    fn get(&self, f: usize, k: usize) -> Option<&[u8]> {
        let (start, end) = (*self.spans.get(f * self.n + k)?)?;
        self.bytes.get(start..end)
    }
}

/// `n` in decimal, without allocating.
fn push_num(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// The message is gone (expunged by someone else meanwhile): left out of the answer.
/// The sizes of the messages at `chunk` (view indexes) that the snapshot does not know,
/// as (uid, size) in view order; `None` for a message gone meanwhile.
fn unknown_sizes(view: &super::view::View, chunk: &[usize]) -> Vec<(u32, Option<u64>)> {
    let unknown: Vec<u32> = (chunk.iter())
        .filter_map(|&i| view.meta(i))
        .filter(|m| m.size == UNKNOWN_SIZE)
        .map(|m| m.uid)
        .collect();
    if unknown.is_empty() {
        return Vec::new();
    }
    let sizes = blocking(|| view.mailbox.sizes(&unknown));
    unknown.into_iter().zip(sizes).collect()
}

fn vanished_error(e: &crate::mailbox::Error) -> bool {
    e.kind == ErrorKind::Expunged || e.kind == ErrorKind::NonExistent
}

fn cache_field(item: &FetchAtt) -> Option<&'static str> {
    match item {
        FetchAtt::Envelope => Some(ENVELOPE_FIELD),
        FetchAtt::Body => Some(BODY_FIELD),
        FetchAtt::BodyStructure => Some(BODYSTRUCTURE_FIELD),
        _ => None,
    }
}

impl Session {
    pub(super) async fn fetch(&mut self, uid: bool, set: &NumSet, atts: &[FetchAtt]) -> Status {
        let Some(view) = self.view.as_mut() else {
            return Status::bad("No mailbox selected.");
        };
        let indexes = if uid {
            view.resolve_uid(set)
        } else {
            match view.resolve_seq(set) {
                Ok(ix) => ix,
                Err(msg) => return Status::bad(msg),
            }
        };
        // UID FETCH always returns UID, first (RFC 3501 §6.4.8).
        let mut items: Vec<FetchAtt> = Vec::with_capacity(atts.len() + 1);
        if uid {
            items.push(FetchAtt::Uid);
        }
        items.extend(
            atts.iter()
                .filter(|a| !(uid && **a == FetchAtt::Uid))
                .cloned(),
        );

        // Non-PEEK body fetches set \Seen (RFC 3501 §6.4.5); the new FLAGS are reported.
        let sets_seen = items.iter().any(|a| {
            matches!(
                a,
                FetchAtt::Rfc822 | FetchAtt::Rfc822Text | FetchAtt::BodySection { peek: false, .. }
            )
        });
        let mut flags_changed = std::collections::HashSet::new();
        if sets_seen && !view.read_only {
            let unseen: Vec<u32> = indexes
                .iter()
                .filter_map(|&i| view.meta(i))
                .filter(|m| !m.flags.sys.contains(SysFlags::SEEN) && !view.is_expunged(m.uid))
                .map(|m| m.uid)
                .collect();
            if !unseen.is_empty() {
                let seen = Flags {
                    sys: SysFlags::SEEN,
                    keywords: Vec::new(),
                };
                match blocking(|| view.mailbox.store(&unseen, StoreOp::Add, &seen)) {
                    Ok(changed) => {
                        // Their FLAGS may carry keywords another session just set.
                        view.announce_keywords(
                            changed.iter().flat_map(|(_, f)| f.keywords.iter()),
                            &mut self.conn.out,
                        );
                        for (u, f) in changed {
                            view.set_flags(u, f);
                            flags_changed.insert(u);
                        }
                    }
                    Err(e) => {
                        let st = self.storage_error("fetch: setting \\Seen", &e);
                        return st;
                    }
                }
            }
        }
        let needs_content = items.iter().any(|a| {
            !matches!(
                a,
                FetchAtt::Uid | FetchAtt::Flags | FetchAtt::InternalDate | FetchAtt::Rfc822Size
            )
        });
        // ENVELOPE and header sections need only the header block, not the attachments.
        // Part sections are counted apart: byte ranges may answer them.
        let has_part_items = items.iter().any(is_part_section);
        let needs_body_other = items.iter().any(|a| match a {
            _ if is_part_section(a) => false,
            FetchAtt::Uid
            | FetchAtt::Flags
            | FetchAtt::InternalDate
            | FetchAtt::Rfc822Size
            | FetchAtt::Envelope
            | FetchAtt::Rfc822Header => false,
            FetchAtt::BodySection { section, .. } => {
                !(section.part.is_empty()
                    && matches!(
                        section.text,
                        Some(
                            SectionText::Header
                                | SectionText::HeaderFields(_)
                                | SectionText::HeaderFieldsNot(_)
                        )
                    ))
            }
            _ => true,
        });
        let wants_flags = items.contains(&FetchAtt::Flags);
        let wants_size = items.contains(&FetchAtt::Rfc822Size);
        let mut cached_fields: Vec<&'static str> = items.iter().filter_map(cache_field).collect();
        // Fields answering items directly come first; the part map (looked up only when a
        // part section is asked: that use drives its caching decision) comes last.
        let item_fields = cached_fields.len();
        let parts_field = has_part_items.then(|| {
            cached_fields.push(PARTS_FIELD);
            item_fields
        });
        // items[n]'s field as an index into cached_fields.
        let item_field: Vec<Option<usize>> = (items.iter())
            .map(|a| cache_field(a).and_then(|f| cached_fields.iter().position(|x| *x == f)))
            .collect();
        // Items that need the message itself even when every cacheable item was cached.
        let needs_content_uncached = items.iter().any(|a| {
            cache_field(a).is_none()
                && !is_part_section(a)
                && needs_content
                && !matches!(
                    a,
                    FetchAtt::Uid | FetchAtt::Flags | FetchAtt::InternalDate | FetchAtt::Rfc822Size
                )
        });
        let mut vanished = false;
        let mut uids: Vec<u32> = Vec::with_capacity(CHUNK.min(indexes.len()));
        let mut cache = ChunkCache::default();
        for chunk in indexes.chunks(CHUNK) {
            let Some(view) = self.view.as_ref() else {
                break;
            };
            uids.clear();
            uids.extend(chunk.iter().map(|&i| view.uid_at(i).unwrap_or(0)));
            if !cached_fields.is_empty() {
                blocking(|| cache.fill(view.mailbox.as_ref(), &uids, &cached_fields));
            }
            // Sizes the store has not computed yet (Maildir names without `W=`): asked
            // once per chunk.
            let sizes = if wants_size {
                unknown_sizes(view, chunk)
            } else {
                Vec::new()
            };
            for (k, &i) in chunk.iter().enumerate() {
                let Some(view) = self.view.as_ref() else {
                    break;
                };
                let Some(meta) = view.meta(i) else {
                    continue;
                };
                let uid = meta.uid;
                let size = match meta.size {
                    UNKNOWN_SIZE => match sizes.binary_search_by_key(&uid, |(u, _)| *u) {
                        Ok(k) if sizes[k].1.is_some() => sizes[k].1.unwrap_or(0),
                        _ if !wants_size => UNKNOWN_SIZE,
                        _ => {
                            vanished = true;
                            continue;
                        }
                    },
                    n => n,
                };
                let all_cached = (0..item_fields).all(|f| cache.get(f, k).is_some());
                // A cached part map, usable when it describes a message of today's size.
                let part_map = parts_field
                    .and_then(|f| cache.get(f, k))
                    .and_then(PartMap::decode)
                    .filter(|m| m.size() == size);
                let has_part_map = part_map.is_some();
                let ranged = match part_map {
                    Some(map) => {
                        match blocking(|| read_ranges(view.mailbox.as_ref(), uid, &map, &items)) {
                            Ok(r) => r,
                            Err(e) if vanished_error(&e) => {
                                vanished = true;
                                continue;
                            }
                            Err(e) => return self.storage_error("fetch", &e),
                        }
                    }
                    None => None,
                };
                let parts_unanswered = has_part_items && ranged.is_none();
                let ranged = ranged.unwrap_or_default();
                let needs_body = needs_body_other || parts_unanswered;
                let data = if needs_content
                    && (needs_content_uncached || !all_cached || parts_unanswered)
                {
                    let read = || {
                        if needs_body {
                            view.mailbox.fetch_message(uid)
                        } else {
                            view.mailbox.fetch_header(uid)
                        }
                    };
                    match blocking(read) {
                        Ok(d) => Some(d),
                        Err(e) if vanished_error(&e) => {
                            vanished = true;
                            continue;
                        }
                        Err(e) => return self.storage_error("fetch", &e),
                    }
                } else {
                    None
                };
                let parsed = data.as_deref().map(message::parse);
                // Offer the part map of a message read whole (the cache keeps it if this
                // user's clients fetch parts: see the caching decisions).
                if let (Some(d), Some(p), true, false) = (
                    data.as_deref(),
                    parsed.as_ref(),
                    parts_unanswered,
                    has_part_map,
                ) {
                    if d.len() as u64 == size {
                        if let Some(enc) = PartMap::encode(p, size) {
                            blocking(|| view.mailbox.cache_offer(uid, PARTS_FIELD, &enc));
                        }
                    }
                }
                // The response is built straight into the connection's output buffer.
                let line = &mut self.conn.out;
                line.extend_from_slice(b"* ");
                push_num(line, i as u64 + 1);
                line.extend_from_slice(b" FETCH (");
                let mut literal_tail: Option<Cow<[u8]>> = None;
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        line.push(b' ');
                    }
                    match item {
                        FetchAtt::Uid => {
                            line.extend_from_slice(b"UID ");
                            push_num(line, u64::from(uid));
                        }
                        FetchAtt::Flags => {
                            line.extend_from_slice(b"FLAGS ");
                            view.flag_list(&meta, line);
                        }
                        FetchAtt::InternalDate => {
                            let when = if meta.internal_date == UNKNOWN_DATE {
                                // Not filled in yet after a first scan: ask now.
                                blocking(|| view.mailbox.internal_date(uid)).unwrap_or(0)
                            } else {
                                meta.internal_date
                            };
                            line.extend_from_slice(b"INTERNALDATE \"");
                            date::push_imap_datetime(line, when);
                            line.push(b'"');
                        }
                        FetchAtt::Rfc822Size => {
                            line.extend_from_slice(b"RFC822.SIZE ");
                            push_num(line, size);
                        }
                        FetchAtt::Envelope | FetchAtt::Body | FetchAtt::BodyStructure => {
                            let (name, field): (&[u8], &str) = match item {
                                FetchAtt::Envelope => (b"ENVELOPE ", ENVELOPE_FIELD),
                                FetchAtt::Body => (b"BODY ", BODY_FIELD),
                                _ => (b"BODYSTRUCTURE ", BODYSTRUCTURE_FIELD),
                            };
                            line.extend_from_slice(name);
                            let hit = item_field.get(n).copied().flatten();
                            if let Some(v) = hit.and_then(|f| cache.get(f, k)) {
                                line.extend_from_slice(v);
                            } else if let (Some(d), Some(p)) = (data.as_deref(), parsed.as_ref()) {
                                let start = line.len();
                                match item {
                                    FetchAtt::Envelope => envelope::envelope(d, p, line),
                                    FetchAtt::Body => {
                                        bodystructure::bodystructure(d, p, false, line)
                                    }
                                    _ => bodystructure::bodystructure(d, p, true, line),
                                }
                                let value = line.get(start..).unwrap_or_default();
                                blocking(|| view.mailbox.cache_offer(uid, field, value));
                            }
                        }
                        FetchAtt::Rfc822
                        | FetchAtt::Rfc822Header
                        | FetchAtt::Rfc822Text
                        | FetchAtt::BodySection { .. } => {
                            let from_ranges = ranged.get(n).and_then(Option::as_ref);
                            let whole = data.as_deref().zip(parsed.as_ref());
                            if from_ranges.is_none() && whole.is_none() {
                                continue;
                            }
                            let (name, section, partial) = match item {
                                FetchAtt::Rfc822 => {
                                    ("RFC822".to_string(), Section::default(), None)
                                }
                                FetchAtt::Rfc822Header => (
                                    "RFC822.HEADER".to_string(),
                                    Section {
                                        part: vec![],
                                        text: Some(SectionText::Header),
                                    },
                                    None,
                                ),
                                FetchAtt::Rfc822Text => (
                                    "RFC822.TEXT".to_string(),
                                    Section {
                                        part: vec![],
                                        text: Some(SectionText::Text),
                                    },
                                    None,
                                ),
                                FetchAtt::BodySection {
                                    section, partial, ..
                                } => (section_name(section, *partial), section.clone(), *partial),
                                _ => continue,
                            };
                            let (body, partial_done): (Option<Cow<[u8]>>, bool) =
                                match (from_ranges, whole) {
                                    (Some((b, done)), _) => {
                                        (b.as_deref().map(Cow::Borrowed), *done)
                                    }
                                    (None, Some((d, _))) if section == Section::default() => {
                                        (Some(Cow::Borrowed(d)), false)
                                    }
                                    (None, Some((d, p))) => {
                                        (message::section(d, p, &section), false)
                                    }
                                    (None, None) => continue,
                                };
                            line.extend_from_slice(name.as_bytes());
                            line.push(b' ');
                            // A section the message does not have is an empty string, as
                            // Dovecot answers (clients treat NIL here as an error).
                            let body = body.unwrap_or(Cow::Borrowed(&[]));
                            let body = match partial {
                                Some((origin, count)) if !partial_done => {
                                    let start = (origin as usize).min(body.len());
                                    let end = start.saturating_add(count as usize).min(body.len());
                                    slice_cow(body, start, end)
                                }
                                _ => body,
                            };
                            let body = without_nuls(body);
                            if body.len() >= 8192 && n + 1 == items.len() {
                                // The last item: send the big literal straight from the message
                                // buffer instead of copying it into the output buffer.
                                line.push(b'{');
                                push_num(line, body.len() as u64);
                                line.extend_from_slice(b"}\r\n");
                                literal_tail = Some(body);
                            } else if body.is_empty() {
                                line.extend_from_slice(b"\"\"");
                            } else {
                                push_literal(line, &body);
                            }
                        }
                    }
                }
                // After a literal sent on its own, the rest of the line waits in `tail`.
                let mut tail = Vec::new();
                let rest = if literal_tail.is_some() {
                    &mut tail
                } else {
                    line
                };
                if !wants_flags && !flags_changed.is_empty() && flags_changed.contains(&uid) {
                    rest.extend_from_slice(b" FLAGS ");
                    view.flag_list(&meta, rest);
                }
                rest.extend_from_slice(b")\r\n");
                if let Some(body) = literal_tail {
                    let ok = self.conn.write_bytes(&body).await.is_ok();
                    self.conn.out.extend_from_slice(&tail);
                    if !ok {
                        return Status::no("Connection error.");
                    }
                }
                if self.conn.write_if_full().await.is_err() {
                    return Status::no("Connection error.");
                }
            }
        }
        if vanished {
            // RFC 2180 §4.1: messages expunged by another session whose content is gone
            // are left out; everything still known (metadata, cached items) and every
            // other message was answered, so the command succeeded. As Dovecot does:
            // OK with the RFC 5530 code, not NO (which clients take for a failed FETCH).
            Status::ok_code(
                ResponseCode::ExpungeIssued,
                "Some messages were already expunged.",
            )
        } else {
            Status::ok("Fetch completed.")
        }
    }
}

/// RFC 3501 §9: literal octets are CHAR8 (%x01-ff), so a NUL in a message is sent as 0x80,
/// which keeps every octet count (RFC822.SIZE, partial offsets) exact. Dovecot does the same.
fn without_nuls(c: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    if memchr::memchr(0, &c).is_none() {
        return c;
    }
    Cow::Owned(c.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect())
}

fn slice_cow(c: Cow<'_, [u8]>, start: usize, end: usize) -> Cow<'_, [u8]> {
    match c {
        Cow::Borrowed(b) => Cow::Borrowed(b.get(start..end).unwrap_or(&[])),
        Cow::Owned(v) => Cow::Owned(v.get(start..end).unwrap_or(&[]).to_vec()),
    }
}

/// `BODY[1.HEADER.FIELDS (A B)]<0>` as echoed in the response (RFC 3501 §7.4.2: only the
/// origin of a partial fetch is returned).
fn section_name(section: &Section, partial: Option<(u32, u32)>) -> String {
    let mut s = String::from("BODY[");
    let parts: Vec<String> = section.part.iter().map(|p| p.to_string()).collect();
    s.push_str(&parts.join("."));
    if let Some(text) = &section.text {
        if !section.part.is_empty() {
            s.push('.');
        }
        let fields = |names: &Vec<String>| {
            let mut out = Vec::new();
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                push_astring(&mut out, n.as_bytes());
            }
            String::from_utf8_lossy(&out).into_owned()
        };
        match text {
            SectionText::Header => s.push_str("HEADER"),
            SectionText::HeaderFields(f) => s.push_str(&format!("HEADER.FIELDS ({})", fields(f))),
            SectionText::HeaderFieldsNot(f) => {
                s.push_str(&format!("HEADER.FIELDS.NOT ({})", fields(f)))
            }
            SectionText::Text => s.push_str("TEXT"),
            SectionText::Mime => s.push_str("MIME"),
        }
    }
    s.push(']');
    if let Some((origin, _)) = partial {
        s.push_str(&format!("<{origin}>"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for n in [0u64, 7, 10, 99, 100, 4_294_967_295, u64::MAX] {
            let mut out = b"x".to_vec();
            push_num(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn chunk_cache_spans() {
        let mut c = ChunkCache {
            n: 3,
            ..ChunkCache::default()
        };
        c.bytes.extend_from_slice(b"abcde");
        c.spans = vec![Some((0, 2)), None, Some((2, 5)), None, Some((5, 5)), None];
        assert_eq!(c.get(0, 0), Some(&b"ab"[..]));
        assert_eq!(c.get(0, 1), None);
        assert_eq!(c.get(0, 2), Some(&b"cde"[..]));
        assert_eq!(c.get(1, 1), Some(&b""[..]));
        assert_eq!(c.get(2, 0), None);
    }

    #[test]
    fn section_names() {
        let s = Section {
            part: vec![1, 2],
            text: Some(SectionText::HeaderFields(vec!["From".into(), "X Y".into()])),
        };
        assert_eq!(
            section_name(&s, Some((10, 5))),
            "BODY[1.2.HEADER.FIELDS (From \"X Y\")]<10>"
        );
        assert_eq!(section_name(&Section::default(), None), "BODY[]");
        let t = Section {
            part: vec![],
            text: Some(SectionText::Text),
        };
        assert_eq!(section_name(&t, None), "BODY[TEXT]");
    }
}
