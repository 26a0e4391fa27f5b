//! Python's standard `imaplib` against Loft: `py/imaplib_check.py` logs in, manages
//! mailboxes, appends with flags and dates, searches, fetches (RFC822, BODY.PEEK[HEADER],
//! sections, BODYSTRUCTURE), stores, copies, moves, expunges, asks STATUS, and repeats
//! the essentials over IMAP4_SSL and STARTTLS with an SSLContext trusting the generated
//! certificate. The script checks every answer itself and exits non-zero on a mismatch.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Loft, PASS, USER};
use crate::proc::{self, have_tool};

#[test]
fn python_imaplib_full_session() {
    if !have_tool("python3", "python3") {
        return;
    }
    let loft = Loft::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/py/imaplib_check.py"
    );
    let out = proc::run(
        Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(loft.port.to_string())
            .arg(loft.tls_port.to_string())
            .arg(loft.cert())
            .arg(USER)
            .arg(PASS)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        &loft.scratch(),
        Duration::from_secs(40),
    );
    println!("{}", out.stdout);
    out.assert_ok();
    assert!(
        out.stdout.contains("all imaplib checks passed"),
        "{}",
        out.dump()
    );
    loft.assert_clean_log();
}
