//! Arguments of the simpler commands: flag lists and STORE, LIST (with RFC 5258/6154
//! extended forms) and STATUS, ID (RFC 2971), ENABLE (RFC 5161), AUTHENTICATE with SASL-IR
//! (RFC 4959).

use super::cursor::{bad, shown, Cursor, PResult};
use crate::imap::command::{Command, ListOptions, StatusItem};
use crate::mailbox::{Flags, StoreOp, SysFlags};

/// RFC 3501 `flag`: a system flag `\Name` or a keyword atom. `\Recent` yields `Ok(false)`:
/// it cannot be stored (RFC 3501 §2.3.2) and is ignored. Other `\Xxx` are refused.
fn flag(c: &mut Cursor<'_>, into: &mut Flags) -> PResult<()> {
    let backslash = c.eat(b'\\');
    let name = c.atom()?;
    if !backslash {
        // Atom chars are ASCII, so this is lossless.
        into.add_keyword(&String::from_utf8_lossy(name));
        return Ok(());
    }
    let text = format!("\\{}", String::from_utf8_lossy(name));
    if text.eq_ignore_ascii_case("\\Recent") {
        return Ok(());
    }
    match SysFlags::from_name(&text) {
        Some(f) => {
            into.sys.insert(f);
            Ok(())
        }
        None => Err(bad(format!("Invalid flag {}", shown(text.as_bytes())))),
    }
}

/// RFC 3501 `flag-list`: `"(" [flag *(SP flag)] ")"`.
pub(super) fn flag_list(c: &mut Cursor<'_>) -> PResult<Flags> {
    c.expect(b'(')?;
    let mut flags = Flags::default();
    if c.eat(b')') {
        return Ok(flags);
    }
    loop {
        flag(c, &mut flags)?;
        if c.eat(b')') {
            return Ok(flags);
        }
        c.sp()?;
    }
}

/// `STORE SP sequence-set SP store-att-flags`; the bare `flag *(SP flag)` form is
/// accepted as well as a flag list.
pub(super) fn store(c: &mut Cursor<'_>, uid: bool) -> PResult<Command> {
    c.sp()?;
    let set = c.seqset()?;
    c.sp()?;
    let item = c.take_while(|b| b.is_ascii_alphabetic() || matches!(b, b'+' | b'-' | b'.'));
    let item = String::from_utf8_lossy(item).to_ascii_uppercase();
    let (op, rest) = match item.as_bytes().first() {
        Some(b'+') => (StoreOp::Add, &item[1..]),
        Some(b'-') => (StoreOp::Remove, &item[1..]),
        _ => (StoreOp::Replace, &item[..]),
    };
    let silent = match rest {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        _ => return Err(bad("Invalid STORE data item")),
    };
    c.sp()?;
    let flags = if c.peek() == Some(b'(') {
        flag_list(c)?
    } else {
        let mut flags = Flags::default();
        flag(c, &mut flags)?;
        while !c.at_end() {
            c.sp()?;
            flag(c, &mut flags)?;
        }
        flags
    };
    Ok(Command::Store {
        uid,
        set,
        op,
        silent,
        flags,
    })
}

/// Reads `"(" [item *(SP item)] ")"` of atoms, handing each (upper-cased) to `each` as soon
/// as it is read, so an unknown item is reported before any syntax that follows it.
fn keyword_list(c: &mut Cursor<'_>, mut each: impl FnMut(String) -> PResult<()>) -> PResult<()> {
    c.expect(b'(')?;
    if c.eat(b')') {
        return Ok(());
    }
    loop {
        each(c.keyword()?)?;
        if c.eat(b')') {
            return Ok(());
        }
        c.sp()?;
    }
}

/// `LIST [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]`
/// (RFC 3501 §6.3.8, RFC 5258 §6, RFC 6154 §6).
pub(super) fn list(c: &mut Cursor<'_>) -> PResult<Command> {
    let mut options = ListOptions::default();
    c.sp()?;
    if c.peek() == Some(b'(') {
        keyword_list(c, |opt| {
            match opt.as_str() {
                "SUBSCRIBED" => options.select_subscribed = true,
                "SPECIAL-USE" => options.select_special_use = true,
                // RFC 5258 §3.1: REMOTE adds remote mailboxes; there are none here.
                "REMOTE" => {}
                _ => {
                    return Err(bad(format!(
                        "Unsupported LIST option {}",
                        shown(opt.as_bytes())
                    )))
                }
            }
            Ok(())
        })?;
        c.sp()?;
    }
    let reference = c.mailbox()?;
    c.sp()?;
    let patterns = if c.eat(b'(') {
        options.extended = true;
        let mut pats = vec![c.list_mailbox()?];
        while !c.eat(b')') {
            c.sp()?;
            pats.push(c.list_mailbox()?);
        }
        pats
    } else {
        vec![c.list_mailbox()?]
    };
    if !c.at_end() {
        c.sp()?;
        if c.keyword()? != "RETURN" {
            return Err(bad("Expected RETURN"));
        }
        c.sp()?;
        keyword_list(c, |opt| {
            match opt.as_str() {
                "SUBSCRIBED" => options.return_subscribed = true,
                "CHILDREN" => options.return_children = true,
                "SPECIAL-USE" => options.return_special_use = true,
                _ => {
                    return Err(bad(format!(
                        "Unsupported LIST RETURN option {}",
                        shown(opt.as_bytes())
                    )))
                }
            }
            Ok(())
        })?;
    }
    Ok(Command::List {
        reference,
        patterns,
        options,
    })
}

/// `STATUS SP mailbox SP "(" status-att *(SP status-att) ")"` (RFC 3501 §6.3.10, RFC 8438).
pub(super) fn status(c: &mut Cursor<'_>) -> PResult<Command> {
    c.sp()?;
    let mailbox = c.mailbox()?;
    c.sp()?;
    let mut items = Vec::new();
    keyword_list(c, |n| {
        items.push(match n.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "SIZE" => StatusItem::Size,
            _ => return Err(bad(format!("Unknown STATUS item {}", shown(n.as_bytes())))),
        });
        Ok(())
    })?;
    if items.is_empty() {
        return Err(bad("Missing STATUS items"));
    }
    Ok(Command::Status { mailbox, items })
}

/// `ENABLE 1*(SP capability)` (RFC 5161); names kept as sent.
pub(super) fn enable(c: &mut Cursor<'_>) -> PResult<Command> {
    let mut capabilities = Vec::new();
    c.sp()?;
    loop {
        capabilities.push(String::from_utf8_lossy(c.atom()?).into_owned());
        if c.at_end() {
            return Ok(Command::Enable { capabilities });
        }
        c.sp()?;
    }
}

/// `ID SP ("(" [string SP nstring *(SP string SP nstring)] ")" / NIL)` (RFC 2971 §4).
/// Values are informational, so invalid UTF-8 is replaced rather than refused.
pub(super) fn id(c: &mut Cursor<'_>) -> PResult<Command> {
    c.sp()?;
    if !c.eat(b'(') {
        return if c.atom()?.eq_ignore_ascii_case(b"NIL") {
            Ok(Command::Id { params: None })
        } else {
            Err(bad("Expected ID parameter list or NIL"))
        };
    }
    let mut params = Vec::new();
    if !c.eat(b')') {
        loop {
            let key = String::from_utf8_lossy(&c.string()?).into_owned();
            c.sp()?;
            let value = c
                .nstring()?
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            params.push((key, value));
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    }
    Ok(Command::Id {
        params: Some(params),
    })
}

/// `AUTHENTICATE SP auth-type [SP (base64 / "=")]` (RFC 3501 §6.2.2, RFC 4959 SASL-IR).
/// The mechanism is upper-cased; the initial response is returned as sent.
pub(super) fn authenticate(c: &mut Cursor<'_>) -> PResult<Command> {
    c.sp()?;
    let mechanism = String::from_utf8_lossy(c.atom()?).to_ascii_uppercase();
    let mut initial_response = None;
    if !c.at_end() {
        c.sp()?;
        let ir = c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        let body_len = ir.iter().take_while(|&&b| b != b'=').count();
        let pad = ir.len() - body_len;
        let valid = ir == b"=" || (body_len > 0 && pad <= 2 && ir.len() % 4 == 0);
        if ir.is_empty() || !valid || ir.iter().skip(body_len).any(|&b| b != b'=') {
            return Err(bad("Invalid SASL initial response"));
        }
        initial_response = Some(String::from_utf8_lossy(ir).into_owned());
    }
    Ok(Command::Authenticate {
        mechanism,
        initial_response,
    })
}
