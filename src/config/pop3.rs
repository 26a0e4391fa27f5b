//! The `[pop3]` section: its keys and their checks. Value syntax is the walker's; the
//! workaround names belong to the `quirks` leaf, which this only calls to validate; the
//! UIDL format syntax is `config::uidl`.

use std::time::Duration;

use toml::de::DeValue;

use super::load::{nonzero, set};
use super::walk::{Val, Walker};
use super::Config;
use crate::quirks::{Protocol, Quirk, QuirkSet};

pub(super) const KEYS: &[&str] = &[
    "listen",
    "listen_tls",
    "workarounds",
    "uidl_format",
    "lock_mailbox",
    "login_timeout",
    "autologout",
    "max_line_length",
    "login_delay",
];

/// RFC 1939 §3: "the autologout timer MUST be of at least 10 minutes' duration".
const MIN_AUTOLOGOUT: Duration = Duration::from_secs(10 * 60);

pub(super) fn key(w: &mut Walker<'_>, key: &str, v: &Val<'_>, cfg: &mut Config) {
    let p = &mut cfg.pop3;
    match key {
        "listen" => set(
            &mut p.listen,
            w.addrs(key, v)
                .map(|a| a.into_iter().map(|(a, _)| a).collect()),
        ),
        "listen_tls" => set(
            &mut p.listen_tls,
            w.addrs(key, v)
                .map(|a| a.into_iter().map(|(a, _)| a).collect()),
        ),
        "workarounds" => set(&mut p.workarounds, workarounds(w, key, v)),
        "uidl_format" => {
            if let Some(s) = w.string(key, v) {
                match super::uidl::UidlFormat::parse(&s) {
                    Ok(f) => p.uidl_format = f,
                    Err(e) => w.error(v.span(), format!("`uidl_format` {s:?}: {e}")),
                }
            }
        }
        "lock_mailbox" => set(&mut p.lock_mailbox, w.boolean(key, v)),
        "login_timeout" => set(&mut p.login_timeout, nonzero(w, key, v)),
        "autologout" => {
            if let Some(d) = w.duration(key, v) {
                if d < MIN_AUTOLOGOUT {
                    w.error(
                        v.span(),
                        "`autologout` must be at least 10m (RFC 1939 section 3)",
                    );
                } else {
                    p.autologout = d;
                }
            }
        }
        // RFC 2449 §4: command lines are up to 255 octets; SASL needs more.
        "max_line_length" => set(
            &mut p.max_line_length,
            w.size(key, v, 512).map(|n| n as usize),
        ),
        _ => {
            if let Some(d) = w.duration(key, v) {
                if d > Duration::from_secs(24 * 3600) {
                    w.error(v.span(), "`login_delay` above 1d locks users out");
                } else {
                    p.login_delay = d;
                }
            }
        }
    }
}

/// An array of workaround names, each checked (with its own position when wrong).
fn workarounds(w: &mut Walker<'_>, key: &str, v: &Val<'_>) -> Option<QuirkSet> {
    let DeValue::Array(items) = v.get_ref() else {
        w.error(
            v.span(),
            format!("`{key}` must be an array of names, e.g. [\"outlook-no-nuls\"]"),
        );
        return None;
    };
    let mut set = QuirkSet::default();
    let mut ok = true;
    for item in items.iter() {
        let Some(name) = w.string(key, item) else {
            ok = false;
            continue;
        };
        match Quirk::from_name(Protocol::Pop3, &name) {
            Ok(q) => set.insert(q),
            Err(e) => {
                w.error(item.span(), format!("`{key}`: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(set)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{load, Config, Diagnostic};
    use crate::quirks::Quirk;

    fn load_str(dir: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
        let p = dir.join("loft.toml");
        std::fs::write(&p, text).unwrap();
        load(&p)
    }

    #[test]
    fn defaults_and_shipped_file() {
        let d = tempfile::tempdir().unwrap();
        let c = load_str(d.path(), "").unwrap();
        assert_eq!(c.pop3.listen, vec!["127.0.0.1:1110".parse().unwrap()]);
        assert_eq!(c.pop3.listen_tls, vec!["127.0.0.1:1995".parse().unwrap()]);
        assert!(c.pop3.lock_mailbox && c.pop3.workarounds.is_empty());
        assert_eq!(c.pop3.uidl_format.render(1, 2), "0000000100000002");
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/loft.toml");
        let shipped = load(&p).unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(shipped.pop3.listen, c.pop3.listen);
        assert_eq!(shipped.pop3.listen_tls, c.pop3.listen_tls);
        assert_eq!(shipped.pop3.autologout, c.pop3.autologout);
        assert_eq!(shipped.pop3.uidl_format, c.pop3.uidl_format);
    }

    #[test]
    fn values_are_read() {
        let d = tempfile::tempdir().unwrap();
        let c = load_str(
            d.path(),
            "[pop3]\nlisten = []\nlisten_tls = \"127.0.0.1:2995\"\n\
             workarounds = [\"outlook-no-nuls\", \"oe-ns-eoh\"]\nuidl_format = \"%v-%u\"\n\
             lock_mailbox = false\nlogin_delay = \"5m\"\nautologout = \"1h\"\n",
        )
        .unwrap();
        assert!(c.pop3.listen.is_empty());
        assert!(c.pop3.workarounds.contains(Quirk::OutlookNoNuls));
        assert!(c.pop3.workarounds.contains(Quirk::OeNsEoh));
        assert_eq!(c.pop3.uidl_format.render(3, 9), "9-3");
        assert!(!c.pop3.lock_mailbox);
        assert_eq!(c.pop3.login_delay, Duration::from_secs(300));
    }

    #[test]
    fn problems_have_positions() {
        let d = tempfile::tempdir().unwrap();
        let text = "[imap]\nlisten = \"127.0.0.1:1143\"\n\n[pop3]\n\
                    listen = \"127.0.0.1:1143\"\n\
                    workarounds = [\"outlook-no-nuls\", \"outlok-no-nuls\"]\n\
                    uidl_format = \"%m\"\n\
                    autologout = \"5m\"\n\
                    max_line_length = 100\n\
                    lock_mailbox = \"yes\"\n\
                    uidl = 1\n";
        let diags = load_str(d.path(), text).unwrap_err();
        let got: Vec<(usize, usize, &str)> = diags
            .iter()
            .map(|d| (d.line, d.col, d.message.as_str()))
            .collect();
        let has = |line: usize, col: usize, part: &str| {
            assert!(
                got.iter()
                    .any(|(l, c, m)| *l == line && *c == col && m.contains(part)),
                "no {line}:{col} {part:?} in {got:#?}"
            )
        };
        has(4, 2, "listed twice");
        has(6, 35, "unknown workaround \"outlok-no-nuls\"");
        has(7, 15, "%m");
        has(8, 14, "at least 10m");
        has(9, 19, "at least 512");
        has(10, 16, "true or false");
        has(11, 1, "did you mean `uidl_format`");
    }
}
