//! Mail another program appended to an mbox after a rewrite of it was interrupted (a
//! kill), kept aside on disk while the recovery completes the rewrite: completing it
//! cuts the file at its new length, which would drop that mail, and holding it in memory
//! instead would lose it to a second kill and cost as much memory as the other program
//! appended.
//!
//! The file `.<name>.loft-appended` (made as `.<name>.loft-appended.tmp`, forced to
//! disk, then renamed, so it is whole or absent): `LOFTAPP1`, the offset where the mail
//! belongs (the rewrite's new length) and the mbox's length when the mail was taken
//! (little-endian u64s), the length and CRC-32 of the mbox's last bytes then (u32s),
//! the mbox's device and inode (u64s: a file naming another mbox — planted, or left
//! from a file since replaced — is removed with a warning, never put back), then the
//! mail's bytes. A later recovery (a second kill) takes after it only what came
//! after that length when the file still ends there as it did, else (the completion cut
//! the file since) all past the new length. After
//! the rewrite is complete the bytes go back at the end of the mbox (forced to disk) and
//! the file is removed. A recovery that finds it without a journal (a kill between the
//! two) puts it back unless the mbox already holds those bytes where they belong or at
//! its end (a kill after they went back): never lost, at worst (another program
//! appending in that instant too) there twice.
//!
//! Every copy goes through a buffer of [`super::COPY`] bytes.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use super::{sync_dir, RewriteError, COPY};
use crate::beneath;

const MAGIC: &[u8; 8] = b"LOFTAPP1";
const HEADER: u64 = 48;
/// The mbox's last bytes recorded with the length.
const TAIL: u64 = 64;

/// The file's name and the name it is made under.
fn names(name: &OsStr) -> (OsString, OsString) {
    let mut aside = OsString::from(".");
    aside.push(name);
    aside.push(".loft-appended");
    let mut tmp = aside.clone();
    tmp.push(".tmp");
    (aside, tmp)
}

/// Whether mail is kept aside for the mbox `name` (a recovery has work to do).
pub fn exists(dir: &OwnedFd, name: &OsStr) -> bool {
    beneath::lstat_at(dir, &names(name).0).is_ok()
}

/// The mail kept aside: the open file, where the mail belongs, its length.
struct Kept {
    file: File,
    target: u64,
    /// The mbox's length when the mail was taken from it, and its last bytes then.
    end: u64,
    tail: (u32, u32),
    len: u64,
    /// Device and inode of the mbox it was taken from.
    of: (u64, u64),
}

/// The mail kept aside for this very file (device and inode), if any; one kept for
/// another file is removed, with a warning.
fn open_for(dir: &OwnedFd, name: &OsStr, mbox: &File) -> Result<Option<Kept>, RewriteError> {
    let Some(k) = open(dir, name)? else {
        return Ok(None);
    };
    let st = beneath::fstat(mbox)?;
    if k.of == (st.dev, st.ino) {
        return Ok(Some(k));
    }
    tracing::warn!(file = ?name, aside_for = ?k.of, this = ?(st.dev, st.ino),
        "removed a file of mail kept aside that names another mbox file (device, inode)");
    beneath::unlink_at(dir, &names(name).0)?;
    Ok(None)
}

/// The mail kept aside, whichever mbox it was taken from.
fn open(dir: &OwnedFd, name: &OsStr) -> Result<Option<Kept>, RewriteError> {
    let file = match beneath::open_read_at(dir, &names(name).0) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = beneath::fstat(&file)?.size;
    let mut head = [0u8; HEADER as usize];
    if size < HEADER || file.read_exact_at(&mut head, 0).is_err() || &head[..8] != MAGIC {
        return Err(RewriteError::Journal(
            "its file of mail kept aside is damaged".into(),
        ));
    }
    let word = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    Ok(Some(Kept {
        file,
        target: word(8),
        end: word(16),
        tail: (half(24), half(28)),
        len: size - HEADER,
        of: (word(32), word(40)),
    }))
}

/// Copies `len` bytes of `from` at `at` to `to` at `to_at`, a buffer at a time.
fn copy(from: &File, at: u64, len: u64, to: &File, to_at: u64) -> io::Result<()> {
    let mut buf = vec![0u8; COPY.min(len as usize)];
    let mut done = 0;
    while done < len {
        let n = ((len - done) as usize).min(COPY);
        from.read_exact_at(&mut buf[..n], at + done)?;
        to.write_all_at(&buf[..n], to_at + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Whether `mbox` holds the kept bytes at `at`.
fn holds(mbox: &File, size: u64, at: u64, k: &Kept) -> io::Result<bool> {
    if at.checked_add(k.len).is_none_or(|end| end > size) {
        return Ok(false);
    }
    let (mut a, mut b) = (
        vec![0u8; COPY.min(k.len as usize)],
        vec![0u8; COPY.min(k.len as usize)],
    );
    let mut done = 0;
    while done < k.len {
        let n = ((k.len - done) as usize).min(COPY);
        mbox.read_exact_at(&mut a[..n], at + done)?;
        k.file.read_exact_at(&mut b[..n], HEADER + done)?;
        if a[..n] != b[..n] {
            return Ok(false);
        }
        done += n as u64;
    }
    Ok(true)
}

/// The length and CRC-32 of the last bytes of `mbox` before `end`.
fn tail_of(mbox: &File, end: u64) -> io::Result<(u32, u32)> {
    let n = end.min(TAIL);
    let mut b = vec![0u8; n as usize];
    mbox.read_exact_at(&mut b, end - n)?;
    Ok((n as u32, crc32fast::hash(&b)))
}

/// Keeps the mail appended to `mbox` (`to` bytes long now) since the interruption aside,
/// after what an earlier recovery kept, to go back at `target` (the rewrite's new
/// length). Without an earlier one, the new mail is what lies past `known_end` (the
/// length the journal knew). With one, `known_end` does not tell where it starts (the
/// journal's cut record may be over that mail, not old bytes): it starts where that
/// recovery took up to when the file still ends there as it did, else (cut since) at
/// `target`. Nothing to keep: no file.
pub fn keep(
    dir: &OwnedFd,
    name: &OsStr,
    mbox: &File,
    (known_end, to): (u64, u64),
    target: u64,
) -> Result<(), RewriteError> {
    let earlier = open_for(dir, name, mbox)?;
    let from = match &earlier {
        Some(k) if to >= k.end && tail_of(mbox, k.end)? == k.tail => k.end,
        Some(_) => target,
        None if to > known_end => known_end,
        None => return Ok(()),
    };
    let (aside, tmp) = names(name);
    let _ = beneath::unlink_at(dir, &tmp);
    let out = beneath::create_new_at(dir, &tmp, 0o600)?;
    let (tail_len, tail_crc) = tail_of(mbox, to)?;
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(&target.to_le_bytes());
    head.extend_from_slice(&to.to_le_bytes());
    head.extend_from_slice(&tail_len.to_le_bytes());
    head.extend_from_slice(&tail_crc.to_le_bytes());
    let st = beneath::fstat(mbox)?;
    head.extend_from_slice(&st.dev.to_le_bytes());
    head.extend_from_slice(&st.ino.to_le_bytes());
    out.write_all_at(&head, 0)?;
    let mut at = HEADER;
    if let Some(k) = &earlier {
        copy(&k.file, HEADER, k.len, &out, at)?;
        at += k.len;
    }
    copy(mbox, from, to.saturating_sub(from), &out, at)?;
    out.sync_all()?;
    beneath::rename_at(dir, &tmp, &aside)?;
    sync_dir(dir)?;
    Ok(())
}

/// Puts the mail kept aside back at the end of `mbox` (unless it is there already: see
/// the module doc), forced to disk, and removes the file; the bytes put back (or found).
pub fn put_back(dir: &OwnedFd, name: &OsStr, mbox: &File) -> Result<u64, RewriteError> {
    let Some(k) = open_for(dir, name, mbox)? else {
        return Ok(0);
    };
    let size = beneath::fstat(mbox)?.size;
    let there =
        holds(mbox, size, k.target, &k)? || (size >= k.len && holds(mbox, size, size - k.len, &k)?);
    if !there && k.len > 0 {
        copy(&k.file, HEADER, k.len, mbox, size)?;
        mbox.sync_all()?;
    }
    beneath::unlink_at(dir, &names(name).0)?;
    sync_dir(dir)?;
    Ok(k.len)
}
