//! What a FETCH asks of each message, worked out once per command: the items in answer
//! order, the cached fields they may be answered from, whether sections inside the
//! message or the whole message are asked, and whether the command sets `\Seen`.

use crate::imap::command::FetchAtt;
use crate::imap::syntax::{bodystructure, envelope};
use crate::mailbox::access::{self, Derived, Needs};
use crate::mailbox::message::{Part, Section, SectionText};

/// Cache field names for FETCH items whose encoded form is worth keeping (opaque to the
/// store; the index engine decides per user whether to keep them).
const ENVELOPE_FIELD: &str = "imap.envelope";

pub(in crate::imap::session) static ENVELOPE: Derived = Derived {
    field: ENVELOPE_FIELD,
    needs: Needs::Header,
    compute: envelope::envelope,
};

fn body(data: &[u8], root: &Part, out: &mut Vec<u8>) {
    bodystructure::bodystructure(data, root, false, out)
}

fn body_structure(data: &[u8], root: &Part, out: &mut Vec<u8>) {
    bodystructure::bodystructure(data, root, true, out)
}

static BODY: Derived = Derived {
    field: "imap.body",
    needs: Needs::Whole,
    compute: body,
};

static BODYSTRUCTURE: Derived = Derived {
    field: "imap.bodystructure",
    needs: Needs::Whole,
    compute: body_structure,
};

fn derived_of(item: &FetchAtt) -> Option<&'static Derived> {
    match item {
        FetchAtt::Envelope => Some(&ENVELOPE),
        FetchAtt::Body => Some(&BODY),
        FetchAtt::BodyStructure => Some(&BODYSTRUCTURE),
        _ => None,
    }
}

/// A body item as a section: RFC822 is `BODY[]`, RFC822.HEADER `BODY.PEEK[HEADER]`,
/// RFC822.TEXT `BODY[TEXT]` (RFC 3501 §6.4.5).
pub(super) fn section_of(item: &FetchAtt) -> Option<(Section, Option<(u32, u32)>)> {
    let text = |t| Section {
        part: Vec::new(),
        text: Some(t),
    };
    match item {
        FetchAtt::Rfc822 => Some((Section::default(), None)),
        FetchAtt::Rfc822Header => Some((text(SectionText::Header), None)),
        FetchAtt::Rfc822Text => Some((text(SectionText::Text), None)),
        FetchAtt::BodySection {
            section, partial, ..
        } => Some((section.clone(), *partial)),
        _ => None,
    }
}

/// A section that needs the whole message whatever is cached (not a header section,
/// not inside the message where a part map may answer it by range).
fn needs_whole(item: &FetchAtt) -> bool {
    section_of(item).is_some_and(|(s, _)| {
        s.part.is_empty()
            && !matches!(
                s.text,
                Some(
                    SectionText::Header
                        | SectionText::HeaderFields(_)
                        | SectionText::HeaderFieldsNot(_)
                )
            )
    })
}

pub(super) struct FetchPlan {
    /// The items in answer order (UID first for UID FETCH, RFC 3501 §6.4.8).
    pub items: Vec<FetchAtt>,
    /// `derived[n]`: item n's field as an index into `access.derived`.
    pub derived: Vec<Option<usize>>,
    pub access: access::Plan<'static>,
    /// Non-PEEK body fetches set `\Seen` (RFC 3501 §6.4.5).
    pub sets_seen: bool,
    pub wants_flags: bool,
}

impl FetchPlan {
    pub fn new(uid: bool, atts: &[FetchAtt]) -> FetchPlan {
        let mut items: Vec<FetchAtt> = Vec::with_capacity(atts.len() + 1);
        if uid {
            items.push(FetchAtt::Uid);
        }
        items.extend(
            atts.iter()
                .filter(|a| !(uid && **a == FetchAtt::Uid))
                .cloned(),
        );
        let mut access = access::Plan::default();
        let derived = (items.iter())
            .map(|a| {
                let d = derived_of(a)?;
                let pos = access.derived.iter().position(|x| std::ptr::eq(*x, d));
                Some(pos.unwrap_or_else(|| {
                    access.derived.push(d);
                    access.derived.len() - 1
                }))
            })
            .collect();
        access.part_sections = items
            .iter()
            .any(|a| section_of(a).is_some_and(|(s, _)| !s.part.is_empty()));
        access.whole = items.iter().any(needs_whole);
        access.header_sections = items
            .iter()
            .any(|a| section_of(a).is_some_and(|(s, _)| s.header_only()));
        let sets_seen = items.iter().any(|a| {
            matches!(
                a,
                FetchAtt::Rfc822 | FetchAtt::Rfc822Text | FetchAtt::BodySection { peek: false, .. }
            )
        });
        let wants_flags = items.contains(&FetchAtt::Flags);
        FetchPlan {
            items,
            derived,
            access,
            sets_seen,
            wants_flags,
        }
    }
}

impl FetchPlan {
    /// Whether the items may need more than what the mailbox's listing knows (UID,
    /// FLAGS, RFC822.SIZE, INTERNALDATE): cached fields or the message itself.
    pub fn reads_messages(&self) -> bool {
        !self.items.iter().all(|a| {
            matches!(
                a,
                FetchAtt::Uid | FetchAtt::Flags | FetchAtt::Rfc822Size | FetchAtt::InternalDate
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_of_items() {
        let sec = |part: Vec<u32>, text, peek| FetchAtt::BodySection {
            peek,
            section: Section { part, text },
            partial: None,
        };
        let p = FetchPlan::new(
            true,
            &[
                FetchAtt::Envelope,
                FetchAtt::Uid,
                FetchAtt::Envelope,
                FetchAtt::Flags,
            ],
        );
        assert_eq!(p.items[0], FetchAtt::Uid);
        assert_eq!(p.items.len(), 4);
        assert_eq!(p.derived, vec![None, Some(0), Some(0), None]);
        assert_eq!(p.access.derived.len(), 1);
        assert!(!p.access.whole && !p.access.part_sections && !p.sets_seen && p.wants_flags);
        assert!(p.reads_messages());
        let meta_only = [
            FetchAtt::Flags,
            FetchAtt::Rfc822Size,
            FetchAtt::InternalDate,
        ];
        assert!(!FetchPlan::new(true, &meta_only).reads_messages());
        let p = FetchPlan::new(false, &[sec(vec![], Some(SectionText::Header), false)]);
        assert!(!p.access.whole && p.sets_seen && p.access.header_sections);
        assert!(
            !FetchPlan::new(false, &[FetchAtt::Envelope])
                .access
                .header_sections
        );
        let p = FetchPlan::new(false, &[sec(vec![1], Some(SectionText::Header), true)]);
        assert!(!p.access.header_sections && p.access.part_sections);
        let p = FetchPlan::new(false, &[sec(vec![2], None, true), FetchAtt::BodyStructure]);
        assert!(!p.access.whole && p.access.part_sections && !p.sets_seen);
        let p = FetchPlan::new(false, &[FetchAtt::Rfc822Size, FetchAtt::Rfc822Text]);
        assert!(p.access.whole && p.sets_seen);
    }

    /// ENVELOPE, BODY and BODYSTRUCTURE through the access layer (header-only reads,
    /// cache misses then hits) equal the encoders run on the whole parsed message, on
    /// the MIME corpus and every truncation of it.
    #[test]
    fn derived_items_equal_eager_encoding() {
        use crate::mailbox::access::tests::{variations, Memory};
        use crate::mailbox::access::Batch;
        use crate::mailbox::message::parse;
        let mb = Memory::new(variations());
        let items = [FetchAtt::Envelope, FetchAtt::Body, FetchAtt::BodyStructure];
        let uids: Vec<u32> = (1..=mb.messages.len() as u32).collect();
        for pass in ["cold", "warm"] {
            // Each item alone (ENVELOPE from the header only) and all together.
            let mut plans: Vec<Vec<FetchAtt>> = items.iter().map(|i| vec![i.clone()]).collect();
            plans.push(items.to_vec());
            for atts in plans {
                let plan = FetchPlan::new(false, &atts);
                let mut buf = access::BatchBuffer::default();
                let mut batch = Batch::new(&mb, &plan.access, &mut buf);
                for chunk in uids.chunks(access::BATCH) {
                    batch.prefetch(chunk);
                    for (k, &uid) in chunk.iter().enumerate() {
                        let data = &mb.messages[uid as usize - 1];
                        let root = parse(data);
                        let meta = mb.meta(uid);
                        let msg = batch.message(k, &meta);
                        for (n, item) in plan.items.iter().enumerate() {
                            let f = plan.derived[n].unwrap();
                            let (mut lazy, mut eager) = (Vec::new(), Vec::new());
                            msg.derived_into(f, &mut lazy).unwrap();
                            match item {
                                FetchAtt::Envelope => envelope::envelope(data, &root, &mut eager),
                                FetchAtt::Body => body(data, &root, &mut eager),
                                _ => body_structure(data, &root, &mut eager),
                            }
                            assert_eq!(lazy, eager, "{pass} uid {uid} {item:?}");
                        }
                    }
                }
            }
        }
    }
}
