//! RFC 3501 §9 `sequence-set`: `1,3:5,7:*,*` <-> [`NumSet`].
//!
//! Parsing keeps ranges exactly as sent (reversed ranges stay reversed, `*` is
//! [`NumSet::STAR`]); resolving against a mailbox is the session's business. Formatting is
//! the inverse, used for COPYUID / APPENDUID (RFC 4315 §3) where UID lists are sent compactly.

use crate::mailbox::search::NumSet;

/// Why a sequence set was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqSetError {
    Empty,
    /// `0` is not a valid `nz-number`.
    Zero,
    /// More than 4294967295 (RFC 3501 §9: numbers are unsigned 32-bit).
    TooLarge,
    Syntax,
}

/// One `seq-number`: `nz-number / "*"`.
fn seq_number(s: &[u8]) -> Result<u32, SeqSetError> {
    if s == b"*" {
        return Ok(NumSet::STAR);
    }
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(SeqSetError::Syntax);
    }
    let mut n: u64 = 0;
    for &c in s {
        n = n * 10 + u64::from(c - b'0');
        if n > u64::from(u32::MAX) {
            return Err(SeqSetError::TooLarge);
        }
    }
    match n {
        0 => Err(SeqSetError::Zero),
        // 4294967295 is a number like any other, not `*` (`NumSet::STAR` is 0): `UID
        // FETCH 4294967295` names no message unless one has that UID.
        n => Ok(n as u32),
    }
}

/// Parses a whole sequence set (no surrounding spaces).
pub fn parse(s: &[u8]) -> Result<NumSet, SeqSetError> {
    if s.is_empty() {
        return Err(SeqSetError::Empty);
    }
    let mut ranges = Vec::new();
    for item in s.split(|&c| c == b',') {
        let mut parts = item.splitn(2, |&c| c == b':');
        let a = seq_number(parts.next().unwrap_or_default())?;
        let b = match parts.next() {
            Some(b) => seq_number(b)?,
            None => a,
        };
        ranges.push((a, b));
    }
    Ok(NumSet { ranges })
}

/// Formats a set as `a:b,c,...` in the order given (`*` for [`NumSet::STAR`]).
pub fn format(set: &NumSet) -> String {
    let num = |n: u32| {
        if n == NumSet::STAR {
            "*".to_string()
        } else {
            n.to_string()
        }
    };
    let mut out = String::new();
    for (i, &(a, b)) in set.ranges.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&num(a));
        if a != b {
            out.push(':');
            out.push_str(&num(b));
        }
    }
    out
}

/// Builds a compact set from a list of numbers, joining runs of consecutive ascending
/// numbers (`[1, 2, 3, 5]` -> `1:3,5`). Order is kept, so two parallel lists (COPYUID
/// source and destination UIDs) stay pairwise aligned.
pub fn compress(nums: &[u32]) -> NumSet {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &n in nums {
        match ranges.last_mut() {
            Some((a, b)) if *a <= *b && b.checked_add(1) == Some(n) => *b = n,
            _ => ranges.push((n, n)),
        }
    }
    NumSet { ranges }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_rfc_examples() {
        let s = parse(b"1,3:5,7:*,*").unwrap();
        assert_eq!(
            s.ranges,
            vec![
                (1, 1),
                (3, 5),
                (7, NumSet::STAR),
                (NumSet::STAR, NumSet::STAR)
            ]
        );
        assert_eq!(parse(b"5:2").unwrap().ranges, vec![(5, 2)]);
        assert_eq!(parse(b"*:4").unwrap().ranges, vec![(NumSet::STAR, 4)]);
        assert_eq!(
            parse(b"4294967294").unwrap().ranges,
            vec![(4294967294, 4294967294)]
        );
        assert_eq!(parse(b"1:4294967295").unwrap().ranges, vec![(1, u32::MAX)]);
        assert_ne!(parse(b"4294967295").unwrap(), parse(b"*").unwrap());
    }

    #[test]
    fn rejects_bad_sets() {
        assert_eq!(parse(b""), Err(SeqSetError::Empty));
        assert_eq!(parse(b"0"), Err(SeqSetError::Zero));
        assert_eq!(parse(b"1:0"), Err(SeqSetError::Zero));
        assert_eq!(parse(b"4294967296"), Err(SeqSetError::TooLarge));
        assert_eq!(
            parse(b"99999999999999999999999"),
            Err(SeqSetError::TooLarge)
        );
        for bad in [
            &b"1,"[..],
            b",1",
            b"1::2",
            b"1:2:3",
            b":",
            b"a",
            b"1 2",
            b"**",
            b"1,,2",
        ] {
            assert_eq!(parse(bad), Err(SeqSetError::Syntax), "{:?}", bad);
        }
    }

    #[test]
    fn formats_and_compresses() {
        assert_eq!(format(&compress(&[1, 2, 3, 5])), "1:3,5");
        assert_eq!(format(&compress(&[7])), "7");
        assert_eq!(format(&compress(&[])), "");
        assert_eq!(format(&compress(&[3, 4, 1, 2])), "3:4,1:2");
        assert_eq!(
            format(&compress(&[u32::MAX - 1, u32::MAX])),
            "4294967294:4294967295"
        );
        assert_eq!(format(&parse(b"7:*,*,5:2").unwrap()), "7:*,*,5:2");
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(ranges in proptest::collection::vec(
            (prop_oneof![1u32..=u32::MAX, Just(NumSet::STAR)],
             prop_oneof![1u32..=u32::MAX, Just(NumSet::STAR)]), 1..20)) {
            let set = NumSet { ranges };
            let text = format(&set);
            prop_assert_eq!(parse(text.as_bytes()).unwrap(), set);
        }

        #[test]
        fn compress_covers_exactly(mut nums in proptest::collection::vec(1u32..500, 0..60)) {
            nums.sort_unstable();
            nums.dedup();
            let set = compress(&nums);
            let text = format(&set);
            if !nums.is_empty() {
                let back = parse(text.as_bytes()).unwrap();
                for n in 1..510 {
                    prop_assert_eq!(back.contains(n, 1000), nums.contains(&n));
                }
            }
        }

        /// Resolution against a mailbox whose highest number is `max`: `*` is `max`,
        /// every other number (4294967295 included) stands for itself, and a range
        /// covers what lies between its ends in either order.
        #[test]
        fn resolves_numbers_and_star(
            ends in proptest::collection::vec((
                prop_oneof![Just(None), (1u32..20).prop_map(Some), Just(Some(u32::MAX))],
                prop_oneof![Just(None), (1u32..20).prop_map(Some), Just(Some(u32::MAX))],
            ), 1..5),
            max in 0u32..15,
            probe in prop_oneof![1u32..25, Just(u32::MAX), Just(u32::MAX - 1)],
        ) {
            let text: Vec<String> = ends
                .iter()
                .map(|(a, b)| {
                    let t = |x: &Option<u32>| x.map_or("*".to_string(), |n| n.to_string());
                    format!("{}:{}", t(a), t(b))
                })
                .collect();
            let set = parse(text.join(",").as_bytes()).unwrap();
            let expected = ends.iter().any(|(a, b)| {
                let (a, b) = (a.unwrap_or(max), b.unwrap_or(max));
                a.min(b) <= probe && probe <= a.max(b)
            });
            prop_assert_eq!(set.contains(probe, max), expected, "{:?} max {}", text, max);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse(&bytes);
        }
    }
}
