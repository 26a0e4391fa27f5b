//! Integration tests: a real server on ephemeral loopback ports, driven over TCP and TLS.

mod util;

mod basics;
mod caching;
mod concurrency;
mod containment;
mod exposure;
mod first_sync;
mod lazy_sizes;
mod logcap;
mod mailboxes;
mod messages;
pub mod pop3;
mod robustness;
mod sasl_mechs;
mod scram_client;
mod standards;
