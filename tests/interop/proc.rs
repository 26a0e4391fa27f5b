//! Bounded child processes: every external program the interop tests run goes through
//! [`run`], which kills it at a deadline, so a hung client can never hang the test run.
//! Also decides what happens when a client binary is not installed ([`have_tool`]).
//! Knows nothing of IMAP.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or killed) child left behind.
pub struct Output {
    /// Exit code; `None` when it was killed by a signal (including our timeout kill).
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub what: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// Everything the child said, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "`{}` exited {:?}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code,
            if self.timed_out {
                " (TIMED OUT, killed)"
            } else {
                ""
            },
            self.stdout,
            self.stderr
        )
    }

    /// Panics with the full output unless the child exited 0.
    pub fn assert_ok(&self) -> &Self {
        assert!(self.success(), "{}", self.dump());
        self
    }
}

/// Runs `cmd` to completion or until `timeout`, whichever comes first. Output goes to
/// files in `scratch` (no pipe can fill up and block the child), stdin is /dev/null.
pub fn run(cmd: &mut Command, scratch: &Path, timeout: Duration) -> Output {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out_path = scratch.join(format!("child-{n}.out"));
    let err_path = scratch.join(format!("child-{n}.err"));
    let what = format!("{cmd:?}");
    let out = std::fs::File::create(&out_path).expect("child stdout file");
    let err = std::fs::File::create(&err_path).expect("child stderr file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(st) => break st,
            None if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("reap killed child");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Output {
        code: status.code(),
        timed_out,
        stdout: read(&out_path),
        stderr: read(&err_path),
        what,
    }
}

/// True when `name` is an executable on PATH. When it is not: under CI (the `CI`
/// environment variable is set) this panics, since CI installs every client; elsewhere
/// it prints a notice and the caller skips its test.
pub fn have_tool(name: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths).any(|dir| {
                let p = dir.join(name);
                p.is_file()
                    && std::fs::metadata(&p)
                        .map(|m| {
                            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                        })
                        .unwrap_or(false)
            })
        })
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("`{name}` is not installed; CI must install the Debian package `{package}`");
        }
        eprintln!(
            "NOTICE: `{name}` not found (Debian package `{package}`); skipping this interop test"
        );
    }
    found
}
