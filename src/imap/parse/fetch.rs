//! FETCH arguments (RFC 3501 §6.4.5): macros, attributes, `BODY[section]<partial>`.

use super::cursor::{bad, shown, utf8, Cursor, PResult};
use crate::imap::command::{Command, FetchAtt};
use crate::mailbox::message::{Section, SectionText};

/// `FETCH SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
/// "(" fetch-att *(SP fetch-att) ")")`. Attribute order is kept as sent.
pub(super) fn fetch(c: &mut Cursor<'_>, uid: bool) -> PResult<Command> {
    c.sp()?;
    let set = c.seqset()?;
    c.sp()?;
    let atts = if c.eat(b'(') {
        let mut atts = vec![att(c)?];
        while !c.eat(b')') {
            c.sp()?;
            atts.push(att(c)?);
        }
        atts
    } else {
        let start = c.pos();
        let word = att_name(c);
        use FetchAtt::*;
        match word.as_str() {
            "ALL" => vec![Flags, InternalDate, Rfc822Size, Envelope],
            "FAST" => vec![Flags, InternalDate, Rfc822Size],
            "FULL" => vec![Flags, InternalDate, Rfc822Size, Envelope, Body],
            _ => {
                c.reset(start);
                vec![att(c)?]
            }
        }
    };
    Ok(Command::Fetch { uid, set, atts })
}

/// The name part of an attribute (`BODY.PEEK`, `RFC822.SIZE`), upper-cased.
fn att_name(c: &mut Cursor<'_>) -> String {
    let name = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    String::from_utf8_lossy(name).to_ascii_uppercase()
}

/// One `fetch-att`.
fn att(c: &mut Cursor<'_>) -> PResult<FetchAtt> {
    let name = att_name(c);
    Ok(match name.as_str() {
        "ENVELOPE" => FetchAtt::Envelope,
        "FLAGS" => FetchAtt::Flags,
        "INTERNALDATE" => FetchAtt::InternalDate,
        "RFC822" => FetchAtt::Rfc822,
        "RFC822.HEADER" => FetchAtt::Rfc822Header,
        "RFC822.SIZE" => FetchAtt::Rfc822Size,
        "RFC822.TEXT" => FetchAtt::Rfc822Text,
        "BODYSTRUCTURE" => FetchAtt::BodyStructure,
        "UID" => FetchAtt::Uid,
        "BODY" if c.peek() != Some(b'[') => FetchAtt::Body,
        "BODY" | "BODY.PEEK" => {
            let section = section(c)?;
            let partial = partial(c)?;
            FetchAtt::BodySection {
                peek: name == "BODY.PEEK",
                section,
                partial,
            }
        }
        "" if c.at_end() => return Err(bad("Missing argument")),
        _ => {
            return Err(bad(format!(
                "Unknown FETCH attribute {}",
                shown(name.as_bytes())
            )))
        }
    })
}

/// `section = "[" [section-spec] "]"`.
fn section(c: &mut Cursor<'_>) -> PResult<Section> {
    c.expect(b'[')?;
    let mut sec = Section::default();
    if c.eat(b']') {
        return Ok(sec);
    }
    // section-part = nz-number *("." nz-number), optionally "." section-text.
    let mut wants_text = true;
    while c.peek().is_some_and(|b| b.is_ascii_digit()) {
        sec.part.push(c.nz_number()?);
        if !c.eat(b'.') {
            wants_text = false;
            break;
        }
    }
    if wants_text {
        let word = c.take_while(|b| b.is_ascii_alphabetic() || b == b'.');
        let word = String::from_utf8_lossy(word).to_ascii_uppercase();
        sec.text = Some(match word.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !sec.part.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" => SectionText::HeaderFields(header_list(c)?),
            "HEADER.FIELDS.NOT" => SectionText::HeaderFieldsNot(header_list(c)?),
            _ => return Err(bad("Invalid section")),
        });
    }
    c.expect(b']').map_err(|_| bad("Invalid section"))?;
    Ok(sec)
}

/// `SP header-list`, `header-list = "(" header-fld-name *(SP header-fld-name) ")"`.
fn header_list(c: &mut Cursor<'_>) -> PResult<Vec<String>> {
    c.sp()?;
    c.expect(b'(')?;
    let mut names = vec![utf8(c.astring()?)?];
    while !c.eat(b')') {
        c.sp()?;
        names.push(utf8(c.astring()?)?);
    }
    Ok(names)
}

/// `["<" number "." nz-number ">"]`.
fn partial(c: &mut Cursor<'_>) -> PResult<Option<(u32, u32)>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let origin = c.number()?;
    c.expect(b'.')?;
    let count = c.nz_number()?;
    c.expect(b'>')?;
    Ok(Some((origin, count)))
}
