//! The authenticator's side of the challenge-response mechanisms: which mechanisms can
//! work with the passdb as it is now, the stable per-user SCRAM salt, and the CRAM-MD5 and
//! SCRAM-SHA-256 checks, run through the same policy path as passwords
//! ([`Authenticator::run_policy`]). App passwords are hashed, so they never work here.
//!
//! No user enumeration: every name gets a salt (HMAC of a server secret and the name) and
//! the configured iteration count, so an unknown user or one whose stored scheme cannot
//! do SCRAM looks like any other until the final step fails like a wrong password.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::exchange::{Mech, ScramPending};
use super::scheme::{self, Scheme};
use super::scram::{self, Keys};
use super::{cram, to_user, AuthOutcome, Authenticator, Inner, Outcome, Service};

/// Where the salt secret of a passwd-file lives.
pub fn secret_path(passwd_file: &Path) -> PathBuf {
    super::filedit::sibling(passwd_file, ".sasl-secret")
}

fn parse_secret(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    if t.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(t.as_bytes().chunks_exact(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Reads the 32-byte secret beside the passwd-file, creating it (mode 0600, under the
/// edit lock, temp + fsync + rename, so a crash never leaves half a secret) when missing.
/// If it can be neither read nor created, a random one is used for this run (salts then
/// change at restart: clients that cache SaltedPassword recompute it) and a warning logged.
pub fn load_or_create_secret(passwd_file: &Path) -> [u8; 32] {
    let path = secret_path(passwd_file);
    let read = || {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse_secret(&t))
    };
    if let Some(s) = read() {
        return s;
    }
    let created = super::filedit::lock(&path).and_then(|_lock| {
        // Another process may have created it while this one waited for the lock.
        if let Some(s) = read() {
            return Ok(s);
        }
        if path.exists() {
            return Err(super::filedit::FileError::Malformed {
                path: path.clone(),
                what: "not 64 hex digits",
            });
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let mut hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        hex.push('\n');
        super::filedit::replace(&path, hex.as_bytes())?;
        Ok(secret)
    });
    created.unwrap_or_else(|e| {
        tracing::warn!("{e}; SCRAM salts of PLAIN users change at restart");
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        secret
    })
}

impl Inner {
    fn check_apop(&self, user: &str, stamp: &str, digest: &str) -> Outcome {
        let table = self.db.current();
        let Some(entry) = table.get(user) else {
            return Outcome::Failed("unknown user (APOP)".into());
        };
        match scheme::parse_stored(&entry.password) {
            Ok((Scheme::Plain, secret)) if !secret.is_empty() => {
                let want = super::md5::hex_digest(format!("{stamp}{secret}").as_bytes());
                if scheme::constant_time_eq(want.as_bytes(), digest.as_bytes()) {
                    Outcome::Ok(to_user(entry), None)
                } else {
                    Outcome::Failed("wrong APOP digest".into())
                }
            }
            _ => Outcome::Failed("APOP needs a password stored in clear".into()),
        }
    }

    /// The stable salt of `user` (for PLAIN-stored passwords and as the decoy).
    fn derived_salt(&self, user: &str) -> Vec<u8> {
        let mut msg = b"loft scram salt\0".to_vec();
        msg.extend_from_slice(user.as_bytes());
        scram::hmac_sha256(&self.salt_secret, &msg)
            .get(..16)
            .unwrap_or_default()
            .to_vec()
    }

    /// Spends the time a PLAIN user's SCRAM check costs; the result is unused.
    fn decoy_scram(&self, user: &str) {
        let k = Keys::derive("decoy", &self.derived_salt(user), self.scram_iterations);
        std::hint::black_box(k);
    }

    fn check_cram(&self, user: &str, challenge: &str, digest: [u8; 16]) -> Outcome {
        let table = self.db.current();
        let Some(entry) = table.get(user) else {
            return Outcome::Failed("unknown user".into());
        };
        let expected = match scheme::parse_stored(&entry.password) {
            Ok((Scheme::Plain, secret)) if !secret.is_empty() => {
                cram::hmac_md5(secret.as_bytes(), challenge.as_bytes())
            }
            Ok((Scheme::CramMd5, stored)) => {
                match cram::hmac_from_stored(stored, challenge.as_bytes()) {
                    Some(d) => d,
                    None => {
                        return Outcome::Failed(format!(
                            "malformed CRAM-MD5 hash on line {}",
                            entry.line
                        ))
                    }
                }
            }
            Ok((s, _)) => {
                return Outcome::Failed(format!("a {s} password cannot be used with CRAM-MD5"))
            }
            Err(name) => return Outcome::Failed(format!("unknown scheme {name}")),
        };
        if cram::digest_matches(&expected, &digest) {
            Outcome::Ok(to_user(entry), None)
        } else {
            Outcome::Failed("wrong password".into())
        }
    }

    /// The salt and iteration count to send `user` in the server-first-message.
    fn scram_salt(&self, user: &str) -> (Vec<u8>, u32) {
        let table = self.db.current();
        if let Some(entry) = table.get(user) {
            if let Ok((Scheme::ScramSha256, stored)) = scheme::parse_stored(&entry.password) {
                if let Ok(k) = Keys::parse_stored(stored) {
                    return (k.salt, k.iterations);
                }
            }
        }
        (self.derived_salt(user), self.scram_iterations)
    }

    /// The check; on success also the server-final-message (`v=ServerSignature`).
    fn check_scram(
        &self,
        p: &ScramPending,
        auth_message: &str,
        proof: &[u8; 32],
    ) -> (Outcome, Option<String>) {
        match self.scram_keys(p) {
            Err(failed) => (failed, None),
            Ok((keys, entry)) if keys.verify_proof(auth_message, proof) => (
                Outcome::Ok(entry, None),
                Some(keys.server_final(auth_message)),
            ),
            Ok(_) => (Outcome::Failed("wrong password".into()), None),
        }
    }

    /// The keys of `p.user` for this exchange, or the failure saying why there are none
    /// (after a decoy derivation, so that costs about the same as a PLAIN user's check).
    fn scram_keys(&self, p: &ScramPending) -> Result<(Keys, super::User), Outcome> {
        let table = self.db.current();
        let Some(entry) = table.get(&p.user) else {
            self.decoy_scram(&p.user);
            return Err(Outcome::Failed("unknown user".into()));
        };
        let keys = match scheme::parse_stored(&entry.password) {
            Ok((Scheme::Plain, secret)) if !secret.is_empty() => {
                Keys::derive(secret, &p.salt, p.iterations)
            }
            Ok((Scheme::ScramSha256, stored)) => match Keys::parse_stored(stored) {
                Ok(k) => k,
                Err(e) => {
                    self.decoy_scram(&p.user);
                    return Err(Outcome::Failed(format!(
                        "malformed SCRAM-SHA-256 hash on line {}: {e}",
                        entry.line
                    )));
                }
            },
            Ok((s, _)) => {
                self.decoy_scram(&p.user);
                return Err(Outcome::Failed(format!(
                    "a {s} password cannot be used with SCRAM-SHA-256"
                )));
            }
            Err(name) => {
                self.decoy_scram(&p.user);
                return Err(Outcome::Failed(format!("unknown scheme {name}")));
            }
        };
        Ok((keys, to_user(entry)))
    }
}

impl Authenticator {
    /// The mechanisms to advertise now: allowed by `[auth] mechanisms` and usable by at
    /// least one user's stored password (PLAIN/LOGIN: anyone; CRAM-MD5: PLAIN or CRAM-MD5;
    /// SCRAM-SHA-256: PLAIN or SCRAM-SHA-256). Follows re-reads of the passwd-file.
    /// May stat or re-read the file: blocking.
    pub fn mechanisms(&self) -> Vec<Mech> {
        let table = self.inner.db.current();
        let has = |s| table.has_scheme(s);
        self.inner
            .allowed_mechs
            .iter()
            .copied()
            .filter(|m| match m {
                Mech::Plain | Mech::Login => true,
                Mech::CramMd5 => has(Scheme::Plain) || has(Scheme::CramMd5),
                Mech::ScramSha256 => has(Scheme::Plain) || has(Scheme::ScramSha256),
            })
            .collect()
    }

    /// Is `mech` allowed by the configuration? (A mechanism not advertised because no user
    /// can use it is still run, and fails like a wrong password.)
    pub fn mech_allowed(&self, mech: Mech) -> bool {
        self.inner.allowed_mechs.contains(&mech)
    }

    /// POP3 APOP (RFC 1939 §7): `digest` = MD5(timestamp + secret) for a user whose
    /// password is stored in clear. Through the policy path like every other check (rate
    /// limits, padded failure time, one log line).
    pub async fn verify_apop(
        &self,
        user: &str,
        stamp: &str,
        digest: &str,
        remote: Option<IpAddr>,
    ) -> AuthOutcome {
        let (u, st, d) = (
            user.to_string(),
            stamp.to_string(),
            digest.to_ascii_lowercase(),
        );
        self.run_policy(user, remote, Service::Pop3, move |inner| {
            (inner.check_apop(&u, &st, &d), None)
        })
        .await
        .0
    }

    pub(crate) async fn verify_cram(
        &self,
        user: &str,
        challenge: &str,
        digest: [u8; 16],
        remote: Option<IpAddr>,
        service: Service,
    ) -> AuthOutcome {
        let (u, c) = (user.to_string(), challenge.to_string());
        self.run_policy(user, remote, service, move |inner| {
            (inner.check_cram(&u, &c, digest), None)
        })
        .await
        .0
    }

    pub(crate) async fn scram_salt(&self, user: &str) -> (Vec<u8>, u32) {
        let inner = std::sync::Arc::clone(&self.inner);
        let u = user.to_string();
        match tokio::task::spawn_blocking(move || inner.scram_salt(&u)).await {
            Ok(r) => r,
            Err(_) => (self.inner.derived_salt(user), self.inner.scram_iterations),
        }
    }

    /// Checks a client-final-message. A malformed one, a wrong nonce or channel binding
    /// fail through the policy path too (the user is known by now). On success the
    /// server-final-message comes back with the user.
    pub(crate) async fn verify_scram(
        &self,
        p: ScramPending,
        client_final: &[u8],
        remote: Option<IpAddr>,
        service: Service,
    ) -> (AuthOutcome, Option<String>) {
        let user = p.user.clone();
        let parsed = scram::parse_client_final(client_final).and_then(|f| {
            // RFC 5802 §5.1: c= carries the GS2 header (no channel-binding data without
            // -PLUS), r= the full nonce the server sent.
            if f.channel_binding != p.gs2_header.as_bytes() {
                Err("channel binding does not match the GS2 header")
            } else if f.nonce != p.nonce {
                Err("nonce does not match")
            } else {
                Ok(f)
            }
        });
        self.run_policy(&user, remote, service, move |inner| match parsed {
            Err(why) => (
                Outcome::Failed(format!("bad SCRAM final message: {why}")),
                None,
            ),
            Ok(f) => {
                let am =
                    scram::auth_message(&p.client_first_bare, &p.server_first, &f.without_proof);
                inner.check_scram(&p, &am, &f.proof)
            }
        })
        .await
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_is_created_once_privately_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let pw = d.path().join("users");
        let a = load_or_create_secret(&pw);
        let path = secret_path(&pw);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            parse_secret(&std::fs::read_to_string(&path).unwrap()),
            Some(a)
        );
        assert_eq!(load_or_create_secret(&pw), a, "stable across starts");
        // A damaged secret is left for the admin to see; this run uses a temporary one.
        std::fs::write(&path, "garbage").unwrap();
        let b = load_or_create_secret(&pw);
        assert_ne!(b, a);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage");
    }
}
