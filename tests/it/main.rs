//! Integration tests: a real server on ephemeral loopback ports, driven over TCP and TLS.
//!
//! The suite runs on one storage format at a time, Maildir unless `LOFT_TEST_FORMAT=mbox`
//! (`util::format()`): `cargo test --test it` and `LOFT_TEST_FORMAT=mbox cargo test --test
//! it`. Tests put mail in place through format-neutral helpers (`TestServer::deliver`,
//! `mail_root`, `stored_count`, ...); a test about one format's files returns early on the
//! other, with `// Maildir-only: <reason>` at its top; `mbox` holds the mbox-only ones.

mod util;

mod basics;
mod caching;
mod concurrency;
mod containment;
mod convert;
mod exposure;
mod first_sync;
mod lazy_sizes;
mod logcap;
mod mailboxes;
mod mbox;
mod messages;
pub mod pop3;
mod robustness;
mod sasl_mechs;
mod scram_client;
mod standards;
