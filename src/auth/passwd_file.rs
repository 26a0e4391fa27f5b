//! The passwd-file passdb in Dovecot's format,
//! `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields`, re-read when it changes.
//! Knows lines and fields; password checking is [`super::scheme`]'s business.
//!
//! User names are matched exactly, byte for byte (as Dovecot does without
//! `auth_username_format`): `Alice` and `alice` are two users.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::filedit::FileError;
use super::scheme::{self, Scheme};

/// One user line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// The password field as written, `{SCHEME}` prefix included; may be empty.
    pub password: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<PathBuf>,
    /// Line number in the file, for messages.
    pub line: usize,
    /// 1-based columns of the uid and gid fields on that line, for messages.
    pub id_cols: [usize; 2],
}

/// A problem on one line of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// A parsed file.
#[derive(Debug, Default)]
pub struct Table {
    users: HashMap<String, Entry>,
    /// A real stored hash of the most common scheme: unknown users are verified against
    /// it so that they cost as much time as known ones.
    pub decoy: Option<String>,
    has_plain: bool,
    /// The schemes used by at least one user (for the mechanisms to advertise).
    schemes: std::collections::HashSet<Scheme>,
}

impl Table {
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.users.get(name)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// True when some user's password uses the PLAIN scheme (computed when parsed).
    pub fn has_plain(&self) -> bool {
        self.has_plain
    }

    /// True when some user's password uses `scheme` (computed when parsed).
    pub fn has_scheme(&self, scheme: Scheme) -> bool {
        self.schemes.contains(&scheme)
    }

    /// Every uid or gid field that differs from the account Loft serves mail as (`uid`,
    /// `gid`), in file order: Loft does not switch users per login, so such a field is
    /// ignored and the mail belongs to the service account.
    pub fn foreign_ids(&self, uid: u32, gid: u32) -> Vec<ForeignId> {
        let mut out = Vec::new();
        for e in self.users.values() {
            for (field, value, service, col) in [
                ("uid", e.uid, uid, e.id_cols[0]),
                ("gid", e.gid, gid, e.id_cols[1]),
            ] {
                if let Some(value) = value.filter(|v| *v != service) {
                    out.push(ForeignId {
                        user: e.name.clone(),
                        line: e.line,
                        col,
                        field,
                        value,
                        service,
                    });
                }
            }
        }
        out.sort_by_key(|f| (f.line, f.col));
        out
    }
}

/// A passwd-file uid or gid field that is not the service account's (see
/// [`Table::foreign_ids`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignId {
    pub user: String,
    pub line: usize,
    /// 1-based column of the field.
    pub col: usize,
    /// `"uid"` or `"gid"`.
    pub field: &'static str,
    pub value: u32,
    /// The service account's id.
    pub service: u32,
}

impl std::fmt::Display for ForeignId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user {:?}: {} {} differs from Loft's service {} {}; it is ignored and the \
             mail is owned by the service account",
            self.user, self.field, self.value, self.field, self.service
        )
    }
}

/// What is wrong with one line of the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("empty user name")]
    EmptyName,
    #[error("user name {0:?} contains white space")]
    NameWhiteSpace(String),
    #[error("no ':' after user name {0:?}")]
    NoPassword(String),
    #[error("{what} {value:?} is not a number")]
    NotANumber { what: &'static str, value: String },
}

fn parse_id(field: Option<&str>, what: &'static str) -> Result<Option<u32>, LineError> {
    match field {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| LineError::NotANumber {
            what,
            value: s.to_string(),
        }),
    }
}

fn parse_line(line: &str, n: usize) -> Result<Entry, LineError> {
    let mut f = line.split(':');
    let name = f.next().unwrap_or("");
    if name.is_empty() {
        return Err(LineError::EmptyName);
    }
    if name.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(LineError::NameWhiteSpace(name.to_string()));
    }
    let Some(password) = f.next() else {
        return Err(LineError::NoPassword(name.to_string()));
    };
    let uid_text = f.next();
    let uid = parse_id(uid_text, "uid")?;
    let gid = parse_id(f.next(), "gid")?;
    let uid_col = name.chars().count() + password.chars().count() + 3;
    let gid_col = uid_col + uid_text.map_or(0, |t| t.chars().count()) + 1;
    let _gecos = f.next();
    let home = f.next().filter(|h| !h.is_empty()).map(PathBuf::from);
    // shell and extra fields (which may themselves contain ':') are not used.
    Ok(Entry {
        name: name.to_string(),
        password: password.to_string(),
        uid,
        gid,
        home,
        line: n,
        id_cols: [uid_col, gid_col],
    })
}

/// Parses the whole file. Malformed lines are skipped and reported; a user whose
/// password uses an unknown scheme is kept (logins fail, with that reason) and reported.
pub fn parse(bytes: &[u8]) -> (Table, Vec<Problem>) {
    let mut table = Table::default();
    let mut problems = Vec::new();
    let mut counts: HashMap<Scheme, (usize, String)> = HashMap::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let Ok(line) = std::str::from_utf8(raw) else {
            problems.push(Problem {
                line: n,
                message: "not valid UTF-8; line skipped".into(),
            });
            continue;
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let entry = match parse_line(line, n) {
            Ok(e) => e,
            Err(message) => {
                problems.push(Problem {
                    line: n,
                    message: format!("{message}; line skipped"),
                });
                continue;
            }
        };
        if let Some(first) = table.users.get(&entry.name) {
            problems.push(Problem {
                line: n,
                message: format!(
                    "user {:?} already defined on line {}; line skipped",
                    entry.name, first.line
                ),
            });
            continue;
        }
        if entry.password.is_empty() {
            problems.push(Problem {
                line: n,
                message: format!("user {:?} has no password and cannot log in", entry.name),
            });
        } else {
            match scheme::parse_stored(&entry.password) {
                Ok((s, _)) => {
                    let c = counts.entry(s).or_insert((0, entry.password.clone()));
                    c.0 += 1;
                }
                Err(name) => problems.push(Problem {
                    line: n,
                    message: format!("user {:?}: unsupported password scheme {name}", entry.name),
                }),
            }
        }
        table.users.insert(entry.name.clone(), entry);
    }
    table.has_plain = counts.contains_key(&Scheme::Plain);
    table.schemes = counts.keys().copied().collect();
    table.decoy = counts
        .into_values()
        .max_by_key(|(count, _)| *count)
        .map(|(_, stored)| stored);
    (table, problems)
}

/// Identity of one version of the file: if none of these change, we do not re-read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

/// Reads and parses `path`; the caller reports the problems.
pub fn read(path: &Path) -> Result<(Table, Vec<Problem>), FileError> {
    let bytes = std::fs::read(path).map_err(FileError::read(path))?;
    Ok(parse(&bytes))
}

struct Check {
    stamp: Option<Stamp>,
    last: Instant,
}

/// The passwd-file, kept parsed and re-read when it changes.
pub struct PasswdDb {
    path: PathBuf,
    check: Mutex<Check>,
    table: RwLock<Arc<Table>>,
    /// (user, uid, gid) already warned about at login.
    foreign_warned: Mutex<std::collections::HashSet<Warned>>,
}

/// A user and the uid/gid fields a warning was logged for.
type Warned = (String, Option<u32>, Option<u32>);

/// How often the file's identity is looked at, at most.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

fn log_problems(path: &Path, problems: &[Problem]) {
    for p in problems {
        tracing::warn!("{}:{}: {}", path.display(), p.line, p.message);
    }
}

impl PasswdDb {
    /// Reads the file; unreadable is an error.
    pub fn open(path: &Path) -> Result<PasswdDb, FileError> {
        let st = stamp(path).ok();
        let (table, problems) = read(path)?;
        log_problems(path, &problems);
        Ok(PasswdDb {
            path: path.to_path_buf(),
            check: Mutex::new(Check {
                stamp: st,
                last: Instant::now(),
            }),
            table: RwLock::new(Arc::new(table)),
            foreign_warned: Mutex::new(Default::default()),
        })
    }

    /// At a login: warns once per user (and per pair of values) when the passwd-file's
    /// uid/gid fields of `user` differ from the account the process runs as, which is
    /// the one that owns the mail. Returns whether it warned.
    pub fn note_login(&self, user: &str, uid: Option<u32>, gid: Option<u32>) -> bool {
        // SAFETY: geteuid and getegid cannot fail and touch no memory.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let foreign_uid = uid.filter(|u| *u != euid);
        let foreign_gid = gid.filter(|g| *g != egid);
        if foreign_uid.is_none() && foreign_gid.is_none() {
            return false;
        }
        let mut warned = self
            .foreign_warned
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !warned.insert((user.to_string(), uid, gid)) {
            return false;
        }
        let ids = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
        tracing::warn!(
            user = %user,
            "passwd-file {} gives uid {} gid {}, but Loft serves mail as uid {euid} gid {egid}: \
             the fields are ignored (warned once per user)",
            self.path.display(),
            ids(uid),
            ids(gid)
        );
        true
    }

    /// The current table, after re-reading the file if it changed (checked at most once
    /// a second). Blocking I/O: call from the blocking pool. If the file has become
    /// unreadable the previous table stays in force and a warning is logged.
    pub fn current(&self) -> Arc<Table> {
        self.refresh(false);
        match self.table.read() {
            Ok(t) => Arc::clone(&t),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads now if the file changed, ignoring the once-a-second limit.
    pub fn reload_if_changed(&self) {
        self.refresh(true);
    }

    fn refresh(&self, force: bool) {
        // Someone else is checking right now: their result will do.
        let Ok(mut check) = self.check.try_lock() else {
            return;
        };
        if !force && check.last.elapsed() < CHECK_INTERVAL {
            return;
        }
        check.last = Instant::now();
        let st = match stamp(&self.path) {
            Ok(s) => s,
            Err(e) => {
                if check.stamp.take().is_some() {
                    tracing::warn!(
                        "passwd-file {} unavailable ({e}); keeping the users read before",
                        self.path.display()
                    );
                }
                return;
            }
        };
        if check.stamp == Some(st) {
            return;
        }
        match read(&self.path) {
            Ok((table, problems)) => {
                log_problems(&self.path, &problems);
                tracing::info!(
                    "passwd-file {} re-read: {} users",
                    self.path.display(),
                    table.len()
                );
                let new = Arc::new(table);
                match self.table.write() {
                    Ok(mut t) => *t = new,
                    Err(poisoned) => *poisoned.into_inner() = new,
                }
                check.stamp = Some(st);
            }
            Err(e) => tracing::warn!("{e}; keeping the users read before"),
        }
    }
}

#[cfg(test)]
mod tests;
