//! The in-place mode of a rewrite (journal `mode moves`): when every kept piece moves the
//! same way (all toward the start of the file, as an expunge moves them, or all toward
//! its end, as fields that grow do), the kept bytes are copied inside the mbox itself,
//! once. The temporary file holds only the new bytes, the plan and the checkpoints.
//!
//! **Walk coordinates.** A move toward the start goes from low offsets up; one toward the
//! end goes from the new end down. A walk position counts from where the walk starts
//! (`x - offset` in the first case, `new_len - x` in the second, ranges flipped), so that
//! in both every kept byte's source lies at or after its destination and one algorithm
//! serves both.
//!
//! **The rule.** A write may overwrite an old byte only if that byte is no kept piece's
//! source, or its destination lies below the *covered* position: the position of the
//! last durable checkpoint (every destination below it was written and forced to disk
//! before the checkpoint was) plus the bytes that checkpoint staged. Before a write would
//! break the rule, the mbox is forced to disk and a new checkpoint written. A chunk never
//! overlaps its own source (the rule forbids it), so `copy_file_range(2)` on the one file
//! serves. Recovery walks again from the last checkpoint: every source it reads is
//! intact, so it writes the same bytes again.
//!
//! **Staging.** Where sources lie close behind their destinations (a gap of a few bytes
//! when a field shrinks), the rule would allow only small chunks, each needing a
//! checkpoint. When the chunk allowed at a checkpoint is under [`MIN_DIRECT`], up to
//! [`STAGE`] bytes of the new content are copied into a staging area of the temporary
//! file instead, forced to disk, and named by a checkpoint before they are written into
//! the mbox: those bytes are written twice, as the whole range was before this mode.
//!
//! Each [`HINT`] bytes written, writing back the whole pages written since is started
//! (`sync_file_range(2)`), so that the next checkpoint's `fdatasync` waits for less.
//!
//! **The temporary file**: the new bytes, one after the other; the table (per part: 1
//! byte kept or new, 8 bytes source, 8 bytes length, in the new content's order); 16
//! bytes: the new bytes' length and the table's count. The journal's length and CRC cover
//! these. Then two checkpoint slots of [`SLOT`] bytes (sequence number, walk position,
//! bytes staged, CRC; a checkpoint goes to the slot of its number's parity, so that a
//! torn write leaves the one before intact), then two staging areas of [`STAGE`] bytes
//! (a checkpoint's staged bytes are in the area of its parity).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

use super::{Piece, Plan, RewriteError, Stop};
use crate::beneath;

/// The most bytes one copy writes (the tests' files are small: smaller sizes there give
/// them many chunks, checkpoints and stages).
#[cfg(not(test))]
const CHUNK: u64 = 8 << 20;
#[cfg(test)]
const CHUNK: u64 = 256 << 10;
/// A chunk the rule allows at a checkpoint smaller than this is staged instead.
#[cfg(not(test))]
const MIN_DIRECT: u64 = 256 << 10;
#[cfg(test)]
const MIN_DIRECT: u64 = 16 << 10;
/// The most bytes staged at a time.
#[cfg(not(test))]
const STAGE: u64 = 4 << 20;
#[cfg(test)]
const STAGE: u64 = 64 << 10;
/// A table entry: kept or new, source, length.
const ENTRY: usize = 17;
/// After the table: the new bytes' length, the table's count.
const TRAILER: usize = 16;
/// A checkpoint slot.
const SLOT: u64 = 32;
/// Writing back what the walk wrote is started each time this much more is written.
const HINT: u64 = 4 << 20;
const PAGE: u64 = 4096;
/// Written over what a test's power loss leaves undefined.
#[cfg(test)]
const LOST: u8 = 0xA5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Toward the start of the file (an expunge).
    Left,
    /// Toward its end (fields that grow).
    Right,
}

/// `len` bytes of the new content at `dest`, from the old file at `src` (`old`) or from
/// the temporary file's new bytes at `src`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seg {
    dest: u64,
    src: u64,
    len: u64,
    old: bool,
}

/// A plan whose kept pieces all move one way.
#[derive(Debug)]
pub(super) struct Moves {
    offset: u64,
    pub(super) new_len: u64,
    dir: Dir,
    /// In the new content's order.
    segs: Vec<Seg>,
    /// The new bytes' length.
    bytes: u64,
}

impl Moves {
    /// From parts (kept, source, length) in the new content's order from `offset`;
    /// `None` when the kept parts do not all move one way, lie before `offset`, overlap or
    /// are out of order, or a part lies outside the file or the new bytes.
    fn build(
        offset: u64,
        old_len: u64,
        bytes: u64,
        parts: impl IntoIterator<Item = (bool, u64, u64)>,
    ) -> Option<Moves> {
        let (mut dest, mut kept_end) = (offset, offset);
        let (mut left, mut right) = (false, false);
        let mut segs = Vec::new();
        for (old, src, len) in parts {
            let end = src.checked_add(len)?;
            if len == 0 {
                continue;
            }
            if old {
                if src < kept_end || end > old_len {
                    return None;
                }
                left |= dest < src;
                right |= dest > src;
                kept_end = end;
            } else if end > bytes {
                return None;
            }
            segs.push(Seg {
                dest,
                src,
                len,
                old,
            });
            dest = dest.checked_add(len)?;
        }
        let dir = match (left, right) {
            (true, true) => return None,
            (false, true) => Dir::Right,
            _ => Dir::Left,
        };
        Some(Moves {
            offset,
            new_len: dest,
            dir,
            segs,
            bytes,
        })
    }

    /// The bytes the walk writes.
    fn total(&self) -> u64 {
        self.new_len - self.offset
    }

    /// The `i`th segment in walk order.
    fn seg(&self, i: usize) -> Seg {
        match self.dir {
            Dir::Left => self.segs[i],
            Dir::Right => self.segs[self.segs.len() - 1 - i],
        }
    }

    /// The walk position of the real range `at..at + len`.
    fn walk_pos(&self, at: u64, len: u64) -> u64 {
        match self.dir {
            Dir::Left => at - self.offset,
            Dir::Right => self.new_len - at - len,
        }
    }

    /// The real (destination, source) of `len` bytes `k` bytes into `s` in walk order.
    fn real(&self, s: &Seg, k: u64, len: u64) -> (u64, u64) {
        let off = match self.dir {
            Dir::Left => k,
            Dir::Right => s.len - k - len,
        };
        (s.dest + off, s.src + off)
    }

    /// The real start of the walk positions `a..a + len`.
    fn real_start(&self, a: u64, len: u64) -> u64 {
        match self.dir {
            Dir::Left => self.offset + a,
            Dir::Right => self.new_len - a - len,
        }
    }
}

/// The plan as moves; `None`: its kept pieces do not all move one way (the rewrite copies
/// the whole range through the temporary file instead).
pub(super) fn of_plan(plan: &Plan, old_len: u64) -> Result<Option<Moves>, RewriteError> {
    let mut at = 0u64;
    let mut parts = Vec::with_capacity(plan.pieces.len());
    for p in &plan.pieces {
        match p {
            Piece::Keep(r) if r.start > r.end || r.end > old_len => {
                return Err(RewriteError::BadPlan)
            }
            Piece::Keep(r) => parts.push((true, r.start, r.end - r.start)),
            Piece::Bytes(b) => {
                parts.push((false, at, b.len() as u64));
                at += b.len() as u64;
            }
        }
    }
    if plan.offset > old_len {
        return Err(RewriteError::BadPlan);
    }
    Ok(Moves::build(plan.offset, old_len, at, parts))
}

fn put(out: &mut BufWriter<&File>, crc: &mut crc32fast::Hasher, b: &[u8]) -> io::Result<()> {
    crc.update(b);
    out.write_all(b)
}

/// Writes the new bytes, the table and the first checkpoint into `temp` (empty): the
/// length the journal records and its CRC.
pub(super) fn write_temp(temp: &File, plan: &Plan, m: &Moves) -> io::Result<(u64, u32)> {
    let mut crc = crc32fast::Hasher::new();
    let mut out = BufWriter::with_capacity(1 << 20, temp);
    for p in &plan.pieces {
        if let Piece::Bytes(b) = p {
            put(&mut out, &mut crc, b)?;
        }
    }
    for s in &m.segs {
        let mut e = [0u8; ENTRY];
        e[0] = u8::from(s.old);
        e[1..9].copy_from_slice(&s.src.to_le_bytes());
        e[9..].copy_from_slice(&s.len.to_le_bytes());
        put(&mut out, &mut crc, &e)?;
    }
    let mut t = [0u8; TRAILER];
    t[..8].copy_from_slice(&m.bytes.to_le_bytes());
    t[8..].copy_from_slice(&(m.segs.len() as u64).to_le_bytes());
    put(&mut out, &mut crc, &t)?;
    out.flush()?;
    drop(out);
    let len = m.bytes + (m.segs.len() * ENTRY + TRAILER) as u64;
    let first = Record {
        seq: 0,
        pos: 0,
        staged: 0,
    };
    temp.write_all_at(&first.encode(), len)?;
    Ok((len, crc.finalize()))
}

/// The moves a journal's temporary file holds (`temp_len` bytes, their CRC checked by
/// the caller), for a file of `old_len` bytes that becomes `new_len` from `offset` on.
pub(super) fn read_temp(
    temp: &File,
    offset: u64,
    old_len: u64,
    new_len: u64,
    temp_len: u64,
) -> Result<Moves, RewriteError> {
    let bad = || RewriteError::Journal("its table of moves does not fit".into());
    let mut t = [0u8; TRAILER];
    let at = temp_len.checked_sub(TRAILER as u64).ok_or_else(bad)?;
    temp.read_exact_at(&mut t, at)?;
    let bytes = u64::from_le_bytes(t[..8].try_into().expect("8 bytes"));
    let count = u64::from_le_bytes(t[8..].try_into().expect("8 bytes"));
    let table = count.checked_mul(ENTRY as u64).ok_or_else(bad)?;
    if bytes.checked_add(table) != Some(at) {
        return Err(bad());
    }
    let mut b = vec![0u8; table as usize];
    temp.read_exact_at(&mut b, bytes)?;
    let parts = b.chunks_exact(ENTRY).map(|e| {
        let src = u64::from_le_bytes(e[1..9].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(e[9..].try_into().expect("8 bytes"));
        (e[0] != 0, src, len)
    });
    let m = Moves::build(offset, old_len, bytes, parts).ok_or_else(bad)?;
    match m.new_len == new_len {
        true => Ok(m),
        false => Err(bad()),
    }
}

/// A checkpoint: every walk position below `pos` is written and on disk, and the `staged`
/// bytes from `pos` on are in the staging area of the parity of `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    seq: u64,
    pos: u64,
    staged: u64,
}

impl Record {
    fn encode(&self) -> [u8; SLOT as usize] {
        let mut b = [0u8; SLOT as usize];
        b[..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.pos.to_le_bytes());
        b[16..24].copy_from_slice(&self.staged.to_le_bytes());
        let crc = crc32fast::hash(&b[..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Record> {
        let crc = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
        let num = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().expect("8"));
        (crc32fast::hash(&b[..24]) == crc).then(|| Record {
            seq: num(0..8),
            pos: num(8..16),
            staged: num(16..24),
        })
    }
}

/// Where checkpoint `seq` goes in a temporary file whose journaled part is `base` bytes.
fn slot(base: u64, seq: u64) -> u64 {
    base + (seq % 2) * SLOT
}

/// Where the bytes staged by checkpoint `seq` go.
fn area(base: u64, seq: u64) -> u64 {
    base + 2 * SLOT + (seq % 2) * STAGE
}

/// The last checkpoint written whole.
fn latest(temp: &File, base: u64, total: u64) -> Result<Record, RewriteError> {
    let mut b = [0u8; 2 * SLOT as usize];
    // Slot 1 is missing before the first checkpoint after the start.
    let n = beneath::read_full_at(temp, &mut b, base)?;
    let b = &b[..n];
    let fits = |r: &Record| r.staged <= STAGE && r.pos.checked_add(r.staged) <= Some(total);
    b.chunks_exact(SLOT as usize)
        .enumerate()
        .filter_map(|(k, s)| Record::decode(s).filter(|r| r.seq % 2 == k as u64))
        .filter(fits)
        .max_by_key(|r| r.seq)
        .ok_or_else(|| RewriteError::Journal("no checkpoint can be read".into()))
}

/// What a walk did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Walked {
    /// A test's stop came first.
    pub stopped: bool,
    /// Checkpoints written, and how many of them staged bytes.
    pub records: u64,
    pub stages: u64,
}

/// Walks the moves of `m` from the last checkpoint of `temp` (whose journaled part is
/// `base` bytes) to the end, or to a test's `stop`.
pub(super) fn run(
    file: &File,
    temp: &File,
    m: &Moves,
    base: u64,
    stop: Stop,
) -> Result<Walked, RewriteError> {
    let r = latest(temp, base, m.total())?;
    let mut olds: Vec<Old> = (0..m.segs.len())
        .map(|i| m.seg(i))
        .filter(|s| s.old && s.src != s.dest)
        .map(|s| Old {
            src: m.walk_pos(s.src, s.len),
            dest: m.walk_pos(s.dest, s.len),
            len: s.len,
        })
        .collect();
    olds.shrink_to_fit();
    let mut w = Walker {
        file,
        temp,
        m,
        olds,
        base,
        seq: r.seq,
        done: r.pos,
        covered: r.pos + r.staged,
        hinted: r.pos,
        stop,
        written: 0,
        records: 0,
        stages: 0,
        unsynced: Vec::new(),
    };
    let stopped = (r.staged > 0 && w.unstage(r.pos, r.staged)?) || w.walk()?;
    Ok(Walked {
        stopped,
        records: w.records,
        stages: w.stages,
    })
}

/// A kept segment in walk coordinates.
#[derive(Clone, Copy, Debug)]
struct Old {
    src: u64,
    dest: u64,
    len: u64,
}

/// A walk under way.
struct Walker<'a> {
    file: &'a File,
    temp: &'a File,
    m: &'a Moves,
    /// The segments kept that move, in walk order (their sources ascending too).
    olds: Vec<Old>,
    base: u64,
    /// The last checkpoint's number.
    seq: u64,
    /// Every walk position below `done` is written.
    done: u64,
    /// Every walk position below `covered` is on disk or staged (the last checkpoint).
    covered: u64,
    /// Writing back was started for the walk positions below this.
    hinted: u64,
    stop: Stop,
    /// Bytes written into the mbox, and checkpoints written (a test's stop).
    written: u64,
    records: u64,
    stages: u64,
    /// Real ranges of the mbox written since it was last forced to disk (a test's power
    /// loss makes them undefined).
    unsynced: Vec<(u64, u64)>,
}

impl Walker<'_> {
    fn walk(&mut self) -> Result<bool, RewriteError> {
        let n = self.m.segs.len();
        let mut i = 0;
        while i < n {
            let s = self.m.seg(i);
            let start = self.m.walk_pos(s.dest, s.len);
            let end = start + s.len;
            if end <= self.done {
                i += 1;
                continue;
            }
            if s.old && s.src == s.dest {
                // Stays where it is: nothing to write, nothing to protect.
                self.done = end;
                continue;
            }
            let want = (end - self.done).min(CHUNK);
            let c = self.safe(self.done, want);
            let stopped = if c > 0 && (c == want || self.done > self.covered || c >= MIN_DIRECT) {
                self.copy(&s, self.done - start, c)?
            } else if self.done > self.covered {
                self.checkpoint(0)?
            } else {
                self.stage(i)?
            };
            if stopped {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// How many of the `want` bytes from walk position `at` can be written now: every old
    /// byte they overwrite that is a source has its destination below `covered`.
    fn safe(&self, at: u64, want: u64) -> u64 {
        let end = at + want;
        let mut i = self.olds.partition_point(|o| o.src + o.len <= at);
        while let Some(o) = self.olds.get(i) {
            if o.src >= end {
                break;
            }
            // Sources below `limit` have their destinations below `covered`.
            let limit = self.covered + (o.src - o.dest);
            let first = o.src.max(at);
            if first >= limit {
                return first - at;
            }
            if limit < (o.src + o.len).min(end) {
                return limit - at;
            }
            i += 1;
        }
        want
    }

    /// How much of `len` bytes a test's stop lets be written into the mbox.
    fn allowed(&self, len: u64) -> u64 {
        match self.stop {
            Stop::Copied(n) | Stop::Lost(n) => len.min(n.saturating_sub(self.written)),
            _ => len,
        }
    }

    /// Writes `len` bytes of `from` at `src` into the mbox at `dest`: `false` when a
    /// test's stop lets fewer be written (those are, then the walk stops).
    fn write(&mut self, from: &File, src: u64, dest: u64, len: u64) -> Result<bool, RewriteError> {
        let n = self.allowed(len);
        beneath::copy_range(from, src, self.file, dest, n)?;
        self.written += n;
        if self.stop != Stop::Never {
            self.unsynced.push((dest, n));
        }
        Ok(n == len)
    }

    /// Copies `c` bytes `k` bytes into segment `s` (walk order); `true`: stopped.
    fn copy(&mut self, s: &Seg, k: u64, c: u64) -> Result<bool, RewriteError> {
        let (dest, src) = self.m.real(s, k, c);
        let from = if s.old { self.file } else { self.temp };
        if !self.write(from, src, dest, c)? {
            return self.halt();
        }
        self.done += c;
        self.hint();
        Ok(false)
    }

    /// Starts writing back the whole pages the walk wrote since the last time, every
    /// [`HINT`] bytes (not the page it is in the middle of), so that the next
    /// checkpoint's `fdatasync` waits for less. Only a hint: errors are ignored.
    fn hint(&mut self) {
        if self.done - self.hinted < HINT {
            return;
        }
        let len = self.done - self.hinted;
        let lo = self.m.real_start(self.hinted, len);
        let (lo, hi) = match self.m.dir {
            Dir::Left => (lo, (lo + len) / PAGE * PAGE),
            Dir::Right => (lo.div_ceil(PAGE) * PAGE, lo + len),
        };
        if hi > lo {
            let _ = beneath::start_writeback(self.file, lo, hi - lo);
            self.hinted += hi - lo;
        }
    }

    /// Forces the mbox to disk and writes checkpoint `done` (with `staged` bytes staged
    /// in the area of its number); `true`: stopped.
    fn checkpoint(&mut self, staged: u64) -> Result<bool, RewriteError> {
        self.file.sync_data()?;
        self.unsynced.clear();
        let r = Record {
            seq: self.seq + 1,
            pos: self.done,
            staged,
        };
        let mut b = r.encode();
        self.records += 1;
        let torn = self.stop == Stop::Torn(self.records);
        if torn {
            // What a write cut short by a power loss can leave.
            b[20..].fill(0);
        }
        self.temp.write_all_at(&b, slot(self.base, r.seq))?;
        self.temp.sync_data()?;
        if torn {
            return Ok(true);
        }
        self.seq = r.seq;
        self.covered = self.done + staged;
        Ok(self.stop == Stop::Records(self.records))
    }

    /// Stages the new content from `done` (segment `i` on), checkpoints it and writes it
    /// into the mbox; `true`: stopped.
    fn stage(&mut self, mut i: usize) -> Result<bool, RewriteError> {
        let len = (self.m.total() - self.done).min(STAGE);
        let (from, to) = (self.done, self.done + len);
        let lo = self.m.real_start(from, len);
        let area = area(self.base, self.seq + 1);
        while i < self.m.segs.len() {
            let s = self.m.seg(i);
            let start = self.m.walk_pos(s.dest, s.len);
            if start >= to {
                break;
            }
            let (a, b) = (start.max(from), (start + s.len).min(to));
            let (dest, src) = self.m.real(&s, a - start, b - a);
            let f = if s.old { self.file } else { self.temp };
            beneath::copy_range(f, src, self.temp, area + (dest - lo), b - a)?;
            i += 1;
        }
        self.temp.sync_data()?;
        self.stages += 1;
        if self.checkpoint(len)? {
            return Ok(true);
        }
        self.unstage(from, len)
    }

    /// Writes the `len` bytes staged by the last checkpoint into the mbox at walk
    /// position `at`; `true`: stopped.
    fn unstage(&mut self, at: u64, len: u64) -> Result<bool, RewriteError> {
        let lo = self.m.real_start(at, len);
        let (temp, area) = (self.temp, area(self.base, self.seq));
        match self.m.dir {
            Dir::Left => {
                if !self.write(temp, area, lo, len)? {
                    return self.halt();
                }
            }
            // From the top down, as the walk goes (a test's stop cuts it there).
            Dir::Right => {
                let n = self.allowed(len);
                if !self.write(temp, area + len - n, lo + len - n, n)? || n < len {
                    return self.halt();
                }
            }
        }
        self.done = at + len;
        self.hint();
        Ok(false)
    }

    /// A test's stop in the middle of writing; a power loss there leaves every byte
    /// written since the mbox was last forced to disk undefined, and the staging area the
    /// last checkpoint does not name.
    fn halt(&mut self) -> Result<bool, RewriteError> {
        #[cfg(test)]
        if let Stop::Lost(_) = self.stop {
            for &(at, len) in &self.unsynced {
                self.file.write_all_at(&vec![LOST; len as usize], at)?;
            }
            let free = area(self.base, self.seq + 1);
            self.temp.write_all_at(&vec![LOST; STAGE as usize], free)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
#[path = "moves_tests.rs"]
pub(super) mod tests;
