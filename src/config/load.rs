//! Loading `loft.toml`: parse to a spanned document, walk every section and key, collect
//! every problem with its position, then check the files the config points at.
//! Knows the schema; knows nothing of how the daemon uses the values.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::diag::{closest, Diagnostic};
use super::walk::{Val, Walker};
use super::{Config, FsyncMode, LockMethod, MboxLock, StorageFormat};

/// Every section and its keys: the schema, used for unknown-key suggestions too.
const SCHEMA: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "hostname",
            "max_connections",
            "max_connections_per_ip",
            "max_connections_per_user_ip",
            "user",
            "group",
            "allow_root",
            "when_not_root",
            "max_unauthenticated",
            "tls_handshake_timeout",
        ],
    ),
    (
        "imap",
        &[
            "listen",
            "listen_tls",
            "max_line_length",
            "append_limit",
            "max_nesting",
            "autologout",
            "login_timeout",
            "idle_poll",
        ],
    ),
    ("pop3", super::pop3::KEYS),
    ("tls", &["cert", "key"]),
    (
        "auth",
        &[
            "passwd_file",
            "failure_delay",
            "allow_plaintext_auth",
            "socket",
            "socket_mode",
            "socket_owner",
            "socket_group",
            "socket_tcp",
            "ratelimit_ip_burst",
            "ratelimit_ip_interval",
            "ratelimit_user_burst",
            "ratelimit_user_interval",
            "ratelimit_max_delay",
            "mechanisms",
            "scram_iterations",
            "hash_workers",
            "hash_queue",
        ],
    ),
    (
        "storage",
        &[
            "format",
            "location",
            "fsync",
            "autocreate_special_use",
            "lock_method",
            "nfs",
            "maildir_flag_sync",
            "cache_drop_days",
            "inbox",
            "mbox_read_locks",
            "mbox_write_locks",
            "mbox_lock_timeout",
            "mbox_dotlock_stale",
            "mbox_write_headers",
        ],
    ),
    ("log", &["level"]),
];

/// Prefix of syntax-error messages.
const SYNTAX: &str = "TOML syntax: ";

/// `[storage]` keys that mean something only with `format = "mbox"`.
const MBOX_ONLY: &[&str] = &[
    "inbox",
    "mbox_read_locks",
    "mbox_write_locks",
    "mbox_lock_timeout",
    "mbox_dotlock_stale",
    "mbox_write_headers",
];

/// RFC 3501 §5.4: the autologout timer must be at least 30 minutes.
const MIN_AUTOLOGOUT: Duration = Duration::from_secs(30 * 60);

/// Spans of values the file checks point back at (absent keys point at their section).
#[derive(Default)]
struct Spans {
    sections: Vec<(&'static str, Range<usize>)>,
    cert: Option<Range<usize>>,
    key: Option<Range<usize>>,
    passwd_file: Option<Range<usize>>,
    /// `[storage]` keys written that apply only to mbox, with the key's span.
    mbox_only: Vec<(&'static str, Range<usize>)>,
    /// `[storage] format` was written but refused (the mbox-only check stays quiet).
    format_refused: bool,
}

impl Spans {
    fn section(&self, name: &str) -> Range<usize> {
        self.sections
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or(0..0)
    }
}

/// Reads, parses and validates the configuration file at `path`. Every problem found is
/// returned, each with its position; `Ok` only when there are none.
pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            return Err(vec![Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read the configuration file: {e}"),
            }])
        }
    };
    let dir = config_dir(path);
    let mut w = Walker {
        file: path.to_path_buf(),
        src: &src,
        dir: dir.clone(),
        diags: Vec::new(),
    };
    let mut cfg = super::defaults(&dir);
    cfg.path = path.to_path_buf();

    // Recovering parse: every syntax error is reported, and whatever could be parsed
    // is still validated below.
    let (doc, syntax) = DeTable::parse_recoverable(&src);
    for e in &syntax {
        let span = e.span().unwrap_or(0..0);
        let mut msg = format!("{SYNTAX}{}", e.message());
        if msg.contains("duplicate") {
            if let Some(text) = src
                .get(span.clone())
                .filter(|t| t.len() < 60 && !t.contains('\n'))
            {
                msg.push_str(&format!(": `{}`", text.trim()));
            }
        }
        w.error(span, msg);
    }
    let mut spans = Spans::default();
    walk_document(&mut w, doc.get_ref(), &mut cfg, &mut spans);
    let at = super::files::Spans {
        cert: spans.cert.clone().unwrap_or_else(|| spans.section("tls")),
        key: spans.key.clone().unwrap_or_else(|| spans.section("tls")),
        passwd_file: spans
            .passwd_file
            .clone()
            .unwrap_or_else(|| spans.section("auth")),
    };
    super::files::check(&mut w, &mut cfg, &at);

    if w.diags.is_empty() {
        Ok(cfg)
    } else {
        // A value the parser had to guess at would only repeat its syntax error.
        let bad_lines: Vec<usize> = w
            .diags
            .iter()
            .filter(|d| d.message.starts_with(SYNTAX))
            .map(|d| d.line)
            .collect();
        let mut d = w.diags;
        d.retain(|d| d.message.starts_with(SYNTAX) || !bad_lines.contains(&d.line));
        d.sort_by_key(|d| (d.line, d.col));
        d.dedup();
        Err(d)
    }
}

/// The folder holding the config file, made absolute so that resolved paths keep their
/// meaning whatever the daemon's working directory later is.
fn config_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::path::absolute(&parent).unwrap_or(parent)
}

fn walk_document(w: &mut Walker<'_>, doc: &DeTable<'_>, cfg: &mut Config, spans: &mut Spans) {
    let names: Vec<&str> = SCHEMA.iter().map(|(n, _)| *n).collect();
    for (k, v) in doc.iter() {
        let name = k.get_ref().as_ref();
        let Some((sect, keys)) = SCHEMA.iter().find(|(n, _)| *n == name) else {
            let msg = match (home_section(name), closest(name, &names)) {
                (Some(s), _) => format!("`{name}` must be inside the [{s}] section"),
                (None, Some(c)) => format!("unknown section [{name}]; did you mean [{c}]?"),
                (None, None) => format!("unknown section [{name}] (known: {})", names.join(", ")),
            };
            w.error(k.span(), msg);
            continue;
        };
        spans.sections.push((sect, k.span()));
        let (line, col) = super::diag::line_col(w.src, k.span().start);
        cfg.positions.record(sect, "", line, col);
        let Some(table) = w.table(name, v) else {
            continue;
        };
        for (key, val) in table.iter() {
            let key_name = key.get_ref().as_ref();
            if !keys.contains(&key_name) {
                let msg = match (closest(key_name, keys), home_section(key_name)) {
                    (Some(c), _) => {
                        format!("unknown key `{key_name}` in [{sect}]; did you mean `{c}`?")
                    }
                    (None, Some(other)) => {
                        format!("`{key_name}` belongs in the [{other}] section, not [{sect}]")
                    }
                    (None, None) => format!(
                        "unknown key `{key_name}` in [{sect}] (known: {})",
                        keys.join(", ")
                    ),
                };
                w.error(key.span(), msg);
                continue;
            }
            let (line, col) = super::diag::line_col(w.src, val.span().start);
            cfg.positions.record(sect, key_name, line, col);
            match *sect {
                "server" => server_key(w, key_name, val, cfg),
                "imap" => imap_key(w, key_name, val, cfg),
                "pop3" => super::pop3::key(w, key_name, val, cfg),
                "tls" => tls_key(w, key_name, val, cfg, spans),
                "auth" => auth_key(w, key_name, val, cfg, spans),
                "storage" => {
                    if let Some(k) = MBOX_ONLY.iter().find(|k| **k == key_name) {
                        spans.mbox_only.push((k, key.span()));
                    }
                    storage_key(w, key_name, val, cfg, spans)
                }
                _ => log_key(w, key_name, val, cfg),
            }
        }
    }
    // Cross-key checks.
    let mut seen: Vec<std::net::SocketAddr> = Vec::new();
    let imap = cfg.imap.listen.iter().chain(cfg.imap.listen_tls.iter());
    let pop3 = cfg.pop3.listen.iter().chain(cfg.pop3.listen_tls.iter());
    for (a, sect) in imap.map(|a| (a, "imap")).chain(pop3.map(|a| (a, "pop3"))) {
        if seen.contains(a) {
            let s = spans.section(sect);
            w.error(
                s,
                format!("address {a} is listed twice in [imap]/[pop3] listen/listen_tls"),
            );
        }
        seen.push(*a);
    }
    if cfg.imap.listen.is_empty() && cfg.imap.listen_tls.is_empty() {
        let s = spans.section("imap");
        w.error(s, "no IMAP listener: set [imap] listen or listen_tls");
    }
    if cfg.storage.format != StorageFormat::Mbox && !spans.format_refused {
        for (k, span) in &spans.mbox_only {
            w.error(
                span.clone(),
                format!("`{k}` applies only to format = \"mbox\""),
            );
        }
    }
}

/// The section a key belongs to, for "wrong section" hints.
fn home_section(key: &str) -> Option<&'static str> {
    SCHEMA
        .iter()
        .find(|(_, keys)| keys.contains(&key))
        .map(|(s, _)| *s)
}

fn server_key(w: &mut Walker<'_>, key: &str, v: &Val<'_>, cfg: &mut Config) {
    let s = &mut cfg.server;
    match key {
        "hostname" => {
            if let Some(h) = w.string(key, v) {
                if h.is_empty() || h.contains(|c: char| c.is_whitespace() || c.is_control()) {
                    w.error(
                        v.span(),
                        "`hostname` must be a non-empty name without spaces",
                    );
                } else {
                    s.hostname = h;
                }
            }
        }
        "max_connections" => set(&mut s.max_connections, w.usize(key, v, 1)),
        "max_connections_per_ip" => set(&mut s.max_connections_per_ip, w.usize(key, v, 1)),
        "user" => s.user = owner_name(w, key, v).or(s.user.take()),
        "group" => s.group = owner_name(w, key, v).or(s.group.take()),
        "allow_root" => set(&mut s.allow_root, w.boolean(key, v)),
        "when_not_root" => match w.string(key, v).as_deref() {
            Some("refuse") => s.when_not_root = super::WhenNotRoot::Refuse,
            Some("run") => s.when_not_root = super::WhenNotRoot::Run,
            Some(f) => w.error(
                v.span(),
                format!("`when_not_root` must be \"refuse\" or \"run\", not {f:?}"),
            ),
            None => {}
        },
        "max_unauthenticated" => {
            s.max_unauthenticated = w.usize(key, v, 1).or(s.max_unauthenticated)
        }
        "tls_handshake_timeout" => set(&mut s.tls_handshake_timeout, nonzero(w, key, v)),
        _ => set(&mut s.max_connections_per_user_ip, w.usize(key, v, 1)),
    }
}

fn imap_key(w: &mut Walker<'_>, key: &str, v: &Val<'_>, cfg: &mut Config) {
    let i = &mut cfg.imap;
    match key {
        "listen" => set(
            &mut i.listen,
            w.addrs(key, v)
                .map(|a| a.into_iter().map(|(a, _)| a).collect()),
        ),
        "listen_tls" => set(
            &mut i.listen_tls,
            w.addrs(key, v)
                .map(|a| a.into_iter().map(|(a, _)| a).collect()),
        ),
        // RFC 7162 §4 recommends accepting command lines of at least 8192 octets.
        "max_line_length" => set(
            &mut i.max_line_length,
            w.size(key, v, 1024).map(|n| n as usize),
        ),
        "append_limit" => set(&mut i.append_limit, w.size(key, v, 1)),
        "max_nesting" => {
            if let Some(n) = w.usize(key, v, 1) {
                if n > 1000 {
                    w.error(
                        v.span(),
                        "`max_nesting` above 1000 invites stack exhaustion",
                    );
                } else {
                    i.max_nesting = n;
                }
            }
        }
        "autologout" => {
            if let Some(d) = w.duration(key, v) {
                if d < MIN_AUTOLOGOUT {
                    w.error(
                        v.span(),
                        "`autologout` must be at least 30m (RFC 3501 section 5.4)",
                    );
                } else {
                    i.autologout = d;
                }
            }
        }
        "login_timeout" => set(&mut i.login_timeout, nonzero(w, key, v)),
        _ => set(&mut i.idle_poll, nonzero(w, key, v)),
    }
}

pub(super) fn nonzero(w: &mut Walker<'_>, key: &str, v: &Val<'_>) -> Option<Duration> {
    let d = w.duration(key, v)?;
    if d.is_zero() {
        w.error(v.span(), format!("`{key}` must not be 0"));
        return None;
    }
    Some(d)
}

fn tls_key(w: &mut Walker<'_>, key: &str, v: &Val<'_>, cfg: &mut Config, spans: &mut Spans) {
    if key == "cert" {
        spans.cert = Some(v.span());
        set(&mut cfg.tls.cert, w.path(key, v));
    } else {
        spans.key = Some(v.span());
        set(&mut cfg.tls.key, w.path(key, v));
    }
}

fn auth_key(w: &mut Walker<'_>, key: &str, v: &Val<'_>, cfg: &mut Config, spans: &mut Spans) {
    let a = &mut cfg.auth;
    match key {
        "passwd_file" => {
            spans.passwd_file = Some(v.span());
            set(&mut a.passwd_file, w.path(key, v));
        }
        "failure_delay" => {
            if let Some(d) = w.duration(key, v) {
                if d > Duration::from_secs(60) {
                    w.error(v.span(), "`failure_delay` above 60s would stall clients");
                } else {
                    a.failure_delay = d;
                }
            }
        }
        "allow_plaintext_auth" => set(&mut a.allow_plaintext_auth, w.boolean(key, v)),
        "socket" => a.socket = w.path(key, v).or(a.socket.take()),
        "socket_mode" => {
            let mode = match v.get_ref() {
                DeValue::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
                DeValue::Integer(_) => w.uint(key, v, 0).and_then(|n| u32::try_from(n).ok()),
                _ => None,
            };
            match mode {
                Some(m) if m <= 0o777 => a.socket_mode = m,
                _ => w.error(
                    v.span(),
                    "`socket_mode` must be octal permission bits such as \"0660\" or 0o660",
                ),
            }
        }
        "socket_owner" => a.socket_owner = owner_name(w, key, v).or(a.socket_owner.take()),
        "socket_group" => a.socket_group = owner_name(w, key, v).or(a.socket_group.take()),
        "socket_tcp" => set(
            &mut a.socket_tcp,
            w.addrs(key, v)
                .map(|a| a.into_iter().map(|(a, _)| a).collect()),
        ),
        "ratelimit_ip_burst" => set(&mut a.rate_limit.ip_burst, burst(w, key, v)),
        "ratelimit_user_burst" => set(&mut a.rate_limit.user_burst, burst(w, key, v)),
        "ratelimit_ip_interval" => set(&mut a.rate_limit.ip_interval, nonzero(w, key, v)),
        "ratelimit_user_interval" => set(&mut a.rate_limit.user_interval, nonzero(w, key, v)),
        "mechanisms" => set(&mut a.mechanisms, mechanisms(w, key, v)),
        "hash_workers" => match w.usize(key, v, 0) {
            Some(n) if n <= 1024 => a.hash_workers = n,
            Some(_) => w.error(
                v.span(),
                "`hash_workers` above 1024 would defeat its purpose",
            ),
            None => {}
        },
        "hash_queue" => set(&mut a.hash_queue, w.usize(key, v, 0)),
        "scram_iterations" => match w.uint(key, v, 4096) {
            Some(n) if n <= 10_000_000 => a.scram_iterations = n as u32,
            Some(_) => w.error(
                v.span(),
                "`scram_iterations` above 10000000 would stall logins",
            ),
            None => {}
        },
        _ => {
            if let Some(d) = w.duration(key, v) {
                if d > Duration::from_secs(30) {
                    w.error(
                        v.span(),
                        "`ratelimit_max_delay` above 30s would stall clients",
                    );
                } else {
                    a.rate_limit.max_delay = d;
                }
            }
        }
    }
}

/// SASL mechanism names: an array of known names, each once (case-insensitive).
fn mechanisms(w: &mut Walker<'_>, key: &str, v: &Val<'_>) -> Option<Vec<String>> {
    const KNOWN: [(&str, &str); 4] = [
        ("PLAIN", "PLAIN"),
        ("LOGIN", "LOGIN"),
        ("CRAM-MD5", "CRAM-MD5"),
        ("SCRAM-SHA-256", "SCRAM-SHA-256"),
    ];
    let what = ("mechanism", "[\"PLAIN\", \"SCRAM-SHA-256\"]");
    let names = known_list(w, key, v, what, &KNOWN, true)?;
    Some(names.into_iter().map(str::to_string).collect())
}

/// An array of names of `known` (name, value), each once; `what`: what a name is and an
/// example array, for the errors; `any_case`: names match whatever their case.
fn known_list<T: Copy + PartialEq>(
    w: &mut Walker<'_>,
    key: &str,
    v: &Val<'_>,
    (what, example): (&str, &str),
    known: &[(&'static str, T)],
    any_case: bool,
) -> Option<Vec<T>> {
    let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
    let DeValue::Array(items) = v.get_ref() else {
        w.error(
            v.span(),
            format!("`{key}` must be an array of {what} names, e.g. {example}"),
        );
        return None;
    };
    let mut out: Vec<T> = Vec::new();
    let mut ok = true;
    for item in items.iter() {
        let Some(s) = w.string(key, item) else {
            ok = false;
            continue;
        };
        let wanted = if any_case {
            s.to_ascii_uppercase()
        } else {
            s.clone()
        };
        match known.iter().find(|(n, _)| *n == wanted) {
            Some((_, t)) if out.contains(t) => {
                w.error(item.span(), format!("`{key}`: {s:?} is listed twice"));
                ok = false;
            }
            Some((_, t)) => out.push(*t),
            None => {
                let hint = closest(&wanted, &names)
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                w.error(
                    item.span(),
                    format!(
                        "`{key}`: unknown {what} {s:?}{hint}; known: {}",
                        names.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A user or group (the socket file's, the service's): a name or a number.
fn owner_name(w: &mut Walker<'_>, key: &str, v: &Val<'_>) -> Option<String> {
    let s = match v.get_ref() {
        DeValue::Integer(_) => return w.uint(key, v, 0).map(|n| n.to_string()),
        _ => w.string(key, v)?,
    };
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c.is_control() || c == ':') {
        w.error(
            v.span(),
            format!("`{key}` must be a user/group name or number"),
        );
        return None;
    }
    Some(s)
}

fn burst(w: &mut Walker<'_>, key: &str, v: &Val<'_>) -> Option<u32> {
    let n = w.uint(key, v, 1)?;
    match u32::try_from(n) {
        Ok(n) if n <= 1_000_000 => Some(n),
        _ => {
            w.error(v.span(), format!("`{key}` must be at most 1000000"));
            None
        }
    }
}

fn storage_key(w: &mut Walker<'_>, key: &str, v: &Val<'_>, cfg: &mut Config, spans: &mut Spans) {
    let st = &mut cfg.storage;
    match key {
        "format" => match w.string(key, v).as_deref() {
            Some("maildir") => st.format = StorageFormat::Maildir,
            Some("mbox") => st.format = StorageFormat::Mbox,
            Some(f) => {
                spans.format_refused = true;
                if matches!(f, "mdbox" | "sdbox" | "dbox" | "imapc" | "obox") {
                    w.error(
                        v.span(),
                        format!(
                            "storage format {f:?} is not yet supported \
                             (only \"maildir\" and \"mbox\")"
                        ),
                    );
                } else {
                    w.error(
                        v.span(),
                        format!("unknown storage format {f:?} (supported: \"maildir\", \"mbox\")"),
                    );
                }
            }
            None => spans.format_refused = true,
        },
        "location" | "inbox" => {
            if let Some(t) = w.string(key, v) {
                match location_template(w, &t) {
                    Ok(l) if key == "location" => st.location = l,
                    Ok(l) => st.inbox = Some(l),
                    Err(e) => w.error(v.span(), format!("`{key}`: {e}")),
                }
            }
        }
        "mbox_read_locks" => set(&mut st.mbox.read_locks, mbox_locks(w, key, v)),
        "mbox_write_locks" => set(&mut st.mbox.write_locks, mbox_locks(w, key, v)),
        "mbox_lock_timeout" => set(&mut st.mbox.lock_timeout, nonzero(w, key, v)),
        "mbox_dotlock_stale" => set(&mut st.mbox.dotlock_stale, nonzero(w, key, v)),
        "mbox_write_headers" => set(&mut st.mbox.write_headers, w.boolean(key, v)),
        "fsync" => match w.string(key, v).as_deref() {
            Some("always") => st.fsync = FsyncMode::Always,
            Some("optimized") => st.fsync = FsyncMode::Optimized,
            Some("never") => st.fsync = FsyncMode::Never,
            Some(f) => w.error(
                v.span(),
                format!("`fsync` must be \"always\", \"optimized\" or \"never\", not {f:?}"),
            ),
            None => {}
        },
        "lock_method" => match w.string(key, v).as_deref() {
            Some("fcntl") => st.lock_method = LockMethod::Fcntl,
            Some("flock") => st.lock_method = LockMethod::Flock,
            Some("dotlock") => st.lock_method = LockMethod::Dotlock,
            Some(f) => w.error(
                v.span(),
                format!("`lock_method` must be \"fcntl\", \"flock\" or \"dotlock\", not {f:?}"),
            ),
            None => {}
        },
        "nfs" => set(&mut st.nfs, w.boolean(key, v)),
        "maildir_flag_sync" => match w.string(key, v).as_deref() {
            Some("lazy") => st.maildir_flag_sync = crate::config::MaildirFlagSync::Lazy,
            Some("immediate") => st.maildir_flag_sync = crate::config::MaildirFlagSync::Immediate,
            Some(f) => w.error(
                v.span(),
                format!("`maildir_flag_sync` must be \"lazy\" or \"immediate\", not {f:?}"),
            ),
            None => {}
        },
        "cache_drop_days" => {
            if let Some(n) = w.uint(key, v, 1) {
                match u32::try_from(n) {
                    Ok(d) if d <= 36_500 => st.cache_drop_days = d,
                    _ => w.error(
                        v.span(),
                        "`cache_drop_days` must be at most 36500".to_string(),
                    ),
                }
            }
        }
        _ => set(&mut st.autocreate_special_use, w.boolean(key, v)),
    }
}

/// mbox lock methods, taken in the order written: a non-empty array of known names,
/// each once.
fn mbox_locks(w: &mut Walker<'_>, key: &str, v: &Val<'_>) -> Option<Vec<MboxLock>> {
    let known = MboxLock::ALL.map(|m| (m.name(), m));
    let what = ("lock method", "[\"dotlock\", \"fcntl\"]");
    let locks = known_list(w, key, v, what, &known, false)?;
    if locks.is_empty() {
        let names = MboxLock::ALL.map(MboxLock::name);
        w.error(
            v.span(),
            format!(
                "`{key}` must name at least one lock method ({})",
                names.join(", ")
            ),
        );
        return None;
    }
    Some(locks)
}

/// Why a mail location template was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum TemplateError {
    #[error("must not be empty")]
    Empty,
    #[error("unknown variable %{0} (use %u, %n, %d, %h or %%)")]
    UnknownVariable(char),
    #[error("ends with a lone %")]
    LonePercent,
    #[error("contains none of %u, %n, %h: every user would share one mail store")]
    NotPerUser,
}

/// Checks a mail location template and resolves it: `~/x` means `%h/x`; templates
/// starting with `%` (home-based) are kept; other relative ones join the config folder.
pub(super) fn location_template(w: &Walker<'_>, t: &str) -> Result<String, TemplateError> {
    let t = match t.strip_prefix("~/") {
        Some(rest) => format!("%h/{rest}"),
        None => t.to_string(),
    };
    if t.is_empty() {
        return Err(TemplateError::Empty);
    }
    let mut chars = t.chars();
    let mut per_user = false;
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('u' | 'n' | 'h') => per_user = true,
                Some('d' | '%') => {}
                Some(o) => return Err(TemplateError::UnknownVariable(o)),
                None => return Err(TemplateError::LonePercent),
            }
        }
    }
    if !per_user {
        return Err(TemplateError::NotPerUser);
    }
    if t.starts_with('%') || Path::new(&t).is_absolute() {
        Ok(t)
    } else {
        Ok(w.resolve(Path::new(&t)).to_string_lossy().into_owned())
    }
}

fn log_key(w: &mut Walker<'_>, key: &str, v: &Val<'_>, cfg: &mut Config) {
    if let Some(level) = w.string(key, v) {
        match tracing_subscriber::EnvFilter::builder().parse(&level) {
            Ok(_) => cfg.log.level = level,
            Err(e) => w.error(v.span(), format!("`level`: bad log filter {level:?}: {e}")),
        }
    }
}

pub(super) fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}
