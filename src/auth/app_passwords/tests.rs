//! App-password file tests: add/list/revoke, comments kept, services enforced.

use super::*;

#[test]
fn time_round_trip() {
    for t in [0i64, 951_782_400, 1_735_787_045, 4_102_444_800] {
        assert_eq!(parse_time(&format_time(t)), Some(t), "{}", format_time(t));
    }
    assert_eq!(format_time(1_735_787_045), "2025-01-02T03:04:05Z");
    assert_eq!(parse_time("2025-13-02T03:04:05Z"), None);
    assert_eq!(parse_time("garbage"), None);
}

#[test]
fn generated_passwords_have_the_shape() {
    let a = generate();
    let b = generate();
    assert!(looks_like(&a), "{a}");
    assert_ne!(a, b);
    assert!(!looks_like("short"));
    assert!(!looks_like("ABCDEFGHIJKLMNOP"));
}

#[test]
fn add_check_revoke() {
    let d = tempfile::tempdir().unwrap();
    let users = d.path().join("users");
    let p = path_for(&users);
    assert_eq!(p, d.path().join("users.app-passwords"));
    let pw = add(&p, "alice", "phone", &[Service::Imap]).unwrap();
    let pw2 = add(&p, "alice", "laptop", &[Service::Smtp, Service::Imap]).unwrap();
    assert!(
        add(&p, "alice", "phone", &[Service::Imap]).is_err(),
        "duplicate"
    );
    assert!(add(&p, "alice", "bad name", &[Service::Imap]).is_err());
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(!text.contains(&pw), "clear password stored");
    assert!(text.contains("alice phone imap "), "{text}");

    let db = AppDb::new(&users);
    assert_eq!(
        db.check("alice", &pw, Service::Imap),
        AppMatch::Ok("phone".into())
    );
    assert_eq!(
        db.check("alice", &pw, Service::Smtp),
        AppMatch::WrongService("phone".into())
    );
    assert_eq!(
        db.check("alice", &pw2, Service::Smtp),
        AppMatch::Ok("laptop".into())
    );
    assert_eq!(db.check("bob", &pw, Service::Imap), AppMatch::None);
    assert_eq!(
        db.check("alice", "aaaaaaaaaaaaaaaa", Service::Imap),
        AppMatch::None
    );

    assert!(revoke(&p, "alice", "phone").unwrap());
    assert!(!revoke(&p, "alice", "phone").unwrap());
    assert_eq!(
        db.check("alice", &pw, Service::Imap),
        AppMatch::None,
        "revoked at once"
    );
    assert_eq!(
        db.check("alice", &pw2, Service::Imap),
        AppMatch::Ok("laptop".into())
    );
}

#[test]
fn comments_and_unknown_lines_survive_edits() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("users.app-passwords");
    std::fs::write(&p, "# my comment\nweird line kept\n").unwrap();
    add(&p, "bob", "mail", &[Service::Pop3]).unwrap();
    touch(&p, "bob", "mail", 1_735_787_045).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# my comment");
    assert_eq!(lines[1], "weird line kept");
    assert!(lines[2].starts_with("bob mail pop3 "), "{text}");
    assert!(
        lines[2].contains(" 2025-01-02T03:04:05Z {SHA512-CRYPT}$6$"),
        "{text}"
    );
    let (good, bad) = read(&p).unwrap();
    assert_eq!(good.len(), 1);
    assert_eq!(good[0].last_used, Some(1_735_787_045));
    assert_eq!(bad.len(), 1);
    assert_eq!(remove_user(&p, "bob").unwrap(), 1);
    assert!(read(&p).unwrap().0.is_empty());
}
