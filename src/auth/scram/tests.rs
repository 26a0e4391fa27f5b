use super::*;
use proptest::prelude::*;

const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const FULL_NONCE: &str = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

#[test]
fn rfc7677_example() {
    // RFC 7677 §3: user "user", password "pencil".
    let cf = parse_client_first(CLIENT_FIRST.as_bytes()).unwrap();
    assert_eq!(cf.user, "user");
    assert_eq!(cf.gs2_header, "n,,");
    assert_eq!(cf.client_nonce, "rOprNGfwEbeRWgbNEkqO");
    let salt = B64.decode(SALT).unwrap();
    let sf = server_first(FULL_NONCE, &salt, 4096);
    assert_eq!(
        sf,
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let fin = parse_client_final(CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(fin.channel_binding, b"n,,");
    assert_eq!(fin.nonce, FULL_NONCE);
    let keys = Keys::derive("pencil", &salt, 4096);
    let am = auth_message(&cf.bare, &sf, &fin.without_proof);
    assert!(keys.verify_proof(&am, &fin.proof));
    assert_eq!(
        keys.server_final(&am),
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
    // A wrong password's keys refuse the same proof.
    assert!(!Keys::derive("pencil2", &salt, 4096).verify_proof(&am, &fin.proof));
    let mut bad = fin.proof;
    bad[0] ^= 1;
    assert!(!keys.verify_proof(&am, &bad));
}

#[test]
fn stored_form_vectors() {
    // The RFC 7677 credentials in Dovecot's format (as GNU SASL's test suite writes them).
    let salt = B64.decode(SALT).unwrap();
    let keys = Keys::derive("pencil", &salt, 4096);
    assert_eq!(
        keys.to_stored(),
        "4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,\
         wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
            .replace(' ', "")
    );
    // Dovecot's own password-scheme test: {SCRAM-SHA-256} of "test".
    let dovecot = "4096,LfNGSFqiFykEZ1xDAYlnKQ==,HACNf9CII7cMz3XjRy/Oh3Ae2LHApoDyNw74d3YtFws=,\
                   AQH0j7Hf8J12g8eNBadvzlNB2am3PxgNwFCFd3RxEaw="
        .replace(' ', "");
    let k = Keys::parse_stored(&dovecot).unwrap();
    assert!(k.verify_password("test"));
    assert!(!k.verify_password("Test"));
    assert_eq!(k.to_stored(), dovecot);
    assert_eq!(Keys::parse_stored(&format!("{dovecot},extra")).unwrap(), k);
}

#[test]
fn malformed_stored() {
    for bad in [
        "",
        "4096",
        "x,AAAA,AAAA,AAAA",
        "0,c2FsdA==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
        "4096,!!,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
        "4096,c2FsdA==,c2FsdA==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
    ] {
        assert!(Keys::parse_stored(bad).is_err(), "{bad}");
    }
}

#[test]
fn client_first_variants() {
    let cf = parse_client_first(b"y,,n=user,r=abc").unwrap();
    assert_eq!(cf.gs2_header, "y,,");
    let cf = parse_client_first(b"n,a=us=3Der,n=us=3Der,r=abc,x=ext").unwrap();
    assert_eq!(cf.authzid.as_deref(), Some("us=er"));
    assert_eq!(cf.user, "us=er");
    assert_eq!(cf.gs2_header, "n,a=us=3Der,");
    assert_eq!(cf.bare, "n=us=3Der,r=abc,x=ext");
    assert_eq!(parse_client_first(b"n,,n=a=2Cb,r=x").unwrap().user, "a,b");
}

#[test]
fn client_first_refusals() {
    for bad in [
        &b""[..],
        b"n",
        b"n,",
        b"x,,n=user,r=abc",
        b"p=tls-unique,,n=user,r=abc",
        b"n,b=user,n=user,r=abc",
        b"n,,m=ext,n=user,r=abc",
        b"n,,n=user",
        b"n,,n=,r=abc",
        b"n,,n=us=er,r=abc",
        b"n,,n=user,r=",
        b"n,,n=user,r=a b",
        b"n,,r=abc,n=user",
        b"n,,n=user,r=abc,1=x",
        b"n,,n=user,r=abc,",
        b"n,,n=\xff,r=abc",
        b"n,,n=us\0er,r=abc",
    ] {
        assert!(
            parse_client_first(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn client_final_refusals() {
    for bad in [
        "",
        "c=biws,r=abc",
        "c=biws,r=abc,p=",
        "c=biws,r=abc,p=AAAA",
        "c=!!,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "r=abc,c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=a,b,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
    ] {
        assert!(parse_client_final(bad.as_bytes()).is_err(), "{bad}");
    }
    let ok = parse_client_final(b"c=eSws,r=abc,x=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        .unwrap();
    assert_eq!(ok.channel_binding, b"y,,");
    assert_eq!(ok.without_proof, "c=eSws,r=abc,x=1");
}

#[test]
fn nonces_are_fresh_and_printable() {
    let a = new_nonce();
    assert_ne!(a, new_nonce());
    assert!(is_printable(&a) && a.len() >= 24);
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_client_first(&bytes);
        let _ = parse_client_final(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = Keys::parse_stored(s);
            let _ = saslprep(s);
        }
    }

    #[test]
    fn structured_messages_never_panic(
        flag in "(n|y|p=[a-z-]{0,8}|[a-z=]{0,3})",
        authz in "(a=[a-zA-Z=0-9,]{0,6})?",
        user in "[a-zA-Z=0-9\\x00-\\x7f]{0,8}",
        nonce in "[\\x20-\\x7e]{0,12}",
        ext in "(,[a-z=]{0,4})*",
    ) {
        let msg = format!("{flag},{authz},n={user},r={nonce}{ext}");
        let _ = parse_client_first(msg.as_bytes());
        let fin = format!("c={authz},r={nonce}{ext},p={user}");
        let _ = parse_client_final(fin.as_bytes());
    }
}
