use std::borrow::Cow;

use proptest::prelude::*;

use super::*;
use crate::mailbox::message::mime::tests::{ALTERNATIVE, DIGEST, MIXED, NESTED, SIMPLE};
use crate::mailbox::message::{parse, section, section::header_fields};

/// The section as the part map resolves it, cut out of `data`.
fn by_map<'a>(data: &'a [u8], map: &PartMap, s: &Section) -> Option<Cow<'a, [u8]>> {
    let slice = |r: Range<u64>| data.get(r.start as usize..r.end as usize);
    Some(match map.locate(s)? {
        Located::Range(r) => Cow::Borrowed(slice(r)?),
        Located::Fields {
            header,
            names,
            keep,
        } => Cow::Owned(header_fields(slice(header)?, names, keep)),
    })
}

/// Every section spec worth asking of a message: all paths up to three levels (and a few
/// that cannot exist), with every kind of text specifier.
pub(crate) fn specs() -> Vec<Section> {
    let mut paths: Vec<Vec<u32>> = vec![vec![], vec![0], vec![1, 0], vec![7, 1, 1, 1]];
    for a in 1..=4 {
        paths.push(vec![a]);
        for b in 1..=3 {
            paths.push(vec![a, b]);
            for c in 1..=2 {
                paths.push(vec![a, b, c]);
            }
        }
    }
    let texts = [
        None,
        Some(SectionText::Header),
        Some(SectionText::Text),
        Some(SectionText::Mime),
        Some(SectionText::HeaderFields(vec![
            "From".into(),
            "content-type".into(),
        ])),
        Some(SectionText::HeaderFieldsNot(vec!["Subject".into()])),
    ];
    let mut out = Vec::new();
    for p in &paths {
        for t in &texts {
            out.push(Section {
                part: p.clone(),
                text: t.clone(),
            });
        }
    }
    out
}

/// The decoded map has the parsed tree's shape and ranges, part for part.
fn same_shape(map: &PartMap, i: u32, p: &Part) -> bool {
    let Some(n) = map.nodes().get(i as usize) else {
        return false;
    };
    let r = |x: &Range<usize>| x.start as u64..x.end as u64;
    if n.header != r(&p.header) || n.body != r(&p.body) || n.body_lines != p.body_lines {
        return false;
    }
    match (&n.kind, &p.kind) {
        (NodeKind::Leaf, Body::Single) => true,
        (NodeKind::Message(j), Body::Message(inner)) => same_shape(map, *j, inner),
        (NodeKind::Multipart(js), Body::Multipart(ch)) => {
            js.len() == ch.len() && js.iter().zip(ch).all(|(j, c)| same_shape(map, *j, c))
        }
        _ => false,
    }
}

/// encode → decode keeps the tree, and every section resolves to the parsed answer.
fn check(data: &[u8]) -> Result<(), TestCaseError> {
    let root = parse(data);
    let enc = PartMap::encode(&root, data.len() as u64);
    let enc = enc.ok_or_else(|| TestCaseError::fail("not encodable"))?;
    let map = PartMap::decode(&enc).ok_or_else(|| TestCaseError::fail("not decodable"))?;
    prop_assert_eq!(map.size(), data.len() as u64);
    prop_assert!(same_shape(&map, 0, &root), "shape differs");
    for s in specs() {
        let want = section(data, &root, &s);
        let got = by_map(data, &map, &s);
        prop_assert_eq!(got, want, "{:?} of {:?}", s, String::from_utf8_lossy(data));
    }
    // Every proper prefix is refused (no trailing garbage accepted either).
    for cut in 0..enc.len() {
        prop_assert!(
            PartMap::decode(&enc[..cut]).is_none(),
            "prefix {cut} accepted"
        );
    }
    let mut longer = enc.clone();
    longer.push(0);
    prop_assert!(PartMap::decode(&longer).is_none());
    Ok(())
}

/// Bare LFs as CRLF (what the store serves).
fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[test]
fn fixed_messages_resolve_like_the_parser() {
    for m in [
        SIMPLE,
        ALTERNATIVE,
        MIXED,
        NESTED,
        DIGEST,
        b"",
        b"\r\n",
        b"no header",
    ] {
        check(m).unwrap();
    }
}

#[test]
fn corpus_resolves_like_the_parser() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mime");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let raw = std::fs::read(e.unwrap().path()).unwrap();
        // As served: CRLF line ends.
        let crlf = to_crlf(&raw);
        check(&raw).unwrap();
        check(&crlf).unwrap();
        n += 1;
    }
    assert!(n >= 30, "corpus has {n} files");
}

#[test]
fn layout_of_a_simple_message() {
    let enc = PartMap::encode(&parse(SIMPLE), SIMPLE.len() as u64).unwrap();
    // version, size 40, then the leaf: kind 0, gap 0, header 26, body 14, 2 lines.
    assert_eq!(enc, [1, 40, 0, 0, 26, 14, 2]);
    let map = PartMap::decode(&enc).unwrap();
    let s = Section {
        part: vec![1],
        text: None,
    };
    assert_eq!(map.locate(&s), Some(Located::Range(26..40)));
    let mime = Section {
        part: vec![1],
        text: Some(SectionText::Mime),
    };
    assert_eq!(map.locate(&mime), Some(Located::Range(0..26)));
    assert_eq!(
        map.locate(&Section {
            part: vec![2],
            text: None
        }),
        None
    );
}

#[test]
fn bad_maps_are_refused() {
    // Other version; body beyond the size; zero children; unknown kind; varint overflow.
    for bad in [
        &[2u8, 40, 0, 0, 26, 14, 2][..],
        &[1, 40, 0, 0, 26, 15, 2],
        &[1, 40, 1, 0, 26, 14, 2, 0],
        &[1, 40, 9, 0, 26, 14, 2],
        &[
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0,
        ],
        // A child outside its parent's body.
        &[1, 40, 1, 0, 5, 5, 0, 1, 0, 0, 0, 30, 0],
        // A multipart claiming a million children.
        &[1, 40, 1, 0, 5, 5, 0, 0xc0, 0x84, 0x3d, 0, 0, 0, 0, 0],
        &[],
    ] {
        assert_eq!(PartMap::decode(bad), None, "{bad:?}");
    }
}

#[test]
fn depth_and_count_limits() {
    let mut m = Vec::new();
    for _ in 0..500 {
        m.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    m.extend_from_slice(b"end");
    let root = parse(&m);
    let enc = PartMap::encode(&root, m.len() as u64).unwrap();
    let map = PartMap::decode(&enc).unwrap();
    assert_eq!(map.nodes().len(), MAX_DEPTH + 1);
    assert!(same_shape(&map, 0, &root));
    // One level deeper than the parser makes is refused by both sides.
    let mut deep = root.clone();
    deep.header = 0..0;
    deep.body = 0..m.len();
    deep.kind = Body::Message(Box::new(root.clone()));
    assert_eq!(PartMap::encode(&deep, m.len() as u64), None);

    let mut many = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n".to_vec();
    for _ in 0..=MAX_PARTS {
        many.extend_from_slice(b"--x\r\n");
    }
    assert_eq!(PartMap::encode(&parse(&many), many.len() as u64), None);
}

/// MIME-ish messages: fragments that make multiparts (nested, digests, unclosed),
/// encapsulated messages and header oddities, plus random bytes.
pub(crate) fn mimeish() -> impl Strategy<Value = Vec<u8>> {
    let frag = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"--a\r\n".to_vec()),
        Just(b"--a--\r\n".to_vec()),
        Just(b"--ab\r\n".to_vec()),
        Just(b"--b\r\n".to_vec()),
        Just(b"--b--".to_vec()),
        Just(b"Content-Type: multipart/mixed; boundary=a\r\n".to_vec()),
        Just(b"Content-Type: multipart/alternative; boundary=\"ab\"\r\n".to_vec()),
        Just(b"Content-Type: multipart/digest; boundary=b\r\n".to_vec()),
        Just(b"Content-Type: message/rfc822\r\n".to_vec()),
        Just(b"Content-Type: message/global\n".to_vec()),
        Just(b"Content-Type: text/plain\r\n".to_vec()),
        Just(b"From: a@b\r\n".to_vec()),
        Just(b"Subject: s\r\n folded\r\n".to_vec()),
        Just(b"no colon line\r\n".to_vec()),
        Just(b"text \x00 body\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..10),
    ];
    proptest::collection::vec(frag, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn round_trips_and_resolves_like_the_parser(data in mimeish()) {
        check(&data)?;
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some(map) = PartMap::decode(&bytes) {
            // Whatever decodes is consistent: every range inside the message, nested.
            for n in map.nodes() {
                prop_assert!(n.header.start <= n.header.end && n.header.end == n.body.start);
                prop_assert!(n.body.end <= map.size());
            }
            for s in specs() {
                let _ = map.locate(&s);
            }
        }
    }

    #[test]
    fn mutated_maps_never_panic(data in mimeish(), at in any::<usize>(), byte in any::<u8>()) {
        let root = parse(&data);
        let mut enc = PartMap::encode(&root, data.len() as u64).unwrap();
        let i = at % enc.len();
        enc[i] = byte;
        if let Some(map) = PartMap::decode(&enc) {
            for s in specs() {
                if let Some(Located::Range(r) | Located::Fields { header: r, .. }) = map.locate(&s) {
                    prop_assert!(r.start <= r.end && r.end <= map.size());
                }
            }
        }
    }
}
