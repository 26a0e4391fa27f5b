//! Line parser tests, including a property test that nothing panics.

use super::*;
use proptest::prelude::*;

#[test]
fn postfix_and_exim_requests() {
    // What Postfix's xsasl_dovecot sends.
    let l = b"AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.7\tsecured\tresp=AGFsaWNlAHB3";
    assert_eq!(
        parse_line(l),
        Ok(ClientLine::Auth(AuthCmd {
            id: 1,
            mech: "PLAIN".into(),
            service: "smtp".into(),
            resp: Some("AGFsaWNlAHB3".into()),
            secured: true,
            rip: Some("192.0.2.7".parse().unwrap()),
            lip: Some("127.0.0.1".parse().unwrap()),
        }))
    );
    assert_eq!(
        parse_line(b"VERSION\t1\t0"),
        Ok(ClientLine::Version { major: 1, minor: 0 })
    );
    assert_eq!(
        parse_line(b"CPID\t4242\r"),
        Ok(ClientLine::Cpid("4242".into()))
    );
    assert_eq!(
        parse_line(b"CONT\t7\tc2VjcmV0"),
        Ok(ClientLine::Cont {
            id: 7,
            data: "c2VjcmV0".into()
        })
    );
    assert_eq!(
        parse_line(b"CONT\t7"),
        Ok(ClientLine::Cont {
            id: 7,
            data: String::new()
        })
    );
}

#[test]
fn resp_is_last_and_unknown_parameters_are_ignored() {
    let Ok(ClientLine::Auth(a)) = parse_line(
        b"AUTH\t3\tlogin\tfoo=bar\tservice=smtp\tx\tresp=dXNlcg==\tsecured\trip=1.2.3.4",
    ) else {
        panic!()
    };
    assert_eq!(a.mech, "LOGIN");
    assert_eq!(a.resp.as_deref(), Some("dXNlcg=="));
    assert!(!a.secured, "parameters after resp= are ignored");
    assert_eq!(a.rip, None);
    let Ok(ClientLine::Auth(a)) = parse_line(b"AUTH\t3\tPLAIN\tservice=smtp\trip=::ffff:10.1.2.3")
    else {
        panic!()
    };
    assert_eq!(
        a.rip,
        Some("10.1.2.3".parse().unwrap()),
        "v4-mapped is canonical"
    );
}

#[test]
fn malformed_lines_report_the_id_when_readable() {
    assert_eq!(parse_line(b"AUTH\tx\tPLAIN").unwrap_err().id, None);
    assert_eq!(parse_line(b"AUTH\t5").unwrap_err().id, Some(5));
    assert_eq!(
        parse_line(b"AUTH\t5\tPLAIN").unwrap_err().id,
        Some(5),
        "no service"
    );
    assert_eq!(
        parse_line(b"AUTH\t99999999999\tPLAIN\tservice=smtp")
            .unwrap_err()
            .id,
        None
    );
    assert_eq!(parse_line(b"HELLO\tworld").unwrap_err().id, None);
    assert_eq!(parse_line(b"").unwrap_err().id, None);
    let mut long = b"AUTH\t12\tPLAIN\tservice=smtp\tresp=".to_vec();
    long.resize(MAX_LINE + 10, b'A');
    let e = parse_line(&long).unwrap_err();
    assert_eq!(e.id, Some(12));
    assert!(e.why.contains("too long"));
    assert_eq!(readable_id(b"CONT\t8\txx"), Some(8));
    assert_eq!(readable_id(b"XYZ\t8"), None);
}

#[test]
fn escaping_round_trips() {
    let raw = "a\tb\nc\rd\0e\x01f";
    let esc = escape(raw);
    assert!(!esc.contains(['\t', '\n', '\r', '\0']));
    assert_eq!(unescape(esc.as_bytes()), raw.as_bytes());
    assert_eq!(unescape(b"x\x01ly\x01"), b"x\ny");
    assert_eq!(unescape(b"\x01q"), b"q");
}

#[test]
fn answers() {
    assert_eq!(ok(1, "alice"), "OK\t1\tuser=alice\n");
    assert_eq!(fail(2, Some("bob"), None, false), "FAIL\t2\tuser=bob\n");
    assert_eq!(
        fail(3, None, Some("try later"), true),
        "FAIL\t3\tcode=temp_fail\ttemp\treason=try later\n"
    );
    assert_eq!(ok(4, "ev\til"), "OK\t4\tuser=ev\x01til\n");
    let h = handshake(
        &[("PLAIN", "plaintext"), ("LOGIN", "plaintext")],
        10,
        3,
        "ab",
    );
    assert_eq!(
        h,
        "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t10\nCUID\t3\nCOOKIE\tab\nDONE\n"
    );
}

proptest! {
    #[test]
    fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_line(&line);
        let _ = readable_id(&line);
        let _ = unescape(&line);
    }

    #[test]
    fn structured_garbage(id in any::<u32>(), mech in "[A-Z\\-]{0,12}", junk in "[ -~\t\x01]{0,80}") {
        let l = format!("AUTH\t{id}\t{mech}\t{junk}");
        match parse_line(l.as_bytes()) {
            Ok(ClientLine::Auth(a)) => prop_assert_eq!(a.id, id),
            Ok(other) => prop_assert!(false, "{:?}", other),
            Err(e) => prop_assert!(e.id.is_none() || e.id == Some(id)),
        }
    }
}
