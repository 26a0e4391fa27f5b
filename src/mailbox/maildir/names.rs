//! Mailbox names ⇄ Maildir++ folder names, and user names ⇄ paths.
//!
//! A client name `Parent/Child` (UTF-8, `/` separated, INBOX already normalised) lives in
//! the directory `<root>/.Parent.Child`; each component is stored in modified UTF-7
//! (RFC 3501 §5.1.3), like Dovecot does. `INBOX` itself is the root.
//!
//! **A `.` inside a name component is refused** ([`ErrorKind::BadName`]): `.` is the
//! on-disk hierarchy separator of Maildir++, and Dovecot with the same layout refuses it
//! too, so a Maildir shared with Dovecot keeps meaning the same thing.
//!
//! Also refused: empty names, empty components (`a//b`, leading `/`), NUL and other control
//! characters, and names whose folder name would exceed 255 bytes. None of the accepted
//! names can contain `/` in a path component, so no name escapes the root.
//!
//! This module must not know about message files or uid lists.

use crate::mailbox::{utf7, Error, ErrorKind, Result};

/// Longest folder directory name most file systems accept.
const MAX_DIR_NAME: usize = 255;

fn bad(text: &str) -> Error {
    Error::new(ErrorKind::BadName, text.to_string())
}

/// Checks a normalised client name and returns its components.
pub fn components(name: &str) -> Result<Vec<&str>> {
    if name.is_empty() {
        return Err(bad("Empty mailbox name"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(bad("Mailbox name contains control characters"));
    }
    let parts: Vec<&str> = name.split('/').collect();
    for p in &parts {
        if p.is_empty() {
            return Err(bad("Mailbox name has an empty hierarchy level"));
        }
        if p.contains('.') {
            return Err(bad("Character not allowed in mailbox name: '.'"));
        }
    }
    Ok(parts)
}

/// The folder directory name (`.A.B`) of a client name other than `INBOX`.
pub fn to_dir(name: &str) -> Result<String> {
    let parts = components(name)?;
    let mut out = String::new();
    for p in parts {
        out.push('.');
        out.push_str(&utf7::encode(p));
    }
    if out.len() > MAX_DIR_NAME {
        return Err(bad("Mailbox name too long"));
    }
    Ok(out)
}

/// The client name of a folder directory name, or `None` when it is not a valid folder
/// name (not starting with `.`, empty levels, not canonical modified UTF-7).
pub fn from_dir(dir: &str) -> Option<String> {
    let rest = dir.strip_prefix('.')?;
    if rest.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (i, p) in rest.split('.').enumerate() {
        if p.is_empty() {
            return None;
        }
        let decoded = utf7::decode(p)?;
        if decoded.contains('/') || decoded.chars().any(|c| c.is_control()) {
            return None;
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(&decoded);
    }
    Some(crate::mailbox::normalize_name(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names() {
        assert_eq!(to_dir("Sent").unwrap(), ".Sent");
        assert_eq!(to_dir("A/B").unwrap(), ".A.B");
        assert_eq!(to_dir("Entw\u{fc}rfe").unwrap(), ".Entw&APw-rfe");
        assert_eq!(from_dir(".Entw&APw-rfe").as_deref(), Some("Entw\u{fc}rfe"));
        assert_eq!(from_dir(".A.B").as_deref(), Some("A/B"));
        assert_eq!(from_dir(".inbox.x").as_deref(), Some("INBOX/x"));
        assert_eq!(from_dir(".A..B"), None);
        assert_eq!(from_dir("."), None);
        assert_eq!(from_dir(".."), None);
        assert_eq!(from_dir("cur"), None);
        assert_eq!(from_dir(".&AGE-"), None);
    }

    #[test]
    fn refused_names() {
        for n in [
            "", "/a", "a//b", "a/", "a.b", "..", "../x", "a/../b", "a\0b", "a\nb", "a\u{7f}",
        ] {
            let e = to_dir(n).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadName, "{n:?}");
        }
        assert_eq!(
            to_dir(&"x".repeat(300)).unwrap_err().kind,
            ErrorKind::BadName
        );
    }
}
