//! Tags, simple commands, LOGIN/AUTHENTICATE, mailbox commands, LIST, STATUS, ID, ENABLE, STORE, COPY/MOVE, literals.

use super::*;
use crate::imap::command::{ListOptions, ParseErrorKind, StatusItem};
use crate::mailbox::StoreOp;

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
