//! RFC 5322 §3.4 address lists (with the obsolete forms of §4.4: routes, phrases with dots,
//! comments as display names) parsed into the shape IMAP's ENVELOPE wants.
//!
//! The parser is forgiving: it never fails, it only produces the best reading it can.
//! Choices (modelled on Dovecot's envelope output):
//! * a group `name: a, b;` yields a start marker (mailbox = group name, no host), its
//!   members, and an end marker (all fields absent); an unterminated group is closed at the
//!   end of the list;
//! * an address without `@` gets host `MISSING_DOMAIN`; an empty local part (`<>`,
//!   `<@host:>`) gets mailbox `MISSING_MAILBOX`; a route without colon (`<@host>`) is
//!   `INVALID_ROUTE` with both missing markers;
//! * `addr@host (Comment)` without angle brackets uses the comment as display name;
//! * display names are the raw phrase (quotes removed, encoded words left as they are);
//! * a quoted local part is given unquoted (its content, escapes resolved).
//!
//! These choices were checked against Dovecot 2.3 by `tests/dovecot_diff.rs`.

/// One ENVELOPE address (RFC 3501 §7.4.2: addr-name, addr-adl, addr-mailbox, addr-host).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Address {
    pub name: Option<Vec<u8>>,
    pub adl: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
}

pub const MISSING_DOMAIN: &[u8] = b"MISSING_DOMAIN";
pub const MISSING_MAILBOX: &[u8] = b"MISSING_MAILBOX";
pub const INVALID_ROUTE: &[u8] = b"INVALID_ROUTE";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// An atom or domain literal.
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    Special(u8),
}

/// Tokenizes; comments are dropped from the stream but the first one is returned.
fn tokenize(s: &[u8]) -> (Vec<Tok>, Vec<Option<Vec<u8>>>) {
    let mut toks = Vec::new();
    // For each token, the comment that followed it (used for `a@b (Name)`).
    let mut comments: Vec<Option<Vec<u8>>> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                let mut depth = 0usize;
                let start = i + 1;
                let mut end = s.len();
                while i < s.len() {
                    match s[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i;
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                if let Some(last) = comments.last_mut() {
                    if last.is_none() {
                        let text = s.get(start..end.min(s.len())).unwrap_or(&[]);
                        *last = Some(super::header::unfold(text));
                    }
                }
            }
            b'"' => {
                let mut q = Vec::new();
                i += 1;
                while i < s.len() {
                    match s[i] {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' if i + 1 < s.len() => {
                            q.push(s[i + 1]);
                            i += 1;
                        }
                        b'\r' | b'\n' => {}
                        x => q.push(x),
                    }
                    i += 1;
                }
                toks.push(Tok::Quoted(q));
                comments.push(None);
            }
            b'[' => {
                let end = memchr::memchr(b']', &s[i..]).map_or(s.len(), |n| i + n + 1);
                toks.push(Tok::Atom(s[i..end].to_vec()));
                comments.push(None);
                i = end;
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b'.' => {
                toks.push(Tok::Special(c));
                comments.push(None);
                i += 1;
            }
            _ => {
                let start = i;
                while i < s.len()
                    && !matches!(
                        s[i],
                        b' ' | b'\t'
                            | b'\r'
                            | b'\n'
                            | b'('
                            | b'"'
                            | b'['
                            | b'<'
                            | b'>'
                            | b'@'
                            | b','
                            | b';'
                            | b':'
                            | b'.'
                    )
                {
                    i += 1;
                }
                toks.push(Tok::Atom(s[start..i].to_vec()));
                comments.push(None);
            }
        }
    }
    (toks, comments)
}

/// Display-name phrase: words joined by single spaces; specials such as the dots of an
/// obs-phrase (`John Q. Public`) are kept where they are.
fn phrase(toks: &[Tok]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in toks {
        match t {
            Tok::Atom(w) | Tok::Quoted(w) => {
                if !out.is_empty() {
                    out.push(b' ');
                }
                out.extend_from_slice(w);
            }
            Tok::Special(c) => out.push(*c),
        }
    }
    out
}

/// addr-spec tokens -> (local part, domain).
fn addr_spec(toks: &[Tok]) -> (Vec<u8>, Option<Vec<u8>>) {
    let at = toks.iter().rposition(|t| *t == Tok::Special(b'@'));
    let (local_toks, domain_toks) = match at {
        Some(a) => (&toks[..a], Some(&toks[a + 1..])),
        None => (toks, None),
    };
    let mut local = Vec::new();
    for (n, t) in local_toks.iter().enumerate() {
        match t {
            Tok::Atom(w) => {
                if n > 0 && !matches!(local_toks[n - 1], Tok::Special(_)) {
                    local.push(b' ');
                }
                local.extend_from_slice(w)
            }
            // The content of a quoted local part, unquoted and unescaped, as Dovecot reports
            // it (RFC 3501 §7.4.2 only says "mailbox name"): `"john doe"@x` -> `john doe`.
            Tok::Quoted(q) => local.extend_from_slice(q),
            Tok::Special(c) => local.push(*c),
        }
    }
    let domain = domain_toks.map(|d| {
        d.iter()
            .flat_map(|t| match t {
                Tok::Atom(w) | Tok::Quoted(w) => w.clone(),
                Tok::Special(c) => vec![*c],
            })
            .collect()
    });
    (local, domain)
}

fn finish(
    name: Option<Vec<u8>>,
    adl: Option<Vec<u8>>,
    local: Vec<u8>,
    dom: Option<Vec<u8>>,
) -> Address {
    Address {
        name: name.filter(|n| !n.is_empty()),
        adl: adl.filter(|a| !a.is_empty()),
        mailbox: Some(if local.is_empty() {
            MISSING_MAILBOX.to_vec()
        } else {
            local
        }),
        host: Some(match dom {
            Some(d) if !d.is_empty() => d,
            _ => MISSING_DOMAIN.to_vec(),
        }),
    }
}

/// One mailbox (`name-addr` or `addr-spec`); `None` for an empty unit.
fn mailbox(toks: &[Tok], comments: &[Option<Vec<u8>>]) -> Option<Address> {
    if toks.is_empty() {
        return None;
    }
    if let Some(lt) = toks.iter().position(|t| *t == Tok::Special(b'<')) {
        let name = phrase(&toks[..lt]);
        let gt = toks[lt..]
            .iter()
            .position(|t| *t == Tok::Special(b'>'))
            .map_or(toks.len(), |g| lt + g);
        let mut inner = &toks[lt + 1..gt];
        // obs-route: "@a,@b:" before the addr-spec.
        let mut adl = None;
        if inner.first() == Some(&Tok::Special(b'@')) {
            let Some(colon) = inner.iter().position(|t| *t == Tok::Special(b':')) else {
                // `<@host>`: a route without its colon and no addr-spec. Dovecot reports
                // it as (NIL "INVALID_ROUTE" "MISSING_MAILBOX" "MISSING_DOMAIN").
                return Some(Address {
                    name: Some(name).filter(|n| !n.is_empty()),
                    adl: Some(INVALID_ROUTE.to_vec()),
                    mailbox: Some(MISSING_MAILBOX.to_vec()),
                    host: Some(MISSING_DOMAIN.to_vec()),
                });
            };
            adl = Some(
                phrase(&inner[..colon])
                    .into_iter()
                    .filter(|&c| c != b' ')
                    .collect(),
            );
            inner = &inner[colon + 1..];
        }
        let (local, dom) = addr_spec(inner);
        return Some(finish(Some(name), adl, local, dom));
    }
    let (local, dom) = addr_spec(toks);
    let comment = comments.iter().rev().flatten().next().cloned();
    Some(finish(comment, None, local, dom))
}

/// Parses an address-list header value.
pub fn parse_list(value: &[u8]) -> Vec<Address> {
    let (toks, comments) = tokenize(value);
    let mut out = Vec::new();
    let mut in_group = false;
    let mut angle = false;
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Special(b'<') => angle = true,
            Tok::Special(b'>') => angle = false,
            Tok::Special(b',') if !angle => {
                out.extend(mailbox(&toks[start..i], &comments[start..i]));
                start = i + 1;
            }
            Tok::Special(b':') if !angle && !in_group => {
                out.push(Address {
                    mailbox: Some(phrase(&toks[start..i])),
                    ..Address::default()
                });
                in_group = true;
                start = i + 1;
            }
            Tok::Special(b';') if !angle && in_group => {
                out.extend(mailbox(&toks[start..i], &comments[start..i]));
                out.push(Address::default());
                in_group = false;
                start = i + 1;
            }
            _ => {}
        }
    }
    out.extend(mailbox(
        &toks[start.min(toks.len())..],
        &comments[start.min(comments.len())..],
    ));
    if in_group {
        out.push(Address::default());
    }
    out
}

/// The address header as searchable text: each address as `name <mailbox@host>`.
pub fn search_text(value: &[u8]) -> String {
    addresses_text(&parse_list(value))
}

/// Addresses as searchable text: `name <mailbox@host> ` each, the name decoded; a group
/// start as `group: `.
pub fn addresses_text(list: &[Address]) -> String {
    let mut s = String::new();
    for a in list {
        if let Some(n) = &a.name {
            s.push_str(&super::encoded_word::decode_header(n));
            s.push(' ');
        }
        if let (Some(m), Some(h)) = (&a.mailbox, &a.host) {
            s.push('<');
            s.push_str(&String::from_utf8_lossy(m));
            s.push('@');
            s.push_str(&String::from_utf8_lossy(h));
            s.push_str("> ");
        } else if let Some(m) = &a.mailbox {
            s.push_str(&String::from_utf8_lossy(m));
            s.push_str(": ");
        }
    }
    s
}

#[cfg(test)]
mod tests;
