//! Application-specific passwords: extra passwords per user, each with a name, the
//! services it may be used for, and creation / last-use times. Stored beside the
//! passwd-file in `PASSWD_FILE.app-passwords`, one per line, human-readable:
//!
//! ```text
//! alice phone imap,smtp 2025-01-02T03:04:05Z 2025-01-03T10:00:00Z {SHA512-CRYPT}$6$…
//! ```
//!
//! (columns separated by white space: user, name, services, created, last use or `-`
//! for never, hash; none of them can contain white space). Only a hash is stored. The file is re-read whenever it changes
//! (checked on every login, so a revocation takes effect for the next login at once) and
//! rewritten under a lock with temp + fsync + rename, keeping comments and line order.
//!
//! Generated passwords are 16 lowercase letters (about 75 bits): far beyond guessing, so
//! they are hashed with SHA512-CRYPT (5000 rounds, ~3 ms) rather than ARGON2ID (~25 ms
//! and 19 MiB per check); a slow hash only protects guessable passwords.
//! Knows users by name; nothing of protocols.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rand::Rng;

use super::filedit::{self, FileError};
use super::request::{Service, UnknownService};
use super::scheme::{self, HashError, Scheme, UnsupportedScheme};

/// What is wrong with one line of the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("too many fields")]
    TooManyFields,
    #[error("bad user or name")]
    BadUserOrName,
    #[error(transparent)]
    Service(#[from] UnknownService),
    #[error("bad creation time")]
    BadCreated,
    #[error("bad last-use time")]
    BadLastUse,
    #[error("unsupported scheme {0}")]
    Unsupported(UnsupportedScheme),
}

/// Why an app password could not be added or the file edited.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad name {0:?}: use 1-64 letters, digits, '.', '_' or '-'")]
    BadName(String),
    #[error("give at least one of imap, pop3, smtp")]
    NoService,
    #[error("{user} already has an app password named {name:?}")]
    Exists { user: String, name: String },
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    File(#[from] FileError),
}

/// Length of a generated app password.
pub const LEN: usize = 16;

/// One app password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPassword {
    pub user: String,
    pub name: String,
    pub services: Vec<Service>,
    /// Unix seconds.
    pub created: i64,
    pub last_used: Option<i64>,
    /// `{SCHEME}hash`.
    pub hash: String,
}

/// Where the app passwords of a passwd-file live.
pub fn path_for(passwd_file: &Path) -> PathBuf {
    let mut name = passwd_file.file_name().unwrap_or_default().to_os_string();
    name.push(".app-passwords");
    passwd_file.with_file_name(name)
}

/// Is this a password of the shape Loft generates? Only such passwords are checked
/// against app passwords.
pub fn looks_like(password: &str) -> bool {
    password.len() == LEN && password.bytes().all(|b| b.is_ascii_lowercase())
}

/// A fresh random app password.
pub fn generate() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..LEN)
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect()
}

/// A name is a label: letters, digits, `.`, `_`, `-`, 1..64 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

// ---- time stamps: ISO 8601 UTC, civil-date arithmetic (H. Hinnant's algorithm) ----

fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let t = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b.get(19) != Some(&b'Z') || b.get(10) != Some(&b'T') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400 + hh * 3600 + mm * 60 + ss)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Renders a time stamp for people (`list`).
pub fn display_time(t: Option<i64>) -> String {
    t.map(format_time).unwrap_or_else(|| "never".into())
}

// ---- the file ----

fn parse_line(line: &str) -> Result<AppPassword, LineError> {
    let mut f = line.split_whitespace();
    let mut next = |what: &'static str| f.next().ok_or(LineError::Missing(what));
    let user = next("user")?;
    let name = next("name")?;
    let services = next("services")?;
    let created = next("creation time")?;
    let last = next("last-use time")?;
    let hash = next("hash")?;
    if f.next().is_some() {
        return Err(LineError::TooManyFields);
    }
    if user.is_empty() || !valid_name(name) {
        return Err(LineError::BadUserOrName);
    }
    let services = services
        .split(',')
        .map(|s| s.parse::<Service>())
        .collect::<Result<Vec<_>, _>>()?;
    let created = parse_time(created).ok_or(LineError::BadCreated)?;
    let last_used = match last {
        "-" | "" => None,
        t => Some(parse_time(t).ok_or(LineError::BadLastUse)?),
    };
    scheme::parse_stored(hash).map_err(LineError::Unsupported)?;
    Ok(AppPassword {
        user: user.into(),
        name: name.into(),
        services,
        created,
        last_used,
        hash: hash.into(),
    })
}

fn render(p: &AppPassword) -> String {
    let services: Vec<&str> = p.services.iter().map(|s| s.name()).collect();
    format!(
        "{} {} {} {} {} {}",
        p.user,
        p.name,
        services.join(","),
        format_time(p.created),
        p.last_used.map(format_time).unwrap_or_else(|| "-".into()),
        p.hash
    )
}

/// A line of the file: kept verbatim unless it is a valid entry.
enum Line {
    Entry(AppPassword),
    Other(String),
}

const HEADER: &str = "# Loft application passwords (edit with `loft user app-password`):\n\
# user name services created last_used {SCHEME}hash\n";

fn read_lines(path: &Path) -> Result<Vec<Line>, FileError> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_string(),
        Err(e) => return Err(FileError::read(path)(e)),
    };
    Ok(text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with('#') || l.trim().is_empty() {
                return Line::Other(l.to_string());
            }
            match parse_line(l) {
                Ok(e) => Line::Entry(e),
                Err(_) => Line::Other(l.to_string()),
            }
        })
        .collect())
}

fn write_lines(path: &Path, lines: &[Line]) -> Result<(), FileError> {
    let mut out = String::new();
    for l in lines {
        match l {
            Line::Entry(e) => out.push_str(&render(e)),
            Line::Other(s) => out.push_str(s),
        }
        out.push('\n');
    }
    filedit::replace(path, out.as_bytes())
}

/// Line-numbered problems found while reading the file.
pub type Problems = Vec<(usize, LineError)>;

/// Parses the whole file; malformed lines are returned as (line number, what is wrong).
pub fn read(path: &Path) -> Result<(Vec<AppPassword>, Problems), FileError> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(FileError::read(path)(e)),
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim_start().starts_with('#') || l.trim().is_empty() {
            continue;
        }
        match parse_line(l) {
            Ok(e) => good.push(e),
            Err(m) => bad.push((i + 1, m)),
        }
    }
    Ok((good, bad))
}

/// Adds an app password for `user` and returns the clear password (shown once).
pub fn add(path: &Path, user: &str, name: &str, services: &[Service]) -> Result<String, Error> {
    if !valid_name(name) {
        return Err(Error::BadName(name.to_string()));
    }
    if services.is_empty() || services.contains(&Service::Other) {
        return Err(Error::NoService);
    }
    let _lock = filedit::lock(path)?;
    let mut lines = read_lines(path)?;
    if lines
        .iter()
        .any(|l| matches!(l, Line::Entry(e) if e.user == user && e.name == name))
    {
        return Err(Error::Exists {
            user: user.to_string(),
            name: name.to_string(),
        });
    }
    let password = generate();
    let mut svc: Vec<Service> = Vec::new();
    for s in services {
        if !svc.contains(s) {
            svc.push(*s);
        }
    }
    lines.push(Line::Entry(AppPassword {
        user: user.into(),
        name: name.into(),
        services: svc,
        created: now(),
        last_used: None,
        hash: scheme::hash_password(Scheme::Sha512Crypt, &password)?,
    }));
    write_lines(path, &lines)?;
    Ok(password)
}

/// Removes `user`'s app password `name`; `Ok(false)` when there was none.
pub fn revoke(path: &Path, user: &str, name: &str) -> Result<bool, FileError> {
    let _lock = filedit::lock(path)?;
    let mut lines = read_lines(path)?;
    let before = lines.len();
    lines.retain(|l| !matches!(l, Line::Entry(e) if e.user == user && e.name == name));
    if lines.len() == before {
        return Ok(false);
    }
    write_lines(path, &lines)?;
    Ok(true)
}

/// Removes every app password of `user` (when the user is deleted); returns how many.
pub fn remove_user(path: &Path, user: &str) -> Result<usize, FileError> {
    if !path.exists() {
        return Ok(0);
    }
    let _lock = filedit::lock(path)?;
    let mut lines = read_lines(path)?;
    let before = lines.len();
    lines.retain(|l| !matches!(l, Line::Entry(e) if e.user == user));
    let n = before - lines.len();
    if n > 0 {
        write_lines(path, &lines)?;
    }
    Ok(n)
}

/// Records a use of `user`'s app password `name` at `when`. Skipped when the stored
/// time is less than a minute old, so a busy client does not rewrite the file per login.
pub fn touch(path: &Path, user: &str, name: &str, when: i64) -> Result<(), FileError> {
    let _lock = filedit::lock(path)?;
    let mut lines = read_lines(path)?;
    let mut changed = false;
    for l in &mut lines {
        if let Line::Entry(e) = l {
            if e.user == user && e.name == name && e.last_used.is_none_or(|t| when - t >= 60) {
                e.last_used = Some(when);
                changed = true;
            }
        }
    }
    if changed {
        write_lines(path, &lines)?;
    }
    Ok(())
}

// ---- the cached view used at login ----

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp(u64, u64, i64, i64);

/// The file as last read; re-read when its identity changes (checked on every call).
pub struct AppDb {
    path: PathBuf,
    cache: Mutex<(Option<Stamp>, Arc<Vec<AppPassword>>)>,
}

/// What an app-password check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppMatch {
    None,
    /// Matched the named password, which allows the service.
    Ok(String),
    /// Matched the named password, which does not allow the service.
    WrongService(String),
}

fn decoy() -> &'static str {
    static D: OnceLock<String> = OnceLock::new();
    D.get_or_init(|| {
        scheme::hash_password(Scheme::Sha512Crypt, "decoy-app-password").unwrap_or_default()
    })
}

impl AppDb {
    pub fn new(passwd_file: &Path) -> AppDb {
        AppDb {
            path: path_for(passwd_file),
            cache: Mutex::new((None, Arc::new(Vec::new()))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current entries (blocking: stats, and reads on change).
    pub fn current(&self) -> Arc<Vec<AppPassword>> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let st = std::fs::metadata(&self.path)
            .ok()
            .map(|m| Stamp(m.dev(), m.ino(), m.mtime(), m.mtime_nsec()));
        if st != c.0 {
            let entries = match read(&self.path) {
                Ok((good, bad)) => {
                    for (n, m) in bad {
                        tracing::warn!("{}:{n}: {m}; line ignored", self.path.display());
                    }
                    good
                }
                Err(e) => {
                    tracing::warn!("{e}; no app passwords in force");
                    Vec::new()
                }
            };
            *c = (st, Arc::new(entries));
        }
        Arc::clone(&c.1)
    }

    /// Verifies `password` against every app password of `user` (blocking CPU work). A
    /// user without any costs one decoy verification, like a user with one.
    pub fn check(&self, user: &str, password: &str, service: Service) -> AppMatch {
        let all = self.current();
        let mut found = AppMatch::None;
        let mut tried = 0;
        for e in all.iter().filter(|e| e.user == user) {
            tried += 1;
            let ok = scheme::parse_stored(&e.hash)
                .ok()
                .and_then(|(s, h)| scheme::verify(s, h, password).ok())
                .unwrap_or(false);
            if ok && found == AppMatch::None {
                found = if e.services.contains(&service) {
                    AppMatch::Ok(e.name.clone())
                } else {
                    AppMatch::WrongService(e.name.clone())
                };
            }
        }
        if tried == 0 {
            if let Ok((s, h)) = scheme::parse_stored(decoy()) {
                let _ = std::hint::black_box(scheme::verify(s, h, password));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests;
