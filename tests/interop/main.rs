//! Interoperability tests with real IMAP and POP3 clients from Debian packages: isync's
//! `mbsync`, `curl`, Python's `imaplib` and `poplib`, `fetchmail` and `getmail6`. Each test runs the real `loft serve` binary on free
//! loopback ports with a temporary config, drives one client against it with bounded
//! child processes, and checks the server's state independently through a small raw
//! IMAP client. A missing client binary skips the test with a notice, except under CI
//! (`CI` set), where it fails.

mod curl;
mod harness;
mod imap;
mod mail;
mod mbsync;
mod mbsync_folders;
mod mbsync_live;
mod mutt;
mod pop3;
mod proc;
mod python;
mod sasl;
