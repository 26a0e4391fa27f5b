//! The IMAP session: framing, state machine, commands, untagged updates.
