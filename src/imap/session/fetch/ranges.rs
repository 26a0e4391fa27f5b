//! Part sections of FETCH (`BODY[1.2]`, `BODY[2.MIME]`, `BODY[1.HEADER.FIELDS (…)]`, …)
//! answered from a message's part map ([`PartMap`], the `mime.parts` cache value) by
//! reading only the byte ranges they cover (RFC 3501 §6.4.5), with the same octets a full
//! parse gives.
//!
//! Knows sections and the `Mailbox` range read; not how responses are written.

use crate::imap::command::FetchAtt;
use crate::mailbox::message::{self, Located, PartMap};
use crate::mailbox::{Mailbox, MessageData, Uid};

/// A body section inside the message (non-empty part path): what a part map answers.
pub(super) fn is_part_section(item: &FetchAtt) -> bool {
    matches!(item, FetchAtt::BodySection { section, .. } if !section.part.is_empty())
}

/// A section answered from byte ranges: its octets (`None`: the message has no such
/// section) and whether the partial `<a.b>` is already applied.
pub(super) type Ranged = (Option<Vec<u8>>, bool);

fn into_vec(d: MessageData) -> Vec<u8> {
    match d {
        MessageData::Owned(v) => v,
    }
}

/// Answers every part section of `items` by reading only its byte ranges, as `map` places
/// them. `Ok(None)` as soon as the store cannot read one range: the caller reads the whole
/// message. Entry `n` is `None` for items that are not part sections.
pub(super) fn read_ranges(
    mailbox: &dyn Mailbox,
    uid: Uid,
    map: &PartMap,
    items: &[FetchAtt],
) -> crate::mailbox::Result<Option<Vec<Option<Ranged>>>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let FetchAtt::BodySection {
            section, partial, ..
        } = item
        else {
            out.push(None);
            continue;
        };
        if section.part.is_empty() {
            out.push(None);
            continue;
        }
        let ranged = match map.locate(section) {
            None => (None, true),
            Some(Located::Range(r)) => {
                // Only the octets a partial fetch returns (RFC 3501 §6.4.5 `<origin.count>`).
                let (r, done) = match partial {
                    Some((origin, count)) => {
                        let start = r.start.saturating_add(u64::from(*origin)).min(r.end);
                        let end = start.saturating_add(u64::from(*count)).min(r.end);
                        (start..end, true)
                    }
                    None => (r, false),
                };
                let bytes = if r.is_empty() {
                    Vec::new()
                } else {
                    match mailbox.fetch_range(uid, r)? {
                        Some(d) => into_vec(d),
                        None => return Ok(None),
                    }
                };
                (Some(bytes), done)
            }
            Some(Located::Fields {
                header,
                names,
                keep,
            }) => {
                let Some(hdr) = mailbox.fetch_range(uid, header)? else {
                    return Ok(None);
                };
                (
                    Some(message::section::header_fields(&hdr, names, keep)),
                    false,
                )
            }
        };
        out.push(Some(ranged));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::message::{parse, section, Section, SectionText};
    use crate::mailbox::{CopyResult, Error, ErrorKind, Flags, Result, StoreOp, SyncResult};

    /// One message in memory; range reads served when `ranges` is set.
    struct OneMessage {
        data: Vec<u8>,
        ranges: bool,
    }

    impl Mailbox for OneMessage {
        fn name(&self) -> &str {
            "test"
        }
        fn read_only(&self) -> bool {
            true
        }
        fn sync(&mut self) -> Result<SyncResult> {
            Err(Error::new(ErrorKind::Temporary, "not here"))
        }
        fn fetch_message(&self, _: Uid) -> Result<MessageData> {
            Ok(MessageData::Owned(self.data.clone()))
        }
        fn fetch_range(&self, _: Uid, r: std::ops::Range<u64>) -> Result<Option<MessageData>> {
            let got = self.data.get(r.start as usize..r.end as usize);
            Ok(got
                .filter(|_| self.ranges)
                .map(|b| MessageData::Owned(b.to_vec())))
        }
        fn store(&mut self, _: &[Uid], _: StoreOp, _: &Flags) -> Result<Vec<(Uid, Flags)>> {
            Ok(Vec::new())
        }
        fn expunge(&mut self, _: Option<&[Uid]>) -> Result<Vec<Uid>> {
            Ok(Vec::new())
        }
        fn copy_to(&mut self, _: &[Uid], _: &str) -> Result<CopyResult> {
            Ok(CopyResult::default())
        }
    }

    const MSG: &[u8] = b"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
        --b\r\nContent-Type: text/plain\r\n\r\npart one text\r\n\
        --b\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y\r\nSubject: in\r\n\r\ninner body\r\n\
        --b--\r\n";

    #[test]
    fn ranges_give_the_parsed_octets_partials_included() {
        let root = parse(MSG);
        let enc = PartMap::encode(&root, MSG.len() as u64).unwrap();
        let map = PartMap::decode(&enc).unwrap();
        let mut items = vec![FetchAtt::Uid];
        let texts = [
            None,
            Some(SectionText::Mime),
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::HeaderFields(vec!["subject".into()])),
            Some(SectionText::HeaderFieldsNot(vec!["subject".into()])),
        ];
        for part in [vec![1], vec![2], vec![2, 1], vec![3]] {
            for text in &texts {
                for partial in [None, Some((0, 4)), Some((3, 100)), Some((500, 2))] {
                    items.push(FetchAtt::BodySection {
                        peek: true,
                        section: Section {
                            part: part.clone(),
                            text: text.clone(),
                        },
                        partial,
                    });
                }
            }
        }
        let mb = OneMessage {
            data: MSG.to_vec(),
            ranges: true,
        };
        let got = read_ranges(&mb, 1, &map, &items).unwrap().unwrap();
        assert_eq!(got.len(), items.len());
        assert!(got[0].is_none(), "UID is not a part section");
        for (item, got) in items.iter().zip(&got).skip(1) {
            let FetchAtt::BodySection {
                section: s,
                partial,
                ..
            } = item
            else {
                unreachable!()
            };
            // What FETCH sends: a missing section is the empty string; `<o.c>` cuts.
            let cut = |b: Vec<u8>| match partial {
                Some((o, c)) => {
                    let start = (*o as usize).min(b.len());
                    b[start..start.saturating_add(*c as usize).min(b.len())].to_vec()
                }
                None => b,
            };
            let want = cut(section(MSG, &root, s)
                .map(|c| c.into_owned())
                .unwrap_or_default());
            let (bytes, done) = got.clone().unwrap();
            let bytes = bytes.unwrap_or_default();
            let sent = if done { bytes } else { cut(bytes) };
            assert_eq!(sent, want, "{item:?}");
        }
        // A store that cannot read ranges: the caller reads the whole message.
        let no = OneMessage {
            data: MSG.to_vec(),
            ranges: false,
        };
        assert!(read_ranges(&no, 1, &map, &items).unwrap().is_none());
    }
}
