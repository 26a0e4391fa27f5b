//! Store-wide files in the mail root (every format): subscriptions and special-use records.
//!
//! * `subscriptions`: one UTF-8 mailbox name per line (`/` separated). Reading also
//!   understands Dovecot's version-2 file (`V\t2` header, levels separated by tabs) and old
//!   Maildir++ lines with `.` separators; Courier's `courierimapsubscribed` (`INBOX.A.B`,
//!   modified UTF-7) is used while no `subscriptions` file exists.
//! * `loft-special-use`: one `<attribute> <mailbox name>` line per special-use mailbox
//!   (RFC 6154), e.g. `\Sent Sent`.
//! * `loft-uidvalidity`: the last UIDVALIDITY given to a folder Loft created, one decimal
//!   number and a line end, so that a folder deleted and created again (even within one
//!   second, even after a restart) gets a greater one (RFC 3501 §2.3.1.1).
//!
//! This module must not know about folders or messages.

use std::path::Path;

use super::fsio;
use crate::config::FsyncMode;
use crate::mailbox::{normalize_name, utf7, Error, Result, SpecialUse};

pub const SPECIAL_USE_FILE: &str = "loft-special-use";
pub const UIDVALIDITY_FILE: &str = "loft-uidvalidity";
pub const SUBSCRIPTIONS_FILE: &str = "subscriptions";
pub const COURIER_SUBSCRIPTIONS: &str = "courierimapsubscribed";

pub const DEFAULT_SPECIAL: [(&str, SpecialUse); 5] = [
    ("Drafts", SpecialUse::Drafts),
    ("Sent", SpecialUse::Sent),
    ("Trash", SpecialUse::Trash),
    ("Junk", SpecialUse::Junk),
    ("Archive", SpecialUse::Archive),
];

pub const ALL_SPECIAL: [SpecialUse; 7] = [
    SpecialUse::All,
    SpecialUse::Archive,
    SpecialUse::Drafts,
    SpecialUse::Flagged,
    SpecialUse::Junk,
    SpecialUse::Sent,
    SpecialUse::Trash,
];

/// The last UIDVALIDITY recorded in `loft-uidvalidity`; 0 when there is none (missing or
/// unreadable: logged, the time-based value then stands alone).
pub fn read_last_uid_validity(root: &Path) -> u32 {
    let path = root.join(UIDVALIDITY_FILE);
    // Never through a link, never blocking on a FIFO.
    match fsio::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned()) {
        Ok(text) => text.trim().parse::<u32>().unwrap_or_else(|_| {
            tracing::warn!(file = %path.display(), "ignoring unreadable UIDVALIDITY state");
            0
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            tracing::warn!(file = %path.display(), "cannot read UIDVALIDITY state: {e}");
            0
        }
    }
}

/// Records that `v` is in use in this store (a folder imported with its own UIDVALIDITY),
/// so that folders created later get higher values. Never lowers the recorded value.
pub fn raise_uid_validity(root: &Path, v: u32, fsync: FsyncMode) -> Result<()> {
    if read_last_uid_validity(root) >= v {
        return Ok(());
    }
    fsio::write_atomic(
        &root.join(UIDVALIDITY_FILE),
        format!("{v}\n").as_bytes(),
        fsync,
    )
}

/// A UIDVALIDITY for a new folder: the current time, but above every value handed out
/// before in this store (`loft-uidvalidity`) and in this process, and recorded before it
/// is used (`fresh`: the process's next value, [`super::StorageCtx::fresh_uid_validity`]).
/// The caller serialises calls for one root.
pub fn next_uid_validity(root: &Path, fsync: FsyncMode, fresh: u32) -> Result<u32> {
    let last = read_last_uid_validity(root);
    let mut v = fresh;
    if v <= last {
        // The clock went back, or folders were created faster than one per second.
        v = last.checked_add(1).unwrap_or(1);
    }
    fsio::write_atomic(
        &root.join(UIDVALIDITY_FILE),
        format!("{v}\n").as_bytes(),
        fsync,
    )?;
    Ok(v)
}

pub fn read_special(root: &Path) -> Vec<(SpecialUse, String)> {
    let path = root.join(SPECIAL_USE_FILE);
    let Ok(bytes) = fsio::read(&path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    for line in text.lines() {
        let parsed = line.split_once(' ').and_then(|(a, n)| {
            let su = ALL_SPECIAL
                .iter()
                .find(|s| s.attribute().eq_ignore_ascii_case(a))?;
            Some((*su, n.to_string()))
        });
        match parsed {
            Some(p) => out.push(p),
            None if line.is_empty() => {}
            None => {
                tracing::warn!(file = %path.display(), line, "ignoring malformed special-use line")
            }
        }
    }
    out
}

pub fn write_special(root: &Path, list: &[(SpecialUse, String)], fsync: FsyncMode) -> Result<()> {
    let mut text = String::new();
    for (su, n) in list {
        text.push_str(&format!("{} {}\n", su.attribute(), n));
    }
    fsio::write_atomic(&root.join(SPECIAL_USE_FILE), text.as_bytes(), fsync)
}

/// How a layout names mailboxes: which names it accepts, and whether a `.` in a line of
/// an old subscription file separates levels (Maildir++) or is part of a name (mbox).
#[derive(Clone, Copy)]
pub struct Names {
    pub valid: fn(&str) -> bool,
    pub dots_are_levels: bool,
}

/// Reads the subscription list (see the module doc for accepted formats).
pub fn read_subscriptions(root: &Path, names: Names) -> Result<Vec<String>> {
    let valid = names.valid;
    let path = root.join(SUBSCRIPTIONS_FILE);
    match fsio::read(&path) {
        Ok(bytes) => Ok(parse_subscriptions(&String::from_utf8_lossy(&bytes), names)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match fsio::read(&root.join(COURIER_SUBSCRIPTIONS)) {
                Ok(bytes) => Ok(parse_courier_subscriptions(
                    &String::from_utf8_lossy(&bytes),
                    valid,
                )),
                Err(_) => Ok(Vec::new()),
            }
        }
        // A link in its place is not followed: no subscriptions until one is written
        // (which replaces the link, never writes through it).
        Err(e) if crate::beneath::is_link_refusal(&e) => {
            tracing::warn!(file = %path.display(), "subscriptions: symbolic link not followed (mail stays inside the mail root)");
            Ok(Vec::new())
        }
        Err(e) => Err(Error::io(path.display(), e)),
    }
}

/// Rewrites the subscription list atomically.
pub fn write_subscriptions(root: &Path, subs: &[String], fsync: FsyncMode) -> Result<()> {
    let mut text = String::new();
    for s in subs {
        text.push_str(s);
        text.push('\n');
    }
    fsio::write_atomic(&root.join(SUBSCRIPTIONS_FILE), text.as_bytes(), fsync)
}

pub fn parse_subscriptions(text: &str, names: Names) -> Vec<String> {
    let mut lines = text.lines().peekable();
    let v2 = lines.peek().is_some_and(|l| l.starts_with("V\t"));
    if v2 {
        lines.next();
    }
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        // v2 separates levels with tabs; an old v1 file from a Maildir++ setup uses `.`,
        // which can never be part of a Maildir name component (in mbox it can).
        let name = if v2 {
            line.replace('\t', "/")
        } else if names.dots_are_levels {
            line.replace('.', "/")
        } else {
            line.to_string()
        };
        let name = normalize_name(&name);
        if (names.valid)(&name) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

pub fn parse_courier_subscriptions(text: &str, valid: fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let rest = line.strip_prefix("INBOX.").unwrap_or(line);
        let mut parts = Vec::new();
        let mut ok = !rest.is_empty();
        for p in rest.split('.') {
            match utf7::decode(p) {
                Some(d) if !d.is_empty() => parts.push(d),
                _ => ok = false,
            }
        }
        if ok {
            let n = normalize_name(&parts.join("/"));
            if valid(&n) && !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each value is above the last one recorded, also when the recorded one is ahead of
    /// the clock (a restart within the same second, or a clock set back), and garbage in
    /// the file does not stop folder creation.
    #[test]
    fn uid_validity_state_only_grows() {
        let d = tempfile::tempdir().unwrap();
        let a = next_uid_validity(d.path(), FsyncMode::Never, 1).unwrap();
        let b = next_uid_validity(d.path(), FsyncMode::Never, 1).unwrap();
        assert!(b > a);
        assert_eq!(read_last_uid_validity(d.path()), b);
        let ahead = b + 100_000;
        std::fs::write(d.path().join(UIDVALIDITY_FILE), format!("{ahead}\n")).unwrap();
        assert_eq!(
            next_uid_validity(d.path(), FsyncMode::Never, 1).unwrap(),
            ahead + 1
        );
        std::fs::write(d.path().join(UIDVALIDITY_FILE), "garbage").unwrap();
        assert!(next_uid_validity(d.path(), FsyncMode::Never, 1).unwrap() >= 1);
    }

    fn valid(n: &str) -> bool {
        !n.is_empty() && n.split('/').all(|p| !p.is_empty() && !p.contains('.'))
    }

    const MAILDIR: Names = Names {
        valid,
        dots_are_levels: true,
    };

    #[test]
    fn subscription_formats() {
        assert_eq!(
            parse_subscriptions("A\ninbox\nB/C\nD.E\n\n", MAILDIR),
            vec!["A", "INBOX", "B/C", "D/E"]
        );
        assert_eq!(
            parse_subscriptions("V\t2\n\nA\tB\nC\n", MAILDIR),
            vec!["A/B", "C"]
        );
        assert_eq!(
            parse_courier_subscriptions("INBOX.Sent\nINBOX.A.Entw&APw-rfe\n", valid),
            vec!["Sent", "A/Entw\u{fc}rfe"]
        );
        // mbox: a dot is part of a name.
        let mbox = Names {
            valid: |n| !n.is_empty(),
            dots_are_levels: false,
        };
        assert_eq!(
            parse_subscriptions("lists.debian\nA/B\n", mbox),
            vec!["lists.debian", "A/B"]
        );
    }
}
