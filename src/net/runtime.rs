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

/// Registers a readiness descriptor (a mailbox's change signal) with the runtime, for
/// reading only. `None` when it cannot be registered (the session then polls).
pub fn async_signal(file: std::fs::File) -> Option<tokio::io::unix::AsyncFd<std::fs::File>> {
    // SAFETY: a `File` owns its descriptor: it stays open and the same for as long as the
    // `AsyncFd` owns the `File`, which is what registration requires.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(file, tokio::io::Interest::READABLE) }
        .ok()
}
