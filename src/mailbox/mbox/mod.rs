//! mbox files (issue 12), the format-specific layer beside `maildir`: finding messages
//! in a file ([`scan`]), the `From ` line ([`from_line`]), the header fields that carry
//! IMAP state as Dovecot writes them ([`meta`]), and writing a message ([`write`]).
//!
//! [`lock`] takes dotlock, fcntl and flock locks as the other programs on the file do;
//! [`file`] syncs, writes back and appends on one file under them. The store:
//! [`store`] (the folder directory, names, listing, CREATE/DELETE/RENAME, `loft index`),
//! `state` (one file's messages and index, shared by the sessions of this process) and
//! `mailbox` (`Mailbox` and `AppendSink` on it); docs/mbox.md.
//!
//! This module must not know about IMAP, POP3 or sessions.

pub mod change;
pub mod file;
pub mod folder;
pub mod from_line;
pub mod lock;
mod mailbox;
pub mod meta;
pub mod number;
pub mod plan;
pub mod rewrite;
mod saved;
pub mod scan;
mod state;
pub mod store;
pub mod write;

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;

use std::ops::Range;

/// The bytes of `[from, to)` without the `hidden` ranges (ascending, inside it): what a
/// client sees of a message stored there (before line ends are made CRLF).
pub fn visible(file: &[u8], from: u64, to: u64, hidden: &[Range<u64>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = from;
    for h in hidden {
        let (start, end) = (h.start.clamp(at, to), h.end.clamp(at, to));
        out.extend_from_slice(slice(file, at, start));
        at = end;
    }
    out.extend_from_slice(slice(file, at, to));
    out
}

fn slice(file: &[u8], from: u64, to: u64) -> &[u8] {
    let len = file.len() as u64;
    file.get(from.min(len) as usize..to.min(len).max(from.min(len)) as usize)
        .unwrap_or_default()
}

/// What [`number::number`] needs of a scanned message.
pub fn seen_of(m: &scan::Mail) -> number::Seen {
    number::Seen {
        x_uid: m.meta.uid,
        print: number::Print {
            header_crc: m.header_crc,
            // Without a last line end: one added later (another message appended after)
            // leaves the fingerprint as it was.
            body_len: (m.end - m.body).saturating_sub(u64::from(m.ends_in_lf)),
        },
    }
}

/// For the fuzz target: scans `data` as an mbox file and checks what the scan says of
/// every message (inside the file, in order, hidden fields inside the header).
pub fn fuzz_check(data: &[u8]) {
    // The same bytes as a saved scan ([`saved`]): decoded without panic, or not at all.
    saved::fuzz_check(data);
    let size = data.len() as u64;
    let Ok(mails) = scan::scan_all(data, size) else {
        return;
    };
    let mut last = 0;
    for m in &mails {
        assert!(m.from >= last && m.from < m.header && m.header <= m.body);
        assert!(m.body <= m.end && m.end <= size);
        assert!(m.next.is_none_or(|n| n >= m.end && n <= size));
        for h in &m.hidden {
            assert!(h.start >= m.header && h.start <= h.end && h.end <= m.body.max(m.end));
        }
        let _ = visible(data, m.header, m.end, &m.hidden);
        last = m.next.unwrap_or(size);
    }
    // Written back, each message's visible bytes scan the same.
    let mut out = Vec::new();
    for m in &mails {
        let v = visible(data, m.header, m.end, &m.hidden);
        let stamp = write::Stamp {
            sender: &m.sender,
            date: m.date,
            meta: &m.meta,
            base: None,
            pad: 0,
            fields: true,
        };
        write::append_mail(&mut out, &v, &stamp);
    }
    let again = scan::scan_all(&out[..], out.len() as u64).expect("written mbox scans");
    assert_eq!(again.len(), mails.len());
}
