//! What the IMAP and POP3 sessions share below their protocol: the connection's byte
//! stream (plain or TLS, upgraded in place; `TCP_QUICKACK`), line I/O with limits and
//! the output queue ([`Conn`]), the server's connection slots and per-user limits that a
//! session holds, and the runtime seams (blocking storage work, readiness descriptors).
//!
//! A layer under both protocols: nothing here names `imap`, `pop3` or `server` (checked
//! by tests/architecture.rs). The server builds the streams and slots and hands them to
//! the sessions it starts.

mod conn;
mod limits;
mod runtime;
mod slots;
mod stream;

pub use conn::Conn;
pub use limits::{UserIpGuard, UserIpLimits};
pub use runtime::{async_signal, blocking, later, storage, Cost};
pub use slots::{kicked, wait_idle, ConnSlot, Refusal, Slots};
pub use stream::Stream;
