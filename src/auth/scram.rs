//! SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding: the keys (SaltedPassword
//! by PBKDF2-HMAC-SHA-256, StoredKey, ServerKey), Dovecot's `{SCRAM-SHA-256}` stored form
//! `iterations,base64(salt),base64(StoredKey),base64(ServerKey)`, and the four messages
//! parsed and built strictly by the RFC 5802 §7 grammar. Pure computation and parsing:
//! which salt a user gets, and the policy around a check, belong to the authenticator.
//!
//! Every parser returns an error for anything off-grammar and never panics, whatever the
//! bytes (see the proptest and the fuzz target).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::saslprep::saslprep;
use super::scheme::constant_time_eq;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// RFC 7677 §4: at least 4096 iterations.
pub const MIN_ITERATIONS: u32 = 4096;
/// Highest iteration count accepted from a stored hash (bounds the CPU one login costs).
pub const MAX_ITERATIONS: u32 = 10_000_000;

type HmacSha256 = Hmac<Sha256>;

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// What is wrong with a stored SCRAM-SHA-256 value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoredError {
    #[error("expected iterations,salt,StoredKey,ServerKey")]
    Fields,
    #[error("bad iteration count {0:?}")]
    BadIterations(String),
    #[error("iteration count {0} out of range")]
    IterationsOutOfRange(u32),
    #[error("salt is not base64")]
    SaltNotBase64,
    #[error("empty salt")]
    EmptySalt,
    #[error("{0} is not 32 bytes of base64")]
    KeyNot32Bytes(&'static str),
}

/// The server-side secrets of one password (RFC 5802 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

/// The password as SCRAM hashes it: SASLprep'd (RFC 5802 §2.2); a password SASLprep
/// refuses is used as its raw bytes, so such passwords still work with clients that
/// do not prepare them.
fn normalize(password: &str) -> Vec<u8> {
    match saslprep(password) {
        Ok(p) => p.into_owned().into_bytes(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

impl Keys {
    /// Derives the keys from a clear password.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Keys {
        let mut salted = [0u8; 32];
        // Only fails for an output length HMAC-SHA-256 cannot make; 32 is fine.
        let _ = pbkdf2::pbkdf2::<HmacSha256>(&normalize(password), salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, b"Client Key");
        Keys {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Parses Dovecot's stored form (the part after `{SCRAM-SHA-256}`). Fields after the
    /// fourth (some tools append one) are ignored.
    pub fn parse_stored(s: &str) -> Result<Keys, StoredError> {
        let mut f = s.trim().split(',');
        let (Some(i), Some(salt), Some(stored), Some(server)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(StoredError::Fields);
        };
        let iterations: u32 = i
            .parse()
            .map_err(|_| StoredError::BadIterations(i.to_string()))?;
        if !(1..=MAX_ITERATIONS).contains(&iterations) {
            return Err(StoredError::IterationsOutOfRange(iterations));
        }
        let salt = B64.decode(salt).map_err(|_| StoredError::SaltNotBase64)?;
        if salt.is_empty() {
            return Err(StoredError::EmptySalt);
        }
        let key = |what: &'static str, v: &str| -> Result<[u8; 32], StoredError> {
            B64.decode(v)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
                .ok_or(StoredError::KeyNot32Bytes(what))
        };
        Ok(Keys {
            iterations,
            salt,
            stored_key: key("StoredKey", stored)?,
            server_key: key("ServerKey", server)?,
        })
    }

    /// Dovecot's stored form, without the `{SCRAM-SHA-256}` prefix.
    pub fn to_stored(&self) -> String {
        format!(
            "{},{},{},{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    /// Does `password` produce these keys? (Plain verification of a stored SCRAM hash.)
    pub fn verify_password(&self, password: &str) -> bool {
        let k = Keys::derive(password, &self.salt, self.iterations);
        constant_time_eq(&k.stored_key, &self.stored_key)
    }

    /// RFC 5802 §3: recovers ClientKey from the proof and checks H(ClientKey) == StoredKey.
    pub fn verify_proof(&self, auth_message: &str, proof: &[u8; 32]) -> bool {
        let sig = hmac_sha256(&self.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for ((k, p), s) in client_key.iter_mut().zip(proof).zip(sig) {
            *k = p ^ s;
        }
        let h: [u8; 32] = Sha256::digest(client_key).into();
        constant_time_eq(&h, &self.stored_key)
    }

    /// The server-final-message `v=base64(ServerSignature)`.
    pub fn server_final(&self, auth_message: &str) -> String {
        format!(
            "v={}",
            B64.encode(hmac_sha256(&self.server_key, auth_message.as_bytes()))
        )
    }
}

/// A parsed client-first-message (RFC 5802 §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,…` or `y,…` with the optional `a=` authzid, up to and including the second comma:
    /// what `c=` in the final message must carry.
    pub gs2_header: String,
    pub authzid: Option<String>,
    /// The decoded `n=` user name.
    pub user: String,
    pub client_nonce: String,
    /// client-first-message-bare, part of the AuthMessage.
    pub bare: String,
}

/// Decodes a saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_saslname(s: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let esc = rest.get(i..i + 3).unwrap_or_default();
        match esc {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return Err("bad '=' escape in a name"),
        }
        rest = rest.get(i + 3..).unwrap_or_default();
    }
    out.push_str(rest);
    if out.is_empty() || out.contains(['\0', '\r', '\n']) {
        return Err("empty or invalid name");
    }
    Ok(out)
}

/// `printable = %x21-2B / %x2D-7E` (no comma).
fn is_printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Parses a client-first-message. Refused: `p=` (channel binding, which needs the -PLUS
/// mechanism we do not offer: RFC 5802 §6), a malformed GS2 header, the reserved `m=`
/// (RFC 5802 §5.1: the server MUST fail), a missing or malformed `n=`/`r=`, non-UTF-8.
/// An authzid other than the user is refused by the caller.
pub fn parse_client_first(raw: &[u8]) -> Result<ClientFirst, &'static str> {
    let msg = std::str::from_utf8(raw).map_err(|_| "not UTF-8")?;
    let (flag, rest) = msg.split_once(',').ok_or("no GS2 header")?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err("channel binding is not supported"),
        _ => return Err("bad channel-binding flag"),
    }
    let (authz, bare) = rest.split_once(',').ok_or("GS2 header not closed")?;
    let authzid = match authz {
        "" => None,
        a => Some(decode_saslname(
            a.strip_prefix("a=")
                .ok_or("bad authzid in the GS2 header")?,
        )?),
    };
    let gs2_header = format!("{flag},{authz},");
    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err("mandatory extension not supported");
    }
    let user = decode_saslname(first.strip_prefix("n=").ok_or("no user name")?)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or("no nonce")?;
    if !is_printable(nonce) {
        return Err("bad nonce");
    }
    // Optional extensions after the nonce: attr-val, ignored.
    for ext in attrs {
        check_extension(ext)?;
    }
    Ok(ClientFirst {
        gs2_header,
        authzid,
        user,
        client_nonce: nonce.to_string(),
        bare: bare.to_string(),
    })
}

/// `attr-val = ALPHA "=" value`.
fn check_extension(ext: &str) -> Result<(), &'static str> {
    let mut b = ext.bytes();
    match (b.next(), b.next()) {
        (Some(a), Some(b'=')) if a.is_ascii_alphabetic() => Ok(()),
        _ => Err("malformed attribute"),
    }
}

/// The server-first-message for `cf` with the full nonce (client's + server's part).
pub fn server_first(nonce: &str, salt: &[u8], iterations: u32) -> String {
    format!("r={nonce},s={},i={iterations}", B64.encode(salt))
}

/// A parsed client-final-message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFinal {
    /// The decoded `c=` value: the GS2 header (no channel-binding data without -PLUS).
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: [u8; 32],
    /// client-final-message-without-proof, part of the AuthMessage.
    pub without_proof: String,
}

/// Parses a client-final-message: `c=…,r=…[,ext…],p=…` with the proof last.
pub fn parse_client_final(raw: &[u8]) -> Result<ClientFinal, &'static str> {
    let msg = std::str::from_utf8(raw).map_err(|_| "not UTF-8")?;
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or("no proof")?;
    let proof = B64
        .decode(proof)
        .ok()
        .and_then(|p| <[u8; 32]>::try_from(p.as_slice()).ok())
        .ok_or("proof is not 32 bytes of base64")?;
    let mut attrs = without_proof.split(',');
    let cb = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or("no channel binding")?;
    let channel_binding = B64
        .decode(cb)
        .map_err(|_| "channel binding is not base64")?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or("no nonce")?;
    if !is_printable(nonce) {
        return Err("bad nonce");
    }
    for ext in attrs {
        check_extension(ext)?;
    }
    Ok(ClientFinal {
        channel_binding,
        nonce: nonce.to_string(),
        proof,
        without_proof: without_proof.to_string(),
    })
}

/// A fresh server nonce part: 24 bytes from the OS CSPRNG, base64 (printable, no comma).
pub fn new_nonce() -> String {
    use rand::RngCore;
    let mut b = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut b);
    B64.encode(b)
}

/// AuthMessage = client-first-message-bare "," server-first-message ","
/// client-final-message-without-proof (RFC 5802 §3).
pub fn auth_message(bare: &str, server_first: &str, without_proof: &str) -> String {
    format!("{bare},{server_first},{without_proof}")
}

#[cfg(test)]
mod tests;
