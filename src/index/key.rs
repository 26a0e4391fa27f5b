//! A record's storage key (for Maildir, the file's base name), held inside the record
//! when short, as nearly every key is: a first scan of 100,000 messages made as many
//! allocations for keys of about 50 bytes, and every chunk copy as many reference-count
//! changes. Longer keys are shared allocations.
//!
//! This module knows bytes, nothing of what a key names.

use std::sync::Arc;

/// Keys up to this many bytes are held inline (the key is then 64 bytes).
const INLINE: usize = 62;

/// Bytes that compare, hash and print as a byte slice. Made only by [`Key::new`] (the
/// representation is private, so an inline length is never beyond its bytes).
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl Key {
    pub fn new(b: &[u8]) -> Key {
        let mut bytes = [0u8; INLINE];
        match bytes.get_mut(..b.len()) {
            Some(inline) => {
                inline.copy_from_slice(b);
                Key(Repr::Inline {
                    len: b.len() as u8,
                    bytes,
                })
            }
            None => Key(Repr::Shared(Arc::from(b))),
        }
    }
}

impl Default for Key {
    fn default() -> Key {
        Key::new(&[])
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Shared(a) => a,
        }
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (**self).hash(h)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Key {
        Key::new(b)
    }
}

impl<const N: usize> From<&[u8; N]> for Key {
    fn from(b: &[u8; N]) -> Key {
        Key::new(b)
    }
}

impl From<Vec<u8>> for Key {
    fn from(b: Vec<u8>) -> Key {
        Key::new(&b)
    }
}

impl From<Box<[u8]>> for Key {
    fn from(b: Box<[u8]>) -> Key {
        Key::new(&b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_inline_and_long_ones_shared_both_reading_the_same() {
        assert_eq!(std::mem::size_of::<Key>(), 64);
        for n in [0, 1, 50, INLINE, INLINE + 1, 300] {
            let b: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let k = Key::new(&b);
            assert_eq!(&*k, &b[..]);
            assert_eq!(matches!(k.0, Repr::Inline { .. }), n <= INLINE);
            assert_eq!(k.clone(), Key::from(b.clone()));
        }
        assert_ne!(Key::new(b"ab"), Key::new(b"abc"));
    }
}
