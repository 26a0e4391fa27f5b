//! Rewriting an mbox file in place (expunge, flags written back), so that a kill at any
//! moment loses no message: the file keeps its inode, owner and mode (other programs
//! hold it open, and `/var/mail` files belong to their user), and the next opener
//! completes an interrupted rewrite before anything reads the file.
//!
//! A rewrite replaces the file's bytes from `offset` on with a new sequence (pieces of
//! the old file and new bytes), or only `offset..rest` with as many new bytes (flags
//! written into the room a header had: nothing after it moves):
//!
//! 1. a temporary file beside the mbox (`.<name>.loft-rewrite`) gets what the copy needs
//!    (below) and is forced to disk;
//! 2. a journal (`.<name>.loft-rewrite.journal`, written to a temporary name and renamed,
//!    then the directory forced to disk) records the file's identity, `offset`, the old
//!    and new lengths, the temporary file's length and CRC-32, the mode and the state
//!    `copying`; a file that grows gets a journal `growing` first, is extended and forced
//!    to disk, then the journal says `copying`;
//! 3. the new content is written over the mbox from `offset`, forced to disk;
//! 4. a file that shrinks: the journal's state becomes `truncating` (with a CRC of the
//!    old bytes just past the new end, to tell later whether the cut happened), then the
//!    file is cut to its new length and forced to disk;
//! 5. the journal is removed (the directory forced to disk), then the temporary file.
//!
//! The modes (what the temporary file holds, how step 3 writes):
//!
//! * `patches`, a rewrite that moves nothing (every new piece replaces as many old bytes:
//!   flags written into the room headers had): each new piece with its offset (8 bytes
//!   of offset, 4 of length, the bytes), each written at its offset. A flag change on
//!   1 % of a 1.5 GB file writes kilobytes, not the file from the first change on.
//! * `moves`, every kept piece moving the same way (an expunge; fields that grow): the new
//!   bytes, the plan and checkpoints; the kept pieces are moved inside the mbox, written
//!   once ([`moves`]).
//! * `range`, any other plan: the whole new content from `offset`, copied over the mbox.
//!
//! Killed before the journal exists: the mbox was not touched (the temporary file is
//! removed by the next rewrite or recovery). Killed after: [`recover`] completes the
//! copy (`range` and `patches` write the same bytes again; `moves` walks again from its
//! last checkpoint) and cuts the file, keeping any mail another program appended after
//! the kill (beyond the length the journal knew) behind the new end; a rewrite of a file
//! that grows killed before the file was extended is dropped. The caller holds the
//! mbox's write lock throughout, so other writers wait; they could append only after
//! breaking a dead holder's dotlock.
//!
//! This module knows files and byte ranges, nothing of messages.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use crate::beneath;

#[path = "moves.rs"]
mod moves;

#[path = "aside.rs"]
mod aside;
pub use aside::exists as mail_kept_aside;

/// Where a test stops a rewrite, as a kill there would (`Never` in production).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Never,
    AfterTemp,
    AfterJournal,
    /// After this many bytes of the copy.
    #[cfg_attr(not(test), allow(dead_code))] // made by the tests only
    Copied(u64),
    BeforeCut,
    AfterCut,
    /// A file that grows: after the journal `growing`, before the file is extended.
    Growing,
    /// A file that grows: extended, the journal still `growing`.
    Extended,
    /// In place (`mode moves`): after this many checkpoints.
    #[cfg_attr(not(test), allow(dead_code))]
    Records(u64),
    /// In place: after this many bytes written, then a power loss (what was written since
    /// the mbox was last forced to disk becomes undefined).
    #[cfg_attr(not(test), allow(dead_code))]
    Lost(u64),
    /// In place: a power loss while this checkpoint (counted from 1) is written.
    #[cfg_attr(not(test), allow(dead_code))]
    Torn(u64),
    /// A recovery: the rewrite completed (journal gone), appended mail still aside.
    #[cfg_attr(not(test), allow(dead_code))]
    BeforePutBack,
}

/// Bytes copied at a time.
const COPY: usize = 1 << 20;

/// One part of the new content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// These bytes of the old file.
    Keep(Range<u64>),
    Bytes(Vec<u8>),
}

/// The file's new content from `offset` on.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub offset: u64,
    pub pieces: Vec<Piece>,
    /// The old bytes from here to the end stay where they are: the pieces replace exactly
    /// `offset..rest` (flags written into the room a header had, nothing moved after).
    /// `None`: the file ends after the pieces.
    pub rest: Option<u64>,
    /// A rewrite that moves nothing (`rest`) need not force the mbox to disk after its
    /// patches (`[storage] fsync` other than `always`, and at most 4,096 patches: flag
    /// changes are not forced). It is as safe against a kill (the journal completes
    /// it); a power loss may leave some of the flags unwritten, never a message damaged.
    pub lazy: bool,
}

#[derive(Debug)]
pub enum RewriteError {
    Io(io::Error),
    /// A journal that cannot be used (unreadable, another file's, its temporary file
    /// damaged): left in place for the administrator, the mbox untouched.
    Journal(String),
    /// A piece to keep lies outside the file.
    BadPlan,
}

impl From<io::Error> for RewriteError {
    fn from(e: io::Error) -> RewriteError {
        RewriteError::Io(e)
    }
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewriteError::Io(e) => write!(f, "{e}"),
            RewriteError::Journal(why) => write!(f, "rewrite journal unusable: {why}"),
            RewriteError::BadPlan => write!(f, "rewrite plan outside the file"),
        }
    }
}

/// What [`recover`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovered {
    Nothing,
    /// An interrupted rewrite was completed; `kept` bytes appended by another program
    /// after the interruption were kept at the new end.
    Completed {
        kept: u64,
    },
    /// A rewrite of a file that grows was interrupted before the file was extended: the
    /// file is as it was (with any mail appended since), the journal removed.
    Dropped,
}

/// The journal's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A file that grows: the journal is written, the file maybe extended, nothing else
    /// changed.
    Growing,
    Copying,
    Truncating,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Journal {
    dev: u64,
    ino: u64,
    offset: u64,
    old_len: u64,
    new_len: u64,
    temp_len: u64,
    temp_crc: u32,
    state: State,
    /// CRC of up to 64 old bytes from `new_len` on (state `truncating`).
    cut_crc: u32,
    cut_len: u64,
    mode: Mode,
}

/// What the temporary file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The new bytes from `offset` on.
    Range,
    /// Patches (offset, length, bytes): nothing moves.
    Patches,
    /// The new bytes, the plan and checkpoints: the kept pieces are moved inside the mbox
    /// ([`moves`]).
    Moves,
}

/// Bytes before each patch's bytes in the temporary file: its offset and length.
const PATCH_HEAD: usize = 12;

fn names(name: &OsStr) -> (OsString, OsString, OsString) {
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(".loft-rewrite");
    let mut journal = temp.clone();
    journal.push(".journal");
    let mut journal_tmp = journal.clone();
    journal_tmp.push(".tmp");
    (temp, journal, journal_tmp)
}

/// Applies `plan` to the mbox `file` (open read-write), named `name` in the open
/// directory `dir`. The caller holds the write lock.
pub fn apply(dir: &OwnedFd, name: &OsStr, file: &File, plan: &Plan) -> Result<(), RewriteError> {
    run(dir, name, file, plan, Stop::Never)
}

/// A rewrite stopped right after its journal was written, as a kill there leaves it
/// (other modules' tests).
#[cfg(test)]
pub(super) fn interrupted(
    dir: &OwnedFd,
    name: &OsStr,
    file: &File,
    plan: &Plan,
) -> Result<(), RewriteError> {
    run(dir, name, file, plan, Stop::AfterJournal)
}

fn run(
    dir: &OwnedFd,
    name: &OsStr,
    file: &File,
    plan: &Plan,
    stop: Stop,
) -> Result<(), RewriteError> {
    let (temp_name, journal_name, _) = names(name);
    if beneath::lstat_at(dir, &journal_name).is_ok() {
        // The plan was made from a file an interrupted rewrite left half done.
        return Err(RewriteError::Journal(
            "an interrupted rewrite must be recovered before the file is read".into(),
        ));
    }
    let st = beneath::fstat(file)?;
    let old_len = st.size;
    if plan.offset > old_len {
        return Err(RewriteError::BadPlan);
    }
    // 1. The new bytes into the temporary file.
    let _ = beneath::unlink_at(dir, &temp_name);
    let mut temp = beneath::create_new_at(dir, &temp_name, 0o600)?;
    let moves = match plan.rest {
        Some(_) => None,
        None => moves::of_plan(plan, old_len)?,
    };
    let (mode, (temp_len, span, crc)) = match (plan.rest, &moves) {
        (Some(_), _) => (Mode::Patches, write_patches(&mut temp, plan, old_len)?),
        (None, Some(m)) => {
            let (len, crc) = moves::write_temp(&temp, plan, m)?;
            (Mode::Moves, (len, m.new_len - plan.offset, crc))
        }
        (None, None) => (Mode::Range, write_range(&mut temp, file, plan, old_len)?),
    };
    temp.sync_all()?;
    if stop == Stop::AfterTemp {
        return Ok(());
    }
    let new_len = match plan.rest {
        None => plan.offset + span,
        Some(r) if r == plan.offset + span && r <= old_len => old_len,
        Some(_) => return Err(RewriteError::BadPlan),
    };
    // 2. The journal.
    let mut j = Journal {
        dev: st.dev,
        ino: st.ino,
        offset: plan.offset,
        old_len,
        new_len,
        temp_len,
        temp_crc: crc,
        state: State::Copying,
        cut_crc: 0,
        cut_len: 0,
        mode,
    };
    if start(dir, name, file, &mut j, stop)? {
        return Ok(());
    }
    // 3-5.
    let force = !(plan.lazy && mode == Mode::Patches);
    finish(
        dir,
        name,
        file,
        &mut j,
        (&temp_name, &journal_name),
        stop,
        force,
    )?;
    Ok(())
}

/// Writes the journal (step 2); a file that grows is extended first, so that its length
/// never moves during the copy, between a journal in state `growing` and one in state
/// `copying`. `true`: a test's stop came first.
fn start(
    dir: &OwnedFd,
    name: &OsStr,
    file: &File,
    j: &mut Journal,
    stop: Stop,
) -> Result<bool, RewriteError> {
    if j.new_len > j.old_len {
        j.state = State::Growing;
        write_journal(dir, name, j)?;
        if stop == Stop::Growing {
            return Ok(true);
        }
        file.set_len(j.new_len)?;
        file.sync_all()?;
        if stop == Stop::Extended {
            return Ok(true);
        }
        j.state = State::Copying;
    }
    write_journal(dir, name, j)?;
    Ok(stop == Stop::AfterJournal)
}

/// Writes the pieces of `plan` as they follow one another into `temp`: (bytes written,
/// bytes the pieces span, CRC).
fn write_range(
    temp: &mut File,
    file: &File,
    plan: &Plan,
    old_len: u64,
) -> Result<(u64, u64, u32), RewriteError> {
    // The kept ranges are copied inside the kernel; the CRC the journal records is taken
    // over the temporary file once it is written (what recovery will check it against).
    let mut len = 0u64;
    for p in &plan.pieces {
        match p {
            Piece::Bytes(b) => {
                temp.write_all_at(b, len)?;
                len += b.len() as u64;
            }
            Piece::Keep(r) => {
                if r.start > r.end || r.end > old_len {
                    return Err(RewriteError::BadPlan);
                }
                beneath::copy_range(file, r.start, temp, len, r.end - r.start)?;
                len += r.end - r.start;
            }
        }
    }
    Ok((len, len, crc_of(temp, len)?))
}

/// Writes the new pieces of `plan` (nothing moves) into `temp` as patches, each with its
/// offset and length: (bytes written, bytes the pieces span, CRC).
fn write_patches(
    temp: &mut File,
    plan: &Plan,
    old_len: u64,
) -> Result<(u64, u64, u32), RewriteError> {
    let mut crc = crc32fast::Hasher::new();
    let mut out = std::io::BufWriter::new(temp);
    let (mut at, mut len) = (plan.offset, 0u64);
    for p in &plan.pieces {
        match p {
            Piece::Bytes(b) => {
                let size = u32::try_from(b.len()).map_err(|_| RewriteError::BadPlan)?;
                let mut head = [0u8; PATCH_HEAD];
                head[..8].copy_from_slice(&at.to_le_bytes());
                head[8..].copy_from_slice(&size.to_le_bytes());
                for part in [&head[..], b] {
                    out.write_all(part)?;
                    crc.update(part);
                }
                len += (PATCH_HEAD + b.len()) as u64;
                at += b.len() as u64;
            }
            Piece::Keep(r) if r.start > r.end || r.end > old_len || r.start != at => {
                return Err(RewriteError::BadPlan)
            }
            Piece::Keep(r) => at = r.end,
        }
    }
    out.flush()?;
    if at > old_len {
        return Err(RewriteError::BadPlan);
    }
    Ok((len, at - plan.offset, crc.finalize()))
}

/// Writes the patches of `temp` (`len` bytes) at their offsets in `file`, until `limit`
/// bytes of them are written (a test's stop); `Journal` when one lies outside the file.
fn apply_patches(temp: &File, file: &File, len: u64, limit: u64) -> Result<(), RewriteError> {
    let size = beneath::fstat(file)?.size;
    let mut reader = std::io::BufReader::new(temp);
    let (mut read, mut written) = (0u64, 0u64);
    let mut buf = Vec::new();
    while read < len && written < limit {
        let mut head = [0u8; PATCH_HEAD];
        reader.read_exact(&mut head)?;
        let at = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let n = u32::from_le_bytes(head[8..].try_into().expect("4 bytes")) as usize;
        // Inside the mbox and inside the temporary file: a damaged length never makes a
        // buffer bigger than the bytes there are.
        let rest = len.saturating_sub(read + PATCH_HEAD as u64);
        let outside = at.checked_add(n as u64).is_none_or(|end| end > size);
        if outside || n as u64 > rest {
            return Err(RewriteError::Journal(
                "a patch lies outside the file".into(),
            ));
        }
        buf.resize(n, 0);
        reader.read_exact(&mut buf)?;
        file.write_all_at(&buf, at)?;
        read += (PATCH_HEAD + n) as u64;
        written += n as u64;
    }
    Ok(())
}

/// Copies the temporary file over the mbox, cuts it, removes the journal and the
/// temporary file (steps 3 to 5; also what recovery does); `true`: a test's stop came
/// first.
fn finish(
    dir: &OwnedFd,
    name: &OsStr,
    file: &File,
    j: &mut Journal,
    (temp_name, journal_name): (&OsStr, &OsStr),
    stop: Stop,
    force: bool,
) -> Result<bool, RewriteError> {
    if j.state == State::Copying {
        if copy(dir, file, j, temp_name, stop)? {
            return Ok(true);
        }
        if force {
            file.sync_all()?;
        }
        let len = beneath::fstat(file)?.size;
        if j.new_len < len {
            // What lies just past the new end now, to tell later whether the cut was made.
            let cut_len = (len - j.new_len).min(64);
            let mut old = vec![0u8; cut_len as usize];
            file.read_exact_at(&mut old, j.new_len)?;
            j.cut_crc = crc32fast::hash(&old);
            j.cut_len = cut_len;
            j.state = State::Truncating;
            write_journal(dir, name, j)?;
        }
    }
    if stop == Stop::BeforeCut {
        return Ok(true);
    }
    if j.state == State::Truncating {
        file.set_len(j.new_len)?;
        file.sync_all()?;
    }
    if stop == Stop::AfterCut {
        return Ok(true);
    }
    beneath::unlink_at(dir, journal_name)?;
    sync_dir(dir)?;
    let _ = beneath::unlink_at(dir, temp_name);
    Ok(false)
}

/// Step 3: the temporary file's bytes into the mbox (not yet forced to disk); `true`: a
/// test's stop came first.
fn copy(
    dir: &OwnedFd,
    file: &File,
    j: &Journal,
    temp_name: &OsStr,
    stop: Stop,
) -> Result<bool, RewriteError> {
    if j.mode == Mode::Moves {
        let temp = beneath::open_rw_at(dir, temp_name)?;
        let m = moves::read_temp(&temp, j.offset, j.old_len, j.new_len, j.temp_len)?;
        let w = moves::run(file, &temp, &m, j.temp_len, stop)?;
        tracing::debug!(
            checkpoints = w.records,
            staged = w.stages,
            "mbox: kept pieces moved in place"
        );
        return Ok(w.stopped);
    }
    let temp = beneath::open_read_at(dir, temp_name)?;
    let limit = match stop {
        Stop::Copied(n) => n,
        _ => u64::MAX,
    };
    match j.mode {
        Mode::Patches => apply_patches(&temp, file, j.temp_len, limit)?,
        _ => copy_at(&temp, 0, file, j.offset, limit.min(j.temp_len))?,
    }
    Ok(limit != u64::MAX)
}

/// Completes a rewrite of the mbox `file` (named `name` in `dir`) that was interrupted;
/// call under the write lock before reading the file.
pub fn recover(dir: &OwnedFd, name: &OsStr, file: &File) -> Result<Recovered, RewriteError> {
    recover_until(dir, name, file, Stop::Never)
}

/// [`recover`], stopped where a test says (a kill during recovery).
fn recover_until(
    dir: &OwnedFd,
    name: &OsStr,
    file: &File,
    stop: Stop,
) -> Result<Recovered, RewriteError> {
    let (temp_name, journal_name, journal_tmp) = names(name);
    let _ = beneath::unlink_at(dir, &journal_tmp);
    let mut j = match read_journal(dir, &journal_name) {
        Ok(Some(j)) => j,
        Ok(None) => {
            // A temporary file without a journal: killed before step 2, mbox untouched;
            // or a recovery killed after completing the rewrite, with mail still aside.
            let _ = beneath::unlink_at(dir, &temp_name);
            return match aside::put_back(dir, name, file)? {
                0 => Ok(Recovered::Nothing),
                kept => Ok(Recovered::Completed { kept }),
            };
        }
        Err(e) => return Err(e),
    };
    let st = beneath::fstat(file)?;
    if (st.dev, st.ino) != (j.dev, j.ino) {
        return Err(RewriteError::Journal(format!(
            "it names another file (inode {} on device {}, this one is {} on {})",
            j.ino, j.dev, st.ino, st.dev
        )));
    }
    check_temp(dir, &temp_name, &j)?;
    if j.state == State::Growing && !grown(dir, name, file, &mut j, st.size)? {
        return Ok(Recovered::Dropped);
    }
    // Mail appended by another program after the interruption: beyond the length the
    // file had then (or its new length, once cut).
    let cut = j.state == State::Truncating && was_cut(file, &j, st.size)?;
    let known_end = if cut {
        j.new_len
    } else {
        j.old_len.max(j.new_len)
    };
    // Kept aside on disk (the completion cuts the file), after what an earlier recovery
    // kept.
    aside::keep(dir, name, file, (known_end, st.size), j.new_len)?;
    // The copy and the cut, as the interrupted rewrite would have made them (in place,
    // once the copy is done and the state `truncating`, its sources may be gone: only the
    // cut); then the appended mail at the new end.
    if j.mode != Mode::Moves {
        j.state = State::Copying;
    }
    if finish(
        dir,
        name,
        file,
        &mut j,
        (&temp_name, &journal_name),
        stop,
        true,
    )? || stop == Stop::BeforePutBack
    {
        return Ok(Recovered::Completed { kept: 0 });
    }
    let kept = aside::put_back(dir, name, file)?;
    tracing::warn!(file = ?name, kept_appended = kept, "completed an mbox rewrite that was interrupted");
    Ok(Recovered::Completed { kept })
}

/// Checks the temporary file of `j`: its length and CRC as the journal says.
fn check_temp(dir: &OwnedFd, temp_name: &OsStr, j: &Journal) -> Result<(), RewriteError> {
    let temp = beneath::open_read_at(dir, temp_name)?;
    let temp_st = beneath::fstat(&temp)?;
    // In place, the checkpoints and staging areas follow the part the journal knows.
    let size_fits = match j.mode {
        Mode::Moves => temp_st.size >= j.temp_len,
        _ => temp_st.size == j.temp_len,
    };
    if !size_fits || crc_of(&temp, j.temp_len)? != j.temp_crc {
        return Err(RewriteError::Journal(
            "its temporary file is damaged".into(),
        ));
    }
    Ok(())
}

/// Recovery of a journal `growing` (the file `size` bytes long): `true` and the journal
/// `copying` when the file was extended; otherwise nothing of it changed and the rewrite
/// is dropped (`false`).
fn grown(
    dir: &OwnedFd,
    name: &OsStr,
    file: &File,
    j: &mut Journal,
    size: u64,
) -> Result<bool, RewriteError> {
    let (temp_name, journal_name, _) = names(name);
    if !extended(file, j, size)? {
        beneath::unlink_at(dir, &journal_name)?;
        sync_dir(dir)?;
        let _ = beneath::unlink_at(dir, &temp_name);
        tracing::warn!(file = ?name, "dropped an mbox rewrite interrupted before it changed the file");
        return Ok(false);
    }
    // On disk before the copy changes the bytes it gained (a kill during the copy must
    // not find `growing` again and take them for another program's mail).
    j.state = State::Copying;
    write_journal(dir, name, j)?;
    Ok(true)
}

/// Whether a file that grows was extended (state `growing`): it reaches the new length
/// and the bytes it gained are all zero. Mail another program appended to a file not
/// extended starts with `From ` where those bytes would be.
fn extended(file: &File, j: &Journal, size: u64) -> io::Result<bool> {
    if size < j.new_len {
        return Ok(false);
    }
    let mut buf = vec![0u8; COPY.min((j.new_len - j.old_len) as usize)];
    let mut at = j.old_len;
    while at < j.new_len {
        let n = ((j.new_len - at) as usize).min(COPY);
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Whether the file was cut at `new_len` already (state `truncating`): the bytes there
/// are no longer the old ones recorded.
fn was_cut(file: &File, j: &Journal, size: u64) -> io::Result<bool> {
    if size < j.new_len + j.cut_len {
        return Ok(true);
    }
    let mut b = vec![0u8; j.cut_len as usize];
    file.read_exact_at(&mut b, j.new_len)?;
    Ok(crc32fast::hash(&b) != j.cut_crc)
}

fn copy_at(from: &File, from_off: u64, to: &File, to_off: u64, len: u64) -> io::Result<()> {
    beneath::copy_range(from, from_off, to, to_off, len)
}

fn crc_of(f: &File, len: u64) -> io::Result<u32> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; COPY.min(len as usize)];
    let mut at = 0u64;
    while at < len {
        let n = ((len - at) as usize).min(COPY);
        f.read_exact_at(&mut buf[..n], at)?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(h.finalize())
}

fn sync_dir(dir: &OwnedFd) -> io::Result<()> {
    File::from(dir.try_clone()?).sync_all()
}

fn write_journal(dir: &OwnedFd, name: &OsStr, j: &Journal) -> io::Result<()> {
    let (_, journal, tmp) = names(name);
    let _ = beneath::unlink_at(dir, &tmp);
    let mut f = beneath::create_new_at(dir, &tmp, 0o600)?;
    let state = match j.state {
        State::Growing => "growing",
        State::Copying => "copying",
        State::Truncating => "truncating",
    };
    let mode = match j.mode {
        Mode::Range => "range",
        Mode::Patches => "patches",
        Mode::Moves => "moves",
    };
    write!(
        f,
        "loft-mbox-rewrite 1\ndev {}\nino {}\noffset {}\nold_len {}\nnew_len {}\ntemp_len {}\ntemp_crc {}\nstate {state}\ncut_crc {}\ncut_len {}\nmode {mode}\n",
        j.dev, j.ino, j.offset, j.old_len, j.new_len, j.temp_len, j.temp_crc, j.cut_crc, j.cut_len
    )?;
    f.sync_all()?;
    beneath::rename_at(dir, &tmp, &journal)?;
    sync_dir(dir)
}

fn read_journal(dir: &OwnedFd, journal: &OsStr) -> Result<Option<Journal>, RewriteError> {
    let f = match beneath::open_read_at(dir, journal) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut text = String::new();
    f.take(4096)
        .read_to_string(&mut text)
        .map_err(|_| RewriteError::Journal("not text".into()))?;
    parse_journal(&text)
        .map(Some)
        .ok_or_else(|| RewriteError::Journal("cannot be parsed".into()))
}

fn parse_journal(text: &str) -> Option<Journal> {
    let mut lines = text.lines();
    if lines.next()? != "loft-mbox-rewrite 1" {
        return None;
    }
    let mut field = |key: &str| -> Option<String> {
        let (k, v) = lines.next()?.split_once(' ')?;
        (k == key).then(|| v.to_string())
    };
    let num = |v: Option<String>| v?.parse::<u64>().ok();
    let dev = num(field("dev"))?;
    let ino = num(field("ino"))?;
    let offset = num(field("offset"))?;
    let old_len = num(field("old_len"))?;
    let new_len = num(field("new_len"))?;
    let temp_len = num(field("temp_len"))?;
    let temp_crc = u32::try_from(num(field("temp_crc"))?).ok()?;
    let state = match field("state")?.as_str() {
        "growing" => State::Growing,
        "copying" => State::Copying,
        "truncating" => State::Truncating,
        _ => return None,
    };
    let cut_crc = u32::try_from(num(field("cut_crc"))?).ok()?;
    let cut_len = num(field("cut_len"))?.min(64);
    // Missing in journals of before patches were written: a range.
    let mode = match field("mode").as_deref() {
        Some("patches") => Mode::Patches,
        Some("moves") => Mode::Moves,
        Some("range") | None => Mode::Range,
        Some(_) => return None,
    };
    let fits = match mode {
        Mode::Patches => new_len == old_len,
        Mode::Moves => offset <= new_len,
        Mode::Range => offset.checked_add(temp_len)? <= new_len,
    };
    fits.then_some(Journal {
        dev,
        ino,
        offset,
        old_len,
        new_len,
        temp_len,
        temp_crc,
        state,
        cut_crc,
        cut_len,
        mode,
    })
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
