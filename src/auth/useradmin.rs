//! Editing the passwd-file for `loft user add|passwd|del|list`: under the edit lock,
//! line by line, touching only the line of the user concerned, so comments, blank lines,
//! unknown fields (gecos, shell, extra fields) and line order survive byte for byte.
//! The new file replaces the old atomically (see [`super::filedit`]); a running server
//! notices the change and re-reads it. Knows the line format, not how hashes are made.

use std::path::Path;

use super::filedit::{self, FileError};
use super::passwd_file;
use super::scheme::UnsupportedScheme;

/// Why `loft user` could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("empty user name")]
    EmptyName,
    #[error("user name longer than 255 bytes")]
    NameTooLong,
    #[error("a user name cannot start with '#' (it would be a comment)")]
    NameIsComment,
    #[error("user name {0:?} contains ':', white space or a control character")]
    NameCharacters(String),
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NoUser(String),
    #[error("a stored password cannot contain ':' or line breaks")]
    StoredSeparator,
    #[error("unsupported scheme {0}")]
    Unsupported(UnsupportedScheme),
    #[error(transparent)]
    File(#[from] FileError),
}

/// Checks a user name for the passwd-file: non-empty, no ':' (the field separator), no
/// white space or control characters, at most 255 bytes.
pub fn valid_user_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::EmptyName);
    }
    if name.len() > 255 {
        return Err(Error::NameTooLong);
    }
    if name.starts_with('#') {
        return Err(Error::NameIsComment);
    }
    if name.contains(|c: char| c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(Error::NameCharacters(name.to_string()));
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<Vec<u8>, FileError> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(FileError::read(path)(e)),
    }
}

/// The user name of a raw line, if it is a user line.
fn line_user(line: &[u8]) -> Option<&[u8]> {
    let l = line.strip_suffix(b"\r").unwrap_or(line);
    let first = l.iter().position(|b| !b.is_ascii_whitespace())?;
    if l.get(first) == Some(&b'#') {
        return None;
    }
    let end = l.iter().position(|&b| b == b':').unwrap_or(l.len());
    l.get(..end)
}

/// Splits the file into lines, remembering whether the last one ended in a newline.
fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        v.pop();
    }
    v
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// Adds `user` with the stored password `stored` (`{SCHEME}hash`).
pub fn add(path: &Path, user: &str, stored: &str) -> Result<(), Error> {
    valid_user_name(user)?;
    check_stored(stored)?;
    let _lock = filedit::lock(path)?;
    let bytes = read_text(path)?;
    let mut ls = lines(&bytes);
    if ls.iter().any(|l| line_user(l) == Some(user.as_bytes())) {
        return Err(Error::Exists(user.to_string()));
    }
    if bytes.is_empty() {
        ls.push(b"# Loft users: user:{SCHEME}hash[:uid:gid:gecos:home:shell:extra]".to_vec());
    }
    ls.push(format!("{user}:{stored}").into_bytes());
    Ok(filedit::replace(path, &join(&ls))?)
}

/// Replaces `user`'s password field, keeping every other field as written.
pub fn set_password(path: &Path, user: &str, stored: &str) -> Result<(), Error> {
    check_stored(stored)?;
    let _lock = filedit::lock(path)?;
    let bytes = read_text(path)?;
    let mut ls = lines(&bytes);
    let Some(line) = ls
        .iter_mut()
        .find(|l| line_user(l) == Some(user.as_bytes()))
    else {
        return Err(Error::NoUser(user.to_string()));
    };
    let cr = line.ends_with(b"\r");
    let body = line.strip_suffix(b"\r").unwrap_or(line);
    // user : password [: rest]
    let mut parts = body.splitn(3, |&b| b == b':');
    let name = parts.next().unwrap_or_default().to_vec();
    let _old = parts.next();
    let rest = parts.next().map(|r| r.to_vec());
    let mut new = name;
    new.push(b':');
    new.extend_from_slice(stored.as_bytes());
    if let Some(rest) = rest {
        new.push(b':');
        new.extend_from_slice(&rest);
    }
    if cr {
        new.push(b'\r');
    }
    *line = new;
    Ok(filedit::replace(path, &join(&ls))?)
}

/// Removes `user`'s line.
pub fn delete(path: &Path, user: &str) -> Result<(), Error> {
    let _lock = filedit::lock(path)?;
    let bytes = read_text(path)?;
    let mut ls = lines(&bytes);
    let before = ls.len();
    ls.retain(|l| line_user(l) != Some(user.as_bytes()));
    if ls.len() == before {
        return Err(Error::NoUser(user.to_string()));
    }
    Ok(filedit::replace(path, &join(&ls))?)
}

/// One row of `loft user list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// The password scheme, or what is wrong with the password field.
    pub scheme: String,
    pub home: Option<String>,
}

/// Users in file order.
pub fn list(path: &Path) -> Result<Vec<Listed>, Error> {
    let bytes = read_text(path)?;
    let (table, _) = passwd_file::parse(&bytes);
    let mut out = Vec::new();
    for l in lines(&bytes) {
        let Some(name) = line_user(&l).and_then(|n| std::str::from_utf8(n).ok()) else {
            continue;
        };
        let Some(e) = table.get(name) else { continue };
        if out.iter().any(|x: &Listed| x.name == name) {
            continue;
        }
        let scheme = if e.password.is_empty() {
            "(no password)".to_string()
        } else {
            match super::scheme::parse_stored(&e.password) {
                Ok((s, _)) => s.name().to_string(),
                Err(s) => format!("(unsupported {s})"),
            }
        };
        out.push(Listed {
            name: name.to_string(),
            scheme,
            home: e.home.as_ref().map(|h| h.display().to_string()),
        });
    }
    Ok(out)
}

fn check_stored(stored: &str) -> Result<(), Error> {
    if stored.contains([':', '\n', '\r']) {
        return Err(Error::StoredSeparator);
    }
    super::scheme::parse_stored(stored).map_err(Error::Unsupported)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_everything_else() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users");
        let orig = "# head comment\n\nalice:{PLAIN}a:1000:100:Alice A:/home/alice:/bin/sh:x=1\n\
                    # mid\nbob:{PLAIN}b\r\ncarol:{PLAIN}c::::::extra:with:colons";
        std::fs::write(&p, orig).unwrap();
        set_password(&p, "alice", "{PLAIN}new").unwrap();
        set_password(&p, "bob", "{PLAIN}nb").unwrap();
        add(&p, "dave", "{PLAIN}d").unwrap();
        assert!(add(&p, "dave", "{PLAIN}d").is_err());
        delete(&p, "carol").unwrap();
        assert!(delete(&p, "carol").is_err());
        assert!(set_password(&p, "zed", "{PLAIN}z").is_err());
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "# head comment\n\nalice:{PLAIN}new:1000:100:Alice A:/home/alice:/bin/sh:x=1\n\
             # mid\nbob:{PLAIN}nb\r\ndave:{PLAIN}d\n"
        );
        let names: Vec<String> = list(&p).unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["alice", "bob", "dave"]);
    }

    #[test]
    fn bad_names_and_hashes_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users");
        for bad in ["", "a:b", "a b", "#x", "a\nb"] {
            assert!(add(&p, bad, "{PLAIN}x").is_err(), "{bad:?}");
        }
        assert!(matches!(
            add(&p, "ok", "{PLAIN}x:y"),
            Err(Error::StoredSeparator)
        ));
        let e = add(&p, "ok", "{NOPE}x").unwrap_err();
        assert_eq!(e.to_string(), "unsupported scheme NOPE");
        add(&p, "ok", "{PLAIN}x").unwrap();
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .starts_with("# Loft users"));
    }
}
