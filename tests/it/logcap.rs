//! Captures the server's log lines (the test binary's one global subscriber) so tests can
//! check what Loft logs. Installed on first use; lines are kept in memory (bounded).

use std::io::Write;
use std::sync::{Mutex, Once};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Oldest lines are dropped beyond this.
const MAX_LINES: usize = 50_000;

struct Cap;

impl Write for Cap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut lines = LINES.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() >= MAX_LINES {
            lines.drain(..MAX_LINES / 2);
        }
        lines.push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Routes `loft` log events at info level and above into the capture.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("loft=info")
            .with_ansi(false)
            .with_writer(|| Cap)
            .try_init();
    });
}

/// Every captured line so far.
pub fn lines() -> Vec<String> {
    LINES.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
