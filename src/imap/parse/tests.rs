//! Parser tests: every command, every SEARCH key, literals, errors, and proptests that the
//! parser never panics.

use super::search::MAX_DEPTH;
use super::*;
use crate::imap::command::{AppendHead, FetchAtt, ListOptions, ParseErrorKind, StatusItem};
use crate::mailbox::date::Date;
use crate::mailbox::message::{Section, SectionText};
use crate::mailbox::search::{NumSet, SearchKey};
use crate::mailbox::{Flags, StoreOp, SysFlags};
use proptest::prelude::*;

fn ok(input: &str) -> Command {
    match parse(input.as_bytes()) {
        Ok(r) => r.command,
        Err(e) => panic!("{input:?} failed: {e:?}"),
    }
}

fn err(input: &[u8]) -> ParseError {
    match parse(input) {
        Ok(r) => panic!("{:?} parsed as {r:?}", String::from_utf8_lossy(input)),
        Err(e) => e,
    }
}

fn set(ranges: &[(u32, u32)]) -> NumSet {
    NumSet {
        ranges: ranges.to_vec(),
    }
}

fn flags(sys: &[SysFlags], kws: &[&str]) -> Flags {
    let mut f = Flags::default();
    for s in sys {
        f.sys.insert(*s);
    }
    for k in kws {
        f.add_keyword(k);
    }
    f
}

fn search_key(args: &str) -> SearchKey {
    match ok(&format!("t SEARCH {args}")) {
        Command::Search { key, .. } => key,
        other => panic!("{other:?}"),
    }
}

fn fetch_atts(args: &str) -> Vec<FetchAtt> {
    match ok(&format!("t FETCH 1 {args}")) {
        Command::Fetch { atts, .. } => atts,
        other => panic!("{other:?}"),
    }
}

fn date(y: i32, m: u8, d: u8) -> Date {
    Date::new(y, m, d).unwrap()
}

const STAR: u32 = NumSet::STAR;

#[test]
fn tags_and_simple_commands() {
    let r = parse(b"a001 capability").unwrap();
    assert_eq!(r.tag, "a001");
    assert_eq!(r.command, Command::Capability);
    assert_eq!(parse(b"x] NOOP").unwrap().tag, "x]");
    for (text, cmd) in [
        ("NOOP", Command::Noop),
        ("LOGOUT", Command::Logout),
        ("StartTLS", Command::StartTls),
        ("NAMESPACE", Command::Namespace),
        ("idle", Command::Idle),
        ("CHECK", Command::Check),
        ("CLOSE", Command::Close),
        ("UNSELECT", Command::Unselect),
        ("EXPUNGE", Command::Expunge),
    ] {
        assert_eq!(ok(&format!("t {text}")), cmd);
        assert_eq!(
            err(format!("t {text} x").as_bytes()).message,
            "Unexpected extra arguments"
        );
    }
}

#[test]
fn tag_errors() {
    let e = err(b"");
    assert_eq!((e.tag, e.message.as_str()), (None, "Empty command"));
    assert_eq!(err(b"+ NOOP").tag, None);
    assert_eq!(err(b"a(b NOOP").tag, None);
    assert_eq!(err(b" NOOP").tag, None);
    let e = err(b"a1 FOO bar");
    assert_eq!(e.tag.as_deref(), Some("a1"));
    assert_eq!(e.message, "Unknown command FOO");
    assert_eq!(e.kind, ParseErrorKind::Bad);
    assert_eq!(err(b"a1").message, "Missing argument");
    assert_eq!(err(b"a1 ").message, "Missing command");
    assert_eq!(err(b"a1  NOOP").message, "Missing command");
    assert_eq!(err(b"a1 NOOP ").message, "Unexpected extra arguments");
}

#[test]
fn login_and_authenticate() {
    assert_eq!(
        ok("a LOGIN fred \"pa\\\"ss\\\\w\""),
        Command::Login {
            user: "fred".into(),
            password: "pa\"ss\\w".into()
        }
    );
    assert_eq!(
        ok("a LOGIN {4}\r\nfred {3+}\r\n s "),
        Command::Login {
            user: "fred".into(),
            password: " s ".into()
        }
    );
    // 8-bit quoted strings are accepted.
    assert_eq!(
        ok("a LOGIN \"j\u{f6}rg\" \"p\u{e4}ss\""),
        Command::Login {
            user: "j\u{f6}rg".into(),
            password: "p\u{e4}ss".into()
        }
    );
    assert_eq!(err(b"a LOGIN fred").message, "Missing argument");
    assert!(err(b"a LOGIN \"\xff\" x").message.contains("UTF-8"));
    assert_eq!(
        ok("a AUTHENTICATE plain"),
        Command::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: None
        }
    );
    assert_eq!(
        ok("a AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0"),
        Command::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: Some("AGZyZWQAc2VjcmV0".into())
        }
    );
    assert_eq!(
        ok("a AUTHENTICATE EXTERNAL ="),
        Command::Authenticate {
            mechanism: "EXTERNAL".into(),
            initial_response: Some("=".into())
        }
    );
    assert!(matches!(
        ok("a AUTHENTICATE X dGU="),
        Command::Authenticate { .. }
    ));
    for bad in [
        &b"a AUTHENTICATE PLAIN abc"[..],
        b"a AUTHENTICATE PLAIN a=bc",
        b"a AUTHENTICATE PLAIN ====",
        b"a AUTHENTICATE PLAIN !",
    ] {
        assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn mailbox_commands() {
    let m = |s: &str| s.to_string();
    assert_eq!(
        ok("a SELECT INBOX"),
        Command::Select {
            mailbox: m("INBOX")
        }
    );
    assert_eq!(
        ok("a examine \"a b\""),
        Command::Examine { mailbox: m("a b") }
    );
    assert_eq!(
        ok("a CREATE {3}\r\nx y"),
        Command::Create { mailbox: m("x y") }
    );
    assert_eq!(
        ok("a DELETE &AOk-t]"),
        Command::Delete {
            mailbox: m("&AOk-t]")
        }
    );
    assert_eq!(ok("a SUBSCRIBE x"), Command::Subscribe { mailbox: m("x") });
    assert_eq!(
        ok("a UNSUBSCRIBE x"),
        Command::Unsubscribe { mailbox: m("x") }
    );
    assert_eq!(
        ok("a RENAME old \"new\""),
        Command::Rename {
            from: m("old"),
            to: m("new")
        }
    );
    assert_eq!(
        ok("a LSUB \"\" %"),
        Command::Lsub {
            reference: m(""),
            pattern: m("%")
        }
    );
    assert_eq!(err(b"a SELECT").message, "Missing argument");
    assert_eq!(err(b"a SELECT a*").message, "Unexpected extra arguments");
    assert!(parse(b"a SELECT (x)").is_err());
}

#[test]
fn list_plain_and_extended() {
    assert_eq!(
        ok("a LIST \"\" *"),
        Command::List {
            reference: "".into(),
            patterns: vec!["*".into()],
            options: ListOptions::default()
        }
    );
    assert_eq!(
        ok("a LIST ~/Mail/ %/x*]"),
        Command::List {
            reference: "~/Mail/".into(),
            patterns: vec!["%/x*]".into()],
            options: ListOptions::default()
        }
    );
    match ok("a LIST (SPECIAL-USE subscribed) \"\" (\"a\" b* {1}\r\n%) RETURN (SPECIAL-USE CHILDREN SUBSCRIBED)") {
        Command::List {
            reference,
            patterns,
            options,
        } => {
            assert_eq!(reference, "");
            assert_eq!(patterns, vec!["a", "b*", "%"]);
            assert_eq!(
                options,
                ListOptions {
                    select_special_use: true,
                    select_subscribed: true,
                    return_special_use: true,
                    return_children: true,
                    return_subscribed: true,
                    extended: true,
                }
            );
        }
        other => panic!("{other:?}"),
    }
    match ok("a LIST () \"\" % RETURN ()") {
        Command::List { options, .. } => assert_eq!(options, ListOptions::default()),
        other => panic!("{other:?}"),
    }
    assert!(err(b"a LIST (FOO) \"\" *").message.contains("FOO"));
    assert!(err(b"a LIST \"\" * RETURN (STATUS (MESSAGES))")
        .message
        .contains("STATUS"));
    assert!(parse(b"a LIST \"\" * RETURNS ()").is_err());
    assert!(parse(b"a LIST \"\" () ").is_err());
    assert!(parse(b"a LIST \"\"").is_err());
}

#[test]
fn status_enable_id() {
    assert_eq!(
        ok("a STATUS blurdybloop (UIDNEXT MESSAGES size recent uidvalidity UNSEEN)"),
        Command::Status {
            mailbox: "blurdybloop".into(),
            items: vec![
                StatusItem::UidNext,
                StatusItem::Messages,
                StatusItem::Size,
                StatusItem::Recent,
                StatusItem::UidValidity,
                StatusItem::Unseen
            ]
        }
    );
    assert!(parse(b"a STATUS x ()").is_err());
    assert!(parse(b"a STATUS x (FOO)").is_err());
    assert!(parse(b"a STATUS x MESSAGES").is_err());
    assert_eq!(
        ok("a ENABLE CONDSTORE utf8=accept"),
        Command::Enable {
            capabilities: vec!["CONDSTORE".into(), "utf8=accept".into()]
        }
    );
    assert!(parse(b"a ENABLE").is_err());
    assert_eq!(ok("a ID nil"), Command::Id { params: None });
    assert_eq!(
        ok("a ID (\"name\" \"sodr\" \"version\" NIL {3}\r\nvnd \"x\")"),
        Command::Id {
            params: Some(vec![
                ("name".into(), Some("sodr".into())),
                ("version".into(), None),
                ("vnd".into(), Some("x".into()))
            ])
        }
    );
    assert_eq!(
        ok("a ID ()"),
        Command::Id {
            params: Some(vec![])
        }
    );
    assert!(parse(b"a ID (\"name\")").is_err());
    assert!(parse(b"a ID").is_err());
    assert!(parse(b"a ID FOO").is_err());
}

#[test]
fn store_forms() {
    assert_eq!(
        ok("a STORE 2:4 +FLAGS (\\Deleted $Label \\recent)"),
        Command::Store {
            uid: false,
            set: set(&[(2, 4)]),
            op: StoreOp::Add,
            silent: false,
            flags: flags(&[SysFlags::DELETED], &["$Label"])
        }
    );
    assert_eq!(
        ok("a UID STORE 1,* -flags.silent \\Seen \\ANSWERED foo"),
        Command::Store {
            uid: true,
            set: set(&[(1, 1), (STAR, STAR)]),
            op: StoreOp::Remove,
            silent: true,
            flags: flags(&[SysFlags::SEEN, SysFlags::ANSWERED], &["foo"])
        }
    );
    assert_eq!(
        ok("a STORE 1 FLAGS ()"),
        Command::Store {
            uid: false,
            set: set(&[(1, 1)]),
            op: StoreOp::Replace,
            silent: false,
            flags: Flags::default()
        }
    );
    assert!(err(b"a STORE 1 +FLAGS (\\Bogus)").message.contains("Bogus"));
    assert!(parse(b"a STORE 1 +FLAGS").is_err());
    assert!(parse(b"a STORE 1 *FLAGS (x)").is_err());
    assert!(parse(b"a STORE 1 FLAGS.LOUD (x)").is_err());
    assert!(parse(b"a STORE 1 FLAGS (x").is_err());
    assert!(parse(b"a STORE 1 FLAGS (x  y)").is_err());
    assert!(parse(b"a STORE 0 FLAGS (x)").is_err());
    assert!(parse(b"a STORE 1 FLAGS x ").is_err());
}

#[test]
fn copy_move_expunge() {
    assert_eq!(
        ok("a COPY 2:4 MEETING"),
        Command::Copy {
            uid: false,
            set: set(&[(2, 4)]),
            mailbox: "MEETING".into()
        }
    );
    assert_eq!(
        ok("a uid copy 4:2 \"x\""),
        Command::Copy {
            uid: true,
            set: set(&[(4, 2)]),
            mailbox: "x".into()
        }
    );
    assert_eq!(
        ok("a MOVE 1:* Trash"),
        Command::Move {
            uid: false,
            set: set(&[(1, STAR)]),
            mailbox: "Trash".into()
        }
    );
    assert_eq!(
        ok("a UID MOVE 7 Trash"),
        Command::Move {
            uid: true,
            set: set(&[(7, 7)]),
            mailbox: "Trash".into()
        }
    );
    assert_eq!(
        ok("a UID EXPUNGE 3000:3002"),
        Command::UidExpunge {
            set: set(&[(3000, 3002)])
        }
    );
    assert_eq!(err(b"a COPY 0 x").message, "Invalid sequence set");
    assert_eq!(err(b"a COPY 1:x y").message, "Invalid sequence set");
    assert_eq!(err(b"a COPY 1(x y").message, "Expected space");
    assert!(err(b"a COPY 4294967296 x").message.contains("too large"));
    assert!(err(b"a UID FOO 1")
        .message
        .contains("Unknown UID command FOO"));
    assert!(parse(b"a UID EXPUNGE").is_err());
    assert!(parse(b"a UID").is_err());
}

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
    assert!(parse(b"a FETCH 1 FOO").is_err());
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
        ("FROM Smith", K::Header("From".into(), "Smith".into())),
        ("TO \"a b\"", K::Header("To".into(), "a b".into())),
        ("CC x", K::Header("Cc".into(), "x".into())),
        ("BCC x", K::Header("Bcc".into(), "x".into())),
        (
            "SUBJECT {5}\r\nhi yo",
            K::Header("Subject".into(), "hi yo".into()),
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
            K::Not(Box::new(K::Header("From".into(), "Smith".into())))
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
            assert_eq!(key, K::Header("Subject".into(), "caf\u{e9}".into()))
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

#[test]
fn literals() {
    assert_eq!(
        ok("a SELECT {5}\r\nINBOX"),
        Command::Select {
            mailbox: "INBOX".into()
        }
    );
    assert_eq!(
        ok("a SELECT {5+}\r\nINBOX"),
        Command::Select {
            mailbox: "INBOX".into()
        }
    );
    assert_eq!(
        ok("a SELECT {0}\r\n"),
        Command::Select { mailbox: "".into() }
    );
    assert_eq!(
        err(b"a SELECT {5}\r\nINB").message,
        "Literal is shorter than announced"
    );
    assert!(parse(b"a SELECT {5}\r\nINBOXX").is_err());
    assert!(parse(b"a SELECT {5}INBOX").is_err());
    assert!(parse(b"a SELECT {5}\nINBOX").is_err());
    assert!(parse(b"a SELECT {-5}\r\nINBOX").is_err());
    assert!(parse(b"a SELECT {18446744073709551616}\r\nINBOX").is_err());
    assert!(parse(b"a SELECT {18446744073709551615}\r\nINBOX").is_err());
}

#[test]
fn append_head() {
    let head = |s: &[u8]| parse_append_head(s);
    assert_eq!(
        head(b"A003 APPEND saved-messages (\\Seen) {310}"),
        Some(Ok(AppendHead {
            tag: "A003".into(),
            mailbox: "saved-messages".into(),
            flags: flags(&[SysFlags::SEEN], &[]),
            date: None,
            size: 310,
            non_sync: false
        }))
    );
    assert_eq!(
        head(b"a append {5}\r\nDraft (\\Draft $x \\Recent) \" 7-Jul-1996 02:44:25 -0700\" {10+}"),
        Some(Ok(AppendHead {
            tag: "a".into(),
            mailbox: "Draft".into(),
            flags: flags(&[SysFlags::DRAFT], &["$x"]),
            date: Some(837_596_665 - 10 * 86400),
            size: 10,
            non_sync: true
        }))
    );
    assert_eq!(
        head(b"a APPEND INBOX \"17-Jul-1996 02:44:25 -0700\" {0}").map(|r| r.map(|h| h.date)),
        Some(Ok(Some(837_596_665)))
    );
    // Literal mailbox name still to come, other commands, unreadable tags.
    assert_eq!(head(b"a APPEND {5}"), None);
    assert_eq!(head(b"a APPEND {5+}"), None);
    assert_eq!(head(b"a LOGIN {5}"), None);
    assert_eq!(head(b"a SELECT {5}"), None);
    assert_eq!(head(b"(a APPEND INBOX {5}"), None);
    // Malformed APPENDs.
    for bad in [
        &b"a APPEND INBOX (\\Bogus) {5}"[..],
        b"a APPEND INBOX \"31-Feb-2020 00:00:00 +0000\" {5}",
        b"a APPEND INBOX (\\Seen {5}",
        b"a APPEND INBOX {5} {5}",
        b"a APPEND INBOX foo {5}",
        b"a APPEND INBOX {5",
        b"a APPEND INBOX  {5}",
        b"a APPEND INBOX",
        b"a APPEND",
    ] {
        let r = head(bad);
        assert!(
            matches!(&r, Some(Err(e)) if e.tag.as_deref() == Some("a")),
            "{:?}: {r:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // A full APPEND never becomes a Command.
    assert!(parse(b"a APPEND INBOX {3}\r\nabc").is_err());
    assert_eq!(err(b"a APPEND INBOX").message, "Missing argument");
}

/// Valid commands used as seeds for the mutation proptest.
const SEEDS: &[&[u8]] = &[
    b"a1 LOGIN {4}\r\nfred \"secret\"",
    b"a2 SEARCH CHARSET UTF-8 OR (FROM x SINCE 1-Jan-2020) NOT UID 1:*,5",
    b"a3 UID FETCH 1:* (FLAGS BODY.PEEK[1.HEADER.FIELDS (From To)]<0.100>)",
    b"a4 STORE 1,2:3 +FLAGS.SILENT (\\Seen $x)",
    b"a5 LIST (SUBSCRIBED) \"\" (\"a\" %) RETURN (CHILDREN)",
    b"a6 STATUS INBOX (MESSAGES SIZE)",
    b"a7 ID (\"name\" NIL)",
    b"a8 APPEND INBOX (\\Seen) \" 1-Jan-2020 00:00:00 +0000\" {3+}",
];

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes);
        let _ = parse_append_head(&bytes);
    }

    #[test]
    fn never_panics_on_mutated_commands(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = SEEDS[seed].to_vec();
        for (pos, byte, op) in edits {
            let at = pos % (bytes.len() + 1);
            match op {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => bytes.push(byte),
            }
        }
        let _ = parse(&bytes);
        let _ = parse_append_head(&bytes);
    }

    #[test]
    fn seeds_parse_and_prefixes_fail_cleanly(seed in 0..SEEDS.len(), cut in any::<usize>()) {
        let s = SEEDS[seed];
        if s.windows(6).any(|w| w.eq_ignore_ascii_case(b"APPEND")) {
            prop_assert!(parse_append_head(s).is_some_and(|r| r.is_ok()));
        } else {
            prop_assert!(parse(s).is_ok());
        }
        let cut = cut % s.len();
        let _ = parse(&s[..cut]);
        let _ = parse_append_head(&s[..cut]);
    }
}
