//! Commands about mailboxes as a whole: SELECT/EXAMINE, CREATE, DELETE, RENAME,
//! SUBSCRIBE/UNSUBSCRIBE, LIST/LSUB (with the RFC 5258 forms clients use for RFC 6154
//! SPECIAL-USE), STATUS, CLOSE/UNSELECT.
//!
//! Names arrive in modified UTF-7 (RFC 3501 §5.1.3) and are handed to the store as UTF-8.

use std::collections::BTreeSet;

use super::view::View;
use super::{blocking, Session, Status, SMALL_MAILBOX};
use crate::imap::command::{ListOptions, StatusItem};
use crate::imap::response::push_string;
use crate::imap::response::{push_untagged_ok, ResponseCode};
use crate::mailbox::{self, utf7, MailboxEntry, SEPARATOR};
use crate::net::Cost;

/// Longest mailbox name or LIST pattern we look at.
const MAX_NAME: usize = 1024;

/// A LIST runs in place when the store's last listing found at most this many mailboxes
/// (a `stat` of each: well under a millisecond); the first LIST of a session, and any of
/// a bigger tree, leave the async thread ([`crate::net::storage`]).
const SMALL_LISTING: usize = 200;

impl Session {
    /// Wire name (modified UTF-7) → store name (UTF-8, INBOX normalised).
    pub(super) fn mailbox_name(&self, wire: &str) -> Result<String, Status> {
        if wire.len() > MAX_NAME {
            return Err(Status::no_code(
                ResponseCode::Cannot,
                "Mailbox name too long.",
            ));
        }
        match utf7::decode(wire) {
            Some(name) => Ok(mailbox::normalize_name(&name)),
            None => Err(Status::no_code(
                ResponseCode::Cannot,
                "Mailbox name is not valid modified UTF-7.",
            )),
        }
    }

    /// The user's store; every authenticated state has one.
    pub(super) fn user_store(&self) -> Result<std::sync::Arc<dyn mailbox::Store>, Status> {
        self.store
            .clone()
            .ok_or_else(|| Status::bad("Please log in first."))
    }

    /// The decoded name of a mailbox argument and the user's store.
    fn target(&self, wire: &str) -> Result<(String, std::sync::Arc<dyn mailbox::Store>), Status> {
        Ok((self.mailbox_name(wire)?, self.user_store()?))
    }

    pub(super) fn select(&mut self, wire: &str, read_only: bool) -> Status {
        // RFC 3501 §6.3.1: a SELECT, even a failing one, first deselects.
        self.deselect();
        let (name, store) = match self.target(wire) {
            Ok(t) => t,
            Err(s) => return s,
        };
        let opened = blocking(|| {
            store
                .open(&name, read_only)
                .and_then(|mb| View::open(mb, read_only))
        });
        let view = match opened {
            Ok(v) => v,
            Err(e) => return self.storage_error("select", &e),
        };
        let out = &mut self.conn.out;
        view.flags_lines(out);
        out.extend_from_slice(format!("* {} EXISTS\r\n", view.exists()).as_bytes());
        out.extend_from_slice(format!("* {} RECENT\r\n", view.recent_count()).as_bytes());
        if let Some(i) = view.first_unseen() {
            let unseen = u32::try_from(i + 1).unwrap_or(u32::MAX);
            push_untagged_ok(out, &ResponseCode::Unseen(unseen), "First unseen.");
        }
        push_untagged_ok(
            out,
            &ResponseCode::UidValidity(view.uid_validity),
            "UIDs valid",
        );
        push_untagged_ok(
            out,
            &ResponseCode::UidNext(view.uid_next),
            "Predicted next UID",
        );
        let code = if read_only {
            ResponseCode::ReadOnly
        } else {
            ResponseCode::ReadWrite
        };
        self.view = Some(view);
        Status::ok_code(
            code,
            if read_only {
                "Examine completed."
            } else {
                "Select completed."
            },
        )
    }

    pub(super) fn create(&mut self, wire: &str) -> Status {
        let name = match self.mailbox_name(wire) {
            Ok(n) => n,
            Err(s) => return s,
        };
        if name.is_empty() {
            return Status::no_code(ResponseCode::Cannot, "Empty mailbox name.");
        }
        let store = match self.user_store() {
            Ok(s) => s,
            Err(s) => return s,
        };
        match blocking(|| store.create(&name, None)) {
            Ok(()) => Status::ok("Create completed."),
            Err(e) => self.storage_error("create", &e),
        }
    }

    pub(super) fn delete(&mut self, wire: &str) -> Status {
        let (name, store) = match self.target(wire) {
            Ok(t) => t,
            Err(s) => return s,
        };
        match blocking(|| store.delete(&name)) {
            Ok(()) => Status::ok("Delete completed."),
            Err(e) => self.storage_error("delete", &e),
        }
    }

    pub(super) fn rename(&mut self, from: &str, to: &str) -> Status {
        let (from, to) = match (self.mailbox_name(from), self.mailbox_name(to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(s), _) | (_, Err(s)) => return s,
        };
        if to.is_empty() {
            return Status::no_code(ResponseCode::Cannot, "Empty mailbox name.");
        }
        let store = match self.user_store() {
            Ok(s) => s,
            Err(s) => return s,
        };
        match blocking(|| store.rename(&from, &to)) {
            Ok(()) => Status::ok("Rename completed."),
            Err(e) => self.storage_error("rename", &e),
        }
    }

    pub(super) fn subscribe(&mut self, wire: &str, on: bool) -> Status {
        let (name, store) = match self.target(wire) {
            Ok(t) => t,
            Err(s) => return s,
        };
        match blocking(|| store.set_subscribed(&name, on)) {
            Ok(()) if on => Status::ok("Subscribe completed."),
            Ok(()) => Status::ok("Unsubscribe completed."),
            Err(e) => self.storage_error("subscribe", &e),
        }
    }

    pub(super) fn list(
        &mut self,
        reference: &str,
        patterns: &[String],
        opts: &ListOptions,
    ) -> Status {
        // RFC 3501 §6.3.8: an empty pattern asks for the hierarchy delimiter.
        if patterns.len() == 1 && patterns[0].is_empty() && !opts.extended {
            self.conn
                .out
                .extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            return Status::ok("List completed.");
        }
        let store = match self.user_store() {
            Ok(s) => s,
            Err(s) => return s,
        };
        let cost = Cost::small_if(store.list_is_small(SMALL_LISTING));
        let listed = crate::net::storage(cost, || {
            let entries = store.list()?;
            let subs = if opts.select_subscribed || opts.return_subscribed {
                store.subscriptions()?
            } else {
                Vec::new()
            };
            Ok::<_, mailbox::Error>((entries, subs))
        });
        let (mut entries, subs) = match listed {
            Ok(x) => x,
            Err(e) => return self.storage_error("list", &e),
        };
        let subs: BTreeSet<String> = subs.into_iter().collect();
        if opts.select_subscribed {
            // RFC 5258 §3.1: subscribed names are listed even when they no longer exist.
            for s in &subs {
                if !entries.iter().any(|e| &e.name == s) {
                    entries.push(MailboxEntry {
                        name: s.clone(),
                        noselect: true,
                        has_children: false,
                        special_use: None,
                    });
                }
            }
        }
        // INBOX first, then by name, as clients display them.
        entries.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
        let pats: Vec<Vec<char>> = patterns
            .iter()
            .map(|p| canonical_pattern(reference, p))
            .collect();
        for e in &entries {
            if !pats.iter().any(|p| pattern_matches(p, &e.name)) {
                continue;
            }
            let subscribed = subs.contains(&e.name);
            if opts.select_subscribed && !subscribed {
                continue;
            }
            if opts.select_special_use && e.special_use.is_none() {
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            if e.noselect {
                attrs.push("\\Noselect");
            }
            attrs.push(if e.has_children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if subscribed && (opts.return_subscribed || opts.select_subscribed) {
                attrs.push("\\Subscribed");
            }
            if let Some(su) = e.special_use {
                attrs.push(su.attribute());
            }
            self.list_line("LIST", &attrs, &e.name);
        }
        Status::ok("List completed.")
    }

    pub(super) fn lsub(&mut self, reference: &str, pattern: &str) -> Status {
        let store = match self.user_store() {
            Ok(s) => s,
            Err(s) => return s,
        };
        let subs = match blocking(|| store.subscriptions()) {
            Ok(s) => s,
            Err(e) => return self.storage_error("lsub", &e),
        };
        let pat = canonical_pattern(reference, pattern);
        let subs: BTreeSet<String> = subs.into_iter().collect();
        let mut lines: Vec<(String, bool)> = Vec::new();
        for s in &subs {
            if pattern_matches(&pat, s) {
                lines.push((s.clone(), false));
            }
        }
        // RFC 3501 §6.3.9: with `%`, an unsubscribed parent of a subscribed mailbox is listed
        // as \Noselect.
        if pattern.ends_with('%') {
            let mut parents = BTreeSet::new();
            for s in &subs {
                let mut prefix = String::new();
                for (i, part) in s.split(SEPARATOR).enumerate() {
                    if i > 0 {
                        parents.insert(prefix.clone());
                        prefix.push(SEPARATOR);
                    }
                    prefix.push_str(part);
                }
            }
            for p in parents {
                if !subs.contains(&p) && pattern_matches(&pat, &p) {
                    lines.push((p, true));
                }
            }
        }
        lines.sort();
        for (name, noselect) in lines {
            let attrs: &[&str] = if noselect { &["\\Noselect"] } else { &[] };
            self.list_line("LSUB", attrs, &name);
        }
        Status::ok("Lsub completed.")
    }

    fn list_line(&mut self, kind: &str, attrs: &[&str], name: &str) {
        let out = &mut self.conn.out;
        out.extend_from_slice(format!("* {} ({}) \"/\" ", kind, attrs.join(" ")).as_bytes());
        push_string(out, utf7::encode(name).as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    pub(super) fn status(&mut self, wire: &str, items: &[StatusItem]) -> Status {
        let (name, store) = match self.target(wire) {
            Ok(t) => t,
            Err(s) => return s,
        };
        // Sizes a store computes on first need are computed only for STATUS SIZE.
        let size = items.contains(&StatusItem::Size);
        let cost = Cost::small_if(store.status_is_small(&name, SMALL_MAILBOX as usize, size));
        let st = match crate::net::storage(cost, || store.status_sized(&name, size)) {
            Ok(st) => st,
            Err(e) => return self.storage_error("status", &e),
        };
        let parts: Vec<String> = items
            .iter()
            .map(|item| match item {
                StatusItem::Messages => format!("MESSAGES {}", st.messages),
                StatusItem::Recent => format!("RECENT {}", st.recent),
                StatusItem::UidNext => format!("UIDNEXT {}", st.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", st.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", st.unseen),
                StatusItem::Size => format!("SIZE {}", st.size),
            })
            .collect();
        let out = &mut self.conn.out;
        out.extend_from_slice(b"* STATUS ");
        push_string(out, utf7::encode(&name).as_bytes());
        out.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Status::ok("Status completed.")
    }

    /// CLOSE (expunging silently, RFC 3501 §6.4.2) or UNSELECT (RFC 3691).
    pub(super) fn close(&mut self, expunge: bool) -> Status {
        let Some(mut view) = self.view.take() else {
            return Status::bad("No mailbox selected.");
        };
        if expunge && !view.read_only {
            if let Err(e) = blocking(|| view.mailbox.expunge(None)) {
                return self.storage_error("close", &e);
            }
        }
        blocking(|| view.mailbox.close());
        Status::ok(if expunge {
            "Close completed."
        } else {
            "Unselect completed."
        })
    }
}

/// Reference + pattern, as UTF-8 chars, with a leading INBOX case-folded.
fn canonical_pattern(reference: &str, pattern: &str) -> Vec<char> {
    let joined = format!("{reference}{pattern}");
    let joined = utf7::decode(&joined).unwrap_or(joined);
    let head_len = joined.find(SEPARATOR).unwrap_or(joined.len());
    let fixed = if joined[..head_len].eq_ignore_ascii_case("INBOX") {
        format!("INBOX{}", &joined[head_len..])
    } else {
        joined
    };
    fixed.chars().take(MAX_NAME).collect()
}

/// LIST wildcard matching (RFC 3501 §6.3.8): `*` matches anything, `%` anything but the
/// separator. Dynamic programming, so hostile patterns cannot blow up.
fn pattern_matches(pattern: &[char], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let n = name.len();
    // dp[j]: pattern prefix matches name[..j]
    let mut dp = vec![false; n + 1];
    dp[0] = true;
    for &p in pattern {
        let mut next = vec![false; n + 1];
        match p {
            '*' | '%' => {
                let mut reach = false;
                for j in 0..=n {
                    if dp[j] {
                        reach = true;
                    }
                    next[j] = reach;
                    if p == '%' && j < n && name[j] == SEPARATOR {
                        reach = false;
                    }
                }
            }
            c => {
                for j in 0..n {
                    if dp[j] && name[j] == c {
                        next[j + 1] = true;
                    }
                }
            }
        }
        dp = next;
    }
    dp[n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        pattern_matches(&canonical_pattern("", p), n)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "INBOX"));
        assert!(m("*", "a/b/c"));
        assert!(m("%", "a"));
        assert!(!m("%", "a/b"));
        assert!(m("a/%", "a/b"));
        assert!(!m("a/%", "a/b/c"));
        assert!(m("a/*", "a/b/c"));
        assert!(m("inbox", "INBOX"));
        assert!(m("Inbox/%", "INBOX/x"));
        assert!(!m("a", "ab"));
        assert!(m("a%b", "axxb"));
        assert!(!m("a%b", "ax/xb"));
        assert!(m("a*b", "ax/xb"));
        assert!(m(&"*".repeat(500), "x"));
    }
}
