//! parse_append_head and APPEND reaching parse.

use super::*;
use crate::imap::command::AppendHead;

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
