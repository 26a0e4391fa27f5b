//! A hasher for UIDs, far cheaper than SipHash: UIDs are assigned by the store, not
//! chosen by a client, so no flooding defence is needed. The low bits are the UID itself,
//! so ascending UIDs sit in neighbouring buckets and a `FETCH 1:*`, which looks them up in
//! order, reads a table sequentially instead of taking a cache miss per message; the top 7
//! bits (the table's per-slot tag) are mixed so neighbours still tell apart at a glance.
//! Surviving UIDs spaced a regular stride apart share home buckets: a lookup then costs
//! about stride/16 probes, harmless for any spacing a real mailbox's history can produce.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
pub struct UidHasher(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for UidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(GOLDEN);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0.wrapping_mul(GOLDEN) & !(u64::MAX >> 7))
    }
}

/// A map keyed by UID with [`UidHasher`].
pub type UidHashMap<V> = HashMap<u32, V, BuildHasherDefault<UidHasher>>;
/// A set of UIDs with [`UidHasher`].
pub type UidHashSet = HashSet<u32, BuildHasherDefault<UidHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_hash_keeps_the_uid_in_the_low_bits() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<UidHasher>::default();
        let h: Vec<u64> = (1u32..=64).map(|u| b.hash_one(u)).collect();
        for (u, x) in (1u64..).zip(&h) {
            assert_eq!(x & 0xffff_ffff, u, "low bits are the uid");
        }
        let tags: HashSet<u64> = h.iter().map(|x| x >> 57).collect();
        assert!(tags.len() > 32, "slot tags differ between neighbours");
        let set: UidHashSet = (1..=10_000).step_by(3).collect();
        assert!(set.contains(&9_997) && !set.contains(&9_998));
    }
}
