//! Integration tests: a real server on ephemeral loopback ports, driven over TCP and TLS.

mod util;

mod basics;
mod caching;
mod concurrency;
mod mailboxes;
mod messages;
mod pop3;
mod robustness;
