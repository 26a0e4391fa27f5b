//! Fuzzes the MIME scanner and everything FETCH builds from it: any bytes as a message
//! must give a part tree, sections, ENVELOPE and BODYSTRUCTURE without a panic, and
//! `BODY[]` must be the message itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loft::imap::syntax::{bodystructure::bodystructure, envelope::envelope};
use loft::mailbox::message::{parse, section, Section, SectionText};

fuzz_target!(|data: &[u8]| {
    let root = parse(data);
    let mut out = Vec::new();
    envelope(data, &root, &mut out);
    bodystructure(data, &root, true, &mut out);
    bodystructure(data, &root, false, &mut out);
    let whole = section(data, &root, &Section::default());
    assert_eq!(whole.as_deref(), Some(data));
    for part in [vec![], vec![1], vec![1, 1], vec![2, 3]] {
        for text in [None, Some(SectionText::Header), Some(SectionText::Text), Some(SectionText::Mime),
            Some(SectionText::HeaderFields(vec!["From".into()]))] {
            let _ = section(data, &root, &Section { part: part.clone(), text });
        }
    }
});
