//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2). Items come back in the order asked, with
//! UID first for UID FETCH. Message bodies are written from the store's buffer (often a
//! mapped file) without an extra copy.

use std::borrow::Cow;

use super::{blocking, Session, Status};
use crate::imap::command::FetchAtt;
use crate::imap::response::{push_astring, push_literal};
use crate::imap::syntax::{bodystructure, envelope};
use crate::mailbox::message::{self, Section, SectionText};
use crate::mailbox::search::NumSet;
use crate::mailbox::{date, ErrorKind, Flags, StoreOp, SysFlags, UNKNOWN_DATE};

/// Cache field names for FETCH items whose encoded form is worth keeping (opaque to the
/// store; the index engine decides per user whether to keep them).
pub(super) const ENVELOPE_FIELD: &str = "imap.envelope";
const BODY_FIELD: &str = "imap.body";
const BODYSTRUCTURE_FIELD: &str = "imap.bodystructure";

/// Messages handled per cache lookup (bounds the memory of `FETCH 1:*`).
const CHUNK: usize = 512;

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
        let needs_body = items.iter().any(|a| match a {
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
        let cached_fields: Vec<&'static str> = items.iter().filter_map(cache_field).collect();
        // Items that need the message itself even when every cacheable item was cached.
        let needs_content_uncached = items.iter().any(|a| {
            cache_field(a).is_none()
                && needs_content
                && !matches!(
                    a,
                    FetchAtt::Uid | FetchAtt::Flags | FetchAtt::InternalDate | FetchAtt::Rfc822Size
                )
        });
        let mut vanished = false;
        for chunk in indexes.chunks(CHUNK) {
            let Some(view) = self.view.as_ref() else {
                break;
            };
            let uids: Vec<u32> = chunk.iter().map(|&i| view.uid_at(i).unwrap_or(0)).collect();
            // cached[f][k]: value of cached_fields[f] for chunk[k]
            let mut cached: Vec<Vec<Option<Vec<u8>>>> = Vec::with_capacity(cached_fields.len());
            for field in &cached_fields {
                let mut values = vec![None; uids.len()];
                blocking(|| {
                    view.mailbox.cache_lookup(&uids, field, &mut |k, v| {
                        if let (Some(slot), Some(v)) = (values.get_mut(k), v) {
                            *slot = Some(v.to_vec());
                        }
                    })
                });
                cached.push(values);
            }
            for (k, &i) in chunk.iter().enumerate() {
                let Some(view) = self.view.as_ref() else {
                    break;
                };
                let Some(meta) = view.meta(i).map(|m| m.into_owned()) else {
                    continue;
                };
                let hit = |field: &str| -> Option<&[u8]> {
                    let f = cached_fields.iter().position(|x| *x == field)?;
                    cached.get(f)?.get(k)?.as_deref()
                };
                let all_cached = cached_fields.iter().all(|f| hit(f).is_some());
                let data = if needs_content && (needs_content_uncached || !all_cached) {
                    let read = || {
                        if needs_body {
                            view.mailbox.fetch_message(meta.uid)
                        } else {
                            view.mailbox.fetch_header(meta.uid)
                        }
                    };
                    match blocking(read) {
                        Ok(d) => Some(d),
                        Err(e)
                            if e.kind == ErrorKind::Expunged
                                || e.kind == ErrorKind::NonExistent =>
                        {
                            vanished = true;
                            continue;
                        }
                        Err(e) => return self.storage_error("fetch", &e),
                    }
                } else {
                    None
                };
                let parsed = data.as_deref().map(message::parse);
                let mut line = format!("* {} FETCH (", i + 1).into_bytes();
                let mut first = true;
                let mut literal_tail: Option<Cow<[u8]>> = None;
                for item in &items {
                    if !first {
                        line.push(b' ');
                    }
                    first = false;
                    match item {
                        FetchAtt::Uid => {
                            line.extend_from_slice(format!("UID {}", meta.uid).as_bytes())
                        }
                        FetchAtt::Flags => {
                            line.extend_from_slice(b"FLAGS ");
                            view.flag_list(&meta, &mut line);
                        }
                        FetchAtt::InternalDate => {
                            let when = if meta.internal_date == UNKNOWN_DATE {
                                // Not filled in yet after a first scan: ask now.
                                blocking(|| view.mailbox.internal_date(meta.uid)).unwrap_or(0)
                            } else {
                                meta.internal_date
                            };
                            line.extend_from_slice(
                                format!("INTERNALDATE \"{}\"", date::imap_datetime(when))
                                    .as_bytes(),
                            );
                        }
                        FetchAtt::Rfc822Size => {
                            line.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes())
                        }
                        FetchAtt::Envelope | FetchAtt::Body | FetchAtt::BodyStructure => {
                            let (name, field): (&[u8], &str) = match item {
                                FetchAtt::Envelope => (b"ENVELOPE ", ENVELOPE_FIELD),
                                FetchAtt::Body => (b"BODY ", BODY_FIELD),
                                _ => (b"BODYSTRUCTURE ", BODYSTRUCTURE_FIELD),
                            };
                            line.extend_from_slice(name);
                            if let Some(v) = hit(field) {
                                line.extend_from_slice(v);
                            } else if let (Some(d), Some(p)) = (data.as_deref(), parsed.as_ref()) {
                                let start = line.len();
                                match item {
                                    FetchAtt::Envelope => envelope::envelope(d, p, &mut line),
                                    FetchAtt::Body => {
                                        bodystructure::bodystructure(d, p, false, &mut line)
                                    }
                                    _ => bodystructure::bodystructure(d, p, true, &mut line),
                                }
                                let value = &line[start..];
                                blocking(|| view.mailbox.cache_offer(meta.uid, field, value));
                            }
                        }
                        FetchAtt::Rfc822
                        | FetchAtt::Rfc822Header
                        | FetchAtt::Rfc822Text
                        | FetchAtt::BodySection { .. } => {
                            let (Some(d), Some(p)) = (data.as_deref(), parsed.as_ref()) else {
                                continue;
                            };
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
                            let body: Option<Cow<[u8]>> = if section == Section::default() {
                                Some(Cow::Borrowed(d))
                            } else {
                                message::section(d, p, &section)
                            };
                            line.extend_from_slice(name.as_bytes());
                            line.push(b' ');
                            // A section the message does not have is an empty string, as
                            // Dovecot answers (clients treat NIL here as an error).
                            let body = body.unwrap_or(Cow::Borrowed(&[]));
                            let body = match partial {
                                Some((origin, count)) => {
                                    let start = (origin as usize).min(body.len());
                                    let end = start.saturating_add(count as usize).min(body.len());
                                    slice_cow(body, start, end)
                                }
                                None => body,
                            };
                            let body = without_nuls(body);
                            let is_last = items.last().is_some_and(|l| std::ptr::eq(l, item));
                            if body.len() >= 8192 && is_last {
                                // The last item: send the big literal straight from the message
                                // buffer instead of copying it into the line.
                                line.extend_from_slice(
                                    format!("{{{}}}\r\n", body.len()).as_bytes(),
                                );
                                literal_tail = Some(body);
                            } else if body.is_empty() {
                                line.extend_from_slice(b"\"\"");
                            } else {
                                push_literal(&mut line, &body);
                            }
                        }
                    }
                }
                let mut tail = Vec::new();
                if !wants_flags && flags_changed.contains(&meta.uid) {
                    tail.extend_from_slice(b" FLAGS ");
                    view.flag_list(&meta, &mut tail);
                }
                tail.extend_from_slice(b")\r\n");
                match literal_tail {
                    Some(body) => {
                        self.conn.out.extend_from_slice(&line);
                        let ok = self.conn.write_bytes(&body).await.is_ok();
                        self.conn.out.extend_from_slice(&tail);
                        if !ok {
                            return Status::no("Connection error.");
                        }
                    }
                    None => {
                        line.extend_from_slice(&tail);
                        if self.conn.write_bytes(&line).await.is_err() {
                            return Status::no("Connection error.");
                        }
                    }
                }
            }
        }
        if vanished {
            Status::no_code("EXPUNGEISSUED", "Some messages were also expunged.")
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
