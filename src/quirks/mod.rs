//! Client workarounds ("quirks"): deliberate, documented departures from an RFC that some
//! broken but widespread client needs. Every quirk is off by default, is switched on by
//! name in the configuration (`[pop3] workarounds = [...]`; IMAP's will join them here),
//! and is applied only at the outbound seam of the command it concerns, so the rest of
//! the server keeps speaking the RFC exactly. The names are Dovecot's, so an admin can
//! copy a working `pop3_client_workarounds` line. `docs/quirks.md` has one row per quirk.
//!
//! This module knows bytes and names only: not sessions, not storage, not configuration
//! files.

pub mod pop3;

/// Which protocol a workaround belongs to (a name is valid for one protocol only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Pop3,
}

/// One workaround. The discriminant is its bit in [`QuirkSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    /// See [`pop3::outlook_no_nuls`].
    OutlookNoNuls = 0,
    /// See [`pop3::oe_ns_eoh`].
    OeNsEoh = 1,
}

/// What an admin (and `docs/quirks.md`) is told about a quirk.
pub struct Info {
    /// The configuration name (Dovecot's).
    pub name: &'static str,
    pub protocol: Protocol,
    /// The client that needs it.
    pub client: &'static str,
    /// What goes wrong without it.
    pub symptom: &'static str,
    /// The RFC clause the workaround bends.
    pub bends: &'static str,
}

impl Quirk {
    pub const ALL: [Quirk; 2] = [Quirk::OutlookNoNuls, Quirk::OeNsEoh];

    pub fn info(self) -> Info {
        match self {
            Quirk::OutlookNoNuls => Info {
                name: "outlook-no-nuls",
                protocol: Protocol::Pop3,
                client: "Microsoft Outlook and Outlook Express (POP3)",
                symptom: "a NUL byte in a message makes the download hang or abort",
                bends: "RFC 1939 section 3 (the message is sent octet for octet): NUL (0x00) is sent as 0x80, so octet counts stay exact",
            },
            Quirk::OeNsEoh => Info {
                name: "oe-ns-eoh",
                protocol: Protocol::Pop3,
                client: "Outlook Express and Netscape Mail (POP3)",
                symptom: "a message without an empty line after its header is shown empty or garbled, and TOP results are misread",
                bends: "RFC 1939 sections 7 and 11 (RETR/TOP send the message as stored): an empty line is added after a header that has no body separator, so such a message is 2 octets longer than LIST said",
            },
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The quirk called `name` for `protocol`, or an error listing the valid names.
    pub fn from_name(protocol: Protocol, name: &str) -> Result<Quirk, UnknownQuirk> {
        Quirk::ALL
            .into_iter()
            .find(|q| q.info().protocol == protocol && q.name() == name)
            .ok_or_else(|| UnknownQuirk {
                name: name.to_string(),
                protocol,
            })
    }
}

/// A workaround name that `protocol` does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown workaround {name:?} (known: {})", known_names(*.protocol))]
pub struct UnknownQuirk {
    pub name: String,
    pub protocol: Protocol,
}

/// `"a", "b"`: the names valid for `protocol`.
fn known_names(protocol: Protocol) -> String {
    Quirk::ALL
        .iter()
        .filter(|q| q.info().protocol == protocol)
        .map(|q| format!("{:?}", q.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A set of enabled quirks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuirkSet(u32);

impl QuirkSet {
    pub fn contains(self, q: Quirk) -> bool {
        self.0 & (1 << q as u32) != 0
    }
    pub fn insert(&mut self, q: Quirk) {
        self.0 |= 1 << q as u32;
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The enabled quirks' names, for logs.
    pub fn names(self) -> Vec<&'static str> {
        Quirk::ALL
            .into_iter()
            .filter(|q| self.contains(*q))
            .map(Quirk::name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for q in Quirk::ALL {
            assert_eq!(Quirk::from_name(q.info().protocol, q.name()), Ok(q));
        }
        let e = Quirk::from_name(Protocol::Pop3, "outlook-nuls")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown workaround \"outlook-nuls\" (known: \"outlook-no-nuls\", \"oe-ns-eoh\")"
        );
        // Names are exact, as in Dovecot.
        assert!(Quirk::from_name(Protocol::Pop3, "OE-NS-EOH").is_err());
    }

    #[test]
    fn set_operations() {
        let mut s = QuirkSet::default();
        assert!(s.is_empty());
        s.insert(Quirk::OeNsEoh);
        assert!(s.contains(Quirk::OeNsEoh));
        assert!(!s.contains(Quirk::OutlookNoNuls));
        assert_eq!(s.names(), vec!["oe-ns-eoh"]);
    }
}
