//! Fuzzes the POP3 command parser: any line must yield a command or an error, never a
//! panic or hang; and a parsed message number is never 0 (RFC 1939 §5). Run with
//! `cargo fuzz run pop3_command` from `tests/fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loft::pop3::command::{parse, Command};

fuzz_target!(|data: &[u8]| {
    match parse(data, 255) {
        Ok(Command::Retr(n) | Command::Dele(n) | Command::List(Some(n)) | Command::Uidl(Some(n))) => {
            assert!(n >= 1)
        }
        Ok(Command::Top { msg, .. }) => assert!(msg >= 1),
        Ok(_) => assert!(data.len() <= 255),
        Err(e) => assert!(!e.message.is_empty()),
    }
    // The body helpers run on the same bytes as if they were a message.
    let stuffed = loft::pop3::stuff::stuffed(data);
    assert!(stuffed.len() >= data.len());
    let _ = loft::pop3::stuff::top(data, 3);
});
