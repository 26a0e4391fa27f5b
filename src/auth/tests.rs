//! Authenticator tests: success, failures, the failure delay and auto-creation.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::config::Config;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn setup(users: &str, delay: Duration) -> (tempfile::TempDir, Authenticator) {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(d.path()).auth;
    std::fs::write(&cfg.passwd_file, users).unwrap();
    cfg.failure_delay = delay;
    let a = Authenticator::new(&cfg).unwrap();
    (d, a)
}

#[tokio::test]
async fn good_and_bad_passwords() {
    let sha = hash_password(Scheme::Sha512Crypt, "s3cret").unwrap();
    let (_d, a) = setup(
        &format!("alice:{sha}:1000:100::/home/alice\nbob:{{PLAIN}}pw\nodd:{{SSHA}}x\n"),
        Duration::ZERO,
    );
    assert_eq!(
        a.authenticate("alice", "s3cret", IP).await,
        AuthResult::Ok(User {
            name: "alice".into(),
            uid: Some(1000),
            gid: Some(100),
            home: Some("/home/alice".into()),
        })
    );
    assert_eq!(
        a.authenticate("alice", "wrong", IP).await,
        AuthResult::Failed
    );
    assert_eq!(
        a.authenticate("ALICE", "s3cret", IP).await,
        AuthResult::Failed
    );
    assert_eq!(
        a.authenticate("nobody", "s3cret", IP).await,
        AuthResult::Failed
    );
    assert_eq!(a.authenticate("odd", "x", IP).await, AuthResult::Failed);
    assert!(matches!(
        a.authenticate("bob", "pw", IP).await,
        AuthResult::Ok(_)
    ));
    assert_eq!(a.user_count(), 3);
    assert_eq!(a.lookup("bob").unwrap().name, "bob");
}

#[tokio::test]
async fn failure_delay_applies_to_unknown_users_and_wrong_passwords() {
    let (_d, a) = setup("bob:{PLAIN}pw\n", Duration::from_millis(300));
    for (u, p) in [("bob", "nope"), ("ghost", "pw")] {
        let t = Instant::now();
        assert_eq!(a.authenticate(u, p, IP).await, AuthResult::Failed);
        assert!(t.elapsed() >= Duration::from_millis(300), "{u}");
    }
    let t = Instant::now();
    assert!(matches!(
        a.authenticate("bob", "pw", IP).await,
        AuthResult::Ok(_)
    ));
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn unknown_user_costs_a_real_verification() {
    // With only a BLF-CRYPT user, an unknown user is checked against that hash: both
    // take at least one bcrypt computation (cost 10, milliseconds), far above a lookup.
    let h = hash_password(Scheme::BlfCrypt, "pw").unwrap();
    let (_d, a) = setup(&format!("bob:{h}\n"), Duration::ZERO);
    let t = Instant::now();
    a.authenticate("bob", "wrong", IP).await;
    let known = t.elapsed();
    let t = Instant::now();
    a.authenticate("ghost", "wrong", IP).await;
    let unknown = t.elapsed();
    assert!(
        unknown * 3 > known,
        "known {known:?} vs unknown {unknown:?}"
    );
}

#[tokio::test]
async fn default_file_is_created_when_missing() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(&d.path().join("sub")).auth;
    cfg.create_if_missing = true;
    let a = Authenticator::new(&cfg).unwrap();
    assert_eq!(a.user_count(), 0);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cfg.passwd_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(a.authenticate("x", "y", IP).await, AuthResult::Failed);

    cfg.passwd_file = d.path().join("elsewhere");
    cfg.create_if_missing = false;
    assert!(Authenticator::new(&cfg).is_err());
}

#[test]
fn plain_password_only_for_plain_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    let hashed = crate::auth::hash_password(crate::auth::Scheme::Sha512Crypt, "pw").unwrap();
    std::fs::write(
        &path,
        format!("p:{{PLAIN}}tanstaaf\nc:{{CLEARTEXT}}x y\nh:{hashed}\n"),
    )
    .unwrap();
    let mut cfg = crate::config::Config::for_tests(dir.path()).auth;
    cfg.passwd_file = path.clone();
    cfg.create_if_missing = false;
    let a = crate::auth::Authenticator::new(&cfg).unwrap();
    assert_eq!(a.plain_password("p").as_deref(), Some("tanstaaf"));
    assert_eq!(a.plain_password("c").as_deref(), Some("x y"));
    assert_eq!(a.plain_password("h"), None);
    assert_eq!(a.plain_password("nobody"), None);
    assert!(a.has_plain_passwords());
    std::fs::write(&path, format!("h:{hashed}\n")).unwrap();
    let b = crate::auth::Authenticator::new(&cfg).unwrap();
    assert!(!b.has_plain_passwords());
}

/// A deliberately slow ARGON2ID hash (t=12): a wrong password costs far more than one for
/// a `{PLAIN}` user.
fn slow_argon2(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(19456, 12, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"fixed-test-salt!").unwrap();
    format!(
        "{{ARGON2ID}}{}",
        a.hash_password(password.as_bytes(), &salt).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_take_the_same_time_whatever_the_user_and_scheme() {
    let argon = slow_argon2("pw");
    let delay = Duration::from_millis(1500);
    // The decoy for unknown users imitates the most common scheme: PLAIN here, so before
    // padding an unknown user answered as fast as a PLAIN one and the ARGON2ID one late.
    let (_d, a) = setup(
        &format!("slow:{argon}\nplain:{{PLAIN}}pw\nplain2:{{PLAIN}}pw\n"),
        delay,
    );
    let t = Instant::now();
    assert!(matches!(
        a.authenticate("slow", "pw", IP).await,
        AuthResult::Ok(_)
    ));
    let hash_cost = t.elapsed();
    let mut times = Vec::new();
    for (i, user) in ["slow", "plain", "ghost", "slow", "plain", "ghost"]
        .iter()
        .enumerate()
    {
        let ip = IpAddr::from([192, 0, 2, i as u8 + 1]);
        let t = Instant::now();
        assert_eq!(a.authenticate(user, "wrong", ip).await, AuthResult::Failed);
        times.push((user, t.elapsed()));
    }
    let min = times.iter().map(|t| t.1).min().unwrap();
    let max = times.iter().map(|t| t.1).max().unwrap();
    assert!(min >= delay, "{times:?}");
    assert!(
        max - min < Duration::from_millis(60),
        "failures differ by {:?} (one ARGON2ID check: {hash_cost:?}): {times:?}",
        max - min
    );
}

#[tokio::test]
async fn apop_goes_through_the_rate_limiter() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(d.path()).auth;
    std::fs::write(&cfg.passwd_file, "bob:{PLAIN}pw\n").unwrap();
    cfg.rate_limit.ip_burst = 2;
    let a = Authenticator::new(&cfg).unwrap();
    let stamp = "<1.2@host>";
    let good = md5::hex_digest(format!("{stamp}pw").as_bytes());
    assert!(matches!(
        a.verify_apop("bob", stamp, &good.to_uppercase(), Some(IP))
            .await,
        AuthOutcome::Ok(_)
    ));
    for _ in 0..2 {
        assert_eq!(
            a.verify_apop("bob", stamp, "00", Some(IP)).await,
            AuthOutcome::Failed
        );
    }
    // The address spent its burst: even the right digest is refused unchecked.
    assert_eq!(
        a.verify_apop("bob", stamp, &good, Some(IP)).await,
        AuthOutcome::RateLimited
    );
}

/// A last-use record that cannot be written (the service account after the switch) is
/// logged once per failing stretch, not per login; a later success says so once.
#[test]
fn app_password_touch_failures_are_reported_once() {
    use std::sync::atomic::AtomicBool;
    let failing = AtomicBool::new(false);
    let err: Result<(), std::io::Error> = Err(std::io::ErrorKind::PermissionDenied.into());
    assert_eq!(
        super::touch_report(&failing, &Ok::<(), std::io::Error>(())),
        super::TouchReport::Quiet
    );
    assert_eq!(
        super::touch_report(&failing, &err),
        super::TouchReport::FirstFailure
    );
    for _ in 0..3 {
        assert_eq!(
            super::touch_report(&failing, &err),
            super::TouchReport::Quiet
        );
    }
    assert_eq!(
        super::touch_report(&failing, &Ok::<(), std::io::Error>(())),
        super::TouchReport::Recovered
    );
    assert_eq!(
        super::touch_report(&failing, &Ok::<(), std::io::Error>(())),
        super::TouchReport::Quiet
    );
    assert_eq!(
        super::touch_report(&failing, &err),
        super::TouchReport::FirstFailure
    );
}

/// A burst of good logins larger than the hash pool's queue (every client reconnecting
/// after a restart): the ones with no room are told to retry (`Busy`, a temporary
/// answer), never that their password is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_queue_is_busy_not_failed() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(d.path()).auth;
    std::fs::write(&cfg.passwd_file, format!("bob:{}\n", slow_argon2("pw"))).unwrap();
    cfg.hash_workers = 1;
    cfg.hash_queue = 1;
    let a = Arc::new(Authenticator::new(&cfg).unwrap());
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let a = Arc::clone(&a);
            tokio::spawn(async move {
                let remote = Some(std::net::IpAddr::from([10, 0, 0, i as u8 + 1]));
                let req = AuthRequest {
                    user: "bob",
                    password: "pw",
                    remote,
                    service: Service::Imap,
                };
                a.authenticate_for(&req).await
            })
        })
        .collect();
    let mut ok = 0;
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            AuthOutcome::Ok(_) => ok += 1,
            AuthOutcome::Busy => busy += 1,
            other => panic!("a good password answered {other:?}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
}
