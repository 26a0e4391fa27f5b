//! The seams between sessions and the tokio runtime: blocking storage work run in
//! place, and readiness descriptors registered for async waits.
#![allow(unsafe_code)] // fd registration; the block has a SAFETY comment

/// Runs blocking work (storage calls: file I/O, locks) without stalling the runtime:
/// the worker thread hands its other tasks to the pool for the duration
/// (`tokio::task::block_in_place`; a multi-threaded runtime is required). The one
/// helper every session uses, so the cost of a trip is the same everywhere.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// What a piece of storage work may cost, as the session can tell before running it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Bounded and short: page-cache reads and writes in a small mailbox, no fsync.
    Small,
    /// Unbounded (a big mailbox, a first listing, content search) or waiting for the
    /// disk (fsync).
    Large,
}

impl Cost {
    /// [`Cost::Small`] when the caller knows the work is bounded and short.
    pub fn small_if(short: bool) -> Cost {
        match short {
            true => Cost::Small,
            false => Cost::Large,
        }
    }
}

/// Runs storage work: [`Cost::Large`] through [`blocking`], [`Cost::Small`] in place.
///
/// A `block_in_place` hands the worker's run queue to another thread and takes a thread
/// wake-up and two context switches; measured with Dovecot's imaptest mix on small
/// mailboxes (benches/imaptest.sh, 2 cores) that trip cost about 0.15 ms of CPU per
/// command, more than the command's own work. Small work in place delays the other
/// tasks of this worker by less than the trip would have cost (and the other workers
/// steal them meanwhile); work that can take long still leaves the worker.
pub fn storage<T>(cost: Cost, f: impl FnOnce() -> T) -> T {
    match cost {
        Cost::Small => f(),
        Cost::Large => blocking(f),
    }
}

/// Registers a readiness descriptor (a mailbox's change signal) with the runtime, for
/// reading only. `None` when it cannot be registered (the session then polls).
pub fn async_signal(file: std::fs::File) -> Option<tokio::io::unix::AsyncFd<std::fs::File>> {
    // SAFETY: a `File` owns its descriptor: it stays open and the same for as long as the
    // `AsyncFd` owns the `File`, which is what registration requires.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(file, tokio::io::Interest::READABLE) }
        .ok()
}

/// Runs `f` off the async threads once `delay` has passed (housekeeping a command's end
/// asked for, such as a deferred trim of the allocator), without holding up anyone.
pub fn later(delay: std::time::Duration, f: impl FnOnce() + Send + 'static) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = tokio::task::spawn_blocking(f).await;
    });
}
