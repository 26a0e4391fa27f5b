use super::*;
use crate::mailbox::message::mime::tests as samples;
use crate::mailbox::message::parse;
use imap_codec::decode::Decoder;
use imap_codec::ResponseCodec;

fn bs(m: &[u8], extended: bool) -> String {
    let mut out = Vec::new();
    bodystructure(m, &parse(m), extended, &mut out);
    String::from_utf8(out).unwrap()
}

/// imap-codec as an independent oracle: the whole FETCH response line must parse.
pub(crate) fn assert_valid_fetch(item: &str, value: &[u8]) {
    let mut line = format!("* 1 FETCH ({item} ").into_bytes();
    line.extend_from_slice(value);
    line.extend_from_slice(b")\r\n");
    match ResponseCodec::default().decode(&line) {
        Ok((rest, _)) => assert!(rest.is_empty(), "trailing bytes"),
        Err(e) => panic!(
            "imap-codec rejects {:?}: {e:?}",
            String::from_utf8_lossy(&line)
        ),
    }
}

fn check_both(m: &[u8]) {
    for ext in [true, false] {
        let mut out = Vec::new();
        bodystructure(m, &parse(m), ext, &mut out);
        assert_valid_fetch(if ext { "BODYSTRUCTURE" } else { "BODY" }, &out);
    }
}

#[test]
fn simple() {
    assert_eq!(
        bs(samples::SIMPLE, true),
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2 NIL NIL NIL NIL)"
    );
    assert_eq!(
        bs(samples::SIMPLE, false),
        "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)"
    );
    check_both(samples::SIMPLE);
}

#[test]
fn mixed_with_attachment() {
    assert_eq!(
        bs(samples::MIXED, true),
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1 NIL NIL NIL NIL)\
         (\"application\" \"pdf\" (\"name\" \"a.pdf\") \"<id1>\" \"A file\" \"base64\" 8 \
         \"Q2hlY2s=\" (\"attachment\" (\"filename\" \"a.pdf\")) (\"en\" \"de\") \
         \"http://x/a.pdf\") \"mixed\" (\"boundary\" \"b1\") NIL NIL NIL)"
    );
    assert_eq!(
        bs(samples::MIXED, false),
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 7 1)\
         (\"application\" \"pdf\" (\"name\" \"a.pdf\") \"<id1>\" \"A file\" \"base64\" 8) \
         \"mixed\")"
    );
    check_both(samples::MIXED);
}

#[test]
fn alternative() {
    assert_eq!(
        bs(samples::ALTERNATIVE, false),
        "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 26 1)\
         (\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"quoted-printable\" 11 0) \
         \"alternative\")"
    );
    check_both(samples::ALTERNATIVE);
}

#[test]
fn nested_message() {
    let inner_env =
        "(NIL \"inner\" ((\"Inner\" NIL \"in\" \"ner\")) ((\"Inner\" NIL \"in\" \"ner\")) \
                     ((\"Inner\" NIL \"in\" \"ner\")) NIL NIL NIL NIL NIL)";
    let expected = format!(
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0)\
         (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 160 {inner_env} \
         ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0)\
         (\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 0) \"alternative\") 11) \
         \"mixed\")"
    );
    assert_eq!(bs(samples::NESTED, false), expected);
    check_both(samples::NESTED);
}

#[test]
fn digest_and_empty_multipart() {
    check_both(samples::DIGEST);
    let m = b"Content-Type: multipart/mixed\r\n\r\nno parts\r\n";
    assert_eq!(
        bs(m, true),
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\" NIL NIL NIL NIL)"
    );
    check_both(m);
}

#[test]
fn odd_values_are_still_valid() {
    let m = "Content-Type: Text/Plain; Charset=\"a\\\"b\"; name*=utf-8''%C3%A9\r\n\
             Content-Description: caf\u{e9} \"q\"\r\n\r\nx"
        .as_bytes();
    assert_eq!(
        bs(m, false),
        "(\"Text\" \"Plain\" (\"Charset\" \"a\\\"b\" \"name*\" \"utf-8''%C3%A9\") NIL \
         {9}\r\ncaf\u{e9} \"q\" \"7bit\" 1 0)"
    );
    check_both(m);
}
