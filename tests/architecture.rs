//! The layers of docs/architecture.md ("Direction of dependencies"), checked on the source:
//! every `crate::<module>` a file of `src/` names (in a path or a `use crate::{…}` group)
//! must be one its top-level module may depend on. A new edge fails this test with the
//! file and line; an edge that goes back up is listed in `EXCEPTIONS` with the reason, and
//! an exception that is no longer used fails too, so the list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each module of the library may name (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("beneath", &[]),
    ("quirks", &[]),
    ("config", &["quirks", "pop3"]),
    ("index", &["beneath"]),
    ("mailbox", &["index", "config", "beneath"]),
    ("auth", &["config"]),
    ("tls", &["config"]),
    ("imap", &["auth", "config", "mailbox", "quirks"]),
    ("pop3", &["auth", "config", "mailbox", "quirks"]),
    (
        "server",
        &["auth", "config", "imap", "pop3", "tls", "quirks"],
    ),
];

/// Edges that break the layering today, each with why; to be removed (issue 11 moves the
/// connection code into a `net` module under both protocols).
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "config",
        "index",
        "[storage] lock_method is parsed into index::LockMethod",
    ),
    (
        "index",
        "config",
        "index re-exports config::FsyncMode as its fsync policy",
    ),
    (
        "imap",
        "server",
        "sessions hold server::{UserIpGuard, ConnSlot} (connection limits)",
    ),
    (
        "pop3",
        "server",
        "sessions hold server::{UserIpGuard, ConnSlot} (connection limits)",
    ),
    (
        "pop3",
        "imap",
        "POP3 reuses imap::session::{wire::Conn, stream::Stream} (should be net)",
    ),
];

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

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut used_exceptions = BTreeSet::new();
    let mut wrong = Vec::new();
    for file in &files {
        let Some(top) = top_module(&src, file) else {
            continue;
        };
        let Some(ok) = allowed.get(top.as_str()) else {
            wrong.push(format!(
                "{}: module `{top}` is not in ALLOWED",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for to in named_modules(line) {
                if to == top || ok.contains(&to.as_str()) {
                    continue;
                }
                match EXCEPTIONS.iter().find(|(a, b, _)| *a == top && *b == to) {
                    Some(e) => {
                        used_exceptions.insert((e.0, e.1));
                    }
                    None => wrong.push(format!(
                        "{}:{}: `{top}` names `crate::{to}`, which it may not depend on",
                        file.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    for (a, b, why) in EXCEPTIONS {
        if !used_exceptions.contains(&(*a, *b)) {
            wrong.push(format!(
                "exception {a} -> {b} ({why}) is no longer used: remove it from EXCEPTIONS"
            ));
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
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
