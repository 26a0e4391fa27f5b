//! SEARCH keys, structure, CHARSET conversion and the nesting bound.

use super::super::search::MAX_DEPTH;
use super::*;
use crate::imap::command::ParseErrorKind;
use crate::mailbox::search::EnvField;

#[test]
fn search_simple_keys() {
    use SearchKey as K;
    for (text, key) in [
        ("ALL", K::All),
        ("answered", K::Answered),
        ("DELETED", K::Deleted),
        ("DRAFT", K::Draft),
        ("FLAGGED", K::Flagged),
        ("SEEN", K::Seen),
        ("RECENT", K::Recent),
        ("NEW", K::New),
        ("OLD", K::Old),
        ("UNANSWERED", K::Unanswered),
        ("UNDELETED", K::Undeleted),
        ("UNDRAFT", K::Undraft),
        ("UNFLAGGED", K::Unflagged),
        ("UNSEEN", K::Unseen),
        ("KEYWORD $Junk", K::Keyword("$Junk".into())),
        ("UNKEYWORD foo", K::Unkeyword("foo".into())),
        ("BEFORE 1-Feb-1994", K::Before(date(1994, 2, 1))),
        ("ON \"01-feb-1994\"", K::On(date(1994, 2, 1))),
        ("SINCE 31-Dec-2023", K::Since(date(2023, 12, 31))),
        ("SENTBEFORE 1-Jan-2000", K::SentBefore(date(2000, 1, 1))),
        ("SENTON 1-Jan-2000", K::SentOn(date(2000, 1, 1))),
        ("SENTSINCE 1-Jan-2000", K::SentSince(date(2000, 1, 1))),
        ("LARGER 1024", K::Larger(1024)),
        ("SMALLER 10", K::Smaller(10)),
        ("FROM Smith", K::Envelope(EnvField::From, "Smith".into())),
        ("TO \"a b\"", K::Envelope(EnvField::To, "a b".into())),
        ("CC x", K::Envelope(EnvField::Cc, "x".into())),
        ("BCC x", K::Envelope(EnvField::Bcc, "x".into())),
        (
            "SUBJECT {5}\r\nhi yo",
            K::Envelope(EnvField::Subject, "hi yo".into()),
        ),
        (
            "HEADER X-Mailer \"\"",
            K::Header("X-Mailer".into(), "".into()),
        ),
        ("BODY foo", K::Body("foo".into())),
        (
            "TEXT \"string not in mailbox\"",
            K::Text("string not in mailbox".into()),
        ),
        ("UID 1:100", K::Uid(set(&[(1, 100)]))),
        ("2,4:*", K::SeqSet(set(&[(2, 2), (4, STAR)]))),
        ("*", K::SeqSet(set(&[(STAR, STAR)]))),
        ("NOT SEEN", K::Not(Box::new(K::Seen))),
        (
            "OR SEEN FLAGGED",
            K::Or(Box::new(K::Seen), Box::new(K::Flagged)),
        ),
        ("(SEEN)", K::Seen),
    ] {
        assert_eq!(search_key(text), key, "{text}");
    }
}

#[test]
fn search_structure() {
    use SearchKey as K;
    assert_eq!(
        search_key("FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
        K::And(vec![
            K::Flagged,
            K::Since(date(1994, 2, 1)),
            K::Not(Box::new(K::Envelope(EnvField::From, "Smith".into())))
        ])
    );
    assert_eq!(
        search_key("OR (SEEN UNDELETED) NOT (OR 1 UID 5)"),
        K::Or(
            Box::new(K::And(vec![K::Seen, K::Undeleted])),
            Box::new(K::Not(Box::new(K::Or(
                Box::new(K::SeqSet(set(&[(1, 1)]))),
                Box::new(K::Uid(set(&[(5, 5)])))
            ))))
        )
    );
    match ok("a UID SEARCH charset utf-8 TEXT \"\u{e9}t\u{e9}\"") {
        Command::Search { uid, charset, key } => {
            assert!(uid);
            assert_eq!(charset.as_deref(), Some("utf-8"));
            assert_eq!(key, K::Text("\u{e9}t\u{e9}".into()));
        }
        other => panic!("{other:?}"),
    }
    // ISO-8859-1 (via encoding_rs, windows-1252 superset) converted to UTF-8.
    match parse(b"a SEARCH CHARSET ISO-8859-1 SUBJECT \"caf\xe9\"")
        .unwrap()
        .command
    {
        Command::Search { key, .. } => {
            assert_eq!(key, K::Envelope(EnvField::Subject, "caf\u{e9}".into()))
        }
        other => panic!("{other:?}"),
    }
    let e = err(b"a SEARCH CHARSET X-UNKNOWN-42 TEXT x");
    assert_eq!(e.kind, ParseErrorKind::BadCharset);
    assert_eq!(e.tag.as_deref(), Some("a"));
    assert_eq!(err(b"a SEARCH CHARSET").kind, ParseErrorKind::Bad);
    for bad in [
        "",
        "FOO",
        "()",
        "(SEEN",
        "SEEN)",
        "OR SEEN",
        "NOT",
        "BEFORE 31-Feb-2020",
        "BEFORE",
        "LARGER x",
        "LARGER 99999999999999999999999",
        "UID",
        "UID 0",
        "HEADER X",
        "KEYWORD \\Seen",
        "SEEN  UNSEEN",
        "SEEN ",
        "CHARSET UTF-8",
    ] {
        let e = parse(format!("a SEARCH {bad}").as_bytes());
        assert!(
            matches!(&e, Err(e) if e.kind == ParseErrorKind::Bad),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn search_depth_is_bounded() {
    let nested = |n: usize| format!("a SEARCH {}SEEN{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
    assert_eq!(
        err(nested(MAX_DEPTH + 1).as_bytes()).message,
        "Search nesting too deep"
    );
    // Huge inputs fail quickly without exhausting the stack.
    assert!(parse(nested(1_000_000).as_bytes()).is_err());
    let nots = format!("a SEARCH {}SEEN", "NOT ".repeat(100_000));
    assert!(parse(nots.as_bytes()).is_err());
    let ors = format!("a SEARCH {}SEEN", "OR ".repeat(100_000));
    assert!(parse(ors.as_bytes()).is_err());
}
