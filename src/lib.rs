//! Loft: an IMAP4rev1 and POP3 mail store daemon.
//!
//! Crate map, top to bottom (no arrow points back up; see docs/architecture.md):
//!
//! * [`server`] — listeners, refusals, implicit-TLS handshakes, graceful shutdown;
//!   spawns one tokio task per connection and builds its session.
//! * [`imap`] — the IMAP protocol: command parser, session state machine, commands,
//!   response encoding. Never touches files: everything goes through [`mailbox`].
//! * [`pop3`] — the POP3 protocol (RFC 1939, 2449, 2595, 5034, 3206): command parser,
//!   session state machine, UIDL formats, the maildrop lock registry.
//! * [`net`] — what both protocols share below them: the plain/TLS stream, line I/O
//!   with limits, connection slots and per-user limits, the blocking helper. Names
//!   neither protocol.
//! * [`quirks`] — named client workarounds, applied at the protocols' outbound seams.
//! * [`auth`] — passwd-file users, password schemes, SASL mechanisms, failure delay.
//! * [`mailbox`] — the storage API (`Store`, `Mailbox` traits), mailbox names, flags,
//!   the MIME scanner and SEARCH evaluation. The Maildir backend is private to it.
//! * [`index`] — the generic per-mailbox index engine (main index read whole, never mapped; transaction
//!   log, locking, verify/salvage); knows UIDs, flags bits and opaque keys, not Maildir,
//!   IMAP or MIME. Used by the storage backends in [`mailbox`].
//! * [`beneath`] — a leaf: opening, creating, renaming and removing files beneath a
//!   directory descriptor without following any symbolic link (containment of each
//!   user's mail root); used by [`mailbox`] and [`index`].
//! * [`config`] — TOML configuration, validated with `FILE:LINE:COL` diagnostics.
//! * [`durability`] — a leaf: the fsync policy and lock method that [`config`] parses and
//!   [`index`] and [`mailbox`] obey.
//! * [`tls`] — rustls acceptor, certificate loading, self-signed default.
#![deny(unsafe_code)]

pub mod auth;
pub mod beneath;
pub mod config;
pub mod durability;
pub mod imap;
pub mod index;
pub mod mailbox;
pub mod net;
pub mod pop3;
pub mod quirks;
pub mod server;
pub mod tls;
