//! The open cache file: reading with `pread` (never a memory map: another program may
//! truncate the file at any moment, and a mapped page past the new end kills the process
//! with SIGBUS; see "Reading files" in `docs/index-format.md`), the exclusive `flock` on
//! the file itself, header slot reads and writes, and creating a new file atomically
//! (temp + fsync + rename). Knows the byte layout only through `format`; knows nothing
//! of decisions.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use super::format::{self, Entry, Preamble};
use crate::beneath::read_full_at;
use crate::index::FsyncMode;
use crate::index::{Dir, Error};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a writer waits for another process's lock before `Error::Locked`.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Largest read buffer kept between reads.
const SCRATCH_KEEP: usize = 256 * 1024;

pub(super) fn io(file: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |err| Error::Io {
        file: file.to_path_buf(),
        err,
    }
}

pub(super) fn corrupted(file: &Path, (what, offset): format::Damage) -> Error {
    Error::Corrupted {
        file: file.to_path_buf(),
        what,
        offset,
    }
}

/// Settings copied from `index::Options`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Settings {
    pub fsync: FsyncMode,
    pub drop_days: u32,
}

/// One open generation (inode) of the cache file.
pub(super) struct Disk {
    /// The folder directory, held open: the file is reached through it by name.
    pub dir: Arc<Dir>,
    /// For errors and log lines only.
    pub path: PathBuf,
    pub file: File,
    /// (device, inode) of `file`; a different pair at `path` means another process
    /// replaced the file (compaction, rebuild).
    pub ident: (u64, u64),
    /// Reused buffer of [`Disk::with_bytes`].
    scratch: Vec<u8>,
    pub pre: Preamble,
    /// Sequence number of the newest valid header slot read, and which slot (0/1) held it.
    pub seq: u64,
    pub active: usize,
    /// Offset just past the last good record seen.
    pub end: u64,
    /// File size measured at open, before the header was read.
    pub open_size: u64,
}

impl Disk {
    /// Opens the cache file of `dir` and decodes its preamble and newest header slot.
    pub fn open(dir: &Arc<Dir>) -> Result<(Disk, Vec<Entry>), Error> {
        let path = &dir.file(super::FILE_NAME);
        let file = match dir.open_rw(super::FILE_NAME) {
            Ok(f) => f,
            // A link in the cache's place is not followed: damaged, rebuilt beside it.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(corrupted(path, ("symbolic link (not followed)".into(), 0)))
            }
            Err(e) => return Err(io(path)(e)),
        };
        let meta = file.metadata().map_err(io(path))?;
        let mut pre_buf = [0u8; format::PREAMBLE_LEN as usize];
        let n = read_full_at(&file, &mut pre_buf, 0).map_err(io(path))?;
        let pre = Preamble::decode(&pre_buf[..n]).map_err(|d| corrupted(path, d))?;
        let mut disk = Disk {
            dir: dir.clone(),
            path: path.to_path_buf(),
            file,
            ident: (meta.dev(), meta.ino()),
            scratch: Vec::new(),
            pre,
            seq: 0,
            active: 0,
            end: pre.records_start(),
            open_size: meta.len(),
        };
        if meta.len() < pre.records_start() {
            return Err(corrupted(
                path,
                ("file ends inside the header slots".into(), meta.len()),
            ));
        }
        let (seq, active, entries) = disk.read_header()?;
        disk.seq = seq;
        disk.active = active;
        Ok((disk, entries))
    }

    /// Reads both header slots and returns the newest valid one: (seq, slot, entries).
    pub fn read_header(&self) -> Result<(u64, usize, Vec<Entry>), Error> {
        let size = self.pre.slot_size as usize;
        let mut best: Option<(u64, usize, Vec<Entry>)> = None;
        let mut damage = None;
        for slot in 0..2 {
            let at = format::PREAMBLE_LEN + (slot as u64) * size as u64;
            let mut buf = vec![0u8; size];
            let n = read_full_at(&self.file, &mut buf, at).map_err(io(&self.path))?;
            match format::decode_slot(&buf[..n], at) {
                Ok((seq, e)) if best.as_ref().is_none_or(|b| seq > b.0) => {
                    best = Some((seq, slot, e))
                }
                Ok(_) => {}
                Err(d) => damage = Some(d),
            }
        }
        best.ok_or_else(|| {
            let (what, off) = damage.unwrap_or(("no header slot".into(), format::PREAMBLE_LEN));
            corrupted(&self.path, (format!("no valid header slot ({what})"), off))
        })
    }

    /// Writes the field table into the slot not holding the newest header.
    /// `Ok(false)` when it does not fit the slot size (the caller rewrites the file).
    pub fn write_header(&mut self, entries: &[Entry]) -> Result<bool, Error> {
        let Some(buf) = format::encode_slot(self.seq + 1, entries, self.pre.slot_size) else {
            return Ok(false);
        };
        let slot = 1 - self.active;
        let at = format::PREAMBLE_LEN + slot as u64 * u64::from(self.pre.slot_size);
        self.file.write_all_at(&buf, at).map_err(io(&self.path))?;
        self.seq += 1;
        self.active = slot;
        Ok(true)
    }

    pub fn len(&self) -> Result<u64, Error> {
        Ok(self.file.metadata().map_err(io(&self.path))?.len())
    }

    /// Whether `path` still names this file (same device and inode): one `lstat`, asked
    /// at every cache write.
    pub fn replaced(&self) -> Result<bool, Error> {
        match self.dir.lstat(super::FILE_NAME) {
            Ok(m) => Ok((m.dev, m.ino) != self.ident),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(io(&self.path)(e)),
        }
    }

    /// Calls `f` with bytes `[from, to)` of the file as read now: fewer when the file
    /// ends sooner (another program may have truncated it; callers check what they get).
    pub fn with_bytes<R>(
        &mut self,
        from: u64,
        to: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, Error> {
        if to <= from {
            return Ok(f(&[]));
        }
        let len = usize::try_from(to - from)
            .map_err(|_| corrupted(&self.path, ("range too large".into(), from)))?;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.resize(len, 0);
        let n = read_full_at(&self.file, &mut buf, from);
        let r = n.map(|n| f(&buf[..n])).map_err(io(&self.path));
        // A big one-off read (a scan, a large value) does not stay allocated.
        if buf.capacity() <= SCRATCH_KEEP {
            self.scratch = buf;
        }
        r
    }

    /// Whether bytes `[from, to)` are all zero (a file extended but never written: what a
    /// crash can leave), read in pieces.
    pub fn zeros(&self, from: u64, to: u64) -> Result<bool, Error> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = from;
        while at < to {
            let want = buf
                .len()
                .min(usize::try_from(to - at).unwrap_or(usize::MAX));
            let n = read_full_at(&self.file, &mut buf[..want], at).map_err(io(&self.path))?;
            if buf[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            if n < want {
                break;
            }
            at += n as u64;
        }
        Ok(true)
    }

    /// Takes the exclusive lock on this file, waiting at most `LOCK_WAIT`.
    pub fn lock(&self) -> Result<LockGuard, Error> {
        let start = Instant::now();
        loop {
            // SAFETY: plain flock(2) on a file descriptor we own for the call's duration.
            let r = unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r == 0 {
                // The duplicate shares the open file description, so it holds the lock.
                let file = self.file.try_clone().map_err(io(&self.path));
                if file.is_err() {
                    // SAFETY: as above.
                    unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
                }
                return Ok(LockGuard { file: file? });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK)
                && err.kind() != std::io::ErrorKind::Interrupted
            {
                return Err(io(&self.path)(err));
            }
            if start.elapsed() > LOCK_WAIT {
                return Err(Error::Locked {
                    file: self.path.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Releases the `flock` when dropped.
pub(super) struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // SAFETY: flock(2) unlock on a descriptor that outlives the guard.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A temp file beside `path` being filled with a complete new cache file.
pub(super) struct NewFile {
    dir: Arc<Dir>,
    tmp_name: String,
    /// For errors only.
    pub tmp: PathBuf,
    pub out: std::io::BufWriter<File>,
    pub pos: u64,
}

impl NewFile {
    /// Starts a new file: preamble and header slot 0 holding `entries` (slot 1 empty).
    pub fn create(dir: &Arc<Dir>, entries: &[Entry], uid_validity: u32) -> Result<NewFile, Error> {
        let path = &dir.file(super::FILE_NAME);
        let slot_size = format::slot_size_for(format::slot_need(entries));
        let pre = Preamble {
            slot_size,
            uid_validity,
        };
        let slot = format::encode_slot(1, entries, slot_size).ok_or_else(|| {
            corrupted(
                path,
                ("field table too large for any header slot".into(), 0),
            )
        })?;
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp_name = format!("{}.tmp-{}-{n}", super::FILE_NAME, std::process::id());
        let tmp = dir.file(&tmp_name);
        let file = dir.create_fresh(&tmp_name).map_err(io(&tmp))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
        let mut head = pre.encode();
        head.extend_from_slice(&slot);
        head.resize(pre.records_start() as usize, 0);
        out.write_all(&head).map_err(io(&tmp))?;
        Ok(NewFile {
            dir: dir.clone(),
            tmp_name,
            tmp,
            out,
            pos: pre.records_start(),
        })
    }

    pub fn append(&mut self, rec: &[u8]) -> Result<(), Error> {
        self.out.write_all(rec).map_err(io(&self.tmp))?;
        self.pos += rec.len() as u64;
        Ok(())
    }

    /// Flushes, fsyncs (unless `never`) and renames over `path` (`replace`) or links it
    /// there only when absent (`!replace`: `Ok(false)` when another process was first).
    pub fn finish(self, fsync: FsyncMode, replace: bool) -> Result<bool, Error> {
        let tmp = self.tmp.clone();
        let (dir, tmp_name) = (self.dir.clone(), self.tmp_name.clone());
        let path = &dir.file(super::FILE_NAME);
        let result = (|| {
            let file = self
                .out
                .into_inner()
                .map_err(|e| io(&tmp)(e.into_error()))?;
            if fsync != FsyncMode::Never {
                file.sync_all().map_err(io(&tmp))?;
            }
            let placed = if replace {
                dir.rename(&tmp_name, super::FILE_NAME).map_err(io(path))?;
                true
            } else {
                match dir.hard_link(&tmp_name, super::FILE_NAME) {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(io(path)(e)),
                }
            };
            if fsync != FsyncMode::Never {
                dir.sync().map_err(io(dir.path()))?;
            }
            Ok(placed)
        })();
        let _ = dir.remove(&tmp_name);
        result
    }
}
