//! One Maildir folder on disk: its paths, its directory listing and reading message
//! files. A folder is INBOX (the root) or a Maildir++ `.Name` directory, each with
//! `cur/ new/ tmp/`.
//!
//! This module must not know about UIDs or sessions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::crlf::{bare_lfs, to_crlf};
use super::filename::{self, MailName, Name};
use super::lock::FolderShared;
use super::{Root, StorageCtx};
use crate::beneath::{Beneath, How};
use crate::mailbox::{Error, ErrorKind, MessageData, Result};

/// Maildir convention: files in `tmp/` untouched for 36 hours are leftovers.
pub const STALE_TMP_SECS: u64 = 36 * 3600;

/// Directories that look this big (entries guessed from the directory's size) are
/// listed on a helper thread while the names are parsed ([`super::rawdir::each_pipelined`]);
/// below, a thread costs more than it saves.
const PIPELINE_FROM: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Sub {
    New = 0,
    #[default]
    Cur = 1,
}

impl Sub {
    pub fn dir(self) -> &'static str {
        match self {
            Sub::New => "new",
            Sub::Cur => "cur",
        }
    }
}

/// One message file as found by a scan, 88 bytes without heap data for names up to 62
/// bytes. What a folder keeps of it once indexed is 24 bytes ([`super::filemap::Kept`]).
/// (The default value, an empty name, is only a placeholder left behind when a file is
/// moved out of a vector.)
#[derive(Clone, Debug, Default)]
pub struct FileInfo {
    pub name: Name,
    /// The file's mtime (the message's internal date), [`NO_MTIME`] until asked: a
    /// listing does not `stat` (100,000 `stat` calls cost more than the listing itself).
    mtime: i64,
    pub parsed: MailName,
    pub sub: Sub,
}

/// [`FileInfo`]'s mtime not known yet (`Option<i64>` would take 8 more bytes).
pub(super) const NO_MTIME: i64 = i64::MIN;

impl FileInfo {
    /// A file named `name` (parsed into `parsed`) in `sub`, its mtime `mtime` if known.
    pub fn new(sub: Sub, name: &str, parsed: MailName, mtime: Option<i64>) -> FileInfo {
        FileInfo {
            name: Name::new(name),
            mtime: mtime.unwrap_or(NO_MTIME),
            parsed,
            sub,
        }
    }

    /// The mtime if known (a listing does not `stat`).
    pub fn mtime(&self) -> Option<i64> {
        (self.mtime != NO_MTIME).then_some(self.mtime)
    }

    pub fn set_mtime(&mut self, mtime: Option<i64>) {
        self.mtime = mtime.unwrap_or(NO_MTIME);
    }

    /// `W=` of the name: the size with CRLF line ends (RFC822.SIZE).
    pub fn vsize(&self) -> Option<u64> {
        self.parsed.vsize(&self.name)
    }

    /// The base name: the stable identity of the message across flag renames.
    pub fn base(&self) -> &str {
        self.parsed.base(&self.name)
    }

    /// The mtime, asking the file system when the listing did not. `None`: the file is
    /// gone (or unreadable).
    pub fn stat_mtime(&self, folder: &Folder) -> Option<i64> {
        self.mtime().or_else(|| {
            folder
                .lstat(&folder.file_path(self.sub, &self.name))
                .ok()
                .filter(|st| st.is_file())
                .map(|st| st.mtime)
        })
    }

    /// Delivery order without a `stat`: the time a Maildir name starts with (the
    /// delivering program's clock, `<secs>.<unique>.<host>`), the mtime when known.
    pub fn delivery_key(&self) -> i64 {
        self.mtime().unwrap_or_else(|| {
            let digits = self.name.bytes().take_while(u8::is_ascii_digit).count();
            self.name
                .get(..digits.min(18))
                .and_then(|d| d.parse().ok())
                .unwrap_or(0)
        })
    }
}

/// A folder: client name, directory and in-process shared state.
#[derive(Clone)]
pub struct Folder {
    pub name: String,
    pub path: PathBuf,
    pub shared: Arc<FolderShared>,
    /// The user's mail root: every file of the folder is opened beneath it.
    pub root: Arc<Root>,
    /// What every store of this process shares.
    pub storage: Arc<StorageCtx>,
}

impl Folder {
    pub fn new(name: String, path: PathBuf, root: Arc<Root>, storage: &Arc<StorageCtx>) -> Folder {
        let shared = storage.folder_shared(&path);
        Folder {
            name,
            path,
            shared,
            root,
            storage: storage.clone(),
        }
    }

    /// The mail root's resolver.
    pub fn fs(&self) -> &Beneath {
        &self.root.fs
    }

    /// Opens a message file for reading, never through a link: relative to the `cur/`
    /// or `new/` descriptor the last listing used when `path` is in one of them (one
    /// component to resolve), else beneath the mail root.
    pub fn open_read(&self, path: &Path) -> std::io::Result<std::fs::File> {
        match self.listed_dir(path) {
            Some((fd, name)) => self.fs().open_in(&fd, name, How::Read),
            None => self.fs().open_file(path, How::Read),
        }
    }

    /// `lstat` of a message file, never through a link, like [`Folder::open_read`]: one
    /// `fstatat` relative to the listing's descriptor (INTERNALDATE of 10,000 messages
    /// whose dates the first scan left unknown must not open `cur/` 10,000 times).
    pub fn lstat(&self, path: &Path) -> std::io::Result<crate::beneath::Stat> {
        match self.listed_dir(path) {
            Some((fd, name)) => self.fs().lstat_in(&fd, name),
            None => self.fs().lstat(path),
        }
    }

    /// Device and inode of the directory at the folder's path now (never through a link;
    /// one `lstat` relative to the mail root's descriptor for a folder in the root).
    pub fn identity(&self) -> Option<(u64, u64)> {
        if self.path == self.fs().root() {
            // INBOX: the root itself, held open since the store was.
            return Some(self.fs().root_id());
        }
        let m = self.fs().lstat(&self.path).ok().filter(|m| m.is_dir())?;
        Some((m.dev, m.ino))
    }

    /// The folder's kept descriptor (`lock::FOLDER_SLOT`, for the `lstat`s of change
    /// detection and listings) with the folder's identity now, checked to be still the
    /// directory at the folder's path: a folder renamed away and replaced gets it opened
    /// anew, beneath the mail root.
    pub fn top(&self) -> (Option<Arc<std::os::fd::OwnedFd>>, Option<(u64, u64)>) {
        use super::lock::FOLDER_SLOT;
        let here = self.identity();
        let top = here
            .and_then(|id| self.shared.dir_if(FOLDER_SLOT, id))
            .or_else(|| {
                let fd = self.fs().open_dir(&self.path).ok()?;
                Some(self.shared.set_dir(FOLDER_SLOT, fd))
            });
        (top, here)
    }

    /// `lstat` of `cur/` or `new/` before a listing, relative to the folder's checked
    /// descriptor `top`: what tells whether the listing may read the kept descriptor of
    /// the directory again.
    fn listing_stat(top: Option<&std::os::fd::OwnedFd>, sub: Sub) -> Option<crate::beneath::Stat> {
        crate::beneath::lstat_at(top?, std::ffi::OsStr::new(sub.dir()))
            .ok()
            .filter(|m| m.is_dir())
    }

    /// The descriptor of `cur/` or `new/` the last listing used, when `path` names a
    /// file directly in one of them, with that file's name.
    fn listed_dir<'p>(
        &self,
        path: &'p Path,
    ) -> Option<(Arc<std::os::fd::OwnedFd>, &'p std::ffi::OsStr)> {
        let (name, dir) = (path.file_name()?, path.parent()?);
        if dir.parent() != Some(self.path.as_path()) {
            return None;
        }
        let sub = match dir.file_name().and_then(|n| n.to_str()) {
            Some("new") => Sub::New,
            Some("cur") => Sub::Cur,
            _ => return None,
        };
        Some((self.shared.dir(sub as usize)?, name))
    }

    pub fn file_path(&self, sub: Sub, name: &str) -> PathBuf {
        self.path.join(sub.dir()).join(name)
    }

    /// `NonExistent` unless `cur/` exists beneath the mail root with no symbolic link
    /// on the way (the folder, `cur/`); creates a missing `new/` or `tmp/`. A folder or
    /// subdirectory that is a link is logged once and treated as missing.
    pub fn check_selectable(&self) -> Result<()> {
        let cur = self.path.join("cur");
        match self.fs().open_dir(&cur) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::new(ErrorKind::NonExistent, "Mailbox does not exist")
                    .with_detail(format!("{}: no cur/", self.path.display())));
            }
            Err(e) => {
                // Name the link itself: the folder, or its cur/.
                let link = match self.fs().lstat(&self.path) {
                    Ok(st) if st.is_symlink() => &self.path,
                    _ => &cur,
                };
                return Err(self.root.io_err(link, e, "mail folder"));
            }
        }
        for d in ["new", "tmp"] {
            let p = self.path.join(d);
            match self.fs().lstat(&p) {
                Ok(st) if st.is_dir() => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => super::mkdir(&self.root, &p)?,
                Ok(_) => {
                    let e = std::io::Error::from_raw_os_error(libc::ELOOP);
                    return Err(self.root.io_err(&p, e, "mail folder"));
                }
                Err(e) => return Err(self.root.io_err(&p, e, "mail folder")),
            }
        }
        Ok(())
    }

    /// Lists message files in `new/` and `cur/`, names only: no `stat` (mtimes are
    /// asked for the new files alone, by the caller; the index has the others' dates).
    pub fn scan(&self) -> Result<Vec<FileInfo>> {
        use super::rawdir::{self, Kind};
        let mut out = Vec::new();
        let (top, _) = self.top();
        for sub in [Sub::New, Sub::Cur] {
            let dir = self.path.join(sub.dir());
            // Room for about as many entries as the directory's size suggests (a
            // Maildir entry takes 60-80 bytes on ext4/xfs), bounded: growing a vector of
            // 100,000 entries step by step copies it many times.
            let st = Self::listing_stat(top.as_deref(), sub);
            let guess = st.map_or(0, |m| m.size / 80) as usize;
            out.reserve(guess.min(200_000));
            let each = if guess >= PIPELINE_FROM {
                rawdir::each_pipelined
            } else {
                rawdir::each
            };
            // The descriptor of the last listing when the directory is still the same
            // one (saves an open, a close and their path walk per sync of a busy folder).
            let kept = st.and_then(|m| self.shared.dir_if(sub as usize, (m.dev, m.ino)));
            let _listing = self.shared.listing(sub as usize);
            let open = || match &kept {
                Some(fd) => Ok(fd.clone()),
                None => Ok(self.shared.set_dir(sub as usize, self.fs().open_dir(&dir)?)),
            };
            let listed = each(&open, &mut |raw: &[u8], kind| {
                let Ok(name) = std::str::from_utf8(raw) else {
                    tracing::warn!(dir = %dir.display(), file = %String::from_utf8_lossy(raw), "ignoring file with a non-UTF-8 name");
                    return;
                };
                if name.starts_with('.') {
                    return;
                }
                let Some(parsed) = filename::parse(name) else {
                    tracing::warn!(dir = %dir.display(), file = name, "ignoring file whose name cannot be a message");
                    return;
                };
                // The type comes with the directory entry on most file systems; else
                // ask with lstat. Symbolic links are never messages (they could point
                // anywhere): skipped, logged once.
                let kind = match kind {
                    Kind::Unknown => match self.fs().lstat(&dir.join(name)) {
                        Ok(m) if m.is_file() => Kind::File,
                        Ok(m) if m.is_symlink() => Kind::Symlink,
                        Ok(_) => Kind::Other,
                        // Vanished between readdir and lstat: someone moved it.
                        Err(_) => return,
                    },
                    k => k,
                };
                if kind == Kind::Symlink {
                    self.root.warn_link(&dir.join(name), "message file");
                    return;
                }
                if kind != Kind::File {
                    tracing::warn!(dir = %dir.display(), file = name, "ignoring non-regular file in mail directory");
                    return;
                }
                out.push(FileInfo::new(sub, name, parsed, None));
            });
            match listed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && sub == Sub::New => {}
                Err(e) => return Err(self.root.io_err(&dir, e, "mail folder")),
            }
        }
        // The room reserved from the directories' sizes can be well above what they
        // held (a directory does not shrink when files leave it); the listing becomes
        // the folder's file map and is kept.
        if out.capacity() > out.len() + out.len() / 8 + 64 {
            out.shrink_to_fit();
        }
        Ok(out)
    }

    /// Keyword letters found in the names of `new/` and `cur/` files, as a bit mask (bit
    /// `i` = letter `a + i`). Lists names only, no `stat`: used before a new keyword gets a
    /// letter, so that a letter still in file names is not handed out again.
    pub fn keyword_letters_in_use(&self) -> Result<u32> {
        let mut mask = 0u32;
        for sub in [Sub::New, Sub::Cur] {
            let dir = self.path.join(sub.dir());
            let entries = match self.fs().list(&dir) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && sub == Sub::New => continue,
                Err(e) => return Err(self.root.io_err(&dir, e, "mail folder")),
            };
            for (os_name, _) in entries {
                let Some(parsed) = os_name.to_str().and_then(filename::parse) else {
                    continue;
                };
                mask |= parsed.keywords;
            }
        }
        Ok(mask)
    }

    /// Finds the current file name of a base name (after someone renamed it). Links
    /// are not messages.
    pub fn find_base(&self, base: &str) -> Option<(Sub, String)> {
        for sub in [Sub::Cur, Sub::New] {
            let Ok(entries) = self.fs().list(&self.path.join(sub.dir())) else {
                continue;
            };
            for (os_name, kind) in entries {
                if let Some(n) = os_name.to_str() {
                    if n.split(':').next() == Some(base) && kind != libc::DT_LNK {
                        return Some((sub, n.to_string()));
                    }
                }
            }
        }
        None
    }

    /// Removes `tmp/` files (and links) older than 36 hours: crash leftovers (the
    /// Maildir convention). Never follows a link, never descends into a directory.
    pub fn clean_tmp(&self) {
        let dir = self.path.join("tmp");
        let Ok(entries) = self.fs().list(&dir) else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for (name, _) in entries {
            let path = dir.join(&name);
            let Ok(st) = self.fs().lstat(&path) else {
                continue;
            };
            let old = now.saturating_sub(st.mtime) > STALE_TMP_SECS as i64;
            if (st.is_file() || st.is_symlink()) && old {
                match self.fs().unlink(&path) {
                    Ok(()) => {
                        tracing::info!(file = %path.display(), "removed stale temporary file")
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "cannot remove stale temporary file")
                    }
                }
            }
        }
    }
}

/// RFC822.SIZE of file contents: its length plus one for every bare LF (which is sent as
/// CRLF).
#[cfg(test)]
pub fn crlf_size(bytes: &[u8]) -> u64 {
    bytes.len() as u64 + bare_lfs(bytes)
}

/// Computes RFC822.SIZE by reading a file in 64 KiB steps (a big message is never held
/// whole: the size of every message of a folder may be asked at once).
pub fn file_crlf_size(fs: &Beneath, path: &Path) -> std::io::Result<u64> {
    let mut f = fs.open_file(path, How::Read)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut counter = CrlfCounter::default();
    loop {
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) => return Ok(counter.size),
            Ok(n) => counter.feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// [`crlf_size`] over bytes that arrive in pieces.
#[derive(Default)]
pub struct CrlfCounter {
    pub size: u64,
    /// The last byte fed was a CR (a LF at the start of the next piece is not bare).
    after_cr: bool,
}

impl CrlfCounter {
    pub fn feed(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else { return };
        let mut bare = bare_lfs(bytes);
        if bytes[0] == b'\n' && self.after_cr {
            bare -= 1;
        }
        self.size += bytes.len() as u64 + bare;
        self.after_cr = last == b'\r';
    }
}

/// Reads a message file with CRLF line ends. `NotFound` is passed through for the caller.
///
/// Message files are read, not mapped: a file that another program truncates while it is
/// mapped would kill the whole daemon with SIGBUS, and "never crash on what a disk does"
/// outweighs the saved copy from the page cache.
///
/// `served_len`: the message's RFC822.SIZE when known. A file of exactly that length has
/// no bare LF (the size counts each as two octets), so it is not scanned for one: on a
/// SEARCH BODY over 100,000 messages the scan cost more than the search.
pub fn read_message(
    folder: &Folder,
    path: &Path,
    served_len: Option<u64>,
) -> std::io::Result<MessageData> {
    let data = read_stored(folder, path, None)?;
    if served_len == Some(data.len() as u64) || bare_lfs(&data) == 0 {
        return Ok(data);
    }
    Ok(MessageData::Owned(to_crlf(&data)))
}

/// Reads a message file as it is stored (line ends not converted). `size_hint`: about
/// how long it is (the RFC822.SIZE the index knows, never less than the stored length of
/// an unchanged file), which saves asking the file system.
pub fn read_stored(
    folder: &Folder,
    path: &Path,
    size_hint: Option<u64>,
) -> std::io::Result<MessageData> {
    let file = folder.open_read(path)?;
    let len = match size_hint {
        Some(n) => n,
        None => file.metadata()?.len(),
    };
    Ok(MessageData::Owned(crate::beneath::read_sized(&file, len)?))
}

/// Reads octets `range` of a message file when the file holds exactly the served bytes:
/// its length must be `served_len` (RFC822.SIZE, which counts a bare LF as two octets, so
/// equal lengths mean there is nothing to convert). `None` otherwise, or when the range is
/// not inside the file (also when the file shrank while reading).
pub fn read_range(
    folder: &Folder,
    path: &Path,
    served_len: u64,
    range: std::ops::Range<u64>,
) -> std::io::Result<Option<MessageData>> {
    use std::os::unix::fs::FileExt;
    let file = folder.open_read(path)?;
    let len = file.metadata()?.len();
    if len != served_len || range.start > range.end || range.end > len {
        return Ok(None);
    }
    let Ok(n) = usize::try_from(range.end - range.start) else {
        return Ok(None);
    };
    let mut v = vec![0u8; n];
    match file.read_exact_at(&mut v, range.start) {
        Ok(()) => Ok(Some(MessageData::Owned(v))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads only the header block of a message file (up to and including the empty line
/// that ends it), CRLF line ends. ENVELOPE, BODY[HEADER…] and header SEARCH keys need no
/// more, and attachments can be megabytes. A file without an empty line is all header.
pub fn read_header(folder: &Folder, path: &Path) -> std::io::Result<MessageData> {
    read_header_from(&mut folder.open_read(path)?)
}

/// [`read_header`] of an opened file.
fn read_header_from(file: &mut impl std::io::Read) -> std::io::Result<MessageData> {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let mut searched: usize = 0;
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(MessageData::Owned(to_crlf(&buf)));
        }
        buf.extend_from_slice(&chunk[..n]);
        // Look for LF (CR) LF from where the previous search stopped (minus overlap).
        // Only the very start of the message may be the empty line itself: a line end
        // that happens to sit at a read boundary is not one (that cut long headers short,
        // and SEARCH HEADER missed fields after the first 8 KiB).
        let from = searched.saturating_sub(2);
        let found = if from == 0 {
            header_end(&buf)
        } else {
            blank_line_end(&buf[from..]).map(|e| e + from)
        };
        if let Some(end) = found {
            buf.truncate(end);
            return Ok(MessageData::Owned(to_crlf(&buf)));
        }
        searched = buf.len();
    }
}

/// Length of the header block (through the empty line) if `data`, the start of a message,
/// contains its end.
fn header_end(data: &[u8]) -> Option<usize> {
    if data.starts_with(b"\r\n") {
        return Some(2);
    }
    if data.starts_with(b"\n") {
        return Some(1);
    }
    blank_line_end(data)
}

/// Just past the first empty line that follows a line end in `data` (LF LF or LF CR LF).
fn blank_line_end(data: &[u8]) -> Option<usize> {
    for lf in memchr::memchr_iter(b'\n', data) {
        match data.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if data.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod crlf_tests {
    use super::*;

    fn test_storage() -> Arc<StorageCtx> {
        StorageCtx::new(
            &crate::config::Config::for_tests(std::path::Path::new("/nonexistent")).storage,
        )
    }

    proptest::proptest! {
        /// Counting in pieces (any split, a CR LF across a cut) equals counting at once.
        #[test]
        fn crlf_counter_equals_whole_count(
            data in proptest::collection::vec(proptest::sample::select(vec![b'\r', b'\n', b'a']), 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut c = CrlfCounter::default();
            let mut at = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                c.feed(&data[at..cut]);
                at = cut;
            }
            proptest::prop_assert_eq!(c.size, crlf_size(&data));
        }
    }

    #[test]
    fn range_reads_only_files_holding_served_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let crlf = dir.path().join("crlf");
        std::fs::write(&crlf, b"A: b\r\n\r\nbody\r\n").unwrap();
        let lf = dir.path().join("lf");
        std::fs::write(&lf, b"A: b\n\nbody\n").unwrap();
        let root = Arc::new(Root::new(Beneath::open(dir.path()).unwrap()));
        let top = root.fs.root().to_path_buf();
        let fs = Folder::new("INBOX".into(), top.clone(), root, &test_storage());
        let (crlf, lf) = (top.join("crlf"), top.join("lf"));
        let got = read_range(&fs, &crlf, 14, 8..12).unwrap().unwrap();
        assert_eq!(&got[..], b"body");
        assert_eq!(
            &read_range(&fs, &crlf, 14, 0..14).unwrap().unwrap()[..],
            b"A: b\r\n\r\nbody\r\n"
        );
        assert!(
            read_range(&fs, &crlf, 14, 8..15).unwrap().is_none(),
            "beyond the end"
        );
        assert!(
            read_range(&fs, &crlf, 15, 8..12).unwrap().is_none(),
            "size changed"
        );
        // The LF file is 11 bytes but serves 14: never read by range.
        assert_eq!(crlf_size(&std::fs::read(&lf).unwrap()), 14);
        assert!(read_range(&fs, &lf, 14, 0..4).unwrap().is_none());
        assert!(read_range(&fs, &top.join("gone"), 14, 0..4).is_err());
    }

    /// A line end exactly at the end of a read chunk is not the end of the header.
    #[test]
    fn header_read_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        for (eol, extra) in [("\r\n", 0usize), ("\n", 0), ("\r\n", 1), ("\n", 1)] {
            for boundary in [8192usize, 16384] {
                let mut h = String::new();
                while h.len() < boundary - 200 {
                    h.push_str(&format!("Received: from x{} by y{eol}", h.len()));
                }
                // The line that ends right at (or one past) the read boundary.
                let pad = boundary + extra - h.len() - "X-Pad: ".len() - eol.len();
                h.push_str(&format!("X-Pad: {}{eol}", "p".repeat(pad)));
                assert_eq!(h.len(), boundary + extra);
                h.push_str(&format!("X-Deep: found{eol}{eol}body{eol}"));
                let root = Arc::new(Root::new(Beneath::open(dir.path()).unwrap()));
                let top = root.fs.root().to_path_buf();
                let folder = Folder::new("INBOX".into(), top.clone(), root, &test_storage());
                let path = top.join("m");
                std::fs::write(&path, &h).unwrap();
                let got = read_header(&folder, &path).unwrap();
                let text = String::from_utf8_lossy(&got);
                assert!(
                    text.contains("X-Deep: found\r\n"),
                    "{eol:?} {boundary} {extra}"
                );
                assert!(text.ends_with("\r\n\r\n") && !text.contains("body"));
            }
        }
    }

    #[test]
    fn converts_bare_lfs_only() {
        assert_eq!(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(to_crlf(b"\n\n"), b"\r\n\r\n");
        assert_eq!(to_crlf(b"no newline"), b"no newline");
        assert_eq!(to_crlf(b""), b"");
        assert_eq!(header_end(b"A: b\nC: d\n\nbody"), Some(11));
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"\r\nbody"), Some(2));
        assert_eq!(header_end(b"A: b\r\n"), None);
        let sample = b"x\ny\r\n\nz";
        assert_eq!(to_crlf(sample).len() as u64, crlf_size(sample));
    }
}
