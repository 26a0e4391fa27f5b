//! Property tests: the parser never panics on arbitrary or mutated input.

use super::*;
use proptest::prelude::*;

/// Valid commands used as seeds for the mutation proptest.
const SEEDS: &[&[u8]] = &[
    b"a1 LOGIN {4}\r\nfred \"secret\"",
    b"a2 SEARCH CHARSET UTF-8 OR (FROM x SINCE 1-Jan-2020) NOT UID 1:*,5",
    b"a3 UID FETCH 1:* (FLAGS BODY.PEEK[1.HEADER.FIELDS (From To)]<0.100>)",
    b"a4 STORE 1,2:3 +FLAGS.SILENT (\\Seen $x)",
    b"a5 LIST (SUBSCRIBED) \"\" (\"a\" %) RETURN (CHILDREN)",
    b"a6 STATUS INBOX (MESSAGES SIZE)",
    b"a7 ID (\"name\" NIL)",
    b"a8 APPEND INBOX (\\Seen) \" 1-Jan-2020 00:00:00 +0000\" {3+}",
];

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes);
        let _ = parse_append_head(&bytes);
    }

    #[test]
    fn never_panics_on_mutated_commands(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = SEEDS[seed].to_vec();
        for (pos, byte, op) in edits {
            let at = pos % (bytes.len() + 1);
            match op {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => bytes.push(byte),
            }
        }
        let _ = parse(&bytes);
        let _ = parse_append_head(&bytes);
    }

    #[test]
    fn seeds_parse_and_prefixes_fail_cleanly(seed in 0..SEEDS.len(), cut in any::<usize>()) {
        let s = SEEDS[seed];
        if s.windows(6).any(|w| w.eq_ignore_ascii_case(b"APPEND")) {
            prop_assert!(parse_append_head(s).is_some_and(|r| r.is_ok()));
        } else {
            prop_assert!(parse(s).is_ok());
        }
        let cut = cut % s.len();
        let _ = parse(&s[..cut]);
        let _ = parse_append_head(&s[..cut]);
    }
}
