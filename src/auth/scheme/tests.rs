//! Scheme tests. The vectors were produced by Dovecot 2.3's `doveadm pw` (Debian 12).

use super::*;

/// (stored field, password) pairs from `doveadm pw -s SCHEME -p PASSWORD`.
const DOVECOT: &[(&str, &str)] = &[
    ("{SHA512-CRYPT}$6$NJ/7cArDTZOrpn/4$5FYNvoRqKsTm8MjYg9ilMJ9o.adlYE8OlrTmR.aiahXutk0hDU2Z2RqwX.C6lXMEB2TWw26hqe4egK0utxf/F0", "secret"),
    ("{SHA512-CRYPT}$6$IghjxriIZd1/djlz$3iOJwU1P0vd3UVJ/tqYU3z.09R/BkRxS0r0kAfkg1Tw4l1eHMbIw6T1Z2prCZXZZL32DA2297qMWkBVOMyu8s1", "pä ss:wörd"),
    ("{SHA512-CRYPT}$6$rounds=10000$XgCJ60rj8ECW6ew/$myz9nO7VPosGdIhueviDriPsXmdeD0dRoYjDOa1k3IpLNx7T4OhHthAh2lZaBv89QhQa.hPIadp/VNMRbW9Nw0", "secret"),
    ("{SHA256-CRYPT}$5$LBFickW9cMf1mLv5$SuCD.E3MqgQd0hy3.rGSNp/UMw.39SDT9tzZoyDr6X8", "secret"),
    ("{SHA256-CRYPT}$5$rounds=2000$WTXAGbygLh0mHI1p$w6aSMkrMG29K0kPJy/CuO6YjhPM9pdr.iLIBcmN4QL1", "secret"),
    ("{BLF-CRYPT}$2y$05$dBgRAX2ASeDHLPJFvY72tuhVHpsFWPxy.iKTdNHUEeD7NnLESitrO", "secret"),
    ("{BLF-CRYPT}$2y$04$NUh0UhN2SO50nSD.EVfFWepqlyzxe4Jy36cBG4VyEW4PVkFuOxjfy", "secret"),
    ("{CRYPT}$2y$05$1GkXtWhN/I7xyUKLehvGuuavc8CLLaL4GsfmcWwno0gp2uDbYPFq2", "secret"),
    ("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$5xzpVgW+9i6JjWYZXfonfw$7rBjFTgGbnJayKsrYzpoqkP1vwtS4dQ41vUAV9+RDe0", "secret"),
    ("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$ehlPoW0IqSsIr+J5RfYNsQ$vMTW/htYBFjXFN5Emy5CQDbHlkJHEYkHhOP2rjEtlZc", "pä ss:wörd"),
    ("{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$8tUwS8w14K066+SE/vWIOg$rSlGKI0WT0/ZlaM/ZJX4PNNCP5xcnWHW9sDV+XPH6hc", "secret"),
    ("{PLAIN}secret", "secret"),
    ("{CLEARTEXT}secret", "secret"),
];

#[test]
fn dovecot_hashes_verify() {
    for (stored, pw) in DOVECOT {
        let (scheme, hash) = parse_stored(stored).unwrap();
        assert_eq!(
            verify(scheme, hash, pw).map_err(|e| e.to_string()),
            Ok(true),
            "{stored}"
        );
        assert_eq!(
            verify(scheme, hash, "Secret").map_err(|e| e.to_string()),
            Ok(false),
            "{stored}"
        );
        assert_eq!(
            verify(scheme, hash, "").map_err(|e| e.to_string()),
            Ok(false),
            "{stored}"
        );
    }
}

#[test]
fn bare_crypt_hashes_are_recognised_by_prefix() {
    for (stored, pw) in DOVECOT {
        let Some((_, bare)) = stored.split_once('}') else {
            continue;
        };
        if !bare.starts_with('$') {
            continue;
        }
        let (scheme, hash) = parse_stored(bare).unwrap();
        assert_eq!(hash, bare);
        assert_eq!(
            verify(scheme, hash, pw).map_err(|e| e.to_string()),
            Ok(true),
            "{bare}"
        );
    }
}

#[test]
fn unknown_schemes_are_named() {
    assert_eq!(parse_stored("{SSHA}abc").unwrap_err().0, "SSHA");
    assert_eq!(parse_stored("$1$salt$hash").unwrap_err().0, "CRYPT $1$");
    assert_eq!(
        parse_stored("{CRYPT}$y$j9T$x$y").unwrap_err().0,
        "CRYPT $y$"
    );
    assert_eq!(parse_stored("abcdefgh").unwrap_err().0, "CRYPT (DES)");
    assert_eq!(parse_stored("{plain}x").unwrap(), (Scheme::Plain, "x"));
}

#[test]
fn malformed_hashes_are_errors_not_panics() {
    for (scheme, hash) in [
        (Scheme::Argon2id, "$argon2id$"),
        (Scheme::Argon2id, "$argon2i$v=19$m=32768,t=4,p=1$8tUwS8w14K066+SE/vWIOg$rSlGKI0WT0/ZlaM/ZJX4PNNCP5xcnWHW9sDV+XPH6hc"),
        (Scheme::Sha512Crypt, "$6$"),
        (Scheme::Sha512Crypt, "$6$salt$!!!"),
        (Scheme::Sha256Crypt, "$5$rounds=x$s$h"),
        (Scheme::BlfCrypt, "$2y$99$short"),
    ] {
        assert!(verify(scheme, hash, "secret").is_err(), "{hash}");
    }
}

#[test]
fn hash_password_round_trips() {
    for scheme in Scheme::ALL {
        let stored = hash_password(scheme, "correct horse").unwrap();
        assert!(
            stored.starts_with(&format!("{{{}}}", scheme.name())),
            "{stored}"
        );
        let (s, h) = parse_stored(&stored).unwrap();
        assert_eq!(s, scheme);
        assert_eq!(
            verify(s, h, "correct horse").map_err(|e| e.to_string()),
            Ok(true),
            "{stored}"
        );
        assert_eq!(
            verify(s, h, "correct horsE").map_err(|e| e.to_string()),
            Ok(false),
            "{stored}"
        );
    }
    let a = hash_password(Scheme::Argon2id, "x").unwrap();
    assert!(
        a.starts_with("{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"),
        "{a}"
    );
    assert!(hash_password(Scheme::BlfCrypt, "x")
        .unwrap()
        .starts_with("{BLF-CRYPT}$2y$10$"));
    // Fresh salt every time.
    assert_ne!(a, hash_password(Scheme::Argon2id, "x").unwrap());
}

#[test]
fn hash_password_refuses_what_it_cannot_store() {
    assert_eq!(
        hash_password(Scheme::Plain, "a:b").unwrap_err().to_string(),
        "a PLAIN password cannot contain ':' or line breaks"
    );
    assert!(hash_password(Scheme::BlfCrypt, &"x".repeat(73)).is_err());
}

#[test]
fn scheme_names() {
    assert_eq!("sha512-crypt".parse::<Scheme>(), Ok(Scheme::Sha512Crypt));
    assert_eq!("CLEARTEXT".parse::<Scheme>(), Ok(Scheme::Plain));
    assert!("MD5".parse::<Scheme>().is_err());
    let e = "MD5".parse::<Scheme>().unwrap_err().to_string();
    assert!(
        e.starts_with("unknown scheme \"MD5\" (known: ARGON2ID, "),
        "{e}"
    );
    for s in Scheme::ALL {
        assert_eq!(s.to_string().parse::<Scheme>(), Ok(s));
    }
}

#[test]
fn constant_time_eq_is_correct() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(!constant_time_eq(b"", b"\xff"));
    assert!(constant_time_eq(b"", b""));
}
