//! The real `loft` binary under test: writes a temporary `loft.toml` and passwd-file,
//! starts `loft serve` on free loopback ports, waits until it accepts connections and its
//! self-signed certificate exists, and kills it when dropped (printing its log when the
//! test is failing). Knows the config keys, not the protocol.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "alice";
pub const PASS: &str = "secret";

/// A running `loft serve` child process and its temporary home.
pub struct Loft {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// Plaintext (STARTTLS-capable) IMAP port on 127.0.0.1.
    pub port: u16,
    /// Implicit-TLS IMAPS port on 127.0.0.1.
    pub tls_port: u16,
    /// Plaintext (STLS-capable) POP3 port on 127.0.0.1.
    pub pop3_port: u16,
    /// Implicit-TLS POP3S port on 127.0.0.1.
    pub pop3s_port: u16,
}

/// A port that was free a moment ago (bind to port 0, read it, close). Another process
/// may take it before the server binds; [`Loft::launch`] retries when that happens.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

impl Loft {
    /// Starts a server with an empty mail store.
    pub fn start() -> Loft {
        Self::start_with(|_| {})
    }

    /// Starts a server after `prepare` has run on the (not yet started) server's folder,
    /// e.g. to deliver mail into the user's Maildir.
    pub fn start_with(prepare: impl FnOnce(&Path)) -> Loft {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("users"),
            format!("{USER}:{{PLAIN}}{PASS}\n"),
        )
        .expect("write passwd-file");
        prepare(dir.path());
        let mut loft = Loft {
            child: None,
            dir,
            port: 0,
            tls_port: 0,
            pop3_port: 0,
            pop3s_port: 0,
        };
        loft.launch();
        loft
    }

    /// Starts `loft serve` on fresh free ports, retrying when a port race is lost.
    fn launch(&mut self) {
        let mut last = String::new();
        for _attempt in 0..5 {
            let ports = [free_port(), free_port(), free_port(), free_port()];
            let [port, tls_port, pop3_port, pop3s_port] = ports;
            if (1..4).any(|i| ports[..i].contains(&ports[i])) {
                continue;
            }
            write_config(self.dir.path(), ports);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join("loft.log"))
                .expect("log file");
            let child = Command::new(env!("CARGO_BIN_EXE_loft"))
                .arg("serve")
                .arg("--config")
                .arg(self.dir.path().join("loft.toml"))
                .env_remove("RUST_LOG")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start loft serve");
            self.child = Some(child);
            self.port = port;
            self.tls_port = tls_port;
            self.pop3_port = pop3_port;
            self.pop3s_port = pop3s_port;
            match self.wait_ready(Duration::from_secs(15)) {
                Ok(()) => return,
                Err(e) => {
                    last = e;
                    self.kill();
                }
            }
        }
        panic!(
            "loft serve did not start after 5 attempts: {last}\n{}",
            self.log()
        );
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM (it must exit 0 within 15 s, as a daemon under a
    /// service manager would be expected to), then starts it again on the same folder.
    /// The ports change.
    pub fn restart(&mut self) {
        let mut child = self.child.take().expect("server running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("loft serve ignored SIGTERM for 15 s\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "loft serve exited with {status} on SIGTERM\n{}",
            self.log()
        );
        self.launch();
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().ok_or("no child")?;
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("loft serve exited early with {st}"));
            }
            if self.cert().exists()
                && accepts(self.port)
                && accepts(self.tls_port)
                && accepts(self.pop3_port)
                && accepts(self.pop3s_port)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err("loft serve did not accept connections in time".into());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The self-signed certificate the server generated on first start.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("tls/cert.pem")
    }

    /// alice's Maildir root (her INBOX).
    pub fn maildir(&self) -> PathBuf {
        maildir_of(self.dir.path())
    }

    /// A scratch folder for client files (inside the server's temp dir, removed with it).
    pub fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("scratch");
        std::fs::create_dir_all(&p).expect("scratch dir");
        p
    }

    /// Panics if the server logged an error or a panic (call at the end of a test).
    pub fn assert_clean_log(&self) {
        let log = self.log();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("panicked"))
            .collect();
        assert!(
            bad.is_empty(),
            "the server logged errors:\n{}",
            bad.join("\n")
        );
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.dir.path().join("loft.log")).unwrap_or_default(),
        )
        .into_owned()
    }
}

/// alice's Maildir root for a server folder `dir` (matches `[storage] location`).
pub fn maildir_of(dir: &Path) -> PathBuf {
    dir.join("mail").join(USER)
}

/// Extra `[storage]` keys a test's `prepare` may write (e.g. `format = "mbox"`).
pub const STORAGE_EXTRA: &str = "storage.extra.toml";

fn write_config(dir: &Path, [port, tls_port, pop3_port, pop3s_port]: [u16; 4]) {
    let extra = std::fs::read_to_string(dir.join(STORAGE_EXTRA)).unwrap_or_default();
    // The default tls/ paths: Loft generates a self-signed pair there on first start.
    let toml = format!(
        r#"# Written by the interop tests.
[server]
hostname = "localhost"
# CI runs the tests as root; these tests keep their files root's (tests/privileges.rs
# covers the switch to an unprivileged account).
allow_root = true

[imap]
listen = ["127.0.0.1:{port}"]
listen_tls = ["127.0.0.1:{tls_port}"]

[pop3]
listen = ["127.0.0.1:{pop3_port}"]
listen_tls = ["127.0.0.1:{pop3s_port}"]

[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"

[auth]
passwd_file = "users"
failure_delay = "0s"

[storage]
location = "mail/%u"
fsync = "never"
{extra}

[log]
level = "info"
"#
    );
    std::fs::write(dir.join("loft.toml"), toml).expect("write loft.toml");
}

impl Drop for Loft {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- loft server log ---\n{}", self.log());
        }
    }
}
