//! The real `loft` binary and its privileges: started as root it serves mail as the
//! `[server] user` of the shipped configuration (IDs checked in /proc, mail written and
//! read over IMAP after the switch), started as an ordinary account it runs as that
//! account, a configuration that would serve as root is refused unless `allow_root`, and
//! `check-config` explains all of it with FILE:LINE:COL. Tests that need root print why
//! they skip without it (CI runs as root).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LOFT: &str = env!("CARGO_BIN_EXE_loft");

fn is_root() -> bool {
    // SAFETY: plain getter.
    unsafe { libc::geteuid() == 0 }
}

fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("{test}: skipped, needs root to switch accounts (CI runs as root)");
    }
    !is_root()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shipped conf/loft.toml with one IMAP listener on `port` and nothing else listening,
/// written to `dir/conf/loft.toml` (so mail goes to `dir/var/mail`, as in the README).
fn shipped_config(dir: &Path, port: u16, edit: impl Fn(String) -> String) -> PathBuf {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/loft.toml"))
            .unwrap();
    let text = text
        .replace(
            "listen = [\"127.0.0.1:1143\"]",
            &format!("listen = [\"127.0.0.1:{port}\"]"),
        )
        .replace("listen_tls = [\"127.0.0.1:1993\"]", "listen_tls = []")
        .replace("listen = [\"127.0.0.1:1110\"]", "listen = []")
        .replace("listen_tls = [\"127.0.0.1:1995\"]", "listen_tls = []")
        .replace("failure_delay = \"2s\"", "failure_delay = \"0s\"");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")),
        "shipped listen changed"
    );
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    let conf = dir.join("conf/loft.toml");
    std::fs::write(&conf, edit(text)).unwrap();
    conf
}

/// A temp dir others can enter (tempfile makes them 0700).
fn open_tempdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), id);
        }
    }
}

/// A running `loft serve`; SIGTERM and reaped on drop.
struct Daemon {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(cmd: &mut Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            log,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `what`; false if the daemon ended or 20 s passed.
    fn wait_for(&mut self, what: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            match self.log.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    let hit = l.contains(what);
                    self.seen.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
        false
    }

    /// Collects log lines for `d`.
    fn drain(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => break,
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signals the child this test started, by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// (`Uid:` values, `Gid:` values, `CapEff:` value) of a process.
fn proc_ids(pid: u32) -> (Vec<u32>, Vec<u32>, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let ids = |name: &str| field(name).iter().map(|v| v.parse().unwrap()).collect();
    (ids("Uid:"), ids("Gid:"), field("CapEff:").join(""))
}

/// A minimal IMAP client over a raw socket.
struct Imap {
    s: TcpStream,
    buf: Vec<u8>,
    n: u32,
}

impl Imap {
    fn connect(port: u16) -> Imap {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Imap {
            s,
            buf: Vec::new(),
            n: 0,
        };
        c.until("\r\n");
        c
    }

    /// Reads until the buffer holds `end`; returns everything read so far and clears it.
    fn until(&mut self, end: &str) -> String {
        self.until_with(|b| b.contains(end))
    }

    fn until_with(&mut self, done: impl Fn(&str) -> bool) -> String {
        let mut chunk = [0u8; 4096];
        while !done(&String::from_utf8_lossy(&self.buf)) {
            let n = self.s.read(&mut chunk).expect("server answered");
            assert!(
                n > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(std::mem::take(&mut self.buf)).unwrap()
    }

    /// Sends a command (literals as separate parts after continuation) and returns the
    /// whole answer up to its tagged line.
    fn cmd(&mut self, parts: &[&[u8]]) -> String {
        self.n += 1;
        let tag = format!("a{}", self.n);
        self.s.write_all(format!("{tag} ").as_bytes()).unwrap();
        for (i, p) in parts.iter().enumerate() {
            self.s.write_all(p).unwrap();
            if i + 1 < parts.len() {
                self.s.write_all(b"\r\n").unwrap();
                self.until("+ ");
            }
        }
        self.s.write_all(b"\r\n").unwrap();
        let (mid, start) = (format!("\r\n{tag} "), format!("{tag} "));
        self.until_with(|b| {
            let at = if b.starts_with(&start) {
                Some(0)
            } else {
                b.find(&mid)
            };
            at.is_some_and(|i| b[i + 2..].contains("\r\n"))
        })
    }
}

const MESSAGE: &str =
    "From: a@example.org\r\nSubject: after the switch\r\n\r\nwritten as nobody\r\n";

/// Logs in, appends a message, reads it back.
fn append_and_read(port: u16, user: &str, password: &str) {
    let mut c = Imap::connect(port);
    let r = c.cmd(&[format!("LOGIN {user} {password}").as_bytes()]);
    assert!(r.contains(" OK"), "{r}");
    let lit = format!("APPEND INBOX {{{}}}", MESSAGE.len());
    let r = c.cmd(&[lit.as_bytes(), MESSAGE.as_bytes()]);
    assert!(r.contains(" OK"), "{r}");
    let r = c.cmd(&[b"SELECT INBOX"]);
    assert!(r.contains("* 1 EXISTS"), "{r}");
    let r = c.cmd(&[b"FETCH 1 BODY[TEXT]"]);
    assert!(r.contains("written as nobody"), "{r}");
}

fn add_user(conf: &Path, user: &str, password: &str) {
    let mut child = Command::new(LOFT)
        .args(["user", "add", user, "--scheme", "PLAIN", "--config"])
        .arg(conf)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 1-based number of the first line of `conf` starting with `start`.
fn line_of(conf: &Path, start: &str) -> usize {
    let t = std::fs::read_to_string(conf).unwrap();
    t.lines().position(|l| l.starts_with(start)).unwrap() + 1
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check_config(conf: &Path) -> Output {
    Command::new(LOFT)
        .arg("check-config")
        .arg("--config")
        .arg(conf)
        .output()
        .unwrap()
}

#[test]
fn root_serves_the_shipped_config_as_nobody() {
    if skip_unless_root("root_serves_the_shipped_config_as_nobody") {
        return;
    }
    let d = open_tempdir();
    let port = free_port();
    // With the auth socket too: bound by root in a folder nobody may not write.
    let sock = d.path().join("run/auth");
    let conf = shipped_config(d.path(), port, |t| {
        t.replace(
            "socket_tcp = []",
            &format!("socket_tcp = []\nsocket = \"{}\"", sock.display()),
        )
    });
    let mut daemon = Daemon::start(Command::new(LOFT).arg("serve").arg("--config").arg(&conf));
    assert!(daemon.wait_for("ready"), "{}", daemon.log_text());
    let mut hello = String::new();
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while !hello.contains("DONE") {
        let mut b = [0u8; 512];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "{hello}");
        hello.push_str(&String::from_utf8_lossy(&b[..n]));
    }
    assert!(hello.starts_with("VERSION\t1\t"), "{hello}");
    // Every ID of the process is nobody's, and no capability is left.
    let (uid, gid, cap_eff) = proc_ids(daemon.pid());
    assert_eq!(uid, vec![65534; 4], "{}", daemon.log_text());
    assert_eq!(gid, vec![65534; 4]);
    assert_eq!(cap_eff, "0000000000000000");
    // Loft created the passwd-file and the mail root for nobody before the switch.
    let users = d.path().join("conf/users");
    let m = std::fs::metadata(&users).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (0, 65534, 0o640));
    let mail = std::fs::metadata(d.path().join("var/mail")).unwrap();
    assert_eq!((mail.uid(), mail.mode() & 0o777), (65534, 0o700));
    // A user added by root while it runs (the README's way) can log in: the re-read works
    // after the switch, and the mail is written and read as nobody.
    add_user(&conf, "alice", "secret");
    let m = std::fs::metadata(&users).unwrap();
    assert_eq!(m.gid(), 65534, "the edit kept the file readable by nogroup");
    std::thread::sleep(Duration::from_millis(1100)); // the file is looked at once a second
    append_and_read(port, "alice", "secret");
    let inbox = d.path().join("var/mail/alice");
    // The server may still be renaming the file (flags written into its name when the
    // session's folder closed): a name listed can be gone when it is looked at.
    let listed = || -> Option<Vec<std::fs::Metadata>> {
        ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(inbox.join(sub)).unwrap())
            .map(|e| e.ok()?.metadata().ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let files = loop {
        match listed() {
            Some(f) => break f,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => panic!("the message files kept changing"),
        }
    };
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].uid(), 65534, "the message file is nobody's");
    // `loft index` run by root works as nobody too: no file of alice's becomes root's.
    let out = Command::new(LOFT)
        .args(["index", "rebuild", "alice", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut stack = vec![inbox];
    let mut n = 0;
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(m.uid(), 65534, "{} is not nobody's", p.display());
        n += 1;
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(n > 5, "walked {n} files");
}

#[test]
fn root_without_user_is_refused_and_allow_root_runs() {
    if skip_unless_root("root_without_user_is_refused_and_allow_root_runs") {
        return;
    }
    let d = open_tempdir();
    let port = free_port();
    let no_user = |t: String| t.replace("user = \"nobody\"\n", "");
    let conf = shipped_config(d.path(), port, no_user);
    let out = Command::new(LOFT)
        .arg("serve")
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    // Pointed at the [server] section header.
    let at = format!(
        "{}:{}:2: started as root with no [server] user",
        conf.display(),
        line_of(&conf, "[server]")
    );
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("Loft would serve mail as root"), "{err}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "never listened"
    );
    // check-config says the same.
    let out = check_config(&conf);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&at), "{}", text(&out.stderr));

    let allow = |t: String| no_user(t).replace("allow_root = false", "allow_root = true");
    let conf = shipped_config(d.path(), port, allow);
    let out = check_config(&conf);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("serves mail as ROOT"),
        "{}",
        text(&out.stdout)
    );
    let mut daemon = Daemon::start(Command::new(LOFT).arg("serve").arg("--config").arg(&conf));
    assert!(daemon.wait_for("ready"), "{}", daemon.log_text());
    assert!(
        daemon.log_text().contains("serving mail as root"),
        "{}",
        daemon.log_text()
    );
    assert_eq!(proc_ids(daemon.pid()).0, vec![0; 4]);
}

/// Runs `loft` as `uid` (setpriv when root), else directly.
fn as_account(uid: u32) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            LOFT,
        ]);
        c
    } else {
        Command::new(LOFT)
    }
}

#[test]
fn unprivileged_start_runs_as_that_account() {
    if is_root() && Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("unprivileged_start_runs_as_that_account: skipped, no setpriv (util-linux)");
        return;
    }
    // An account that is neither root nor the shipped `user` (nobody): a newcomer.
    // SAFETY: plain getters.
    let (uid, gid) = if is_root() {
        (4242, 4242)
    } else {
        unsafe { (libc::geteuid(), libc::getegid()) }
    };
    // Run by nobody itself (not as root), the configured account must be another one.
    let other = if uid == 65534 { "daemon" } else { "nobody" };
    let with_other =
        move |t: String| t.replace("user = \"nobody\"", &format!("user = \"{other}\""));
    let d = open_tempdir();
    let port = free_port();
    let conf = shipped_config(d.path(), port, with_other);
    if is_root() {
        chown_tree(d.path(), uid);
    }
    let mut daemon = Daemon::start(as_account(uid).arg("serve").arg("--config").arg(&conf));
    assert!(daemon.wait_for("ready"), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(log.contains("the account that starts it"), "{log}");
    let note = format!("[server] user \"{other}\" applies when started as root");
    assert!(log.contains(&note), "{log}");
    let (uids, gids, _) = proc_ids(daemon.pid());
    assert_eq!((uids, gids), (vec![uid; 4], vec![gid; 4]));
    drop(daemon);

    // With when_not_root = "refuse" (the default) the same start is refused, at the key.
    let refuse = move |t: String| {
        with_other(t).replace("when_not_root = \"run\"", "when_not_root = \"refuse\"")
    };
    let conf = shipped_config(d.path(), port, refuse);
    if is_root() {
        chown_tree(d.path(), uid);
    }
    let out = as_account(uid)
        .arg("serve")
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let at = format!(
        ":{}:8: [server] user/group is {other}",
        line_of(&conf, "user = ")
    );
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("cannot switch accounts"), "{err}");

    // Started as the configured account itself (the systemd way), it just runs, even
    // with "refuse".
    if !is_root() {
        return;
    }
    chown_tree(d.path(), 65534);
    let mut daemon = Daemon::start(as_account(65534).arg("serve").arg("--config").arg(&conf));
    assert!(daemon.wait_for("ready"), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(log.contains("serves mail as nobody (uid 65534)"), "{log}");
    assert!(!log.contains("applies when started as root"), "{log}");
    assert_eq!(proc_ids(daemon.pid()).0, vec![65534; 4]);
    append_and_read_new_user(&mut daemon, &conf, port);
}

/// Adds a user with the CLI (as the account owning the files) and reads mail as it.
fn append_and_read_new_user(daemon: &mut Daemon, conf: &Path, port: u16) {
    let mut child = as_account(65534)
        .args(["user", "add", "erin", "--scheme", "PLAIN", "--config"])
        .arg(conf)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pw").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    daemon.drain(Duration::from_millis(1100)); // the passwd-file is looked at once a second
    append_and_read(port, "erin", "pw");
}

#[test]
fn check_config_explains_the_account_and_what_it_cannot_reach() {
    let d = open_tempdir();
    let port = free_port();
    // An account that does not exist, at its line and column.
    let conf = shipped_config(d.path(), port, |t| {
        t.replace("user = \"nobody\"", "user = \"no-such-loft-account\"")
    });
    let out = check_config(&conf);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:{}:8: [server] user \"no-such-loft-account\": no such user",
            conf.display(),
            line_of(&conf, "user = ")
        )),
        "{err}"
    );
    if skip_unless_root("check_config_explains_the_account_and_what_it_cannot_reach") {
        return;
    }
    // As root: the account it switches to, passwd-file uid/gid fields that are not its,
    // and a mail root it could not write in (root's, mode 0755).
    let rootmail = d.path().join("rootmail");
    std::fs::create_dir(&rootmail).unwrap();
    std::fs::set_permissions(&rootmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = shipped_config(d.path(), port, |t| {
        t.replace(
            "location = \"../var/mail/%u\"",
            &format!("location = \"{}/%u\"", rootmail.display()),
        )
    });
    std::fs::write(
        d.path().join("conf/users"),
        "alice:{PLAIN}x:5000:65534::/home/alice\nbob:{PLAIN}y\n",
    )
    .unwrap();
    let out = check_config(&conf);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}");
    let users = d.path().join("conf/users");
    assert!(
        stderr.contains(&format!(
            "{}:1:16: warning: user \"alice\": uid 5000 differs from Loft's service uid 65534",
            users.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("\"bob\""), "{stderr}");
    let unwritable = format!(
        "cannot write in the mail root {0}: {0} (mode 755, owner uid 0, gid 0) is not \
         writable by it",
        rootmail.display()
    );
    assert!(stderr.contains(&unwritable), "{stderr}");
    assert!(stderr.contains(&format!("{}:", conf.display())), "{stderr}");
    // Fixed: it explains the switch and passes (the uid warning stays a warning).
    let conf = shipped_config(d.path(), port, |t| t);
    let out = check_config(&conf);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("then serves mail as nobody (uid 65534), group nogroup (gid 65534)"),
        "{stdout}"
    );
    assert!(stdout.contains("OK (imap on"), "{stdout}");
}

#[test]
fn a_foreign_passwd_uid_is_warned_about_once_at_login() {
    if skip_unless_root("a_foreign_passwd_uid_is_warned_about_once_at_login") {
        return;
    }
    let d = open_tempdir();
    let port = free_port();
    let conf = shipped_config(d.path(), port, |t| t);
    std::fs::write(d.path().join("conf/users"), "carol:{PLAIN}pw:5000:5000\n").unwrap();
    let mut daemon = Daemon::start(Command::new(LOFT).arg("serve").arg("--config").arg(&conf));
    assert!(daemon.wait_for("ready"), "{}", daemon.log_text());
    for _ in 0..3 {
        let mut c = Imap::connect(port);
        let r = c.cmd(&[b"LOGIN carol pw"]);
        assert!(r.contains(" OK"), "{r}");
        c.cmd(&[b"LOGOUT"]);
    }
    assert!(daemon.wait_for("passwd-file"), "{}", daemon.log_text());
    // Let the other logins' lines arrive, then count.
    daemon.drain(Duration::from_millis(500));
    let log = daemon.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("gives uid 5000"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("carol") && warnings[0].contains("uid 65534"),
        "{log}"
    );
}

#[test]
fn the_unit_file_runs_as_the_service_user_with_the_bind_capability() {
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/loft.service"))
            .unwrap();
    for line in [
        "User=vmail",
        "Group=vmail",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/mail/vmail",
    ] {
        assert!(unit.lines().any(|l| l.trim() == line), "missing {line}");
    }
    // systemd's own checker, when installed, with ExecStart pointing at this build.
    let d = tempfile::tempdir().unwrap();
    let copy = d.path().join("loft.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/loft", LOFT)).unwrap();
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
    {
        Ok(out) => assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            text(&out.stderr)
        ),
        Err(_) => eprintln!("systemd-analyze not installed: unit syntax not verified"),
    }
}

/// A mail root that exists and is not the service account's is refused before anything
/// is changed or accepted. (A folder *above* it that the account cannot search is not a
/// reason to refuse: see `root_serves_a_checkout_under_a_closed_folder`.)
#[test]
fn root_refuses_a_mail_root_the_account_cannot_write_in_and_changes_nothing() {
    if skip_unless_root("root_refuses_a_mail_root_the_account_cannot_write_in_and_changes_nothing")
    {
        return;
    }
    let d = open_tempdir();
    let port = free_port();
    let rootmail = d.path().join("rootmail");
    std::fs::create_dir(&rootmail).unwrap();
    std::fs::set_permissions(&rootmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = shipped_config(d.path(), port, |t| {
        t.replace(
            "location = \"../var/mail/%u\"",
            &format!("location = \"{}/%u\"", rootmail.display()),
        )
    });
    let out = Command::new(LOFT)
        .arg("serve")
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "the service account nobody cannot write in the mail root {0}: {0} (mode 755, \
             owner uid 0, gid 0) is not writable by it",
            rootmail.display()
        )),
        "{err}"
    );
    let m = std::fs::metadata(&rootmail).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o755), "unchanged");
    assert!(
        std::fs::metadata(d.path().join("conf/users")).map_or(true, |m| m.gid() == 0),
        "the passwd-file was not shared"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "never accepted"
    );
}

/// The README's run command from a checkout under a folder the service account cannot
/// search (/root/loft, /root being 0700): root opens the folders Loft needs before the
/// switch and nobody reaches them through those descriptors only.
#[test]
fn root_serves_a_checkout_under_a_closed_folder() {
    if skip_unless_root("root_serves_a_checkout_under_a_closed_folder") {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("root_serves_a_checkout_under_a_closed_folder: skipped, no setpriv");
        return;
    }
    // closed/ is like /root: root's, mode 0700, with a readable file of its own.
    let closed = tempfile::tempdir().unwrap();
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = closed.path().join("secret");
    std::fs::write(&secret, "root's own\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let checkout = closed.path().join("loft");
    std::fs::create_dir(&checkout).unwrap();
    let port = free_port();
    let conf = shipped_config(&checkout, port, |t| t);
    add_user(&conf, "alice", "secret");

    // check-config explains the descriptors instead of refusing.
    let out = check_config(&conf);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let closed_name = closed.path().display().to_string();
    assert!(
        stdout.contains(&format!(
            "{closed_name} (mode 700, owner uid 0) is not searchable by nobody"
        )) && stdout.contains("opened by root before the switch"),
        "{stdout}"
    );

    let mut daemon = Daemon::start(Command::new(LOFT).arg("serve").arg("--config").arg(&conf));
    assert!(daemon.wait_for("ready"), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(
        log.contains(&format!(
            "{}/var/mail is reached through /proc/self/fd/",
            checkout.display()
        )),
        "{log}"
    );
    let (uid, gid, cap_eff) = proc_ids(daemon.pid());
    assert_eq!((uid, gid), (vec![65534; 4], vec![65534; 4]), "{log}");
    assert_eq!(cap_eff, "0000000000000000");
    append_and_read(port, "alice", "secret");
    let mail = std::fs::metadata(checkout.join("var/mail")).unwrap();
    assert_eq!((mail.uid(), mail.mode() & 0o777), (65534, 0o700));
    // A user added while it runs: the passwd-file is re-read through its descriptor.
    add_user(&conf, "bob", "hunter2");
    daemon.drain(Duration::from_millis(1100)); // the file is looked at once a second
    append_and_read(port, "bob", "hunter2");
    let files = std::fs::read_dir(checkout.join("var/mail/bob/new")).unwrap();
    for f in files {
        assert_eq!(f.unwrap().metadata().unwrap().uid(), 65534);
    }

    // The service account itself still cannot open anything under closed/: neither by
    // name, nor through the daemon's descriptors (its /proc/PID/fd is root's, the daemon
    // being non-dumpable after the switch).
    let nobody_cat = |path: &Path| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = nobody_cat(&secret);
    assert!(!out.status.success(), "nobody read {}", secret.display());
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    let out = nobody_cat(&checkout.join("conf/loft.toml"));
    assert!(!out.status.success(), "nobody read the checkout's config");
    let fds: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read_link(p).is_ok_and(|l| l == checkout.join("conf")))
        .collect();
    assert_eq!(fds.len(), 1, "one descriptor for conf/: {fds:?}");
    assert!(
        std::fs::read_to_string(fds[0].join("loft.toml")).is_ok(),
        "root can"
    );
    let out = nobody_cat(&fds[0].join("loft.toml"));
    assert!(!out.status.success(), "nobody used the daemon's descriptor");

    // `loft index` run by root switches the same way and reaches the mail the same way.
    let out = Command::new(LOFT)
        .args(["index", "verify", "alice", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("index OK"),
        "{}",
        text(&out.stdout)
    );
}

/// mbox with `inbox = "<spool>/%u"`: check-config says when the service account cannot
/// write in the spool directory (spool files, dotlocks), and names the group that can.
#[test]
fn check_config_names_a_spool_directory_the_account_cannot_write_in() {
    if skip_unless_root("check_config_names_a_spool_directory_the_account_cannot_write_in") {
        return;
    }
    let d = open_tempdir();
    let spool = d.path().join("spool");
    let conf = shipped_config(d.path(), free_port(), |t| {
        t.replacen(
            "\nformat = \"maildir\"\n",
            &format!("\nformat = \"mbox\"\ninbox = \"{}/%u\"\n", spool.display()),
            1,
        )
    });
    let line = line_of(&conf, "inbox = ");
    let at = format!("{}:{line}:", conf.display());
    let out = check_config(&conf);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&at) && err.contains("it does not exist"),
        "{err}"
    );

    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = text(&check_config(&conf).stderr);
    assert!(
        err.contains(&format!(
            "the service account nobody cannot write in the spool directory {}",
            spool.display()
        )) && !err.contains("[server] group"),
        "{err}"
    );

    // Debian's /var/mail: root:mail 2775.
    let mail_gid = 8;
    std::os::unix::fs::chown(&spool, Some(0), Some(mail_gid)).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let err = text(&check_config(&conf).stderr);
    assert!(err.contains("`[server] group = \"mail\"`"), "{err}");
    let ok = check_config(&shipped_config(d.path(), free_port(), |t| {
        t.replacen(
            "\nformat = \"maildir\"\n",
            &format!("\nformat = \"mbox\"\ninbox = \"{}/%u\"\n", spool.display()),
            1,
        )
        .replace("user = \"nobody\"", "user = \"nobody\"\ngroup = \"mail\"")
    }));
    assert!(
        !text(&ok.stderr).contains("spool directory"),
        "{}",
        text(&ok.stderr)
    );
}
