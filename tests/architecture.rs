//! The layers of docs/architecture.md ("Direction of dependencies"), checked on the source:
//! every `crate::<module>` a file of `src/` names (in a path or a `use crate::{…}` group)
//! must be one its top-level module may depend on (ALLOWED), and never one of the
//! edges issue 11 forbids (FORBIDDEN: no exception can excuse those). A new edge fails
//! this test with the file and line; an edge that goes back up would be listed in
//! `EXCEPTIONS` with the reason, and an exception that is no longer used fails too, so
//! the list only shrinks (it is empty). Limit: paths are seen when they start at
//! `crate::`; a `super::super::…` chain climbing out of a top-level module is not
//! resolved (none does today).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each module of the library may name (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("beneath", &[]),
    ("durability", &[]),
    ("quirks", &[]),
    ("config", &["durability", "quirks"]),
    ("index", &["beneath", "durability"]),
    ("mailbox", &["index", "config", "beneath", "durability"]),
    ("auth", &["config"]),
    ("tls", &["config"]),
    ("net", &[]),
    ("imap", &["auth", "config", "mailbox", "net", "quirks"]),
    ("pop3", &["auth", "config", "mailbox", "net", "quirks"]),
    (
        "server",
        &[
            "auth", "config", "imap", "mailbox", "net", "pop3", "tls", "quirks",
        ],
    ),
];

/// Edges that must never appear, whatever ALLOWED or EXCEPTIONS say (issue 11): the
/// protocols and the layers under them stay apart.
const FORBIDDEN: &[(&str, &[&str], &str)] = &[
    (
        "pop3",
        &["imap", "server"],
        "POP3 shares only what is in net",
    ),
    (
        "imap",
        &["pop3", "server"],
        "the server builds sessions, not the reverse",
    ),
    (
        "mailbox",
        &["imap", "pop3", "server", "net"],
        "storage knows no protocol",
    ),
    (
        "index",
        &["imap", "pop3", "server", "net", "mailbox", "config"],
        "the index engine is generic",
    ),
    (
        "config",
        &[
            "imap", "pop3", "server", "net", "index", "mailbox", "auth", "tls",
        ],
        "config names no protocol or engine",
    ),
    (
        "net",
        &["imap", "pop3", "server"],
        "net is under both protocols",
    ),
];

/// Edges that break the layering today, each with why; an unused one fails the test, so
/// the list only shrinks. None are left.
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None`: a crate root).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "privilege")).then(|| name.to_string())
}

/// Every module named after `crate::` on a line (comments removed), including each
/// first name of a `crate::{a::b, c}` group.
fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            out.extend(group_heads(group));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
    }
    out
}

/// The first name of each item of a `{a::b, c::{d, e}}` group (`group` starts after the
/// opening brace); nested groups are skipped.
fn group_heads(group: &str) -> Vec<String> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, true);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && (c.is_alphanumeric() || c == '_') => {
                let name: String = group[i..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(name);
                start = false;
            }
            _ => {}
        }
    }
    out
}

fn is_forbidden(from: &str, to: &str) -> bool {
    FORBIDDEN
        .iter()
        .any(|(a, bs, _)| *a == from && bs.contains(&to))
}

/// Every layering problem in `files` (file name, top-level module, text).
fn check(files: &[(String, String, String)], exceptions: &[(&str, &str, &str)]) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut used_exceptions = BTreeSet::new();
    let mut wrong = Vec::new();
    for (file, top, text) in files {
        let Some(ok) = allowed.get(top.as_str()) else {
            wrong.push(format!("{file}: module `{top}` is not in ALLOWED"));
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for to in named_modules(line) {
                let forbidden = is_forbidden(top, &to);
                if to == *top || (ok.contains(&to.as_str()) && !forbidden) {
                    continue;
                }
                let exception = exceptions.iter().find(|(a, b, _)| *a == top && *b == to);
                match exception.filter(|_| !forbidden) {
                    Some(e) => {
                        used_exceptions.insert((e.0, e.1));
                    }
                    None => wrong.push(format!(
                        "{file}:{}: `{top}` names `crate::{to}`, which it may not depend on{}",
                        n + 1,
                        if forbidden { " (a forbidden edge)" } else { "" }
                    )),
                }
            }
        }
    }
    for (a, b, why) in exceptions {
        if !used_exceptions.contains(&(*a, *b)) {
            wrong.push(format!(
                "exception {a} -> {b} ({why}) is no longer used: remove it from EXCEPTIONS"
            ));
        }
    }
    wrong
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    let files: Vec<(String, String, String)> = paths
        .iter()
        .filter_map(|p| {
            let top = top_module(&src, p)?;
            Some((
                p.display().to_string(),
                top,
                std::fs::read_to_string(p).unwrap(),
            ))
        })
        .collect();
    assert!(files.len() > 100, "the scan found the sources");
    let wrong = check(&files, EXCEPTIONS);
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn allowed_never_grants_a_forbidden_edge() {
    for (from, tos) in ALLOWED {
        for to in *tos {
            assert!(!is_forbidden(from, to), "ALLOWED grants {from} -> {to}");
        }
    }
}

fn planted(top: &str, text: &str) -> Vec<(String, String, String)> {
    vec![(
        format!("src/{top}/planted.rs"),
        top.to_string(),
        text.to_string(),
    )]
}

#[test]
fn a_planted_bad_import_is_caught() {
    for (top, line) in [
        ("pop3", "use crate::imap::session::wire::Frame;"),
        ("pop3", "let x = crate::server::start;"),
        ("imap", "use crate::{mailbox::Store, server::Slots};"),
        ("mailbox", "use crate::imap::response::quoted;"),
        ("index", "use crate::config::FsyncMode;"),
        ("index", "use crate::mailbox::Flags;"),
        ("config", "pub f: crate::pop3::command::Command,"),
        ("config", "use crate::index::Index;"),
        ("net", "use crate::imap::command::Tag;"),
        ("net", "fn f(_: crate::pop3::session::Session) {}"),
    ] {
        let wrong = check(&planted(top, line), &[]);
        assert_eq!(wrong.len(), 1, "{top}: {line} not caught: {wrong:?}");
        assert!(wrong[0].contains("forbidden"), "{wrong:?}");
    }
    // An exception cannot excuse a forbidden edge ...
    let wrong = check(
        &planted("pop3", "use crate::imap::X;"),
        &[("pop3", "imap", "planted")],
    );
    assert!(wrong.iter().any(|w| w.contains("forbidden")), "{wrong:?}");
    // ... but does excuse an edge that is only not allowed, and one unused fails.
    assert!(check(&planted("auth", "use crate::mailbox::X;"), &[]).len() == 1);
    assert!(check(
        &planted("auth", "use crate::mailbox::X;"),
        &[("auth", "mailbox", "planted")]
    )
    .is_empty());
    assert_eq!(
        check(&planted("auth", ""), &[("auth", "mailbox", "planted")]).len(),
        1
    );
    // Allowed edges and comments pass.
    assert!(check(
        &planted("pop3", "use crate::net::Conn; // crate::imap"),
        &[]
    )
    .is_empty());
}

#[test]
fn the_scanner_sees_paths_and_groups() {
    assert_eq!(named_modules("use crate::mailbox::Error;"), ["mailbox"]);
    assert_eq!(
        named_modules("use crate::{config::Config, index::{self, X}};"),
        ["config", "index"]
    );
    assert_eq!(
        named_modules("let x = crate::server::wait(); // crate::imap"),
        ["server"]
    );
    assert!(named_modules("no paths here").is_empty());
}

/// The storage backends own only their on-disk format: neither names the other (what
/// they share lives in `mailbox` itself or under it).
#[test]
fn backends_do_not_name_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/mailbox");
    let mut bad = Vec::new();
    for (dir, other) in [("maildir", "mbox"), ("mbox", "maildir")] {
        let mut files = Vec::new();
        rust_files(&src.join(dir), &mut files);
        assert!(!files.is_empty(), "no files under src/mailbox/{dir}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if code.contains(&format!("{other}::")) {
                    bad.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "a backend names the other:\n{}",
        bad.join("\n")
    );
}
