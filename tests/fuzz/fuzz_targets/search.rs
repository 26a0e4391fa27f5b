//! Fuzzes SEARCH evaluation over arbitrary message bytes with content-based keys
//! (header decoding, RFC 2047, transfer decoding, charsets, dates).

#![no_main]

use libfuzzer_sys::fuzz_target;
use loft::mailbox::date::Date;
use loft::imap::syntax::envelope::{may_contain, parse_for_search};
use loft::mailbox::search::{matches, EnvField, MessageContext, SearchKey};
use loft::mailbox::{Flags, MessageMeta};

fuzz_target!(|data: &[u8]| {
    let meta = MessageMeta { uid: 1, flags: Flags::default(), size: data.len() as u64, internal_date: 0 };
    let ctx = MessageContext { seq: 1, max_seq: 1, max_uid: 1, meta: &meta, recent: false, envelope: None };
    // The same bytes as a cached ENVELOPE.
    let env = parse_for_search(data);
    let _ = may_contain(data, "zephyrine");
    let env_ctx = MessageContext { envelope: env.as_ref(), ..ctx };
    let day = Date { year: 2020, month: 1, day: 1 };
    for key in [
        SearchKey::Header("From".into(), "a".into()),
        SearchKey::Header("Subject".into(), "é".into()),
        SearchKey::Envelope(EnvField::From, "a".into()),
        SearchKey::Envelope(EnvField::Subject, "é".into()),
        SearchKey::Body("x".into()),
        SearchKey::Text("=?".into()),
        SearchKey::SentBefore(day),
        SearchKey::SentOn(day),
    ] {
        let _ = matches(&key, &ctx, Some(data));
        let _ = matches(&key, &env_ctx, None);
    }
});
