//! Tests of config loading: the shipped file, and one test per kind of problem.

use std::path::Path;
use std::time::Duration;

use super::*;

fn load_str(dir: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let p = dir.join("loft.toml");
    std::fs::write(&p, text).unwrap();
    load(&p)
}

fn messages(r: Result<Config, Vec<Diagnostic>>) -> Vec<(usize, usize, String)> {
    match r {
        Ok(_) => panic!("expected diagnostics"),
        Err(d) => d.into_iter().map(|d| (d.line, d.col, d.message)).collect(),
    }
}

#[test]
fn shipped_config_loads() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/loft.toml");
    let c = load(&p).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(c.imap.listen, vec!["127.0.0.1:1143".parse().unwrap()]);
    assert_eq!(c.imap.listen_tls, vec!["127.0.0.1:1993".parse().unwrap()]);
    assert_eq!(c.imap.max_line_length, 64 * 1024);
    assert_eq!(c.imap.append_limit, 50 * 1024 * 1024);
    assert_eq!(c.imap.autologout, Duration::from_secs(1800));
    assert_eq!(c.auth.failure_delay, Duration::from_secs(2));
    assert!(c.tls.cert.ends_with("conf/tls/cert.pem"));
    assert!(c.tls.cert.is_absolute());
    assert!(c.storage.location.ends_with("conf/../var/mail/%u"));
    assert_eq!(c.storage.fsync, FsyncMode::Always);
    assert_eq!(c.storage.maildir_flag_sync, MaildirFlagSync::Lazy);
    assert_eq!(c.storage.lock_method, super::LockMethod::Fcntl);
    assert!(!c.storage.nfs);
    assert_eq!(c.storage.cache_drop_days, 30);
}

#[test]
fn storage_index_keys() {
    let d = tempfile::tempdir().unwrap();
    let c = load_str(
        d.path(),
        "[storage]\nlock_method = \"dotlock\"\nnfs = true\nmaildir_flag_sync = \"immediate\"\ncache_drop_days = 7\n",
    )
    .unwrap();
    assert_eq!(c.storage.lock_method, super::LockMethod::Dotlock);
    assert!(c.storage.nfs);
    assert_eq!(c.storage.maildir_flag_sync, MaildirFlagSync::Immediate);
    assert_eq!(c.storage.cache_drop_days, 7);
    let m = messages(load_str(
        d.path(),
        "[storage]\nlock_method = \"lockf\"\nmaildir_flag_sync = \"later\"\ncache_drop_days = 0\n",
    ));
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m[0].2.contains("lock_method"), "{m:?}");
    assert!(m[1].2.contains("maildir_flag_sync"), "{m:?}");
}

#[test]
fn empty_file_gets_defaults() {
    let d = tempfile::tempdir().unwrap();
    let c = load_str(d.path(), "").unwrap();
    assert_eq!(c.imap.listen.len(), 1);
    assert_eq!(c.auth.failure_delay, Duration::from_secs(2));
    assert!(c.tls.generate_if_missing);
    assert!(c.auth.create_if_missing);
    assert_eq!(
        c.auth.passwd_file,
        std::path::absolute(d.path()).unwrap().join("users")
    );
}

#[test]
fn every_problem_is_reported_with_its_position() {
    let d = tempfile::tempdir().unwrap();
    let text = "\
[server]
max_conections = 5
max_connections = 0

[imap]
listen = [\"127.0.0.1:1143\", \"nonsense\"]
autologout = \"10m\"
idle_poll = true

[storage]
format = \"mdbox\"
fsync = \"sometimes\"

[bogus]
";
    let m = messages(load_str(d.path(), text));
    let lines: Vec<usize> = m.iter().map(|x| x.0).collect();
    assert_eq!(lines, vec![2, 3, 6, 7, 8, 11, 12, 14], "{m:#?}");
    assert!(
        m[0].2.contains("did you mean `max_connections`"),
        "{}",
        m[0].2
    );
    assert_eq!(m[0].1, 1);
    assert!(m[1].2.contains("must not be 0"));
    assert!(m[2].2.contains("\"nonsense\""));
    assert_eq!(m[2].1, 29);
    assert!(m[3].2.contains("RFC 3501"));
    assert!(m[4].2.contains("found a boolean"), "{}", m[4].2);
    assert!(m[5].2.contains("not yet supported"));
    assert!(m[6].2.contains("always"));
    assert!(m[7].2.contains("unknown section [bogus]"));
}

#[test]
fn syntax_errors_have_positions_and_do_not_hide_other_problems() {
    let d = tempfile::tempdir().unwrap();
    let text = "[imap]\nmax_nesting = 0\nlisten = \"127.0.0.1:1143\n";
    let m = messages(load_str(d.path(), text));
    assert!(
        m.iter().any(|x| x.0 == 2 && x.2.contains("must not be 0")),
        "{m:#?}"
    );
    assert!(
        m.iter().any(|x| x.0 == 3 && x.2.starts_with("TOML syntax")),
        "{m:#?}"
    );
    // No follow-up error for the value the parser had to guess at.
    assert_eq!(m.iter().filter(|x| x.0 == 3).count(), 1, "{m:#?}");
    let m = messages(load_str(
        d.path(),
        "[imap]\nlisten = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n",
    ));
    assert!(m[0].2.ends_with("duplicate key: `listen`"), "{m:#?}");
}

#[test]
fn wrong_section_is_pointed_out() {
    let d = tempfile::tempdir().unwrap();
    let m = messages(load_str(d.path(), "[server]\nlisten = \"127.0.0.1:1\"\n"));
    assert!(m[0].2.contains("[imap]"), "{m:?}");
    let m = messages(load_str(d.path(), "hostname = \"x\"\n"));
    assert!(m[0].2.contains("inside the [server] section"), "{m:?}");
}

#[test]
fn durations_sizes_and_relative_paths() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("pw"), "").unwrap();
    let c = load_str(
        d.path(),
        "[imap]\nautologout = 3600\nlogin_timeout = \"1m30s\"\nidle_poll = \"250ms\"\n\
         max_line_length = 8192\nappend_limit = \"10M\"\n\
         [auth]\npasswd_file = \"pw\"\nfailure_delay = \"500ms\"\n\
         [storage]\nlocation = \"~/Maildir\"\nfsync = \"never\"\n",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.imap.autologout, Duration::from_secs(3600));
    assert_eq!(c.imap.login_timeout, Duration::from_secs(90));
    assert_eq!(c.imap.idle_poll, Duration::from_millis(250));
    assert_eq!(c.imap.append_limit, 10 << 20);
    assert_eq!(c.auth.failure_delay, Duration::from_millis(500));
    assert!(c.auth.passwd_file.ends_with("pw"));
    assert!(!c.auth.create_if_missing);
    assert_eq!(c.storage.location, "%h/Maildir");
    assert_eq!(c.storage.fsync, FsyncMode::Never);
}

#[test]
fn missing_files_outside_the_defaults_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let m = messages(load_str(
        d.path(),
        "[tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n\
         [auth]\npasswd_file = \"nope\"\n",
    ));
    assert_eq!(m.len(), 3, "{m:#?}");
    assert!(m[0].2.contains("cannot read /nonexistent/c.pem"));
    assert_eq!((m[1].0, m[2].0), (3, 5));
}

#[test]
fn half_a_default_pair_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("tls")).unwrap();
    std::fs::write(d.path().join("tls/key.pem"), "x").unwrap();
    let m = messages(load_str(d.path(), "[tls]\n"));
    assert!(m[0].2.contains("remove both"), "{m:?}");
}

#[test]
fn location_needs_a_per_user_variable() {
    let d = tempfile::tempdir().unwrap();
    let m = messages(load_str(d.path(), "[storage]\nlocation = \"/var/mail\"\n"));
    assert!(m[0].2.contains("share"), "{m:?}");
    let m = messages(load_str(d.path(), "[storage]\nlocation = \"/m/%x\"\n"));
    assert!(m[0].2.contains("%x"), "{m:?}");
}

#[test]
fn bad_log_level_and_duplicate_listener() {
    let d = tempfile::tempdir().unwrap();
    let m = messages(load_str(
        d.path(),
        "[imap]\nlisten = \"127.0.0.1:1143\"\nlisten_tls = \"127.0.0.1:1143\"\n[log]\nlevel = \"loft=[\"\n",
    ));
    assert_eq!(m.len(), 2, "{m:#?}");
}

#[test]
fn unreadable_config_file() {
    let m = messages(load(Path::new("/nonexistent/loft.toml")));
    assert!(m[0].2.contains("cannot read"));
}

#[test]
fn sasl_mechanisms_and_scram_iterations() {
    let d = tempfile::tempdir().unwrap();
    let c = load_str(d.path(), "").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        c.auth.mechanisms,
        ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
    );
    assert_eq!(c.auth.scram_iterations, 4096);
    let c = load_str(
        d.path(),
        "[auth]\nmechanisms = [\"scram-sha-256\", \"PLAIN\"]\nscram_iterations = 10000\n",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.auth.mechanisms, ["SCRAM-SHA-256", "PLAIN"]);
    assert_eq!(c.auth.scram_iterations, 10000);
    let m = messages(load_str(
        d.path(),
        "[auth]\nmechanisms = [\"PLAIN\", \"CRAM-MD4\", \"PLAIN\"]\nscram_iterations = 100\n",
    ));
    assert_eq!(m.len(), 3, "{m:#?}");
    assert_eq!((m[0].0, m[0].1), (2, 24));
    assert!(m[0].2.contains("unknown mechanism \"CRAM-MD4\"") && m[0].2.contains("CRAM-MD5"));
    assert!(m[1].2.contains("listed twice"), "{m:?}");
    assert_eq!(m[2].0, 3);
    assert!(m[2].2.contains("at least 4096"), "{m:?}");
    let m = messages(load_str(d.path(), "[auth]\nmechanisms = \"PLAIN\"\n"));
    assert!(m[0].2.contains("array"), "{m:?}");
}

#[test]
fn server_privilege_keys_and_their_positions() {
    let d = tempfile::tempdir().unwrap();
    let c = load_str(
        d.path(),
        "[server]\nhostname = \"mx\"\nuser = \"vmail\"\ngroup = 5000\nallow_root = true\nwhen_not_root = \"run\"\n",
    )
    .unwrap();
    assert_eq!(c.server.user.as_deref(), Some("vmail"));
    assert_eq!(c.server.group.as_deref(), Some("5000"));
    assert!(c.server.allow_root);
    assert_eq!(c.server.when_not_root, WhenNotRoot::Run);
    assert_eq!(c.positions.of("server", "user"), (3, 8));
    assert_eq!(c.positions.of("server", "group"), (4, 9));
    // Left out: its section header; no section: the start of the file.
    assert_eq!(c.positions.of("server", "nope"), (1, 2));
    assert_eq!(c.positions.of("auth", "passwd_file"), (1, 1));
    let dflt = load_str(d.path(), "").unwrap();
    assert_eq!(dflt.server.user, None);
    assert!(!dflt.server.allow_root);
    assert_eq!(dflt.server.when_not_root, WhenNotRoot::Refuse);
    let m = messages(load_str(
        d.path(),
        "[server]\nuser = \"\"\nallow_root = \"yes\"\nwhen_not_root = \"ignore\"\n",
    ));
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m[0].2.contains("`user`"), "{m:?}");
    assert!(m[1].2.contains("`allow_root`"), "{m:?}");
    assert!(m[2].2.contains("\"refuse\" or \"run\""), "{m:?}");
}

#[test]
fn limits_for_unauthenticated_clients() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("pw"), "").unwrap();
    let c = load_str(
        d.path(),
        "[server]\nmax_connections = 100\ntls_handshake_timeout = \"3s\"\n\
         [auth]\npasswd_file = \"pw\"\nhash_workers = 3\nhash_queue = 7\n",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(c.server.unauthenticated_cap(), 50, "half by default");
    assert_eq!(c.server.tls_handshake_timeout, Duration::from_secs(3));
    assert_eq!((c.auth.hash_workers, c.auth.hash_queue), (3, 7));
    let mut s = c.server.clone();
    s.max_unauthenticated = Some(500);
    assert_eq!(s.unauthenticated_cap(), 100, "never above max_connections");
    let m = messages(load_str(
        d.path(),
        "[server]\nmax_unauthenticated = 0\ntls_handshake_timeout = 0\n\
         [auth]\npasswd_file = \"pw\"\nhash_workers = 5000\n",
    ));
    assert_eq!(m.len(), 3, "{m:?}");
}

#[test]
fn mbox_defaults() {
    let d = tempfile::tempdir().unwrap();
    let c = load_str(d.path(), "").unwrap();
    assert_eq!(c.storage.format, StorageFormat::Maildir);
    assert_eq!(c.storage.inbox, None);
    let m = &c.storage.mbox;
    assert_eq!(m.read_locks, [MboxLock::Fcntl]);
    assert_eq!(m.write_locks, [MboxLock::Dotlock, MboxLock::Fcntl]);
    assert_eq!(m.lock_timeout, Duration::from_secs(30));
    assert_eq!(m.dotlock_stale, Duration::from_secs(120));
    assert!(m.write_headers);
    let c = load_str(d.path(), "[storage]\nformat = \"mbox\"\n").unwrap();
    assert_eq!(c.storage.format, StorageFormat::Mbox);
    assert_eq!(c.storage.inbox, None);
    assert_eq!(
        c.storage.mbox.write_locks,
        [MboxLock::Dotlock, MboxLock::Fcntl]
    );
    assert_eq!(
        [MboxLock::Dotlock, MboxLock::Fcntl, MboxLock::Flock].map(MboxLock::name),
        ["dotlock", "fcntl", "flock"]
    );
}

#[test]
fn mbox_keys_are_parsed() {
    let d = tempfile::tempdir().unwrap();
    let c = load_str(
        d.path(),
        "[storage]\nformat = \"mbox\"\nlocation = \"~/mail\"\ninbox = \"/var/mail/%u\"\n\
         mbox_read_locks = [\"flock\", \"fcntl\"]\nmbox_write_locks = [\"fcntl\"]\n\
         mbox_lock_timeout = \"1m\"\nmbox_dotlock_stale = 300\nmbox_write_headers = false\n",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let st = &c.storage;
    assert_eq!(st.format, StorageFormat::Mbox);
    assert_eq!(st.location, "%h/mail");
    assert_eq!(st.inbox.as_deref(), Some("/var/mail/%u"));
    assert_eq!(st.mbox.read_locks, [MboxLock::Flock, MboxLock::Fcntl]);
    assert_eq!(st.mbox.write_locks, [MboxLock::Fcntl]);
    assert_eq!(st.mbox.lock_timeout, Duration::from_secs(60));
    assert_eq!(st.mbox.dotlock_stale, Duration::from_secs(300));
    assert!(!st.mbox.write_headers);
    assert_eq!(c.positions.of("storage", "inbox"), (4, 9));
}

#[test]
fn mbox_inbox_is_a_template_like_location() {
    let d = tempfile::tempdir().unwrap();
    let c = load_str(
        d.path(),
        "[storage]\nformat = \"mbox\"\ninbox = \"spool/%n\"\n",
    )
    .unwrap();
    let dir = std::path::absolute(d.path()).unwrap();
    assert_eq!(
        c.storage.inbox.as_deref(),
        Some(dir.join("spool/%n").to_str().unwrap())
    );
    let c = load_str(
        d.path(),
        "[storage]\nformat = \"mbox\"\ninbox = \"~/INBOX\"\n",
    )
    .unwrap();
    assert_eq!(c.storage.inbox.as_deref(), Some("%h/INBOX"));
    let m = messages(load_str(
        d.path(),
        "[storage]\nformat = \"mbox\"\ninbox = \"/var/mail/spool\"\n",
    ));
    assert_eq!(
        m,
        [(
            3,
            9,
            "`inbox`: contains none of %u, %n, %h: every user would share one mail store"
                .to_string()
        )]
    );
    let m = messages(load_str(
        d.path(),
        "[storage]\nformat = \"mbox\"\ninbox = \"/var/mail/%z\"\ninbox2 = 1\n",
    ));
    assert_eq!(
        m,
        [
            (
                3,
                9,
                "`inbox`: unknown variable %z (use %u, %n, %d, %h or %%)".to_string()
            ),
            (
                4,
                1,
                "unknown key `inbox2` in [storage]; did you mean `inbox`?".to_string()
            ),
        ]
    );
}

#[test]
fn mbox_lock_lists_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let m = messages(load_str(
        d.path(),
        "[storage]\nformat = \"mbox\"\nmbox_read_locks = []\n\
         mbox_write_locks = [\"dotlock\", \"fcntl\", \"dotlock\", \"FCNTL\", \"lockf\", 3]\n",
    ));
    assert_eq!(
        m,
        [
            (
                3,
                19,
                "`mbox_read_locks` must name at least one lock method (dotlock, fcntl, flock)"
                    .to_string()
            ),
            (
                4,
                41,
                "`mbox_write_locks`: \"dotlock\" is listed twice".to_string()
            ),
            (
                4,
                52,
                "`mbox_write_locks`: unknown lock method \"FCNTL\" (did you mean \"fcntl\"?); \
                 known: dotlock, fcntl, flock"
                    .to_string()
            ),
            (
                4,
                61,
                "`mbox_write_locks`: unknown lock method \"lockf\" (did you mean \"flock\"?); \
                 known: dotlock, fcntl, flock"
                    .to_string()
            ),
            (
                4,
                70,
                "`mbox_write_locks` must be a string, found an integer".to_string()
            ),
        ]
    );
    let m = messages(load_str(
        d.path(),
        "[storage]\nformat = \"mbox\"\nmbox_read_locks = \"fcntl\"\nmbox_write_locks = [\"posix\"]\n",
    ));
    assert_eq!(
        m,
        [
            (
                3,
                19,
                "`mbox_read_locks` must be an array of lock method names, e.g. [\"dotlock\", \"fcntl\"]"
                    .to_string()
            ),
            (
                4,
                21,
                "`mbox_write_locks`: unknown lock method \"posix\"; known: dotlock, fcntl, flock"
                    .to_string()
            ),
        ]
    );
}

#[test]
fn mbox_durations_and_headers_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let m = messages(load_str(
        d.path(),
        "[storage]\nformat = \"mbox\"\nmbox_lock_timeout = 0\nmbox_dotlock_stale = \"0s\"\n\
         mbox_write_headers = \"no\"\nmbox_lock_timeout_s = 1\n",
    ));
    assert_eq!(
        m,
        [
            (3, 21, "`mbox_lock_timeout` must not be 0".to_string()),
            (4, 22, "`mbox_dotlock_stale` must not be 0".to_string()),
            (
                5,
                22,
                "`mbox_write_headers` must be true or false, found a string".to_string()
            ),
            (
                6,
                1,
                "unknown key `mbox_lock_timeout_s` in [storage]; did you mean `mbox_lock_timeout`?"
                    .to_string()
            ),
        ]
    );
    let m = messages(load_str(
        d.path(),
        "[storage]\nformat = \"mbox\"\nmbox_dotlock_stale = \"2 minutes\"\n",
    ));
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].0, m[0].1), (3, 22));
    assert!(m[0].2.starts_with("`mbox_dotlock_stale`: "), "{m:?}");
}

#[test]
fn mbox_keys_need_format_mbox() {
    let d = tempfile::tempdir().unwrap();
    let text = "\
[storage]
inbox = \"/var/mail/%u\"
mbox_read_locks = [\"fcntl\"]
  mbox_write_locks = [\"dotlock\"]
mbox_lock_timeout = \"30s\"
mbox_dotlock_stale = \"2m\"
mbox_write_headers = true
";
    let m = messages(load_str(d.path(), text));
    let want: Vec<(usize, usize, String)> = [
        (2, 1, "inbox"),
        (3, 1, "mbox_read_locks"),
        (4, 3, "mbox_write_locks"),
        (5, 1, "mbox_lock_timeout"),
        (6, 1, "mbox_dotlock_stale"),
        (7, 1, "mbox_write_headers"),
    ]
    .map(|(l, c, k)| (l, c, format!("`{k}` applies only to format = \"mbox\"")))
    .to_vec();
    assert_eq!(m, want);
    // Also with format = "maildir" written out, after the keys.
    let m = messages(load_str(
        d.path(),
        "[storage]\nmbox_write_headers = false\nformat = \"maildir\"\n",
    ));
    assert_eq!(
        m,
        [(
            2,
            1,
            "`mbox_write_headers` applies only to format = \"mbox\"".to_string()
        )]
    );
    // A refused format is reported once, without a follow-up for each mbox key.
    let m = messages(load_str(
        d.path(),
        "[storage]\nformat = \"mbx\"\ninbox = \"/var/mail/%u\"\n",
    ));
    assert_eq!(
        m,
        [(
            2,
            10,
            "unknown storage format \"mbx\" (supported: \"maildir\", \"mbox\")".to_string()
        )]
    );
    let m = messages(load_str(d.path(), "[storage]\nformat = \"sdbox\"\n"));
    assert_eq!(
        m,
        [(
            2,
            10,
            "storage format \"sdbox\" is not yet supported (only \"maildir\" and \"mbox\")"
                .to_string()
        )]
    );
}
