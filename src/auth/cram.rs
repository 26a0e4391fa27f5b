//! SASL CRAM-MD5 (RFC 2195) on HMAC-MD5 (RFC 2104): the server's challenge, the client's
//! `user SP hex(HMAC-MD5(secret, challenge))` response, and Dovecot's `{CRAM-MD5}` stored
//! form (the HMAC's inner and outer MD5 states after the padded key block, so the clear
//! password need not be kept). Pure computation; which users may use it, and the policy
//! around the check, belong to [`super::exchange`] and the authenticator.

use rand::RngCore;

use super::md5::{self, Md5, BLOCK};
use super::scheme::constant_time_eq;

/// HMAC-MD5 (RFC 2104 §2): keys longer than a block are hashed first.
pub fn hmac_md5(key: &[u8], msg: &[u8]) -> [u8; 16] {
    let (inner, outer) = key_contexts(key);
    finish(inner, outer, msg)
}

/// The inner (ipad) and outer (opad) MD5 contexts after absorbing the key block.
fn key_contexts(key: &[u8]) -> (Md5, Md5) {
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..16].copy_from_slice(&md5::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Md5::new();
    let mut outer = Md5::new();
    inner.update(&k.map(|b| b ^ 0x36));
    outer.update(&k.map(|b| b ^ 0x5c));
    (inner, outer)
}

fn finish(mut inner: Md5, mut outer: Md5, msg: &[u8]) -> [u8; 16] {
    inner.update(msg);
    outer.update(&inner.finalize());
    outer.finalize()
}

/// Dovecot's `{CRAM-MD5}` value of a password: 64 hex digits, the outer (opad) then the
/// inner (ipad) chaining state (A, B, C, D, each little-endian) after the key block
/// (the order checked against Dovecot's own test vector).
pub fn stored_contexts(password: &str) -> String {
    let (inner, outer) = key_contexts(password.as_bytes());
    let mut out = Vec::with_capacity(32);
    for st in [outer.state(), inner.state()].into_iter().flatten() {
        for w in st {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    md5::hex(&out)
}

/// HMAC-MD5 of `msg` from a `{CRAM-MD5}` stored value; `None` if it is not 64 hex digits.
pub fn hmac_from_stored(stored: &str, msg: &[u8]) -> Option<[u8; 16]> {
    let bytes = unhex(stored.trim())?;
    if bytes.len() != 32 {
        return None;
    }
    let mut words = [0u32; 8];
    for (w, c) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        let mut b = [0u8; 4];
        b.copy_from_slice(c);
        *w = u32::from_le_bytes(b);
    }
    let outer = Md5::from_state([words[0], words[1], words[2], words[3]], 1);
    let inner = Md5::from_state([words[4], words[5], words[6], words[7]], 1);
    Some(finish(inner, outer, msg))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| {
            let hi = (p.first()?.to_ascii_lowercase() as char).to_digit(16)?;
            let lo = (p.get(1)?.to_ascii_lowercase() as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// A fresh challenge in RFC 2195 §2's form `<random.timestamp@hostname>`; the random part
/// comes from the OS CSPRNG so challenges never repeat.
pub fn challenge(hostname: &str) -> String {
    let mut r = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut r);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_graphic() && !"<>@".contains(*c))
        .collect();
    let host = if host.is_empty() { "localhost" } else { &host };
    format!("<{}.{now}@{host}>", u64::from_le_bytes(r))
}

/// Splits a response `user SP digest` (RFC 2195 §2). The name is everything before the
/// last space (names may contain spaces); the digest must be 32 hex digits (either case).
pub fn parse_response(raw: &[u8]) -> Option<(String, [u8; 16])> {
    let text = std::str::from_utf8(raw).ok()?;
    let (user, hexd) = text.rsplit_once(' ')?;
    if user.is_empty() || hexd.len() != 32 || user.contains(['\0', '\r', '\n']) {
        return None;
    }
    let bytes = unhex(hexd)?;
    let mut d = [0u8; 16];
    d.copy_from_slice(bytes.get(..16)?);
    Some((user.to_string(), d))
}

/// Checks a response digest against the expected one in constant time.
pub fn digest_matches(expected: &[u8; 16], got: &[u8; 16]) -> bool {
    constant_time_eq(expected, got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2202_hmac_md5_vectors() {
        let cases: [(&[u8], &[u8], &str); 4] = [
            (&[0x0b; 16], b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "750c783e6ab0b503eaa86e310a5db738",
            ),
            (&[0xaa; 16], &[0xdd; 50], "56be34521d144c88dbb8c733f0e8b3f6"),
            (
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
            ),
        ];
        for (key, msg, want) in cases {
            assert_eq!(md5::hex(&hmac_md5(key, msg)), want);
        }
    }

    #[test]
    fn rfc2195_example() {
        // RFC 2195 §2: challenge, secret "tanstaaftanstaaf", response "tim b913a6…".
        let ch = b"<1896.697170952@postoffice.reston.mci.net>";
        let d = hmac_md5(b"tanstaaftanstaaf", ch);
        assert_eq!(md5::hex(&d), "b913a602c7eda7a495b4e6e7334d3890");
        let (user, got) = parse_response(b"tim b913a602c7eda7a495b4e6e7334d3890").unwrap();
        assert_eq!(user, "tim");
        assert!(digest_matches(&d, &got));
        // The same through a stored {CRAM-MD5} value.
        let stored = stored_contexts("tanstaaftanstaaf");
        assert_eq!(hmac_from_stored(&stored, ch), Some(d));
    }

    #[test]
    fn dovecot_stored_scheme_vector() {
        // Dovecot's own test suite: {CRAM-MD5} of "test".
        assert_eq!(
            stored_contexts("test"),
            "e02d374fde0dc75a17a557039a3a5338c7743304777dccd376f332bee68d2cf6"
        );
    }

    #[test]
    fn malformed_responses() {
        for bad in [
            &b""[..],
            b"tim",
            b" b913a602c7eda7a495b4e6e7334d3890",
            b"tim b913a602c7eda7a495b4e6e7334d389",
            b"tim b913a602c7eda7a495b4e6e7334d389g",
            b"tim b913a602c7eda7a495b4e6e7334d3890 ",
            b"t\xffm b913a602c7eda7a495b4e6e7334d3890",
        ] {
            assert_eq!(parse_response(bad), None, "{bad:?}");
        }
        let (u, _) = parse_response(b"tim smith B913A602C7EDA7A495B4E6E7334D3890").unwrap();
        assert_eq!(u, "tim smith");
        assert_eq!(hmac_from_stored("xyz", b""), None);
        assert_eq!(hmac_from_stored(&"0".repeat(62), b""), None);
    }

    #[test]
    fn challenge_shape() {
        let c = challenge("mail.example.org");
        assert!(
            c.starts_with('<') && c.ends_with("@mail.example.org>"),
            "{c}"
        );
        assert_ne!(c, challenge("mail.example.org"));
        assert!(challenge("").ends_with("@localhost>"));
    }
}
