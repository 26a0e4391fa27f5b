//! Fuzzes the IMAP command parser: any byte sequence must yield a value or an error, never
//! a panic, stack overflow or hang. Run with `cargo fuzz run imap_command` from
//! `tests/fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loft::imap::command::{parse, parse_append_head};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse(data) {
        // A parsed tag is never empty and never contains a space.
        assert!(!req.tag.is_empty() && !req.tag.contains(' '));
    }
    if let Some(Ok(head)) = parse_append_head(data) {
        assert!(!head.tag.is_empty());
    }
});
