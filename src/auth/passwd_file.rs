//! The passwd-file passdb in Dovecot's format,
//! `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields`, re-read when it changes.
//! Knows lines and fields; password checking is [`super::scheme`]'s business.
//!
//! User names are matched exactly, byte for byte (as Dovecot does without
//! `auth_username_format`): `Alice` and `alice` are two users.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

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
}

fn parse_id(field: Option<&str>, what: &str) -> Result<Option<u32>, String> {
    match field {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("{what} {s:?} is not a number")),
    }
}

fn parse_line(line: &str, n: usize) -> Result<Entry, String> {
    let mut f = line.split(':');
    let name = f.next().unwrap_or("");
    if name.is_empty() {
        return Err("empty user name".into());
    }
    if name.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!("user name {name:?} contains white space"));
    }
    let Some(password) = f.next() else {
        return Err(format!("no ':' after user name {name:?}"));
    };
    let uid = parse_id(f.next(), "uid")?;
    let gid = parse_id(f.next(), "gid")?;
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
pub fn read(path: &Path) -> Result<(Table, Vec<Problem>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
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
}

/// How often the file's identity is looked at, at most.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

fn log_problems(path: &Path, problems: &[Problem]) {
    for p in problems {
        tracing::warn!("{}:{}: {}", path.display(), p.line, p.message);
    }
}

impl PasswdDb {
    /// Reads the file; unreadable is an error.
    pub fn open(path: &Path) -> Result<PasswdDb, String> {
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
        })
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
