//! Fuzzes the `mime.parts` part map: any bytes given to `PartMap::decode` (they come from
//! the cache file) must decode or be refused without a panic, and whatever decodes stays
//! inside the message; any bytes as a message must encode, decode to the same tree and
//! resolve every section to the octets the full parse gives.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loft::mailbox::message::section::header_fields;
use loft::mailbox::message::{parse, section, Located, PartMap, Section, SectionText};

fn sections() -> Vec<Section> {
    let mut out = Vec::new();
    for part in [vec![], vec![1], vec![2], vec![1, 1], vec![2, 1], vec![1, 2, 1], vec![3, 1]] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields(vec!["From".into()])),
            Some(SectionText::HeaderFieldsNot(vec!["Content-Type".into()])),
        ] {
            out.push(Section { part: part.clone(), text });
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Some(map) = PartMap::decode(rest) {
            for s in sections() {
                if let Some(Located::Range(r) | Located::Fields { header: r, .. }) = map.locate(&s) {
                    assert!(r.start <= r.end && r.end <= map.size());
                }
            }
        }
        return;
    }
    let root = parse(rest);
    let Some(enc) = PartMap::encode(&root, rest.len() as u64) else {
        return;
    };
    let map = PartMap::decode(&enc).expect("an encoded map decodes");
    for s in sections() {
        let want = section(rest, &root, &s);
        let got = map.locate(&s).map(|l| match l {
            Located::Range(r) => rest[r.start as usize..r.end as usize].to_vec(),
            Located::Fields { header, names, keep } => header_fields(
                &rest[header.start as usize..header.end as usize],
                names,
                keep,
            ),
        });
        assert_eq!(got.as_deref(), want.as_deref(), "{s:?}");
    }
});
