//! What happened to an mbox file since the last sync, told from a `stat` and a few bytes,
//! so that mail appended by a delivery agent is read without reading the file again:
//!
//! * the same file (device and inode), the same length and mtime: nothing;
//! * the same file, longer, and the last known message's `From ` line still where it was,
//!   byte for byte: mail was appended — scan from that message on (its end moves: it was
//!   the last one), and the first message found must still be that message (its
//!   fingerprint), else it is a rewrite after all;
//! * anything else (another file now has the name, shorter, the same length with another
//!   mtime, the `From ` line moved): a rewrite by another program — scan it all and number
//!   it against the index ([`super::number`]).
//!
//! This module knows offsets and stamps, nothing of UIDs.

use std::io;

use super::from_line;
use super::scan::Source;

/// What the last sync saw of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tail {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// mtime in nanoseconds.
    pub mtime: i128,
    /// The last message's `From ` line: where, how long (with its line end), its CRC.
    pub last_from: u64,
    pub from_len: u32,
    pub from_crc: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// Scan from here (the last known message's `From ` line).
    Appended {
        from: u64,
    },
    Rewritten,
}

/// The file's stamp now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i128,
}

/// The [`Tail`] of a file whose last message's `From ` line starts at `last_from`.
pub fn tail_of<S: Source + ?Sized>(src: &S, now: Stamp, last_from: u64) -> io::Result<Tail> {
    let (from_len, from_crc) = line_crc(src, last_from)?.unwrap_or((0, 0));
    Ok(Tail {
        dev: now.dev,
        ino: now.ino,
        size: now.size,
        mtime: now.mtime,
        last_from,
        from_len,
        from_crc,
    })
}

/// What changed since `tail`.
pub fn since<S: Source + ?Sized>(src: &S, now: Stamp, tail: &Tail) -> io::Result<Change> {
    if (now.dev, now.ino) != (tail.dev, tail.ino) || now.size < tail.size {
        return Ok(Change::Rewritten);
    }
    if now.size == tail.size {
        return Ok(if now.mtime == tail.mtime {
            Change::None
        } else {
            Change::Rewritten
        });
    }
    if tail.size == 0 {
        return Ok(Change::Appended { from: 0 });
    }
    let same = line_crc(src, tail.last_from)? == Some((tail.from_len, tail.from_crc));
    Ok(if same {
        Change::Appended {
            from: tail.last_from,
        }
    } else {
        Change::Rewritten
    })
}

/// The length (line end included) and CRC of the separator line at `at`; `None` when
/// there is none.
fn line_crc<S: Source + ?Sized>(src: &S, at: u64) -> io::Result<Option<(u32, u32)>> {
    let mut buf = vec![0u8; from_line::MAX_LEN + 2];
    let got = src.read_full_at(&mut buf, at)?;
    let Some(end) = buf[..got].iter().position(|&c| c == b'\n') else {
        return Ok(None);
    };
    let line = &buf[..end];
    Ok(from_line::parse(line).map(|_| ((end + 1) as u32, crc32fast::hash(&buf[..=end]))))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::mailbox::mbox::scan::{scan, Options};

    const D: &str = "Mon Dec  7 16:49:14 2026";

    /// The stamp of an in-memory `file` (device 1, inode 2) with `mtime` (other modules'
    /// tests too).
    pub(in crate::mailbox::mbox) fn stamp(file: &[u8], mtime: i128) -> Stamp {
        Stamp {
            dev: 1,
            ino: 2,
            size: file.len() as u64,
            mtime,
        }
    }

    #[test]
    fn appended_mail_is_read_from_the_last_known_message_on() {
        let old = format!("From a {D}\n\none\n\nFrom b {D}\n\ntwo\n").into_bytes();
        let last = old.iter().rposition(|&c| c == b'F').unwrap() as u64;
        let tail = tail_of(&old[..], stamp(&old, 10), last).unwrap();
        assert_eq!(
            since(&old[..], stamp(&old, 10), &tail).unwrap(),
            Change::None
        );
        let mut new = old.clone();
        new.extend_from_slice(format!("\nFrom c {D}\n\nthree\n").as_bytes());
        let ch = since(&new[..], stamp(&new, 11), &tail).unwrap();
        assert_eq!(ch, Change::Appended { from: last });
        // From there: the known last message (now ending before the new one), then it.
        let mut found = Vec::new();
        scan(&new[..], new.len() as u64, last, Options::default(), |m| {
            found.push((m.from, m.sender));
            true
        })
        .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0], (last, "b".to_string()));
        assert_eq!(found[1].1, "c");
    }

    #[test]
    fn anything_else_is_a_rewrite() {
        let old = format!("From a {D}\n\none\n\nFrom b {D}\n\ntwo\n").into_bytes();
        let last = old.iter().rposition(|&c| c == b'F').unwrap() as u64;
        let tail = tail_of(&old[..], stamp(&old, 10), last).unwrap();
        // The same length, another mtime (mutt wrote a flag over the same bytes).
        assert_eq!(
            since(&old[..], stamp(&old, 12), &tail).unwrap(),
            Change::Rewritten
        );
        // Shorter (an expunge).
        let short = &old[..old.len() - 3];
        assert_eq!(
            since(short, stamp(short, 12), &tail).unwrap(),
            Change::Rewritten
        );
        // Longer, but the last From line is not where it was (a header grew before it).
        let moved = format!("From a {D}\nStatus: RO\n\none\n\nFrom b {D}\n\ntwo\n").into_bytes();
        assert_eq!(
            since(&moved[..], stamp(&moved, 12), &tail).unwrap(),
            Change::Rewritten
        );
        // Another file under the name.
        let mut other = stamp(&old, 10);
        other.ino = 3;
        assert_eq!(since(&old[..], other, &tail).unwrap(), Change::Rewritten);
        // An empty file that got mail: all of it is new.
        let empty = tail_of(&b""[..], stamp(b"", 1), 0).unwrap();
        assert_eq!(
            since(&old[..], stamp(&old, 2), &empty).unwrap(),
            Change::Appended { from: 0 }
        );
    }
}
