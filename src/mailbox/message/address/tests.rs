use super::*;

fn a(name: Option<&str>, adl: Option<&str>, mb: Option<&str>, host: Option<&str>) -> Address {
    let v = |s: Option<&str>| s.map(|s| s.as_bytes().to_vec());
    Address {
        name: v(name),
        adl: v(adl),
        mailbox: v(mb),
        host: v(host),
    }
}

#[test]
fn simple_forms() {
    assert_eq!(
        parse_list(b"\"Doe, John\" <john@ex.com>, jane@ex.com (Jane D), <x@y>"),
        vec![
            a(Some("Doe, John"), None, Some("john"), Some("ex.com")),
            a(Some("Jane D"), None, Some("jane"), Some("ex.com")),
            a(None, None, Some("x"), Some("y")),
        ]
    );
    assert_eq!(
        parse_list(b"John Q. Public <@r1,@r2:jqp@[1.2.3.4]>"),
        vec![a(
            Some("John Q. Public"),
            Some("@r1,@r2"),
            Some("jqp"),
            Some("[1.2.3.4]")
        )]
    );
    assert_eq!(
        parse_list(b"\"john doe\"@ex.com, \"plain\"@ex.com"),
        vec![
            a(None, None, Some("john doe"), Some("ex.com")),
            a(None, None, Some("plain"), Some("ex.com")),
        ]
    );
    assert_eq!(
        parse_list(b"=?utf-8?q?J=C3=B6rg?= <j@x>"),
        vec![a(Some("=?utf-8?q?J=C3=B6rg?="), None, Some("j"), Some("x"))]
    );
}

#[test]
fn groups() {
    assert_eq!(
        parse_list(b"A Team: a@x, B <b@y>; c@z, Empty:;"),
        vec![
            a(None, None, Some("A Team"), None),
            a(None, None, Some("a"), Some("x")),
            a(Some("B"), None, Some("b"), Some("y")),
            a(None, None, None, None),
            a(None, None, Some("c"), Some("z")),
            a(None, None, Some("Empty"), None),
            a(None, None, None, None),
        ]
    );
    // Unterminated group is closed at the end.
    assert_eq!(
        parse_list(b"g: a@b"),
        vec![
            a(None, None, Some("g"), None),
            a(None, None, Some("a"), Some("b")),
            a(None, None, None, None),
        ]
    );
}

#[test]
fn broken_addresses() {
    assert_eq!(
        parse_list(b"foo"),
        vec![a(None, None, Some("foo"), Some("MISSING_DOMAIN"))]
    );
    assert_eq!(
        parse_list(b"Name <@host>, <>, a@"),
        vec![
            a(
                Some("Name"),
                Some("INVALID_ROUTE"),
                Some("MISSING_MAILBOX"),
                Some("MISSING_DOMAIN")
            ),
            a(None, None, Some("MISSING_MAILBOX"), Some("MISSING_DOMAIN")),
            a(None, None, Some("a"), Some("MISSING_DOMAIN")),
        ]
    );
    assert_eq!(parse_list(b"  , ,"), vec![]);
    assert_eq!(
        parse_list(b"\"unterminated <a@b"),
        vec![a(
            None,
            None,
            Some("unterminated <a@b"),
            Some("MISSING_DOMAIN")
        )]
    );
    assert_eq!(
        parse_list(b"x <a@b"),
        vec![a(Some("x"), None, Some("a"), Some("b"))]
    );
    assert_eq!(parse_list(b"(only comment)"), vec![]);
    assert_eq!(parse_list(b"((( a@b"), vec![]);
}

#[test]
fn search_text_form() {
    assert_eq!(
        search_text(b"=?utf-8?q?J=C3=B6rg?= <j@x>, g:;"),
        "J\u{f6}rg <j@x> g: "
    );
}
