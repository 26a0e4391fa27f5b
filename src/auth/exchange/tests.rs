//! The exchanges end to end against a real authenticator and passwd-file.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::Engine;

use super::*;
use crate::auth::{cram, hash_password, md5, Scheme};
use crate::config::Config;

const IP: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const RFC7677: &str = "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,\
WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

fn setup(users: &str, mechs: &[&str]) -> (tempfile::TempDir, Authenticator) {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(d.path()).auth;
    std::fs::write(&cfg.passwd_file, users).unwrap();
    cfg.failure_delay = Duration::ZERO;
    cfg.mechanisms = mechs.iter().map(|s| s.to_string()).collect();
    (d, Authenticator::new(&cfg).unwrap())
}

fn ex(mech: Mech) -> Exchange {
    Exchange::new(mech, "mail.example.org", IP, Service::Imap).unwrap()
}

fn all() -> Vec<&'static str> {
    Mech::ALL.iter().map(|m| m.name()).collect()
}

async fn cram_login(a: &Authenticator, user: &str, secret: &str) -> Reply {
    let mut e = ex(Mech::CramMd5);
    let Reply::Challenge(ch) = e.step(a, None).await else {
        panic!("no challenge")
    };
    let d = md5::hex(&cram::hmac_md5(secret.as_bytes(), &ch));
    e.step(a, Some(format!("{user} {d}").as_bytes())).await
}

#[tokio::test]
async fn cram_md5_plain_and_stored() {
    let stored = hash_password(Scheme::CramMd5, "tanstaaftanstaaf").unwrap();
    let sha = hash_password(Scheme::Sha256Crypt, "pw").unwrap();
    let (_d, a) = setup(
        &format!("tim:{{PLAIN}}tanstaaftanstaaf\nkim:{stored}\nhashed:{sha}\n"),
        &all(),
    );
    assert!(
        matches!(cram_login(&a, "tim", "tanstaaftanstaaf").await, Reply::Done(AuthOutcome::Ok(u)) if u.name == "tim")
    );
    assert!(matches!(
        cram_login(&a, "kim", "tanstaaftanstaaf").await,
        Reply::Done(AuthOutcome::Ok(_))
    ));
    assert_eq!(
        cram_login(&a, "tim", "wrong").await,
        Reply::Done(AuthOutcome::Failed)
    );
    assert_eq!(
        cram_login(&a, "nobody", "x").await,
        Reply::Done(AuthOutcome::Failed)
    );
    assert_eq!(
        cram_login(&a, "hashed", "pw").await,
        Reply::Done(AuthOutcome::Failed)
    );
    // Malformed: initial response, bad response.
    let mut e = ex(Mech::CramMd5);
    assert!(matches!(
        e.step(&a, Some(b"tim")).await,
        Reply::Malformed(_)
    ));
    let mut e = ex(Mech::CramMd5);
    e.step(&a, None).await;
    assert!(matches!(
        e.step(&a, Some(b"tim nothex")).await,
        Reply::Malformed(_)
    ));
}

#[tokio::test]
async fn scram_rfc7677_exchange_exactly() {
    let (_d, a) = setup(&format!("user:{RFC7677}\n"), &all());
    let mut e = ex(Mech::ScramSha256).with_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    let Reply::Challenge(sf) = e.step(&a, Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")).await else {
        panic!()
    };
    assert_eq!(
        String::from_utf8(sf).unwrap(),
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let fin = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let Reply::Challenge(v) = e.step(&a, Some(fin)).await else {
        panic!()
    };
    assert_eq!(v, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    assert!(
        matches!(e.step(&a, Some(b"")).await, Reply::Done(AuthOutcome::Ok(u)) if u.name == "user")
    );
    // Plain verification of the stored hash works too.
    assert!(matches!(
        a.authenticate_for(&crate::auth::AuthRequest {
            user: "user",
            password: "pencil",
            remote: IP,
            service: Service::Imap
        })
        .await,
        AuthOutcome::Ok(_)
    ));
}

/// A client side written from RFC 5802 §3 directly (HMAC/PBKDF2 from the crates).
fn client_final(
    password: &str,
    client_first_bare: &str,
    server_first: &str,
    cbind: &str,
) -> String {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let mut it = server_first.split(',');
    let r = it.next().unwrap().strip_prefix("r=").unwrap();
    let s = B64
        .decode(it.next().unwrap().strip_prefix("s=").unwrap())
        .unwrap();
    let i: u32 = it
        .next()
        .unwrap()
        .strip_prefix("i=")
        .unwrap()
        .parse()
        .unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2::<Hmac<Sha256>>(password.as_bytes(), &s, i, &mut salted).unwrap();
    let mac = |k: &[u8], m: &[u8]| {
        let mut h = Hmac::<Sha256>::new_from_slice(k).unwrap();
        h.update(m);
        h.finalize().into_bytes()
    };
    let ck = mac(&salted, b"Client Key");
    let sk = Sha256::digest(ck);
    let without = format!("c={cbind},r={r}");
    let am = format!("{client_first_bare},{server_first},{without}");
    let sig = mac(&sk, am.as_bytes());
    let proof: Vec<u8> = ck.iter().zip(sig.iter()).map(|(a, b)| a ^ b).collect();
    format!("{without},p={}", B64.encode(proof))
}

async fn scram_login(a: &Authenticator, user: &str, pw: &str) -> Reply {
    let mut e = ex(Mech::ScramSha256);
    let bare = format!("n={user},r=clientnonce123");
    let Reply::Challenge(sf) = e.step(a, Some(format!("n,,{bare}").as_bytes())).await else {
        panic!()
    };
    let sf = String::from_utf8(sf).unwrap();
    let fin = client_final(pw, &bare, &sf, "biws");
    match e.step(a, Some(fin.as_bytes())).await {
        Reply::Challenge(v) => {
            assert!(v.starts_with(b"v="));
            e.step(a, Some(b"")).await
        }
        other => other,
    }
}

#[tokio::test]
async fn scram_plain_users_unknown_users_and_hashed_users() {
    let sha = hash_password(Scheme::Sha512Crypt, "pw").unwrap();
    let (_d, a) = setup(&format!("alice:{{PLAIN}}pässwörd\nbob:{sha}\n"), &all());
    assert!(matches!(
        scram_login(&a, "alice", "pässwörd").await,
        Reply::Done(AuthOutcome::Ok(_))
    ));
    assert_eq!(
        scram_login(&a, "alice", "wrong").await,
        Reply::Done(AuthOutcome::Failed)
    );
    assert_eq!(
        scram_login(&a, "bob", "pw").await,
        Reply::Done(AuthOutcome::Failed)
    );
    assert_eq!(
        scram_login(&a, "carol", "pw").await,
        Reply::Done(AuthOutcome::Failed)
    );
    // The salt is stable per user and the same shape for unknown users.
    let first = |u: &'static str| {
        let a = &a;
        async move {
            let mut e = ex(Mech::ScramSha256);
            let Reply::Challenge(sf) = e.step(a, Some(format!("n,,n={u},r=x").as_bytes())).await
            else {
                panic!()
            };
            let sf = String::from_utf8(sf).unwrap();
            sf.split_once(",s=").unwrap().1.to_string()
        }
    };
    assert_eq!(first("alice").await, first("alice").await);
    assert_eq!(first("carol").await, first("carol").await);
    assert_ne!(first("alice").await, first("carol").await);
    assert!(first("carol").await.ends_with(",i=4096"));
    assert!(first("bob").await.ends_with(",i=4096"));
}

#[tokio::test]
async fn scram_refusals() {
    let (_d, a) = setup("alice:{PLAIN}pw\n", &all());
    for bad in [
        &b"p=tls-unique,,n=alice,r=x"[..],
        b"n,a=bob,n=alice,r=x",
        b"n,,m=x,n=alice,r=x",
        b"garbage",
    ] {
        let mut e = ex(Mech::ScramSha256);
        assert!(
            matches!(e.step(&a, Some(bad)).await, Reply::Malformed(_)),
            "{bad:?}"
        );
    }
    // Wrong nonce / channel binding / y-flag mismatch fail like a wrong password.
    for (cf, cb, tamper) in [
        ("n,,", "biws", true),
        ("n,,", "eSws", false),
        ("y,,", "biws", false),
    ] {
        let mut e = ex(Mech::ScramSha256);
        let bare = "n=alice,r=abc";
        let Reply::Challenge(sf) = e.step(&a, Some(format!("{cf}{bare}").as_bytes())).await else {
            panic!()
        };
        let mut sf = String::from_utf8(sf).unwrap();
        if tamper {
            sf = sf.replacen("r=abc", "r=abd", 1);
        }
        let fin = client_final("pw", bare, &sf, cb);
        assert_eq!(
            e.step(&a, Some(fin.as_bytes())).await,
            Reply::Done(AuthOutcome::Failed)
        );
    }
    // y,, with its own c=eSws works.
    let mut e = ex(Mech::ScramSha256);
    let Reply::Challenge(sf) = e.step(&a, Some(b"y,,n=alice,r=abc")).await else {
        panic!()
    };
    let fin = client_final(
        "pw",
        "n=alice,r=abc",
        &String::from_utf8(sf).unwrap(),
        "eSws",
    );
    assert!(matches!(
        e.step(&a, Some(fin.as_bytes())).await,
        Reply::Challenge(_)
    ));
    assert!(matches!(
        e.step(&a, Some(b"junk")).await,
        Reply::Malformed(_)
    ));
    // No initial response: an empty challenge first.
    let mut e = ex(Mech::ScramSha256);
    assert_eq!(e.step(&a, None).await, Reply::Challenge(Vec::new()));
}

#[tokio::test]
async fn rate_limit_applies_to_challenge_response() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(d.path()).auth;
    std::fs::write(&cfg.passwd_file, "tim:{PLAIN}pw\n").unwrap();
    cfg.failure_delay = Duration::ZERO;
    cfg.rate_limit.user_burst = 2;
    cfg.rate_limit.ip_burst = 2;
    cfg.rate_limit.max_delay = Duration::ZERO;
    let a = Authenticator::new(&cfg).unwrap();
    let mut refused = false;
    for _ in 0..5 {
        if cram_login(&a, "tim", "bad").await == Reply::Done(AuthOutcome::RateLimited) {
            refused = true;
        }
    }
    assert!(refused);
    assert_eq!(
        scram_login(&a, "tim", "pw").await,
        Reply::Done(AuthOutcome::RateLimited)
    );
}

#[tokio::test]
async fn advertised_mechanisms_follow_the_passdb() {
    let sha = hash_password(Scheme::Sha512Crypt, "pw").unwrap();
    let (d, a) = setup(&format!("bob:{sha}\n"), &all());
    assert_eq!(a.mechanisms(), vec![Mech::Plain, Mech::Login]);
    let scram = hash_password(Scheme::ScramSha256, "pw").unwrap();
    std::fs::write(d.path().join("users"), format!("bob:{sha}\ncarl:{scram}\n")).unwrap();
    a.inner.db.reload_if_changed();
    assert_eq!(
        a.mechanisms(),
        vec![Mech::Plain, Mech::Login, Mech::ScramSha256]
    );
    std::fs::write(d.path().join("users"), "tim:{PLAIN}x\n#pad\n").unwrap();
    a.inner.db.reload_if_changed();
    assert_eq!(a.mechanisms(), Mech::ALL.to_vec());
    let (_d2, b) = setup("tim:{PLAIN}x\n", &["SCRAM-SHA-256", "PLAIN"]);
    assert_eq!(b.mechanisms(), vec![Mech::ScramSha256, Mech::Plain]);
    assert!(!b.mech_allowed(Mech::CramMd5));
}

#[test]
fn mech_names() {
    assert_eq!(Mech::from_name("cram-md5"), Some(Mech::CramMd5));
    assert_eq!(Mech::from_name("SCRAM-SHA-1"), None);
    assert!(Exchange::new(Mech::Plain, "h", None, Service::Imap).is_none());
}
