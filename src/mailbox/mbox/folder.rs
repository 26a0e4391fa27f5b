//! One mbox file's messages, kept in step with the file: what a sync knows after
//! [`sync`] — each message's UID, where it lies, its hidden fields and fingerprint — and
//! what changed since the sync before (expunged, added, renumbered).
//!
//! A sync reads as little as it can ([`super::change`]): nothing when the file did not
//! change; from the last known message on when mail was appended (the appended messages
//! are new mail and get UIDs above all known, whatever `X-UID` they carry); the whole file
//! when another program rewrote it, numbered against what was known ([`super::number`]:
//! UIDs kept by `X-UID` and fingerprint). UW-IMAP's pseudo message is not a message.
//!
//! This module knows the file and UIDs; the index and sessions are the store's.

use std::ops::Range;

use super::change::{self, Change, Stamp, Tail};
use super::meta::{Base, Meta};
use super::number::{self, Known, Print, Seen};
use super::scan::{self, Mail, Options, ScanError, Source};

/// One message as the last sync found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub uid: u32,
    pub from: u64,
    pub header: u64,
    pub blank: u64,
    pub body: u64,
    pub end: u64,
    pub next: Option<u64>,
    /// The `From ` line's date.
    pub date: i64,
    pub meta: Meta,
    pub hidden: Vec<Range<u64>>,
    pub print: Print,
}

/// What a sync knows of the file.
#[derive(Clone, Debug, Default)]
pub struct Folder {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: Vec<Msg>,
    /// The `X-IMAPbase` (or `X-IMAP`) the file carries, if any.
    pub base: Option<Base>,
    /// UW-IMAP's pseudo message at the start, if any.
    pub pseudo: Option<Range<u64>>,
    pub tail: Option<Tail>,
    /// What the index knew before this process read the file (the first sync numbers
    /// the file against it, then drops it).
    pub seed: Option<Known>,
}

/// What changed since the sync before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub expunged: Vec<u32>,
    pub added: Vec<u32>,
    /// A new UIDVALIDITY: every UID of before is void.
    pub renumbered: bool,
    /// The messages (UIDs) whose `X-UID` in the file is missing or not their UID.
    pub rewrite: Vec<u32>,
    /// Messages the scan went through (what the sync cost).
    pub scanned: usize,
    /// The whole file was read (a first sync or a rewrite by another program): every
    /// message's hidden fields may have changed, not only the added ones'.
    pub full: bool,
}

/// Brings `f` in step with the file `src` as `now` says it is (`Folder::default()`: nothing
/// known yet). Updated in place: an unchanged file costs a `stat` and a line, not a copy
/// of every message. Left as it was on an error. `fresh_validity` is asked only when a new
/// UIDVALIDITY is needed.
pub fn sync<S: Source + ?Sized>(
    src: &S,
    now: Stamp,
    f: &mut Folder,
    fresh_validity: impl FnOnce() -> u32,
) -> Result<Delta, ScanError> {
    if let Some(tail) = f.tail {
        match change::since(src, now, &tail)? {
            Change::None => return Ok(Delta::default()),
            Change::Appended { from } => {
                if let Some(d) = appended(src, now, f, from)? {
                    return Ok(d);
                }
            }
            Change::Rewritten => {}
        }
    }
    full(src, now, f, fresh_validity)
}

/// After a rewrite that moved nothing (fields written into their room): the headers of
/// the messages at `changed` (indexes) read again — their hidden fields' values and
/// places — and the tail taken with the file's new stamp. `false` (`f` may be half
/// updated: the caller syncs it whole) when a header does not have the shape it had.
pub fn reread_headers<S: Source + ?Sized>(
    src: &S,
    now: Stamp,
    f: &mut Folder,
    changed: &[usize],
) -> Result<bool, ScanError> {
    for &i in changed {
        let Some(m) = f.messages.get_mut(i) else {
            return Ok(false);
        };
        let len = (m.body - m.from) as usize;
        let mut buf = vec![0u8; len];
        if src.read_full_at(&mut buf, m.from)? < len {
            return Ok(false);
        }
        let mails = scan::scan_all(&buf[..], len as u64)?;
        let [h] = &mails[..] else {
            return Ok(false);
        };
        // The header's start and its end (the blank line); the body is not in `buf` (a
        // scan of it may take the blank line for the one before a next message).
        let same = (h.header, h.blank) == (m.header - m.from, m.blank - m.from)
            && h.header_crc == m.print.header_crc;
        if !same {
            return Ok(false);
        }
        m.meta = h.meta.clone();
        m.hidden = (h.hidden.iter())
            .map(|r| r.start + m.from..r.end + m.from)
            .collect();
    }
    let last = f.messages.last().map_or(0, |m| m.from);
    f.tail = Some(change::tail_of(src, now, last)?);
    Ok(true)
}

fn print_of(m: &Mail) -> Print {
    super::seen_of(m).print
}

fn msg(m: Mail, uid: u32) -> Msg {
    Msg {
        uid,
        print: print_of(&m),
        from: m.from,
        header: m.header,
        blank: m.blank,
        body: m.body,
        end: m.end,
        next: m.next,
        date: m.date,
        meta: m.meta,
        hidden: m.hidden,
    }
}

/// Mail appended after the last known message; `None` (and `f` untouched) when the file
/// turns out to have been rewritten after all (the message found there is not the one
/// known).
fn appended<S: Source + ?Sized>(
    src: &S,
    now: Stamp,
    f: &mut Folder,
    from: u64,
) -> Result<Option<Delta>, ScanError> {
    let mut found = Vec::new();
    scan::scan(src, now.size, from, Options::default(), |m| {
        found.push(m);
        true
    })?;
    let mut new = found.into_iter();
    let first = new.next();
    let again = match (f.messages.last(), &first) {
        (Some(last), Some(m)) => m.from == last.from && print_of(m) == last.print,
        // An empty file that got its first mail: everything from 0 is new.
        (None, Some(_)) => from == 0 && f.pseudo.is_none(),
        _ => false,
    };
    let Some(first) = first.filter(|_| again) else {
        return Ok(None);
    };
    let mut rest: Vec<Mail> = new.collect();
    let tail_from = rest.last().unwrap_or(&first).from;
    let tail = change::tail_of(src, now, tail_from)?;
    let mut scanned = 0;
    match f.messages.last_mut() {
        Some(last) => {
            *last = msg(first, last.uid);
            scanned = 1;
        }
        None => rest.insert(0, first),
    }
    let mut d = add(f, rest);
    d.scanned += scanned;
    f.tail = Some(tail);
    Ok(Some(d))
}

/// Numbers `mails` as new mail at the end of `f`.
fn add(f: &mut Folder, mails: Vec<Mail>) -> Delta {
    let mut d = Delta {
        scanned: mails.len(),
        ..Delta::default()
    };
    for m in mails {
        let uid = f.uid_next.max(1);
        f.uid_next = uid.saturating_add(1);
        if m.meta.uid != Some(uid) {
            d.rewrite.push(uid);
        }
        d.added.push(uid);
        f.messages.push(msg(m, uid));
    }
    d
}

/// Scans the whole file and numbers it against what `f` knew.
fn full<S: Source + ?Sized>(
    src: &S,
    now: Stamp,
    f: &mut Folder,
    fresh_validity: impl FnOnce() -> u32,
) -> Result<Delta, ScanError> {
    let mut mails = Vec::new();
    scan::scan(src, now.size, 0, Options::default(), |m| {
        mails.push(m);
        true
    })?;
    let scanned = mails.len();
    let pseudo = match mails.first() {
        Some(m) if m.meta.pseudo => Some(m.from..m.next.unwrap_or(now.size)),
        _ => None,
    };
    let base = mails.first().and_then(|m| m.meta.base.clone());
    if pseudo.is_some() {
        mails.remove(0);
    }
    let had = f.tail.is_some();
    let known = match had {
        true => Some(Known {
            uid_validity: f.uid_validity,
            uid_next: f.uid_next,
            messages: f.messages.iter().map(|m| (m.uid, m.print)).collect(),
        }),
        false => f.seed.take(),
    };
    let seen: Vec<Seen> = mails.iter().map(super::seen_of).collect();
    let n = number::number(base.as_ref(), &seen, known.as_ref(), fresh_validity);
    let tail = change::tail_of(src, now, mails.last().map_or(0, |m| m.from))?;
    let renumbered = n.renumbered;
    let before: std::collections::HashSet<u32> = match had && !renumbered {
        true => f.messages.iter().map(|m| m.uid).collect(),
        false => Default::default(),
    };
    let rewrite: Vec<u32> = n.rewrite.iter().map(|&i| n.uids[i]).collect();
    let messages: Vec<Msg> = mails
        .into_iter()
        .zip(&n.uids)
        .map(|(m, &u)| msg(m, u))
        .collect();
    let added = messages
        .iter()
        .map(|m| m.uid)
        .filter(|u| !before.contains(u))
        .collect();
    let expunged = match renumbered {
        true => f.messages.iter().map(|m| m.uid).collect(),
        false => n.expunged,
    };
    *f = Folder {
        uid_validity: n.uid_validity,
        uid_next: n.uid_next,
        messages,
        base,
        pseudo,
        tail: Some(tail),
        seed: None,
    };
    Ok(Delta {
        expunged,
        added,
        renumbered,
        rewrite,
        scanned,
        full: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sync of `prev` (a copy of it) as a value, for comparisons.
    fn sync<S: Source + ?Sized>(
        src: &S,
        now: Stamp,
        prev: Option<&Folder>,
        fresh: impl FnOnce() -> u32,
    ) -> Result<(Folder, Delta), ScanError> {
        let mut f = prev.cloned().unwrap_or_default();
        let d = super::sync(src, now, &mut f, fresh)?;
        Ok((f, d))
    }

    const D: &str = "Mon Dec  7 16:49:14 2026";

    fn delivered(subject: &str, extra: &str) -> String {
        format!("From bob@example.org  {D}\nSubject: {subject}\n{extra}\nbody of {subject}\n\n")
    }

    use crate::mailbox::mbox::change::tests::stamp;

    fn uids(f: &Folder) -> Vec<u32> {
        f.messages.iter().map(|m| m.uid).collect()
    }

    #[test]
    fn a_spool_then_appended_mail_then_a_rewrite() {
        let mut file: String = ["a", "b", "c"].iter().map(|s| delivered(s, "")).collect();
        let (f, d) = sync(file.as_bytes(), stamp(file.as_bytes(), 1), None, || 77).unwrap();
        assert_eq!(
            (f.uid_validity, f.uid_next, uids(&f)),
            (77, 4, vec![1, 2, 3])
        );
        assert_eq!(
            (d.added.clone(), d.rewrite.clone(), d.scanned),
            (vec![1, 2, 3], vec![1, 2, 3], 3)
        );
        // Nothing changed: nothing read.
        let (same, d) = sync(
            file.as_bytes(),
            stamp(file.as_bytes(), 1),
            Some(&f),
            || panic!(),
        )
        .unwrap();
        assert_eq!((uids(&same), d), (vec![1, 2, 3], Delta::default()));
        // Two messages appended, one claiming a known UID: read from the last known one,
        // numbered as new mail.
        file.push_str(&delivered("d", "X-UID: 1\n"));
        file.push_str(&delivered("e", ""));
        let (f2, d) = sync(
            file.as_bytes(),
            stamp(file.as_bytes(), 2),
            Some(&f),
            || panic!(),
        )
        .unwrap();
        assert_eq!((uids(&f2), f2.uid_next), (vec![1, 2, 3, 4, 5], 6));
        assert_eq!((d.added.clone(), d.scanned), (vec![4, 5], 3));
        assert!(d.rewrite.contains(&4) && d.expunged.is_empty());
        let full = sync(file.as_bytes(), stamp(file.as_bytes(), 2), None, || 77)
            .unwrap()
            .0;
        assert_eq!(
            f2.messages
                .iter()
                .map(|m| (m.from, m.end))
                .collect::<Vec<_>>(),
            full.messages
                .iter()
                .map(|m| (m.from, m.end))
                .collect::<Vec<_>>(),
            "an append read from the end finds what a full scan finds"
        );
        // mutt expunged "b" (a rewrite, shorter): UIDs kept by fingerprint.
        let without_b = file.replacen(&delivered("b", ""), "", 1);
        let (f3, d) = sync(
            without_b.as_bytes(),
            stamp(without_b.as_bytes(), 3),
            Some(&f2),
            || panic!(),
        )
        .unwrap();
        assert_eq!(uids(&f3), [1, 3, 4, 5]);
        assert_eq!(
            (d.expunged.clone(), d.added.clone(), d.renumbered),
            (vec![2], vec![], false)
        );
    }

    #[test]
    fn a_file_of_another_uidvalidity_and_a_pseudo_message() {
        let file: String = ["a", "b"].iter().map(|s| delivered(s, "")).collect();
        let (f, _) = sync(file.as_bytes(), stamp(file.as_bytes(), 1), None, || 77).unwrap();
        // Restored from a backup Dovecot wrote, behind a UW-IMAP pseudo message.
        let other = format!(
            "From MAILER-DAEMON {D}\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n\
             X-IMAP: 0000000900 0000000012\n\nThis text is part of the internal format of your mail folder.\n\n{}{}",
            delivered("x", "X-UID: 10\n"),
            delivered("y", "X-UID: 11\n")
        );
        let mut st = stamp(other.as_bytes(), 5);
        st.ino = 9;
        let (g, d) = sync(other.as_bytes(), st, Some(&f), || panic!()).unwrap();
        assert!(g.pseudo.is_some());
        assert_eq!(g.base.as_ref().map(|b| b.uid_validity), Some(900));
        assert_eq!(
            (g.uid_validity, g.uid_next, uids(&g)),
            (900, 12, vec![10, 11])
        );
        assert!(d.renumbered);
        assert_eq!((d.expunged, d.added), (vec![1, 2], vec![10, 11]));
    }

    #[test]
    fn an_empty_file_that_gets_mail() {
        let (f, d) = sync(&b""[..], stamp(b"", 1), None, || 5).unwrap();
        let read_all = Delta {
            full: true,
            ..Delta::default()
        };
        assert!(f.messages.is_empty() && d == read_all);
        let file = delivered("a", "");
        let (g, d) = sync(
            file.as_bytes(),
            stamp(file.as_bytes(), 2),
            Some(&f),
            || panic!(),
        )
        .unwrap();
        assert_eq!((uids(&g), d.added), (vec![1], vec![1]));
    }
}
