//! Unit tests of the privilege plan and its checks (the switch itself is tested on the
//! real binary in tests/privileges.rs).
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use super::*;

fn server(user: Option<&str>, group: Option<&str>, allow_root: bool) -> ServerConfig {
    let mut s = Config::for_tests(Path::new("/tmp")).server;
    s.user = user.map(String::from);
    s.group = group.map(String::from);
    s.allow_root = allow_root;
    s
}

#[test]
fn started_as_root_drops_to_the_configured_account() {
    let p = plan(&server(Some("nobody"), None, false), (0, 0)).unwrap();
    let Plan::Drop(a) = &p else { panic!("{p:?}") };
    assert_eq!((a.uid, a.user.as_str()), (65534, "nobody"));
    assert_eq!(a.gid, 65534, "the primary group of nobody");
    assert!(
        p.explain()
            .contains("then serves mail as nobody (uid 65534)"),
        "{}",
        p.explain()
    );
    // Numbers work too, and an explicit group wins.
    let p = plan(&server(Some("65534"), Some("daemon"), false), (0, 0)).unwrap();
    let Plan::Drop(a) = p else { panic!() };
    assert_eq!((a.uid, a.gid, a.group.as_str()), (65534, 1, "daemon"));
}

#[test]
fn serving_as_root_is_refused_unless_allowed() {
    let e = plan(&server(None, None, false), (0, 0)).unwrap_err();
    assert_eq!(e, PlanError::RootWithoutUser);
    assert!(e.to_string().contains("would serve mail as root"), "{e}");
    assert_eq!(plan(&server(None, None, true), (0, 0)).unwrap(), Plan::Root);
    let e = plan(&server(Some("root"), None, false), (0, 0)).unwrap_err();
    assert!(matches!(e, PlanError::TargetIsRoot(_)), "{e:?}");
    let e = plan(&server(Some("nobody"), Some("root"), false), (0, 0)).unwrap_err();
    assert!(matches!(e, PlanError::TargetIsRoot(_)), "{e:?}");
    assert_eq!(
        plan(&server(Some("root"), None, true), (0, 0)).unwrap(),
        Plan::Root
    );
}

#[test]
fn unknown_accounts_are_named() {
    let e = plan(&server(Some("no-such-loft-user"), None, false), (0, 0)).unwrap_err();
    assert_eq!(e, PlanError::NoSuchUser("no-such-loft-user".into()));
    assert_eq!(e.key(), "user");
    let e = plan(
        &server(Some("nobody"), Some("no-such-loft-group"), false),
        (0, 0),
    )
    .unwrap_err();
    assert_eq!(e, PlanError::NoSuchGroup("no-such-loft-group".into()));
    assert_eq!(e.key(), "group");
    let e = plan(&server(Some("4000000007"), None, false), (0, 0)).unwrap_err();
    assert_eq!(e, PlanError::NoPrimaryGroup(4_000_000_007));
    let e = plan(&server(None, Some("nogroup"), false), (0, 0)).unwrap_err();
    assert_eq!(e, PlanError::GroupWithoutUser);
}

#[test]
fn started_unprivileged_it_runs_as_itself_or_refuses() {
    let me = (65534, 65534);
    let p = plan(&server(None, None, false), me).unwrap();
    assert!(
        matches!(&p, Plan::Stay { me, configured: None } if me.uid == 65534),
        "{p:?}"
    );
    // The configured account is the current one.
    assert!(plan(&server(Some("nobody"), None, false), me).is_ok());
    // Another one: refused, or run as itself when asked to.
    let mut s = server(Some("daemon"), None, false);
    let e = plan(&s, me).unwrap_err();
    assert!(matches!(e, PlanError::CannotSwitch { .. }), "{e:?}");
    assert!(e.to_string().contains("cannot switch accounts"), "{e}");
    s.when_not_root = WhenNotRoot::Run;
    let p = plan(&s, me).unwrap();
    assert!(
        matches!(&p, Plan::Stay { configured: Some(u), .. } if u == "daemon"),
        "{p:?}"
    );
    assert_eq!(p.service_ids(), (65534, 65534));
    // A group that is not the current one is a switch too.
    let e = plan(&server(Some("nobody"), Some("daemon"), false), me).unwrap_err();
    assert!(matches!(e, PlanError::CannotSwitch { .. }), "{e:?}");
}

#[test]
fn mail_root_is_the_fixed_folder_above_the_first_variable() {
    assert_eq!(
        mail_root("/srv/loft/var/mail/%u"),
        Some("/srv/loft/var/mail".into())
    );
    assert_eq!(mail_root("/srv/mail/%d/%n"), Some("/srv/mail".into()));
    assert_eq!(
        mail_root("/srv/mail/user-%u/Maildir"),
        Some("/srv/mail".into())
    );
    assert_eq!(mail_root("%h/Maildir"), None);
    assert_eq!(mail_root("/%u"), None);
}

#[test]
fn proc_status_lines_are_judged() {
    let a = account_of(65534, 65534);
    let good = "Name:\tloft\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n\
                CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n";
    assert_eq!(status_problem(good, &a), None);
    let saved_root = good.replace(
        "Uid:\t65534\t65534\t65534\t65534",
        "Uid:\t65534\t65534\t0\t65534",
    );
    assert!(status_problem(&saved_root, &a).unwrap().contains("Uid:"));
    let caps = good.replace("CapEff:\t0000000000000000", "CapEff:\t0000000000000400");
    assert!(status_problem(&caps, &a).unwrap().contains("CapEff:"));
    let no_amb = good.replace("CapAmb:\t0000000000000000\n", "");
    assert_eq!(status_problem(&no_amb, &a), None);
    assert!(status_problem("Name:\tx\n", &a).is_some());
}

#[test]
fn denied_reads_owners_and_mode_bits_along_the_path() {
    let d = tempfile::tempdir().unwrap();
    let nobody = account_of(65534, 65534);
    let closed = d.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let f = closed.join("users");
    std::fs::write(&f, "x").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    // SAFETY: plain getter.
    let me = unsafe { libc::geteuid() };
    if me != 65534 {
        let why = denied(&f, &nobody, false).unwrap();
        assert!(
            why.contains("closed (mode 700") && why.contains("not searchable"),
            "{why}"
        );
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(denied(&f, &nobody, false), None);
        assert!(denied(&closed, &nobody, true)
            .unwrap()
            .contains("not writable"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(denied(&f, &nobody, false).unwrap().contains("not readable"));
    }
    assert_eq!(denied(&f, &account_of(0, 0), false), None, "root reads all");
}

#[test]
fn sharing_never_follows_a_link_and_leaves_readable_files_alone() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = account_of(65534, 65534);
    let target = d.path().join("secret");
    std::fs::write(&target, "x").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = d.path().join("users");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(matches!(share_with_group(&link, &nobody), Ok(None)));
    let m = std::fs::metadata(&target).unwrap();
    assert_eq!(m.mode() & 0o777, 0o600, "the link's target is untouched");
    let open = d.path().join("open");
    std::fs::write(&open, "x").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(share_with_group(&open, &nobody), Ok(None)));
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } == 0 {
        // Root's and closed to nobody: shared with its group.
        let did = share_with_group(&target, &nobody).unwrap().unwrap();
        assert!(
            did.contains("readable by group nogroup (mode 640)"),
            "{did}"
        );
        let m = std::fs::metadata(&target).unwrap();
        assert_eq!((m.gid(), m.mode() & 0o777), (65534, 0o640));
    }
}

/// Folders under a closed one are held open and then judged from themselves down; the
/// configuration's paths go through the descriptors, real paths show in messages.
#[test]
fn closed_ancestors_are_held_open_and_not_judged_again() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let nobody = account_of(65534, 65534);
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } == 65534 {
        return; // nobody can search its own temp dir: nothing is closed to it
    }
    let checkout = d.path().join("loft");
    std::fs::create_dir_all(checkout.join("conf")).unwrap();
    let users = checkout.join("conf/users");
    std::fs::write(&users, "x").unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cfg = Config::for_tests(&checkout.join("conf"));
    cfg.path = checkout.join("conf/loft.toml");
    cfg.auth.passwd_file = users.clone();
    cfg.storage.location = format!("{}/conf/../var/mail/%u", checkout.display());
    let why = anchor::closed_ancestor(&checkout.join("conf"), &nobody).unwrap();
    assert!(why.contains("(mode 700, owner uid") && why.ends_with("is not searchable by nobody"));
    assert!(unreachable(&users, &nobody).is_some());
    assert!(is_default_passwd(&cfg));

    // Without creating, a missing mail root is left alone (check-config, `loft index`).
    let (held, done) = anchor::hold_closed(&mut cfg, &nobody, false).unwrap();
    assert_eq!((held.0.len(), done.len()), (1, 0));
    let via = held.0[0].via.clone();
    assert_eq!(cfg.auth.passwd_file, via.join("users"));
    assert_eq!(
        held.0[0].real,
        std::fs::canonicalize(checkout.join("conf")).unwrap()
    );
    assert!(
        is_default_passwd(&cfg),
        "the same folder through the descriptor"
    );
    assert_eq!(denied(&cfg.auth.passwd_file, &nobody, false), None);
    assert_eq!(unreachable(&cfg.auth.passwd_file, &nobody), None);
    assert_eq!(
        anchor::real_path(&cfg.auth.passwd_file),
        held.0[0].real.join("users")
    );
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let why = denied(&cfg.auth.passwd_file, &nobody, false).unwrap();
    assert!(
        why.starts_with(&format!("{}/users (mode 600", held.0[0].real.display())),
        "the file's own mode still counts, named by its real path: {why}"
    );

    // Serving: the mail root is created for the account, then held open too.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let (held2, done) = anchor::hold_closed(&mut cfg, &nobody, true).unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    let mail = held2.0.last().unwrap();
    assert_eq!(cfg.storage.location, format!("{}/%u", mail.via.display()));
    assert_eq!(
        mail.real,
        std::fs::canonicalize(checkout.join("var/mail")).unwrap()
    );
    assert_eq!(denied(&mail.via, &nobody, true), None, "nobody's own, 0700");
    assert_eq!(
        mail_root(&cfg.storage.location).as_deref(),
        Some(mail.via.as_path())
    );
    assert_eq!(unreachable(&mail.via, &nobody), None);
    // A reachable folder keeps its real path.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = Config::for_tests(open.path());
    cfg.storage.location = format!("{}/mail/%u", open.path().display());
    let before = (cfg.auth.passwd_file.clone(), cfg.storage.location.clone());
    let (held, _) = anchor::hold_closed(&mut cfg, &nobody, true).unwrap();
    assert!(held.0.is_empty());
    assert_eq!((cfg.auth.passwd_file, cfg.storage.location), before);
}
