//! Password schemes in Dovecot's notation: `{SCHEME}hash`. Recognises the scheme of a
//! stored password, verifies a password against it and makes new hashes. Pure CPU work:
//! callers run it on the blocking pool. Knows nothing of users or files.
//!
//! Without a `{SCHEME}` prefix a hash is taken as Dovecot's default scheme CRYPT and
//! recognised by its modular-crypt `$id$` prefix (`$6$`, `$5$`, `$2y$`, `$argon2id$`…).
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::cell::RefCell;

/// Largest ARGON2 memory cost accepted from a stored hash (1 GiB): a hostile or mistyped
/// passwd-file line must not make each check allocate without bound.
const MAX_ARGON2_KIB: u32 = 1024 * 1024;

/// A scheme name Loft does not know (`loft pw -s`, `--scheme`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheme {:?} (known: {})", .0, Scheme::ALL.map(|s| s.name()).join(", "))]
pub struct UnknownScheme(pub String);

/// A stored password of a scheme Loft cannot verify; displays the scheme's name (e.g.
/// `MD5-CRYPT`, `SSHA`, or `CRYPT $1$`), which callers put in their own sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnsupportedScheme(pub String);

/// A stored hash that cannot be used, or a password that cannot be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("bad PHC string: {0}")]
    BadPhc(argon2::password_hash::Error),
    #[error("{scheme} hash is {found}")]
    WrongAlgorithm { scheme: Scheme, found: String },
    #[error("bad ARGON2 parameters: {0}")]
    Argon2Params(argon2::password_hash::Error),
    #[error("ARGON2 memory cost m={0} KiB is above the 1 GiB limit")]
    Argon2Memory(u32),
    #[error("bad ARGON2 version: {0}")]
    Argon2Version(argon2::Error),
    #[error("ARGON2 hash without a salt")]
    Argon2NoSalt,
    #[error("bad ARGON2 salt: {0}")]
    Argon2Salt(argon2::password_hash::Error),
    #[error("ARGON2 hash without an output")]
    Argon2NoOutput,
    #[error("{0}")]
    Argon2(argon2::Error),
    #[error("{0}")]
    Argon2Hash(argon2::password_hash::Error),
    #[error("{0}")]
    Bcrypt(bcrypt::BcryptError),
    #[error("CRAM-MD5 hash is not 64 hex digits")]
    CramMd5Length,
    #[error(transparent)]
    Scram(#[from] super::scram::StoredError),
    #[error("{scheme} hash does not start with {id}")]
    ShaCryptPrefix { scheme: Scheme, id: &'static str },
    #[error("no salt after rounds=")]
    NoSaltAfterRounds,
    #[error("bad rounds={0}")]
    BadRounds(String),
    #[error("rounds too large")]
    RoundsTooLarge,
    #[error("no '$' between salt and hash")]
    NoHashSeparator,
    #[error("{0:?}")]
    ShaCrypt(sha_crypt::CryptError),
    #[error("{scheme} hash part has {got} characters, not {want}")]
    ShaCryptLength {
        scheme: Scheme,
        got: usize,
        want: usize,
    },
    #[error(
        "BLF-CRYPT uses only the first 72 bytes of a password; \
         choose a shorter password or another scheme"
    )]
    BcryptTooLong,
    #[error("a PLAIN password cannot contain ':' or line breaks")]
    PlainSeparator,
}

thread_local! {
    /// This thread's ARGON2 working memory, reused from one check to the next: a fresh
    /// 19 MiB allocation per check fragments the allocator's arenas (hundreds of MiB after
    /// a burst). Released by [`release_scratch`] when the thread goes idle.
    static ARGON2_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Frees this thread's reusable hash memory (see `auth::pool`), giving its pages back to
/// the kernel first: glibc keeps a freed block that ends up at the top of a thread's
/// arena resident, and `malloc_trim` does not shrink those.
pub fn release_scratch() {
    let mem = ARGON2_MEMORY.with_borrow_mut(std::mem::take);
    discard_pages(mem);
}

fn discard_pages(mut mem: Vec<Block>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = mem.as_mut_ptr() as usize;
        let end = start + mem.len() * std::mem::size_of::<Block>();
        let (a, b) = ((start + PAGE - 1) & !(PAGE - 1), end & !(PAGE - 1));
        if b > a {
            // SAFETY: [a, b) is made of whole pages inside `mem`'s own heap allocation,
            // which no reference points into and which is freed below without being read.
            // MADV_DONTNEED on private anonymous memory only swaps its pages for zero
            // pages. (Where pages are larger than 4 KiB the range may be misaligned: the
            // call then fails with EINVAL and changes nothing.)
            unsafe {
                libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED);
            }
        }
    }
    drop(mem);
}

/// ARGON2 verification with the parameters, version and salt of the stored hash, in this
/// thread's reusable memory; the comparison is constant-time.
fn argon2_verify(
    alg: Algorithm,
    parsed: &PasswordHash<'_>,
    password: &[u8],
) -> Result<bool, HashError> {
    let params = Params::try_from(parsed).map_err(HashError::Argon2Params)?;
    if params.m_cost() > MAX_ARGON2_KIB {
        return Err(HashError::Argon2Memory(params.m_cost()));
    }
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(HashError::Argon2Version)?,
        None => Version::default(),
    };
    let salt = parsed.salt.ok_or(HashError::Argon2NoSalt)?;
    let mut salt_buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buf)
        .map_err(HashError::Argon2Salt)?;
    let want = parsed.hash.ok_or(HashError::Argon2NoOutput)?;
    let mut got = vec![0u8; want.len()];
    let blocks = params.block_count();
    let a = Argon2::new(alg, version, params);
    ARGON2_MEMORY
        .with_borrow_mut(|mem| {
            if mem.len() < blocks {
                *mem = Vec::new();
                mem.resize(blocks, Block::default());
            }
            a.hash_password_into_with_memory(password, salt, &mut got, &mut mem[..blocks])
        })
        .map_err(HashError::Argon2)?;
    Ok(constant_time_eq(&got, want.as_bytes()))
}

/// A password scheme Loft can verify and produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Argon2id,
    Argon2i,
    Sha512Crypt,
    Sha256Crypt,
    BlfCrypt,
    /// `{PLAIN}` and its alias `{CLEARTEXT}`.
    Plain,
    /// Dovecot's `{CRAM-MD5}`: the HMAC-MD5 key contexts, usable by SASL CRAM-MD5.
    CramMd5,
    /// Dovecot's `{SCRAM-SHA-256}iterations,salt,StoredKey,ServerKey` (RFC 5802 keys),
    /// usable by SASL SCRAM-SHA-256.
    ScramSha256,
}

/// bcrypt cost for new BLF-CRYPT hashes (2^10 rounds).
const BCRYPT_COST: u32 = 10;
/// SHA-crypt rounds for new hashes: the crypt(3) default, as Dovecot uses.
const SHA_CRYPT_ROUNDS: usize = 5_000;

impl Scheme {
    pub const ALL: [Scheme; 8] = [
        Scheme::Argon2id,
        Scheme::Argon2i,
        Scheme::Sha512Crypt,
        Scheme::Sha256Crypt,
        Scheme::BlfCrypt,
        Scheme::Plain,
        Scheme::CramMd5,
        Scheme::ScramSha256,
    ];

    /// The name as written between braces.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Argon2i => "ARGON2I",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::BlfCrypt => "BLF-CRYPT",
            Scheme::Plain => "PLAIN",
            Scheme::CramMd5 => "CRAM-MD5",
            Scheme::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    /// Recognises a modular-crypt hash by its `$id$` prefix (Dovecot's CRYPT scheme).
    pub fn from_crypt_prefix(hash: &str) -> Option<Scheme> {
        if hash.starts_with("$6$") {
            Some(Scheme::Sha512Crypt)
        } else if hash.starts_with("$5$") {
            Some(Scheme::Sha256Crypt)
        } else if ["$2a$", "$2b$", "$2y$", "$2x$"]
            .iter()
            .any(|p| hash.starts_with(p))
        {
            Some(Scheme::BlfCrypt)
        } else if hash.starts_with("$argon2id$") {
            Some(Scheme::Argon2id)
        } else if hash.starts_with("$argon2i$") {
            Some(Scheme::Argon2i)
        } else {
            None
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = UnknownScheme;

    /// Case-insensitive, as Dovecot's scheme names are.
    fn from_str(s: &str) -> Result<Scheme, UnknownScheme> {
        let up = s.to_ascii_uppercase();
        if up == "CLEARTEXT" {
            return Ok(Scheme::Plain);
        }
        Scheme::ALL
            .into_iter()
            .find(|sc| sc.name() == up)
            .ok_or_else(|| UnknownScheme(s.to_string()))
    }
}

/// Splits a stored password field into its scheme and hash. `Err` carries the name of an
/// unsupported scheme (e.g. `MD5-CRYPT`, `SSHA`, or `CRYPT` with an unknown `$id$`).
pub fn parse_stored(field: &str) -> Result<(Scheme, &str), UnsupportedScheme> {
    let (name, hash) = match field.strip_prefix('{').and_then(|r| r.split_once('}')) {
        Some((name, hash)) => (Some(name), hash),
        None => (None, field),
    };
    match name {
        None => Scheme::from_crypt_prefix(hash)
            .map(|s| (s, hash))
            .ok_or_else(|| crypt_id(hash)),
        Some(n) if n.eq_ignore_ascii_case("CRYPT") => Scheme::from_crypt_prefix(hash)
            .map(|s| (s, hash))
            .ok_or_else(|| crypt_id(hash)),
        Some(n) => match n.parse::<Scheme>() {
            Ok(s) => Ok((s, hash)),
            Err(_) => Err(UnsupportedScheme(n.to_string())),
        },
    }
}

/// Names the unsupported crypt variant for log messages.
fn crypt_id(hash: &str) -> UnsupportedScheme {
    UnsupportedScheme(
        match hash.strip_prefix('$').and_then(|r| r.split_once('$')) {
            Some((id, _)) => format!("CRYPT ${id}$"),
            None => "CRYPT (DES)".into(),
        },
    )
}

/// Checks `password` against `hash` (the part after `{SCHEME}`). `Ok(false)` is a wrong
/// password; `Err` a hash that cannot be used (malformed, or of another scheme).
pub fn verify(scheme: Scheme, hash: &str, password: &str) -> Result<bool, HashError> {
    match scheme {
        Scheme::Argon2id | Scheme::Argon2i => {
            let parsed = PasswordHash::new(hash).map_err(HashError::BadPhc)?;
            let want = if scheme == Scheme::Argon2id {
                "argon2id"
            } else {
                "argon2i"
            };
            if parsed.algorithm.as_str() != want {
                return Err(HashError::WrongAlgorithm {
                    scheme,
                    found: parsed.algorithm.to_string(),
                });
            }
            let alg = if scheme == Scheme::Argon2id {
                Algorithm::Argon2id
            } else {
                Algorithm::Argon2i
            };
            argon2_verify(alg, &parsed, password.as_bytes())
        }
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => sha_crypt_verify(scheme, hash, password),
        Scheme::BlfCrypt => bcrypt::verify(password, hash).map_err(HashError::Bcrypt),
        Scheme::Plain => Ok(constant_time_eq(hash.as_bytes(), password.as_bytes())),
        Scheme::CramMd5 => {
            let want = hash.trim().to_ascii_lowercase();
            if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(HashError::CramMd5Length);
            }
            let got = super::cram::stored_contexts(password);
            Ok(constant_time_eq(got.as_bytes(), want.as_bytes()))
        }
        Scheme::ScramSha256 => {
            Ok(super::scram::Keys::parse_stored(hash)?.verify_password(password))
        }
    }
}

/// SHA-crypt (Drepper's `$6$[rounds=N$]salt$hash`, `$5$` alike). Out-of-range rounds
/// are clamped to 1000..=999999999 and salts cut at 16 characters, as the specification
/// and glibc do.
fn sha_crypt_verify(scheme: Scheme, hash: &str, password: &str) -> Result<bool, HashError> {
    let id = if scheme == Scheme::Sha512Crypt {
        "$6$"
    } else {
        "$5$"
    };
    let rest = hash
        .strip_prefix(id)
        .ok_or(HashError::ShaCryptPrefix { scheme, id })?;
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let (n, rest) = r.split_once('$').ok_or(HashError::NoSaltAfterRounds)?;
            let n: u64 = n.parse().map_err(|_| HashError::BadRounds(n.to_string()))?;
            let n = n.clamp(sha_crypt::ROUNDS_MIN as u64, sha_crypt::ROUNDS_MAX as u64);
            (
                usize::try_from(n).map_err(|_| HashError::RoundsTooLarge)?,
                rest,
            )
        }
        None => (sha_crypt::ROUNDS_DEFAULT, rest),
    };
    let (salt, want) = rest.split_once('$').ok_or(HashError::NoHashSeparator)?;
    let got = if scheme == Scheme::Sha512Crypt {
        let p = sha_crypt::Sha512Params::new(rounds).map_err(HashError::ShaCrypt)?;
        sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &p)
    } else {
        let p = sha_crypt::Sha256Params::new(rounds).map_err(HashError::ShaCrypt)?;
        sha_crypt::sha256_crypt_b64(password.as_bytes(), salt.as_bytes(), &p)
    }
    .map_err(HashError::ShaCrypt)?;
    let expected_len = if scheme == Scheme::Sha512Crypt {
        86
    } else {
        43
    };
    if want.len() != expected_len {
        return Err(HashError::ShaCryptLength {
            scheme,
            got: want.len(),
            want: expected_len,
        });
    }
    Ok(constant_time_eq(got.as_bytes(), want.as_bytes()))
}

/// Compares without an early exit, so the time taken does not tell how many leading
/// bytes matched (the length still shows; a PLAIN passdb is weak anyway).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

/// Hashes `password` with `scheme`, with a fresh random salt, in the stored form
/// `{SCHEME}hash`, e.g. `{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$…`.
pub fn hash_password(scheme: Scheme, password: &str) -> Result<String, HashError> {
    let hash = match scheme {
        Scheme::Argon2id | Scheme::Argon2i => {
            let alg = if scheme == Scheme::Argon2id {
                Algorithm::Argon2id
            } else {
                Algorithm::Argon2i
            };
            // The argon2 crate's defaults (m=19 MiB, t=2, p=1): OWASP's recommended
            // minimum, affordable per login on a small server.
            let a = Argon2::new(alg, Version::V0x13, Params::default());
            let salt = SaltString::generate(&mut OsRng);
            a.hash_password(password.as_bytes(), &salt)
                .map_err(HashError::Argon2Hash)?
                .to_string()
        }
        Scheme::Sha512Crypt => {
            let p = sha_crypt::Sha512Params::new(SHA_CRYPT_ROUNDS).map_err(HashError::ShaCrypt)?;
            sha_crypt::sha512_simple(password, &p).map_err(HashError::ShaCrypt)?
        }
        Scheme::Sha256Crypt => {
            let p = sha_crypt::Sha256Params::new(SHA_CRYPT_ROUNDS).map_err(HashError::ShaCrypt)?;
            sha_crypt::sha256_simple(password, &p).map_err(HashError::ShaCrypt)?
        }
        Scheme::BlfCrypt => {
            if password.len() > 72 {
                return Err(HashError::BcryptTooLong);
            }
            bcrypt::hash_with_result(password, BCRYPT_COST)
                .map_err(HashError::Bcrypt)?
                .format_for_version(bcrypt::Version::TwoY)
        }
        Scheme::Plain => {
            // The passwd-file is colon-separated and line-based.
            if password.contains([':', '\n', '\r']) {
                return Err(HashError::PlainSeparator);
            }
            password.to_string()
        }
        Scheme::CramMd5 => super::cram::stored_contexts(password),
        Scheme::ScramSha256 => {
            let mut salt = [0u8; 16];
            argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut salt);
            super::scram::Keys::derive(password, &salt, super::scram::MIN_ITERATIONS).to_stored()
        }
    };
    Ok(format!("{{{}}}{hash}", scheme.name()))
}

#[cfg(test)]
mod tests;
