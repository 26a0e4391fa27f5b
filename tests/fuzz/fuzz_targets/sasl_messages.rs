//! Fuzzes the challenge-response message parsers: SCRAM-SHA-256 client-first and
//! client-final messages, Dovecot's stored `{SCRAM-SHA-256}` and `{CRAM-MD5}` forms,
//! CRAM-MD5 responses and SASLprep. Any bytes must give a value or an error, never a panic;
//! a parsed client-first message must also round-trip its `bare` part.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loft::auth::{cram, saslprep, scram};

fuzz_target!(|data: &[u8]| {
    if let Ok(cf) = scram::parse_client_first(data) {
        assert!(data.ends_with(cf.bare.as_bytes()));
        assert!(cf.gs2_header.ends_with(','));
    }
    let _ = scram::parse_client_final(data);
    let _ = cram::parse_response(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = saslprep::saslprep(s);
        let _ = cram::hmac_from_stored(s, b"<1.2@h>");
        if let Ok(k) = scram::Keys::parse_stored(s) {
            // Cheap check only: no PBKDF2 on fuzzer-chosen iteration counts.
            assert_eq!(scram::Keys::parse_stored(&k.to_stored()).ok(), Some(k));
        }
    }
});
