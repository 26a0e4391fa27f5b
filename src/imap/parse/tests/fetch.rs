//! FETCH macros, attributes and body sections.

use super::*;
use crate::mailbox::message::{Section, SectionText};

#[test]
fn fetch_macros_and_atts() {
    use FetchAtt::*;
    assert_eq!(
        fetch_atts("ALL"),
        vec![Flags, InternalDate, Rfc822Size, Envelope]
    );
    assert_eq!(fetch_atts("fast"), vec![Flags, InternalDate, Rfc822Size]);
    assert_eq!(
        fetch_atts("FULL"),
        vec![Flags, InternalDate, Rfc822Size, Envelope, Body]
    );
    assert_eq!(fetch_atts("uid"), vec![Uid]);
    assert_eq!(
        fetch_atts("(UID RFC822.SIZE FLAGS BODYSTRUCTURE ENVELOPE INTERNALDATE RFC822 RFC822.HEADER RFC822.TEXT BODY)"),
        vec![Uid, Rfc822Size, Flags, BodyStructure, Envelope, InternalDate, Rfc822, Rfc822Header, Rfc822Text, Body]
    );
    assert!(parse(b"a FETCH 1 (ALL)").is_err());
    assert!(parse(b"a FETCH 1 ()").is_err());
    assert!(parse(b"a FETCH 1 (UID").is_err());
    assert_eq!(
        err(b"a FETCH 1 X-GM-MSGID").message,
        "Unknown FETCH attribute X-GM-MSGID"
    );
    assert!(parse(b"a FETCH 1").is_err());
    assert!(parse(b"a FETCH 1 (UID FLAGS) (CHANGEDSINCE 3)").is_err());
    match ok("a UID FETCH 1:* (FLAGS)") {
        Command::Fetch { uid, set: s, .. } => {
            assert!(uid);
            assert_eq!(s, set(&[(1, STAR)]));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fetch_sections() {
    let body =
        |peek: bool, part: &[u32], text: Option<SectionText>, partial| FetchAtt::BodySection {
            peek,
            section: Section {
                part: part.to_vec(),
                text,
            },
            partial,
        };
    assert_eq!(fetch_atts("BODY[]"), vec![body(false, &[], None, None)]);
    assert_eq!(
        fetch_atts("body.peek[]<0.2048>"),
        vec![body(true, &[], None, Some((0, 2048)))]
    );
    assert_eq!(
        fetch_atts(
            "(BODY[1.2] BODY[HEADER] BODY.PEEK[TEXT] BODY[1.MIME] BODY[3.header] BODY[4.2.TEXT])"
        ),
        vec![
            body(false, &[1, 2], None, None),
            body(false, &[], Some(SectionText::Header), None),
            body(true, &[], Some(SectionText::Text), None),
            body(false, &[1], Some(SectionText::Mime), None),
            body(false, &[3], Some(SectionText::Header), None),
            body(false, &[4, 2], Some(SectionText::Text), None),
        ]
    );
    assert_eq!(
        fetch_atts("(FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM \"Subject\")]<10.20>)"),
        vec![
            FetchAtt::Flags,
            body(
                true,
                &[],
                Some(SectionText::HeaderFields(vec![
                    "DATE".into(),
                    "FROM".into(),
                    "Subject".into()
                ])),
                Some((10, 20))
            )
        ]
    );
    assert_eq!(
        fetch_atts("BODY[2.HEADER.FIELDS.NOT (X-Spam)]"),
        vec![body(
            false,
            &[2],
            Some(SectionText::HeaderFieldsNot(vec!["X-Spam".into()])),
            None
        )]
    );
    for bad in [
        "BODY[MIME]",
        "BODY[0]",
        "BODY[1.]",
        "BODY[1..2]",
        "BODY[HEADER.FIELDS ()]",
        "BODY[HEADER.FIELDS]",
        "BODY[HEADER.FIELDS (a]",
        "BODY[FOO]",
        "BODY[1",
        "BODY[]<1>",
        "BODY[]<1.0>",
        "BODY[]<1.2",
        "BODY.PEEK",
        "BODY.PEEK[TEXT]x",
        "RFC822.FOO",
        "BODY[1.TEXT.MIME]",
    ] {
        assert!(
            parse(format!("a FETCH 1 {bad}").as_bytes()).is_err(),
            "{bad}"
        );
    }
}
