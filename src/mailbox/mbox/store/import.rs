//! [`Store::import`](crate::mailbox::Store::import) for mbox: a whole mailbox written as
//! one new file, with the fields that carry its numbering — `X-IMAPbase` (UIDVALIDITY,
//! UIDNEXT, keywords) on the first message, `X-UID`, `Status`, `X-Status`, `X-Keywords`
//! and `Content-Length` on each (docs/mbox.md, "The message as Loft writes it") — so the
//! first sync takes the UIDs from the file as it takes Dovecot's. They are written even
//! with `mbox_write_headers = false`: without them the UIDs could not be kept.
//!
//! A mailbox with no message has no first message to carry `X-IMAPbase`: its index is
//! written instead (UIDVALIDITY and UIDNEXT, no records), which the first sync of the
//! empty file takes as it is.
//!
//! The file is written under the write lock, forced to disk, and only then is the
//! mailbox's special-use attribute recorded. A failure part way leaves a file that holds
//! the messages written so far with their UIDs (complete ones only): `loft convert`
//! refuses a target that is not empty, so the admin removes it and runs it again.

use std::io::Write;

use super::super::lock::{self, Kind};
use super::super::meta::{Base, Meta};
use super::super::{plan, write};
use super::MboxStore;
use crate::mailbox::{
    normalize_name, Error, ErrorKind, ImportFolder, ImportMessage, NextMessage, Result,
};

/// Bytes gathered before a write to the file.
const BUFFER: usize = 1 << 20;

impl MboxStore {
    pub(super) fn import_folder(&self, f: &ImportFolder<'_>, next: NextMessage<'_>) -> Result<u64> {
        let name = normalize_name(f.name);
        if name != "INBOX" && !self.create_file(&name)? {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        let place = self.place(&name)?;
        let file = match crate::beneath::create_new_at(&place.dir, &place.name, 0o600) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                crate::beneath::open_rw_at(&place.dir, &place.name)
                    .map_err(|e| self.storage.io_err(&place.path, e))?
            }
            Err(e) => return Err(self.storage.io_err(&place.path, e)),
        };
        let io = |e| self.storage.io_err(&place.path, e);
        let _w = lock::lock(
            &place.dir,
            &place.name,
            &file,
            Kind::Write,
            &self.storage.lock_config(),
        )
        .map_err(|e| {
            Error::new(ErrorKind::Temporary, "Mailbox is locked")
                .with_detail(format!("{}: {e}", place.path.display()))
        })?;
        if crate::beneath::fstat(&file).map_err(io)?.size != 0 {
            return Err(Error::new(ErrorKind::AlreadyExists, "Mailbox is not empty")
                .with_detail(format!("{} holds mail already", place.path.display())));
        }
        let written = write_messages(&file, f, next).map_err(|e| match e {
            Failed::Io(e) => io(e),
            Failed::Source(e) => e,
        })?;
        file.sync_all().map_err(io)?;
        if written == 0 {
            self.mkdirs(&place.index_dir)?;
            let header = crate::index::Header {
                uid_validity: f.uid_validity,
                uid_next: f.uid_next.max(1),
                recent_uid: f.uid_next.max(1),
                ..Default::default()
            };
            crate::index::Index::rebuild(
                &place.index_dir,
                &self.storage.index_options(),
                header,
                f.keywords.to_vec(),
                Vec::new(),
            )?;
        }
        if let Some(su) = f.special_use {
            self.set_special(&name, su)?;
        }
        crate::mailbox::rootfiles::raise_uid_validity(
            &self.loft_dir(),
            f.uid_validity,
            self.fsync,
        )?;
        Ok(written)
    }
}

/// Why writing the messages stopped.
enum Failed {
    Io(std::io::Error),
    /// The source could not give the next message.
    Source(Error),
}

/// Writes every message `next` gives to the empty `file`; the first carries `X-IMAPbase`.
fn write_messages(
    file: &std::fs::File,
    f: &ImportFolder<'_>,
    next: NextMessage<'_>,
) -> std::result::Result<u64, Failed> {
    let mut out = std::io::BufWriter::with_capacity(BUFFER, file);
    let mut bytes = Vec::new();
    let mut written = 0u64;
    let mut last_uid = 0;
    let mut first = true;
    while let Some(m) = next().map_err(Failed::Source)? {
        if m.uid <= last_uid {
            return Err(Failed::Source(Error::new(
                ErrorKind::Temporary,
                "Messages out of UID order",
            )));
        }
        last_uid = m.uid;
        let base = first.then(|| base_of(f, &m));
        first = false;
        bytes.clear();
        append_one(&mut bytes, &m, base.as_ref());
        out.write_all(&bytes).map_err(Failed::Io)?;
        written += 1;
    }
    out.flush().map_err(Failed::Io)?;
    Ok(written)
}

/// `X-IMAPbase` of the file: UIDNEXT above the first message at least (the sync raises
/// it above the others as it reads their `X-UID`s; UIDNEXT from the source is kept).
fn base_of(f: &ImportFolder<'_>, first: &ImportMessage) -> Base {
    Base {
        uid_validity: f.uid_validity,
        uid_next: f.uid_next.max(first.uid.saturating_add(1)),
        keywords: f.keywords.to_vec(),
    }
}

fn append_one(out: &mut Vec<u8>, m: &ImportMessage, base: Option<&Base>) {
    let mut keywords = m.flags.keywords.clone();
    keywords.sort();
    let meta = Meta {
        uid: Some(m.uid),
        flags: m.flags.sys,
        old: true,
        keywords,
        ..Meta::default()
    };
    let stamp = write::Stamp {
        sender: "",
        date: m.internal_date,
        meta: &meta,
        base,
        pad: plan::PAD,
        fields: true,
    };
    write::append_mail(out, &m.data, &stamp);
}
