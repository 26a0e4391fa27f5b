use super::*;
use crate::mailbox::message::{find_part, section, Section, SectionText};

fn sec(data: &[u8], path: &[u32], text: Option<SectionText>) -> Option<Vec<u8>> {
    let root = parse(data);
    section(
        data,
        &root,
        &Section {
            part: path.to_vec(),
            text,
        },
    )
    .map(|c| c.into_owned())
}

fn s(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

pub(crate) const SIMPLE: &[u8] = b"From: a@b\r\nSubject: hi\r\n\r\nline1\r\nline2\r\n";

#[test]
fn simple_text() {
    let p = parse(SIMPLE);
    assert_eq!(p.header, 0..26);
    assert_eq!(p.body, 26..SIMPLE.len());
    assert_eq!(p.body_lines, 2);
    assert!(p.content_type.is("text", "plain"));
    assert!(!p.content_type_explicit);
    assert_eq!(p.kind, Body::Single);
    assert_eq!(sec(SIMPLE, &[], None).unwrap(), SIMPLE);
    assert_eq!(sec(SIMPLE, &[1], None).unwrap(), b"line1\r\nline2\r\n");
    assert_eq!(
        sec(SIMPLE, &[1], Some(SectionText::Mime)).unwrap(),
        &SIMPLE[..26]
    );
    assert_eq!(sec(SIMPLE, &[2], None), None);
    assert_eq!(sec(SIMPLE, &[1], Some(SectionText::Header)), None);
    assert_eq!(sec(SIMPLE, &[], Some(SectionText::Mime)), None);
    assert_eq!(
        sec(SIMPLE, &[], Some(SectionText::Text)).unwrap(),
        b"line1\r\nline2\r\n"
    );
}

pub(crate) const ALTERNATIVE: &[u8] = b"Subject: alt\r\n\
Content-Type: multipart/alternative; boundary=\"XX\"\r\n\
\r\n\
preamble --XX not a boundary\r\n\
--XX\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
plain --XX\r\n\
--XXnot either\r\n\
--XX  \r\n\
Content-Type: text/html\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<b>html</b>\r\n\
--XX--\r\n\
epilogue\r\n";

#[test]
fn multipart_alternative() {
    let p = parse(ALTERNATIVE);
    let Body::Multipart(ch) = &p.kind else {
        panic!("not multipart")
    };
    // "--XXnot either" begins with the delimiter, so it is one (RFC 2046 §5.1.1: the
    // boundary need only appear in its entirety at the start of the line; Dovecot agrees).
    assert_eq!(ch.len(), 3);
    assert_eq!(ch[0].body_bytes(ALTERNATIVE), b"plain --XX");
    assert_eq!(ch[0].body_lines, 0);
    assert_eq!(ch[0].content_type.param("CHARSET"), Some(&b"utf-8"[..]));
    assert_eq!(ch[1].body_bytes(ALTERNATIVE), b"");
    assert_eq!(ch[2].body_bytes(ALTERNATIVE), b"<b>html</b>");
    assert_eq!(ch[2].encoding.as_deref(), Some(&b"quoted-printable"[..]));
    assert_eq!(sec(ALTERNATIVE, &[3], None).unwrap(), b"<b>html</b>");
    assert_eq!(
        s(&sec(ALTERNATIVE, &[3], Some(SectionText::Mime)).unwrap()),
        "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    );
    assert_eq!(sec(ALTERNATIVE, &[4], None), None);
    assert_eq!(sec(ALTERNATIVE, &[0], None), None);
    // A leaf child of a multipart has a part 1, itself, once (as Dovecot resolves it).
    assert_eq!(sec(ALTERNATIVE, &[3, 1], None).unwrap(), b"<b>html</b>");
    assert_eq!(sec(ALTERNATIVE, &[3, 1, 1], None), None);
}

#[test]
fn nested_boundary_extending_the_outer_one() {
    // Outer "A", inner "AB": "--AB" lines belong to the inner multipart.
    let m = b"Content-Type: multipart/mixed; boundary=A\r\n\r\n--A\r\n\
Content-Type: multipart/mixed; boundary=AB\r\n\r\n--AB\r\n\r\ni1\r\n--AB\r\n\r\ni2\r\n\
--AB--\r\n--A\r\n\r\nouter2\r\n--A--\r\n";
    let p = parse(m);
    let Body::Multipart(ch) = &p.kind else {
        panic!()
    };
    assert_eq!(ch.len(), 2);
    assert_eq!(sec(m, &[1, 1], None).unwrap(), b"i1");
    assert_eq!(sec(m, &[1, 2], None).unwrap(), b"i2");
    assert_eq!(sec(m, &[2], None).unwrap(), b"outer2");
}

#[test]
fn rfc2231_continuations_are_joined() {
    let ct = ContentType::parse(
        b"application/x; a*1=\"b\"; z=1; a*0=\"a\"; f*0*=utf-8''x%20; f*1*=y; t*=us-ascii''q",
    )
    .unwrap();
    assert_eq!(
        ct.params,
        vec![
            (b"a".to_vec(), b"ab".to_vec()),
            (b"z".to_vec(), b"1".to_vec()),
            (b"f*".to_vec(), b"utf-8''x%20y".to_vec()),
            (b"t*".to_vec(), b"us-ascii''q".to_vec()),
        ]
    );
}

pub(crate) const MIXED: &[u8] = b"From: x@y\r\n\
Content-Type: multipart/mixed; boundary=b1\r\n\
\r\n\
--b1\r\n\
\r\n\
Hello\r\n\
\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"a.pdf\"\r\n\
Content-Disposition: attachment; filename=\"a.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-ID: <id1>\r\n\
Content-Description: A file\r\n\
Content-Language: en, de\r\n\
Content-Location: http://x/a.pdf\r\n\
Content-MD5: Q2hlY2s=\r\n\
\r\n\
JVBERi0=\r\n\
--b1--\r\n";

#[test]
fn multipart_mixed_attachment() {
    let p = parse(MIXED);
    let Body::Multipart(ch) = &p.kind else {
        panic!("not multipart")
    };
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[0].body_bytes(MIXED), b"Hello\r\n");
    assert_eq!(ch[0].header_bytes(MIXED), b"\r\n");
    let a = &ch[1];
    assert_eq!(a.disposition.as_ref().unwrap().kind, b"attachment");
    assert_eq!(
        a.disposition.as_ref().unwrap().params,
        vec![(b"filename".to_vec(), b"a.pdf".to_vec())]
    );
    assert_eq!(a.language, vec![b"en".to_vec(), b"de".to_vec()]);
    assert_eq!(a.content_id.as_deref(), Some(&b"<id1>"[..]));
    assert_eq!(a.md5.as_deref(), Some(&b"Q2hlY2s="[..]));
    assert_eq!(a.body_bytes(MIXED), b"JVBERi0=");
}

pub(crate) const NESTED: &[u8] = b"Subject: outer\r\n\
Content-Type: multipart/mixed; boundary=\"o\"\r\n\
\r\n\
--o\r\n\
Content-Type: text/plain\r\n\
\r\n\
first\r\n\
--o\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
From: Inner <in@ner>\r\n\
Content-Type: multipart/alternative; boundary=i\r\n\
\r\n\
--i\r\n\
\r\n\
inner plain\r\n\
--i\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>inner</p>\r\n\
--i--\r\n\
--o--\r\n";

#[test]
fn nested_message() {
    let root = parse(NESTED);
    assert_eq!(sec(NESTED, &[2, 1], None).unwrap(), b"inner plain");
    assert_eq!(sec(NESTED, &[2, 2], None).unwrap(), b"<p>inner</p>");
    assert_eq!(
        s(&sec(NESTED, &[2], Some(SectionText::Header)).unwrap()),
        "Subject: inner\r\nFrom: Inner <in@ner>\r\n\
         Content-Type: multipart/alternative; boundary=i\r\n\r\n"
    );
    assert!(s(&sec(NESTED, &[2], Some(SectionText::Text)).unwrap()).starts_with("--i\r\n"));
    assert!(s(&sec(NESTED, &[2], None).unwrap()).starts_with("Subject: inner"));
    assert_eq!(
        s(&sec(
            NESTED,
            &[2],
            Some(SectionText::HeaderFields(vec!["from".into(), "X".into()]))
        )
        .unwrap()),
        "From: Inner <in@ner>\r\n\r\n"
    );
    assert_eq!(
        s(&sec(NESTED, &[2, 2], Some(SectionText::Mime)).unwrap()),
        "Content-Type: text/html\r\n\r\n"
    );
    assert_eq!(sec(NESTED, &[1], Some(SectionText::Header)), None);
    assert_eq!(sec(NESTED, &[2, 3], None), None);
    let inner = find_part(&root, &[2]).unwrap();
    assert!(matches!(inner.kind, Body::Message(_)));
}

#[test]
fn header_fields_keep_folding() {
    let m = b"Subject: a\r\n  b\r\nX-A: 1\r\nto: t\r\nSUBJECT: again\r\n\r\nbody";
    assert_eq!(
        s(&sec(
            m,
            &[],
            Some(SectionText::HeaderFields(vec![
                "Subject".into(),
                "TO".into()
            ]))
        )
        .unwrap()),
        "Subject: a\r\n  b\r\nto: t\r\nSUBJECT: again\r\n\r\n"
    );
    assert_eq!(
        s(&sec(
            m,
            &[],
            Some(SectionText::HeaderFieldsNot(vec!["subject".into()]))
        )
        .unwrap()),
        "X-A: 1\r\nto: t\r\n\r\n"
    );
    assert_eq!(
        sec(m, &[], Some(SectionText::HeaderFields(vec!["none".into()]))).unwrap(),
        b"\r\n"
    );
}

pub(crate) const DIGEST: &[u8] = b"Content-Type: multipart/digest; boundary=d\r\n\
\r\n\
--d\r\n\
\r\n\
Subject: one\r\n\
\r\n\
body one\r\n\
--d\r\n\
Content-Type: text/plain\r\n\
\r\n\
not a message\r\n\
--d--\r\n";

#[test]
fn digest_defaults_to_message() {
    let p = parse(DIGEST);
    let Body::Multipart(ch) = &p.kind else {
        panic!()
    };
    assert!(ch[0].content_type.is("message", "rfc822"));
    assert!(matches!(ch[0].kind, Body::Message(_)));
    assert!(ch[1].content_type.is("text", "plain"));
    assert_eq!(sec(DIGEST, &[1, 1], None).unwrap(), b"body one");
    assert_eq!(
        sec(DIGEST, &[1], Some(SectionText::Header)).unwrap(),
        b"Subject: one\r\n\r\n"
    );
}

#[test]
fn missing_final_boundary_and_nesting_end() {
    let m =
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\none\r\n--a\r\n\r\ntwo\r\n";
    let p = parse(m);
    let Body::Multipart(ch) = &p.kind else {
        panic!()
    };
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[1].body_bytes(m), b"two\r\n");
    // An inner multipart without its close delimiter ends at the outer delimiter.
    let m = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nin\r\n--a\r\n\r\nout\r\n--a--\r\n";
    let p = parse(m);
    let Body::Multipart(ch) = &p.kind else {
        panic!()
    };
    assert_eq!(ch.len(), 2);
    assert_eq!(sec(m, &[1, 1], None).unwrap(), b"in");
    assert_eq!(sec(m, &[2], None).unwrap(), b"out");
}

#[test]
fn no_body_separator_and_oddities() {
    let m = b"Subject: x\r\nFrom: y";
    // RFC 3501 §6.4.5: no blank line in header fetches when the message has none.
    assert_eq!(
        sec(
            m,
            &[],
            Some(SectionText::HeaderFieldsNot(vec!["subject".into()]))
        )
        .unwrap(),
        b"From: y\r\n"
    );
    assert_eq!(
        sec(
            m,
            &[],
            Some(SectionText::HeaderFields(vec!["subject".into()]))
        )
        .unwrap(),
        b"Subject: x\r\n"
    );
    let p = parse(m);
    assert_eq!(p.header, 0..m.len());
    assert_eq!(p.body, m.len()..m.len());
    assert_eq!(sec(m, &[], Some(SectionText::Text)).unwrap(), b"");
    // Multipart with no boundary parameter or no delimiter lines: one empty part.
    let m = b"Content-Type: multipart/mixed\r\n\r\nstuff\r\n";
    let Body::Multipart(ch) = parse(m).kind else {
        panic!()
    };
    assert_eq!(ch.len(), 1);
    assert_eq!((ch[0].header.len(), ch[0].body.len()), (0, 0));
    assert_eq!(sec(m, &[1], None).unwrap(), b"");
    assert_eq!(sec(m, &[1], Some(SectionText::Mime)).unwrap(), b"");
    assert_eq!(sec(m, &[2], None), None);
    // Invalid Content-Type falls back to text/plain.
    let p = parse(b"Content-Type: garbage\r\n\r\n");
    assert!(p.content_type.is("text", "plain"));
    let p = parse(b"");
    assert_eq!(p.header, 0..0);
}

#[test]
fn bare_lf() {
    let m = b"Content-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n\nhi\nthere\n--q\n\nsecond\n--q--\n";
    let p = parse(m);
    let Body::Multipart(ch) = &p.kind else {
        panic!()
    };
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[0].body_bytes(m), b"hi\nthere");
    assert_eq!(ch[0].body_lines, 1);
    assert_eq!(ch[0].header_bytes(m), b"Content-Type: text/plain\n\n");
    assert_eq!(ch[1].body_bytes(m), b"second");
    assert_eq!(
        sec(
            m,
            &[],
            Some(SectionText::HeaderFields(vec!["content-type".into()]))
        )
        .unwrap(),
        b"Content-Type: multipart/mixed; boundary=q\n\r\n"
    );
}

#[test]
fn depth_is_bounded() {
    let mut m = Vec::new();
    for _ in 0..5000 {
        m.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    m.extend_from_slice(b"end");
    let p = parse(&m);
    let mut depth = 0;
    let mut cur = &p;
    while let Body::Message(inner) = &cur.kind {
        cur = inner;
        depth += 1;
    }
    assert_eq!(depth, MAX_DEPTH);
    assert_eq!(cur.kind, Body::Single);
    let path = vec![1u32; 200];
    let _ = section(
        &m,
        &p,
        &Section {
            part: path,
            text: None,
        },
    );
}

#[test]
fn big_message_is_fast() {
    let mut m = b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n".to_vec();
    for i in 0..100 {
        m.extend_from_slice(
            format!("--zz\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n").as_bytes(),
        );
        for _ in 0..1000 {
            m.extend_from_slice(
                b"a line of text that is fairly typical --z of mail bodies.....\r\n",
            );
        }
    }
    m.extend_from_slice(b"--zz--\r\n");
    assert!(m.len() > 6_000_000);
    let t = std::time::Instant::now();
    let p = parse(&m);
    let el = t.elapsed();
    let Body::Multipart(ch) = &p.kind else {
        panic!()
    };
    assert_eq!(ch.len(), 100);
    assert_eq!(ch[99].body_lines, 1000);
    eprintln!("parsed {} bytes in {:?}", m.len(), el);
}

proptest::proptest! {
    /// The count equals a naive one.
    #[test]
    fn count_lines_counts_every_lf(
        bytes in proptest::collection::vec(proptest::prelude::prop_oneof![
            proptest::prelude::Just(b'\n'),
            proptest::prelude::Just(b'\r'),
            proptest::prelude::any::<u8>(),
        ], 0..300),
        pad in 0usize..3,
    ) {
        let mut b = vec![b'x'; (1 << 16) - 150 + pad];
        b.extend_from_slice(&bytes);
        let naive = b.iter().filter(|&&c| c == b'\n').count() as u64;
        proptest::prop_assert_eq!(super::count_lines(&b), naive);
        proptest::prop_assert_eq!(super::count_lines(&bytes), naive);
    }
}
