//! POP3 over TCP and TLS against the real server in-process: every command and state rule
//! of RFC 1939, CAPA/STLS/AUTH/response codes, the octet-count identity, deletion only in
//! UPDATE, [IN-USE], IMAP seeing POP3's expunges, workarounds, limits and shutdown.

pub mod client;

mod auth;
mod maildrop;
mod sessions;
