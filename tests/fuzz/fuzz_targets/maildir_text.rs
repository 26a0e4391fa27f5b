//! Fuzzes the parsers of what a Maildir holds as text: file names (each line as a name),
//! `loft-uidlist`, `dovecot-uidlist`, `dovecot-keywords`, folder directory names and the scan
//! stamp (`loft.index.scan`, which must encode back to itself) must
//! accept or refuse any bytes without a panic; a parsed name's base is a prefix of it and
//! its flags give a parsable new name.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        loft::mailbox::fuzz_maildir_text(text);
    }
});
