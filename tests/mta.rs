//! Interop with real MTAs through the auth socket: Postfix (`smtpd_sasl_type = dovecot`)
//! and Exim (`dovecot` authenticator), each a private instance on a loopback port with
//! its own config and spool, delivering nowhere. swaks performs AUTH PLAIN and AUTH LOGIN
//! with a good password (235), a bad one (535) and an app password limited to imap (535),
//! and AUTH CRAM-MD5 (a multi-step CONT exchange through the MTA; swaks needs perl's
//! Digest::HMAC_MD5, Debian `libdigest-hmac-perl`) for a user stored as `{PLAIN}`.
//!
//! Needs root (private spools owned by the MTA users), Postfix and swaks from Debian, and
//! Exim from `exim4-daemon-heavy` (`.ci/run` unpacks it to `target/mta/exim`, or set
//! `LOFT_EXIM`). Skipped when missing, except under `CI`, where missing means failure.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loft::auth::{app_passwords, hash_password, Scheme, Service};
use loft::config::Config;

fn unavailable(what: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("MTA interop prerequisite missing under CI: {what}");
    }
    eprintln!("skipping MTA interop test: {what}");
    true
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chown(path: &Path, user: &str) {
    let st = Command::new("chown").arg(user).arg(path).status().unwrap();
    assert!(st.success(), "chown {user} {}", path.display());
}

/// A Loft server with its auth socket, the socket's group set for `group`.
struct Loft {
    dir: tempfile::TempDir,
    sock: PathBuf,
    app_pw: String,
    server: Option<loft::server::Server>,
}

async fn start_loft(group: &str) -> Loft {
    let dir = tempfile::tempdir().unwrap();
    // The MTA users must be able to reach the socket inside.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let hash = hash_password(Scheme::Sha512Crypt, "Corr3ct-horse").unwrap();
    // tim's clear password makes CRAM-MD5 usable, so Loft offers it in the handshake.
    std::fs::write(
        dir.path().join("users"),
        format!("alice:{hash}\ntim:{{PLAIN}}{CRAM_PW}\n"),
    )
    .unwrap();
    let apps = app_passwords::path_for(&dir.path().join("users"));
    let app_pw = app_passwords::add(&apps, "alice", "phone", &[Service::Imap]).unwrap();
    let sock = dir.path().join("auth-client");
    let mut cfg = Config::for_tests(dir.path());
    cfg.imap.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.imap.listen_tls = vec![];
    cfg.auth.socket = Some(sock.clone());
    cfg.auth.socket_group = Some(group.to_string());
    cfg.auth.socket_mode = 0o660;
    // Postfix gives the auth server 10 s per request: stay far below.
    cfg.auth.failure_delay = Duration::from_millis(200);
    let server = loft::server::start(cfg).await.expect("loft starts");
    Loft {
        dir,
        sock,
        app_pw,
        server: Some(server),
    }
}

/// Runs swaks against `port` and returns its whole transcript.
fn swaks(port: u16, mech: &str, user: &str, pw: &str) -> String {
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}")])
        .args(["--auth", mech, "--auth-user", user, "--auth-password", pw])
        .args(["--quit-after", "AUTH", "--timeout", "20"])
        .stdin(Stdio::null())
        .output()
        .expect("swaks runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn wait_port(port: u16) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "MTA never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const CRAM_PW: &str = "tanstaaf-cram";

/// The swaks checks, for either MTA.
fn check_auth(port: u16, app_pw: &str) {
    let t = swaks(port, "CRAM-MD5", "tim", CRAM_PW);
    assert!(
        t.contains("AUTH CRAM-MD5") && t.contains("334 ") && t.contains("235 "),
        "CRAM-MD5 good password:\n{t}"
    );
    let t = swaks(port, "CRAM-MD5", "tim", "wrong-password");
    assert!(
        t.contains("535 ") && !t.contains("235 "),
        "CRAM-MD5 bad:\n{t}"
    );
    for mech in ["PLAIN", "LOGIN"] {
        let t = swaks(port, mech, "alice", "Corr3ct-horse");
        assert!(t.contains("235 "), "{mech} good password:\n{t}");
        let t = swaks(port, mech, "alice", "wrong-password");
        assert!(
            t.contains("535 ") && !t.contains("235 "),
            "{mech} bad:\n{t}"
        );
        let t = swaks(port, mech, "alice", app_pw);
        assert!(
            t.contains("535 ") && !t.contains("235 "),
            "{mech} imap-only app password used for smtp:\n{t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_smtp_auth_through_loft() {
    let postfix = Path::new("/usr/sbin/postfix");
    if !is_root() && unavailable("not root") {
        return;
    }
    if (!postfix.exists() || Command::new("swaks").arg("--version").output().is_err())
        && unavailable("postfix or swaks not installed")
    {
        return;
    }
    let loft = start_loft("postfix").await;
    let d = loft.dir.path();
    let etc = d.join("pf-etc");
    let (spool, data) = (d.join("pf-spool"), d.join("pf-data"));
    for p in [&etc, &spool, &data] {
        std::fs::create_dir_all(p).unwrap();
    }
    chown(&data, "postfix");
    let port = free_port();
    let never = "error:this test instance never delivers";
    std::fs::write(
        etc.join("main.cf"),
        format!(
            "compatibility_level = 3.6\nqueue_directory = {q}\ndata_directory = {data}\n\
             command_directory = /usr/sbin\ndaemon_directory = /usr/lib/postfix/sbin\n\
             meta_directory = /etc/postfix\nshlib_directory = /usr/lib/postfix\n\
             mail_owner = postfix\nsetgid_group = postdrop\n\
             myhostname = loft-test.localdomain\nmydestination =\n\
             inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nrelayhost =\n\
             default_transport = {never}\nlocal_transport = {never}\n\
             relay_transport = {never}\nalias_maps =\nalias_database =\n\
             smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n\
             smtpd_sasl_path = {sock}\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
             maillog_file_prefixes = {dir}\nmaillog_file = {dir}/pf-maillog\n",
            q = spool.display(),
            data = data.display(),
            sock = loft.sock.display(),
            dir = d.display(),
        ),
    )
    .unwrap();
    let mut master = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
    for (name, kind, limit, cmd) in [
        ("cleanup", "unix n", "0", "cleanup"),
        ("qmgr", "unix n", "1", "qmgr"),
        ("rewrite", "unix -", "-", "trivial-rewrite"),
        ("bounce", "unix -", "0", "bounce"),
        ("defer", "unix -", "0", "bounce"),
        ("trace", "unix -", "0", "bounce"),
        ("verify", "unix -", "1", "verify"),
        ("proxymap", "unix -", "-", "proxymap"),
        ("error", "unix -", "-", "error"),
        ("retry", "unix -", "-", "error"),
        ("discard", "unix -", "-", "discard"),
        ("anvil", "unix -", "1", "anvil"),
        ("scache", "unix -", "1", "scache"),
    ] {
        master.push_str(&format!("{name} {kind} - n - {limit} {cmd}\n"));
    }
    master.push_str("postlog unix-dgram n - n - 1 postlogd\n");
    std::fs::write(etc.join("master.cf"), master).unwrap();
    let st = Command::new("postfix")
        .arg("-c")
        .arg(&etc)
        .arg("start")
        .status()
        .unwrap();
    let log = || std::fs::read_to_string(d.join("pf-maillog")).unwrap_or_default();
    assert!(st.success(), "postfix start failed:\n{}", log());
    let stop = StopPostfix(etc.clone());
    wait_port(port);
    let app_pw = loft.app_pw.clone();
    tokio::task::spawn_blocking(move || check_auth(port, &app_pw))
        .await
        .unwrap_or_else(|e| panic!("{e}\npostfix log:\n{}", log()));
    drop(stop);
    if let Some(s) = loft.server {
        s.shutdown().await;
    }
}

struct StopPostfix(PathBuf);

impl Drop for StopPostfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.0)
            .arg("stop")
            .status();
    }
}

fn exim_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LOFT_EXIM") {
        return Some(PathBuf::from(p));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mta/exim/usr/sbin/exim4");
    [local, PathBuf::from("/usr/sbin/exim4")]
        .into_iter()
        .find(|p| p.exists())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_smtp_auth_through_loft() {
    if !is_root() && unavailable("not root") {
        return;
    }
    let Some(exim) = exim_binary() else {
        unavailable("exim4-daemon-heavy not unpacked (target/mta/exim) and LOFT_EXIM unset");
        return;
    };
    if Command::new("swaks").arg("--version").output().is_err() && unavailable("swaks") {
        return;
    }
    let loft = start_loft("Debian-exim").await;
    let d = loft.dir.path();
    let ex = d.join("exim");
    std::fs::create_dir_all(ex.join("spool")).unwrap();
    chown(&ex, "Debian-exim");
    chown(&ex.join("spool"), "Debian-exim");
    let port = free_port();
    let conf = ex.join("exim.conf");
    let mut authenticators = String::new();
    for m in ["PLAIN", "LOGIN", "CRAM-MD5"] {
        authenticators.push_str(&format!(
            "dovecot_{}:\n  driver = dovecot\n  public_name = {m}\n  \
             server_socket = {}\n  server_set_id = $auth1\n",
            m.replace('-', "_"),
            loft.sock.display()
        ));
    }
    std::fs::write(
        &conf,
        format!(
            "primary_hostname = loft-test.localdomain\nexim_user = Debian-exim\n\
             exim_group = Debian-exim\nspool_directory = {ex}/spool\n\
             log_file_path = {ex}/%slog\npid_file_path = {ex}/exim.pid\n\
             daemon_smtp_ports = {port}\nlocal_interfaces = 127.0.0.1\n\
             tls_advertise_hosts =\nauth_advertise_hosts = *\nacl_smtp_rcpt = acl_rcpt\n\
             begin acl\nacl_rcpt:\n  deny\n\
             begin authenticators\n{authenticators}",
            ex = ex.display()
        ),
    )
    .unwrap();
    let child = Command::new(&exim)
        .arg("-C")
        .arg(&conf)
        .args(["-bdf", "-oX", &port.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("exim starts");
    let _guard = KillOnDrop(child);
    wait_port(port);
    let app_pw = loft.app_pw.clone();
    let log = || std::fs::read_to_string(ex.join("mainlog")).unwrap_or_default();
    tokio::task::spawn_blocking(move || check_auth(port, &app_pw))
        .await
        .unwrap_or_else(|e| panic!("{e}\nexim log:\n{}", log()));
    if let Some(s) = loft.server {
        s.shutdown().await;
    }
}
