//! MD5 (RFC 1321), needed only by legacy challenge-response logins: the POP3 APOP digest
//! (RFC 1939 §7) and HMAC-MD5 for SASL CRAM-MD5 (RFC 2104, RFC 2195). Written from the
//! RFC's description and checked against its test suite (appendix A.5). A streaming
//! context whose chaining state can be exported and re-imported at block boundaries, which
//! Dovecot's `{CRAM-MD5}` stored scheme needs. Not for anything else: MD5 is broken for
//! collision resistance. Knows nothing of users or protocols.

use std::sync::OnceLock;

/// Per-round shift amounts (RFC 1321 §3.4).
const SHIFTS: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
    14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15,
    21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// The initial chaining values A, B, C, D (RFC 1321 §3.3).
pub const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// The block size in bytes.
pub const BLOCK: usize = 64;

/// T[i] = floor(2^32 * |sin(i + 1)|) (RFC 1321 §3.4), computed once.
fn table() -> &'static [u32; 64] {
    static T: OnceLock<[u32; 64]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0u32; 64];
        for (i, v) in t.iter_mut().enumerate() {
            *v = ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32;
        }
        t
    })
}

/// One 64-byte block into the chaining state (RFC 1321 §3.4).
fn compress(state: &mut [u32; 4], block: &[u8; BLOCK]) {
    let t = table();
    let mut m = [0u32; 16];
    for (w, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
        let mut b = [0u8; 4];
        b.copy_from_slice(bytes);
        *w = u32::from_le_bytes(b);
    }
    let [mut a, mut b, mut c, mut d] = *state;
    for (i, (&ti, &shift)) in t.iter().zip(SHIFTS.iter()).enumerate() {
        let (f, g) = match i / 16 {
            0 => ((b & c) | (!b & d), i),
            1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
            2 => (b ^ c ^ d, (3 * i + 5) % 16),
            _ => (c ^ (b | !d), (7 * i) % 16),
        };
        let sum = a.wrapping_add(f).wrapping_add(ti).wrapping_add(m[g % 16]);
        a = d;
        d = c;
        c = b;
        b = b.wrapping_add(sum.rotate_left(shift));
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d]) {
        *s = s.wrapping_add(v);
    }
}

/// A running MD5 computation.
#[derive(Clone, Debug)]
pub struct Md5 {
    state: [u32; 4],
    buf: [u8; BLOCK],
    buf_len: usize,
    /// Bytes absorbed so far.
    len: u64,
}

impl Default for Md5 {
    fn default() -> Self {
        Md5::new()
    }
}

impl Md5 {
    pub fn new() -> Md5 {
        Md5::from_state(INIT, 0)
    }

    /// A context resumed from a chaining state after `blocks` whole 64-byte blocks
    /// (e.g. an HMAC key block, as `{CRAM-MD5}` stores).
    pub fn from_state(state: [u32; 4], blocks: u64) -> Md5 {
        Md5 {
            state,
            buf: [0; BLOCK],
            buf_len: 0,
            len: blocks.wrapping_mul(BLOCK as u64),
        }
    }

    /// The chaining state, only when a whole number of blocks has been absorbed.
    pub fn state(&self) -> Option<[u32; 4]> {
        (self.buf_len == 0).then_some(self.state)
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (BLOCK - self.buf_len).min(data.len());
            let (head, rest) = data.split_at(take);
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(head);
            self.buf_len += take;
            data = rest;
            if self.buf_len < BLOCK {
                return;
            }
            let block = self.buf;
            compress(&mut self.state, &block);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(BLOCK);
        for chunk in &mut chunks {
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(chunk);
            compress(&mut self.state, &block);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Pads (RFC 1321 §3.1-3.2: 0x80, zeros to 56 mod 64, the bit length little-endian)
    /// and returns the 16-octet digest.
    pub fn finalize(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        let pad_len = if self.buf_len < 56 {
            56 - self.buf_len
        } else {
            120 - self.buf_len
        };
        let mut pad = [0u8; BLOCK + 8];
        pad[0] = 0x80;
        self.update(&pad[..pad_len]);
        self.update(&bits.to_le_bytes());
        let mut out = [0u8; 16];
        for (chunk, s) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&s.to_le_bytes());
        }
        out
    }
}

/// The 16-octet digest of `data`.
pub fn digest(data: &[u8]) -> [u8; 16] {
    let mut m = Md5::new();
    m.update(data);
    m.finalize()
}

/// Lowercase hex of any bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest as 32 lowercase hex digits (the form APOP sends).
pub fn hex_digest(data: &[u8]) -> String {
    hex(&digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1321_test_suite() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(hex_digest(input.as_bytes()), want, "MD5({input:?})");
        }
    }

    #[test]
    fn streaming_equals_one_shot_at_every_split() {
        let data: Vec<u8> = (0..200u8).collect();
        for n in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 200] {
            let want = digest(&data[..n]);
            for split in 0..=n {
                let mut m = Md5::new();
                m.update(&data[..split]);
                m.update(&data[split..n]);
                assert_eq!(m.finalize(), want, "n={n} split={split}");
            }
        }
    }

    #[test]
    fn state_export_and_resume() {
        let block = [0x36u8; BLOCK];
        let mut m = Md5::new();
        m.update(&block);
        let st = m.state().unwrap();
        let mut a = m.clone();
        a.update(b"abc");
        assert_eq!(a.state(), None);
        let mut b = Md5::from_state(st, 1);
        b.update(b"abc");
        assert_eq!(a.finalize(), b.finalize());
    }

    #[test]
    fn rfc1939_apop_example() {
        // RFC 1939 §7: timestamp <1896.697170952@dbc.mtview.ca.us>, secret "tanstaaf".
        assert_eq!(
            hex_digest(b"<1896.697170952@dbc.mtview.ca.us>tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
    }
}
