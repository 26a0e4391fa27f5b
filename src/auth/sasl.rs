//! SASL message decoding (RFC 4616 PLAIN) and the LOGIN mechanism's prompts. Works on
//! already base64-decoded bytes; knows nothing of IMAP or socket framing, or of users.
//! The exchanges themselves are driven by the IMAP session and the auth socket.

/// The LOGIN mechanism's prompts (draft-murchison-sasl-login §2), sent base64-encoded.
pub const LOGIN_USER_PROMPT: &[u8] = b"Username:";
pub const LOGIN_PASSWORD_PROMPT: &[u8] = b"Password:";

/// Decodes a PLAIN message `[authzid] NUL authcid NUL passwd` (RFC 4616 §2).
/// Returns (authzid, authcid, password).
///
/// Refused (None): fewer or more than two NULs, an empty authcid or password, invalid
/// UTF-8, and an authzid that names someone other than the authcid — Loft has no
/// master users, so nobody may act as another user (RFC 4616 §2 lets the server
/// refuse an authzid it does not authorise).
pub fn decode_plain(data: &[u8]) -> Option<(String, String, String)> {
    let mut parts = data.split(|&b| b == 0);
    let authzid = parts.next()?;
    let authcid = parts.next()?;
    let passwd = parts.next()?;
    if parts.next().is_some() || authcid.is_empty() || passwd.is_empty() {
        return None;
    }
    let authzid = std::str::from_utf8(authzid).ok()?;
    let authcid = std::str::from_utf8(authcid).ok()?;
    let passwd = std::str::from_utf8(passwd).ok()?;
    if !authzid.is_empty() && authzid != authcid {
        return None;
    }
    Some((authzid.into(), authcid.into(), passwd.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(a: &str, c: &str, p: &str) -> Option<(String, String, String)> {
        Some((a.into(), c.into(), p.into()))
    }

    #[test]
    fn rfc4616_examples() {
        // RFC 4616 §4: "\0tim\0tanstaaftanstaaf" and "Ursel\0Kurt\0xipj3plmq".
        assert_eq!(
            decode_plain(b"\0tim\0tanstaaftanstaaf"),
            ok("", "tim", "tanstaaftanstaaf")
        );
        // Kurt acting as Ursel: a proxy authorisation we do not grant.
        assert_eq!(decode_plain(b"Ursel\0Kurt\0xipj3plmq"), None);
        assert_eq!(decode_plain(b"tim\0tim\0pw"), ok("tim", "tim", "pw"));
    }

    #[test]
    fn malformed_messages() {
        assert_eq!(decode_plain(b""), None);
        assert_eq!(decode_plain(b"timpw"), None);
        assert_eq!(decode_plain(b"\0timpw"), None);
        assert_eq!(decode_plain(b"\0tim\0pw\0"), None);
        assert_eq!(decode_plain(b"\0\0pw"), None);
        assert_eq!(decode_plain(b"\0tim\0"), None);
        assert_eq!(decode_plain(b"\0t\xffm\0pw"), None);
    }

    #[test]
    fn utf8_is_kept() {
        assert_eq!(
            decode_plain("\0jöe\0pässwörd".as_bytes()),
            ok("", "jöe", "pässwörd")
        );
    }
}
