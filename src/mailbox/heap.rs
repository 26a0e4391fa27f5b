//! Giving freed memory back to the system after big commands.
//!
//! A command over a big mailbox (FETCH of 100,000 ENVELOPEs, a first SELECT, STORE 1:*)
//! allocates and frees a lot on the blocking pool's threads; glibc keeps what was freed
//! in its per-thread arenas, fragmented, and the process stays at the high-water mark:
//! measured after one such session on 100,000 messages (debug build), 125 MB resident
//! for 42 MB of live heap. `malloc_trim(0)` returns the free pages of every arena. It costs time in
//! proportion to the heap, so it runs only after a command that took long (a big one),
//! and at most once per [`MIN_INTERVAL`] for the whole storage context.
//!
//! This module must not know about IMAP, POP3 or any storage format.
#![allow(unsafe_code)] // malloc_trim has no safe wrapper; the block has a SAFETY comment

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A command that ran at least this long may have left much freed memory behind.
pub const BIG_COMMAND: Duration = Duration::from_millis(50);
/// At most one trim per this interval (a trim locks each arena in turn: under a load of
/// many slow commands, one trim serves them all).
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);

/// When this context last trimmed (held by [`super::Storage`], not process-wide).
pub struct Trimmer {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last trim, plus one (0: never).
    last: AtomicU64,
}

impl Default for Trimmer {
    fn default() -> Self {
        Trimmer {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Trimmer {
    /// Whether a command that took `took` should trim now (and claims the trim).
    pub fn due(&self, took: Duration) -> bool {
        if took < BIG_COMMAND {
            return false;
        }
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        let gap = MIN_INTERVAL.as_millis() as u64;
        (last == 0 || now.saturating_sub(last) >= gap)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Returns the allocator's free pages to the system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only releases free pages of the
    // allocator's own heaps and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_big_commands_trim_and_not_too_often() {
        let t = Trimmer::default();
        assert!(!t.due(Duration::from_millis(5)));
        assert!(t.due(BIG_COMMAND));
        assert!(!t.due(BIG_COMMAND), "twice within the interval");
        t.last.store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1));
        let long_ago = Trimmer {
            epoch: Instant::now() - MIN_INTERVAL - Duration::from_millis(5),
            last: AtomicU64::new(1),
        };
        assert!(long_ago.due(BIG_COMMAND));
    }
}
