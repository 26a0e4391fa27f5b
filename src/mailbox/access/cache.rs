//! The cached values of one batch, copied out of the index cache under one lookup per
//! field into one reused buffer (no allocation per value).

use crate::mailbox::{Mailbox, Uid};

#[derive(Default)]
pub(super) struct ChunkCache {
    bytes: Vec<u8>,
    /// `spans[f * n + k]`: where field `f`'s value for message `k` of the chunk is.
    spans: Vec<Option<(usize, usize)>>,
    n: usize,
}

impl ChunkCache {
    pub(super) fn clear(&mut self, n: usize) {
        self.bytes.clear();
        self.spans.clear();
        self.n = n;
    }

    pub(super) fn fill(&mut self, mailbox: &dyn Mailbox, uids: &[Uid], fields: &[&str]) {
        self.clear(uids.len());
        for field in fields {
            let base = self.spans.len();
            self.spans.resize(base + uids.len(), None);
            let (bytes, spans) = (&mut self.bytes, &mut self.spans);
            mailbox.cache_lookup(uids, field, &mut |k, v| {
                if let (Some(v), Some(slot)) = (v, spans.get_mut(base + k)) {
                    let start = bytes.len();
                    bytes.extend_from_slice(v);
                    *slot = Some((start, bytes.len()));
                }
            });
        }
    }

    /// Field `f`'s cached value for message `k` of the chunk.
    pub(super) fn get(&self, f: usize, k: usize) -> Option<&[u8]> {
        let (start, end) = (*self.spans.get(f * self.n + k)?)?;
        self.bytes.get(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_cache_spans() {
        let mut c = ChunkCache {
            n: 3,
            ..ChunkCache::default()
        };
        c.bytes.extend_from_slice(b"abcde");
        c.spans = vec![Some((0, 2)), None, Some((2, 5)), None, Some((5, 5)), None];
        assert_eq!(c.get(0, 0), Some(&b"ab"[..]));
        assert_eq!(c.get(0, 1), None);
        assert_eq!(c.get(0, 2), Some(&b"cde"[..]));
        assert_eq!(c.get(1, 1), Some(&b""[..]));
        assert_eq!(c.get(2, 0), None);
    }
}
