//! [`Store::import`](crate::mailbox::Store::import) for Maildir: a whole mailbox written
//! as Loft saves mail (`cur/<unique>,S=<size>,W=<vsize>:2,<flags>`, the INTERNALDATE as
//! mtime, keyword letters named in `dovecot-keywords`) with its index files written
//! directly: every record with its UID, flags and keywords, the header with the source's
//! UIDVALIDITY and UIDNEXT. The first sync finds index and files in step.
//!
//! A folder other than INBOX is built under a name that is not a folder name
//! (`loft-creating.*`) and renamed into place when complete: a failure leaves no folder
//! (the leftover directory is removed as a crashed CREATE's is). INBOX is the root, which
//! must hold no mail and no index yet; a failure there leaves the files written so far
//! without an index, and `loft convert` refuses that target until the admin empties it.

use std::io::Write;
use std::path::Path;

use super::super::keywords::Keywords;
use super::super::{filename, fsio, save};
use super::{MaildirStore, CREATING};
use crate::config::FsyncMode;
use crate::index::{Header, Index, Record};
use crate::mailbox::{
    normalize_name, Error, ErrorKind, ImportFolder, ImportMessage, NextMessage, Result,
};

impl MaildirStore {
    pub(super) fn import_folder(&self, f: &ImportFolder<'_>, next: NextMessage<'_>) -> Result<u64> {
        let name = normalize_name(f.name);
        let folder = self.ctx.folder(&name)?;
        let fs = &self.ctx.fs.fs;
        if name == "INBOX" {
            self.check_empty_inbox()?;
            let n = self.fill(&self.ctx.root, f, next)?;
            self.finish_import(&name, f)?;
            return Ok(n);
        }
        if fs.lstat(&folder.path).is_ok() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "Mailbox already exists",
            ));
        }
        let temp = self
            .ctx
            .root
            .join(format!("{CREATING}{}", save::unique_name()));
        let placed = self
            .make_folder_dirs(&temp)
            .and_then(|()| self.fill(&temp, f, next))
            .and_then(|n| {
                fs.rename(&temp, &folder.path)
                    .map_err(|e| Error::io(folder.path.display(), e))?;
                Ok(n)
            });
        match placed {
            Ok(n) => {
                if self.ctx.fsync != FsyncMode::Never {
                    fsio::sync_dir(&self.ctx.root)?;
                }
                folder.shared.bump();
                self.finish_import(&name, f)?;
                Ok(n)
            }
            Err(e) => {
                if let Err(re) = fs.remove_tree(&temp) {
                    tracing::warn!(dir = %temp.display(), error = %re, "cannot remove an unfinished imported folder");
                }
                Err(e)
            }
        }
    }

    /// The root holds no message and no index yet (it is INBOX).
    fn check_empty_inbox(&self) -> Result<()> {
        let fs = &self.ctx.fs.fs;
        let root = &self.ctx.root;
        let mut busy = fs.lstat(&root.join(crate::index::INDEX_FILE)).is_ok();
        for sub in ["cur", "new"] {
            let listed = fs
                .list(&root.join(sub))
                .map_err(|e| Error::io(root.join(sub).display(), e))?;
            busy |= listed.iter().any(|(n, _)| n != "." && n != "..");
        }
        match busy {
            false => Ok(()),
            true => Err(Error::new(ErrorKind::AlreadyExists, "INBOX is not empty")
                .with_detail(format!("{} holds mail or an index already", root.display()))),
        }
    }

    /// The special-use attribute and the store's UIDVALIDITY state, after the folder is in
    /// place.
    fn finish_import(&self, name: &str, f: &ImportFolder<'_>) -> Result<()> {
        if let Some(su) = f.special_use {
            self.set_special(name, su)?;
        }
        crate::mailbox::rootfiles::raise_uid_validity(
            &self.ctx.root,
            f.uid_validity,
            self.ctx.fsync,
        )
    }

    /// Writes the messages into `dir` (a folder directory with `cur/ new/ tmp/`), then its
    /// keywords file and index.
    fn fill(&self, dir: &Path, f: &ImportFolder<'_>, next: NextMessage<'_>) -> Result<u64> {
        let mut letters = Keywords::load(dir);
        let mut names: Vec<String> = f.keywords.to_vec();
        let mut records = Vec::new();
        let mut uid_next = f.uid_next.max(1);
        while let Some(m) = next()? {
            if records.last().is_some_and(|r: &Record| r.uid >= m.uid) {
                return Err(Error::new(
                    ErrorKind::Temporary,
                    "Messages out of UID order",
                ));
            }
            let mut bits = 0u64;
            let mut word = Vec::new();
            for k in &m.flags.keywords {
                word.push(letters.allocate(k, 0, dir)?);
                bits |= crate::mailbox::messages::keyword_bit(&mut names, k);
            }
            let base = self.write_message(dir, &m, &word)?;
            uid_next = uid_next.max(m.uid.saturating_add(1));
            records.push(Record {
                uid: m.uid,
                flags: m.flags.sys.0,
                dirty: false,
                keywords: bits,
                modseq: 1,
                size: m.data.len() as u64,
                internal_date: m.internal_date,
                key: base.as_bytes().into(),
            });
        }
        if !letters.names().is_empty() {
            letters.save(dir, self.ctx.fsync)?;
        }
        if self.ctx.fsync != FsyncMode::Never {
            fsio::sync_dir(&dir.join("cur"))?;
        }
        let header = Header {
            uid_validity: f.uid_validity,
            uid_next,
            recent_uid: uid_next,
            ..Default::default()
        };
        let n = records.len() as u64;
        let opts = self.ctx.storage.index_options(self.ctx.fsync);
        Index::rebuild(dir, &opts, header, names, records)?;
        Ok(n)
    }

    /// One message file: written in `tmp/`, forced to disk, dated, renamed into `cur/`
    /// with its flags. Returns its base name (the index key).
    fn write_message(
        &self,
        dir: &Path,
        m: &ImportMessage,
        keyword_letters: &[u8],
    ) -> Result<String> {
        let fs = &self.ctx.fs.fs;
        let unique = save::unique_name();
        let tmp = dir.join("tmp").join(&unique);
        let io = |e| Error::io(tmp.display(), e);
        let mode = fs.file_mode_in(dir).unwrap_or(0o600);
        let mut file = fs
            .open_file(&tmp, crate::beneath::How::CreateNew(mode))
            .map_err(io)?;
        let written = file.write_all(&m.data).and_then(|()| match self.ctx.fsync {
            FsyncMode::Never => Ok(()),
            _ => file.sync_all(),
        });
        let written = written.and_then(|()| save::set_mtime(&file, m.internal_date));
        drop(file);
        if let Err(e) = written {
            let _ = fs.unlink(&tmp);
            return Err(io(e));
        }
        // The source served CRLF: the file's size is its RFC822.SIZE.
        let size = m.data.len();
        let base = format!("{unique},S={size},W={size}");
        let letters = filename::flag_letters(m.flags.sys, keyword_letters, &[]);
        let target = dir.join("cur").join(filename::cur_name(&base, &letters));
        if let Err(e) = fs.rename(&tmp, &target) {
            let _ = fs.unlink(&tmp);
            return Err(Error::io(target.display(), e));
        }
        Ok(base)
    }
}
