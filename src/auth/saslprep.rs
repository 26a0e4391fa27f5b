//! SASLprep (RFC 4013) as far as Loft needs it for SCRAM passwords: the mapping step
//! (non-ASCII spaces to SPACE, "commonly mapped to nothing" characters removed) and the
//! prohibited-output check. Unicode NFKC normalisation and the bidirectional check are
//! not done (no normalisation tables here): ASCII passwords, and UTF-8 passwords already in
//! NFKC, which is what clients type in practice, come out exactly as RFC 4013 says.
//! Knows nothing of SCRAM messages or users.

use std::borrow::Cow;

/// RFC 3454 C.1.2, non-ASCII space characters: mapped to U+0020 (RFC 4013 §2.1).
fn is_non_ascii_space(c: char) -> bool {
    matches!(
        c,
        '\u{00A0}' | '\u{1680}' | '\u{2000}'..='\u{200B}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// RFC 3454 B.1, commonly mapped to nothing (RFC 4013 §2.1).
fn is_mapped_to_nothing(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{034F}' | '\u{1806}' | '\u{180B}'..='\u{180D}'
        | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}')
}

/// RFC 4013 §2.3 prohibited output: RFC 3454 C.1.2 is mapped before, so C.2.1-C.9 here.
fn is_prohibited(c: char) -> bool {
    matches!(c,
        // C.2.1 ASCII control, C.2.2 non-ASCII control
        '\u{0000}'..='\u{001F}' | '\u{007F}' | '\u{0080}'..='\u{009F}' | '\u{06DD}' | '\u{070F}'
        | '\u{180E}' | '\u{200C}' | '\u{200D}' | '\u{2028}' | '\u{2029}' | '\u{2060}'..='\u{2063}'
        | '\u{206A}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFC}' | '\u{1D173}'..='\u{1D17A}'
        // C.3 private use
        | '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}'
        // C.4 non-character code points
        | '\u{FDD0}'..='\u{FDEF}'
        // C.6 inappropriate for plain text, C.7 for canonical representation
        | '\u{FFFD}' | '\u{2FF0}'..='\u{2FFB}'
        // C.8 change display properties / deprecated
        | '\u{0340}' | '\u{0341}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
        // C.9 tagging characters
        | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
        || (c as u32) & 0xFFFE == 0xFFFE
}

/// Prepares `s`; `Err` names why it is refused. Borrowed when nothing changes.
pub fn saslprep(s: &str) -> Result<Cow<'_, str>, &'static str> {
    let unchanged = s
        .chars()
        .all(|c| !is_non_ascii_space(c) && !is_mapped_to_nothing(c) && !is_prohibited(c));
    if unchanged {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_non_ascii_space(c) {
            out.push(' ');
        } else if is_mapped_to_nothing(c) {
            continue;
        } else if is_prohibited(c) {
            return Err("prohibited character");
        } else {
            out.push(c);
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::saslprep;

    #[test]
    fn rfc4013_examples_that_need_no_nfkc() {
        // RFC 4013 §3: SOFT HYPHEN mapped to nothing, "user" unchanged, BEL prohibited.
        assert_eq!(saslprep("I\u{00AD}X").unwrap(), "IX");
        assert_eq!(saslprep("user").unwrap(), "user");
        assert_eq!(saslprep("USER").unwrap(), "USER");
        assert!(saslprep("\u{0007}").is_err());
        // Non-ASCII space to SPACE; UTF-8 kept.
        assert_eq!(saslprep("a\u{00A0}b").unwrap(), "a b");
        assert_eq!(saslprep("pässwörd").unwrap(), "pässwörd");
        assert!(saslprep("a\u{E000}").is_err());
        assert!(saslprep("a\u{FFFF}").is_err());
        assert!(saslprep("tab\there").is_err());
    }
}
