//! The user's mail location: the `[storage] location` (and `inbox`) template expanded
//! for one user, every substituted part a single ordinary path component.
//!
//! This module must not know about mail formats.

use crate::mailbox::{Error, ErrorKind, Result};

/// Checks one user-name-derived value substituted into the location template: it must be
/// a single, ordinary path component.
pub fn safe_path_part(part: &str) -> Result<&str> {
    let ok = !part.is_empty()
        && part != "."
        && part != ".."
        && !part.contains('/')
        && !part.contains('\\')
        && !part.chars().any(|c| c.is_control())
        && part.len() <= 255;
    if ok {
        Ok(part)
    } else {
        Err(
            Error::new(ErrorKind::BadName, "Invalid user name").with_detail(format!(
                "user name part {part:?} is not a safe path component"
            )),
        )
    }
}

/// Expands `%u`, `%n`, `%d`, `%h`, `%%` in the storage location template.
pub fn expand(template: &str, user: &str, home: Option<&std::path::Path>) -> Result<String> {
    let user_ok = safe_path_part(user)?;
    let (local, domain) = match user_ok.split_once('@') {
        Some((l, d)) => (l, d),
        None => (user_ok, ""),
    };
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => out.push_str(user_ok),
            Some('n') => out.push_str(safe_path_part(local)?),
            Some('d') => out.push_str(safe_path_part(domain)?),
            Some('h') => {
                let h = home.ok_or_else(|| {
                    Error::new(ErrorKind::Temporary, "No home directory for this user")
                        .with_detail("location uses %h but the user has no home")
                })?;
                let hs = h.to_str().ok_or_else(|| {
                    Error::new(ErrorKind::Temporary, "Invalid home directory")
                        .with_detail("home directory is not UTF-8")
                })?;
                out.push_str(hs);
            }
            Some('%') => out.push('%'),
            other => {
                return Err(
                    Error::new(ErrorKind::Temporary, "Bad mail location").with_detail(format!(
                        "unknown variable %{} in location",
                        other.unwrap_or(' ')
                    )),
                )
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_expansion() {
        let home = std::path::Path::new("/home/bob");
        assert_eq!(
            expand("/m/%d/%n/%u", "bob@ex.org", None).unwrap(),
            "/m/ex.org/bob/bob@ex.org"
        );
        assert_eq!(
            expand("%h/Maildir", "bob", Some(home)).unwrap(),
            "/home/bob/Maildir"
        );
        for u in ["", "..", ".", "a/b", "../x", "a\0b", "x@..", "x@a/b"] {
            assert!(expand("/m/%u/%d", u, None).is_err(), "{u:?}");
        }
        assert!(expand("%h", "bob", None).is_err());
        assert!(expand("/m/%x", "bob", None).is_err());
    }
}
