//! Fuzzes the mbox scanner (`From ` lines, header fields, Content-Length, long lines,
//! line ends of every kind): any bytes scan without a panic, every message it finds lies
//! inside the file in order, and the messages written back scan as as many messages.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    loft::mailbox::fuzz_mbox(data);
    // The same bytes after a valid first line (most inputs would not start with one).
    let mut file = b"From a Mon Dec  7 16:49:14 2026\n".to_vec();
    file.extend_from_slice(data);
    loft::mailbox::fuzz_mbox(&file);
});
