//! The selected mailbox as this session sees it: message sequence numbers, flags, \Recent,
//! and the untagged updates (EXISTS, EXPUNGE, FETCH FLAGS, RECENT) that bring the client
//! from its view to the store's current state.
//!
//! RFC 3501 §7.4.1 / §5.5: EXPUNGE must not be sent while responding to FETCH, STORE or
//! SEARCH; during those commands expunged messages stay in the view (their metadata is
//! kept) and the EXPUNGEs are sent after a later command.

use std::collections::HashSet;
use std::sync::Arc;

use crate::mailbox::search::NumSet;
use crate::mailbox::{Flags, Mailbox, MessageMeta, Result, Snapshot, SysFlags, Uid};

pub struct View {
    pub mailbox: Box<dyn Mailbox>,
    pub read_only: bool,
    /// Sequence number i+1 is `messages[i]`; ascending UIDs.
    pub messages: Vec<MessageMeta>,
    pub recent: HashSet<Uid>,
    /// UIDs the store no longer has but the client has not been told about yet.
    pub expunged_pending: HashSet<Uid>,
    snapshot: Arc<Snapshot>,
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub keywords: Vec<String>,
    /// Count of RECENT last announced.
    announced_recent: usize,
}

impl View {
    /// Opens the view: the first sync's state is what SELECT reports.
    pub fn open(mut mailbox: Box<dyn Mailbox>, read_only: bool) -> Result<View> {
        let res = mailbox.sync()?;
        let snap = res.snapshot;
        let announced_recent = res.new_recent.len();
        Ok(View {
            read_only,
            messages: snap.messages.clone(),
            recent: res.new_recent.into_iter().collect(),
            expunged_pending: HashSet::new(),
            uid_validity: snap.uid_validity,
            uid_next: snap.uid_next,
            keywords: snap.keywords.clone(),
            announced_recent,
            snapshot: snap,
            mailbox,
        })
    }

    pub fn exists(&self) -> u32 {
        self.messages.len() as u32
    }

    pub fn max_uid(&self) -> Uid {
        self.messages.last().map(|m| m.uid).unwrap_or(0)
    }

    pub fn recent_count(&self) -> usize {
        self.recent.len()
    }

    /// Sequence number (1-based) of a UID in the view.
    pub fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.messages
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }

    /// Indexes (0-based) of the messages a sequence set names, ascending, or `Err` when it
    /// names a sequence number that does not exist (RFC 3501 §6.4: invalid message set).
    pub fn resolve_seq(&self, set: &NumSet) -> std::result::Result<Vec<usize>, &'static str> {
        let max = self.exists();
        let mut out = Vec::new();
        for &(a, b) in &set.ranges {
            let a = if a == NumSet::STAR { max } else { a };
            let b = if b == NumSet::STAR { max } else { b };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            if lo == 0 || hi > max {
                return Err("Invalid messageset");
            }
            out.extend((lo - 1) as usize..hi as usize);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Indexes of the messages whose UIDs a UID set names; UIDs not present are ignored
    /// (RFC 3501 §6.4.8), and `n:*` always includes the highest UID.
    pub fn resolve_uid(&self, set: &NumSet) -> Vec<usize> {
        let max = self.max_uid();
        let mut out = Vec::new();
        for &(a, b) in &set.ranges {
            let a = if a == NumSet::STAR { max } else { a };
            let b = if b == NumSet::STAR { max } else { b };
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let start = self.messages.partition_point(|m| m.uid < lo);
            let end = self.messages.partition_point(|m| m.uid <= hi);
            out.extend(start..end);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Applies flags the session itself just stored.
    pub fn set_flags(&mut self, uid: Uid, flags: Flags) {
        if let Ok(i) = self.messages.binary_search_by_key(&uid, |m| m.uid) {
            self.messages[i].flags = flags;
        }
    }

    /// The FLAGS list of one message, with `\Recent` where this session holds it.
    pub fn flag_list(&self, meta: &MessageMeta, out: &mut Vec<u8>) {
        out.push(b'(');
        let mut first = true;
        for (flag, name) in SysFlags::ALL {
            if meta.flags.sys.contains(flag) {
                if !first {
                    out.push(b' ');
                }
                out.extend_from_slice(name.as_bytes());
                first = false;
            }
        }
        if self.recent.contains(&meta.uid) {
            if !first {
                out.push(b' ');
            }
            out.extend_from_slice(b"\\Recent");
            first = false;
        }
        for kw in &meta.flags.keywords {
            if !first {
                out.push(b' ');
            }
            out.extend_from_slice(kw.as_bytes());
            first = false;
        }
        out.push(b')');
    }

    /// The mailbox's FLAGS / PERMANENTFLAGS lists (RFC 3501 §7.2.6, §7.1).
    pub fn flags_lines(&self, out: &mut Vec<u8>) {
        let mut kws = String::new();
        for k in &self.keywords {
            kws.push(' ');
            kws.push_str(k);
        }
        out.extend_from_slice(
            format!("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{kws})\r\n").as_bytes(),
        );
        if self.read_only {
            out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n");
        } else {
            out.extend_from_slice(
                format!(
                    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{kws} \\*)] Flags permitted.\r\n"
                )
                .as_bytes(),
            );
        }
    }

    /// Looks for changes and queues the untagged responses that report them. When
    /// `allow_expunge` is false, vanished messages stay in the view until a later call.
    ///
    /// Returns `Ok(false)` when the mailbox's UIDVALIDITY changed under the session: every
    /// UID the client holds is then meaningless and the caller must end the session
    /// (RFC 3501 §2.3.1.1).
    pub fn update(&mut self, allow_expunge: bool, out: &mut Vec<u8>) -> Result<bool> {
        let res = self.mailbox.sync()?;
        if res.snapshot.uid_validity != self.uid_validity {
            return Ok(false);
        }
        let new_snapshot = !Arc::ptr_eq(&res.snapshot, &self.snapshot);
        let got_recent = !res.new_recent.is_empty();
        self.recent.extend(res.new_recent);
        if new_snapshot {
            self.snapshot = res.snapshot;
            self.apply_snapshot(out);
        }
        if allow_expunge && !self.expunged_pending.is_empty() {
            self.send_expunges(out);
        }
        if new_snapshot || got_recent {
            if self.recent.len() != self.announced_recent {
                self.announced_recent = self.recent.len();
                out.extend_from_slice(format!("* {} RECENT\r\n", self.recent.len()).as_bytes());
            }
        }
        Ok(true)
    }

    fn apply_snapshot(&mut self, out: &mut Vec<u8>) {
        let snap = Arc::clone(&self.snapshot);
        if !same_keywords(&snap.keywords, &self.keywords) {
            self.keywords = snap.keywords.clone();
            self.flags_lines(out);
        }
        self.uid_next = snap.uid_next;
        // Walk both UID-ascending lists together.
        let mut j = 0;
        let mut flag_updates = Vec::new();
        for i in 0..self.messages.len() {
            let uid = self.messages[i].uid;
            while j < snap.messages.len() && snap.messages[j].uid < uid {
                j += 1;
            }
            match snap.messages.get(j) {
                Some(m) if m.uid == uid => {
                    if m.flags != self.messages[i].flags {
                        self.messages[i].flags = m.flags.clone();
                        flag_updates.push(i);
                    }
                }
                _ => {
                    self.expunged_pending.insert(uid);
                }
            }
        }
        for i in flag_updates {
            let meta = &self.messages[i];
            let mut line = format!("* {} FETCH (FLAGS ", i + 1).into_bytes();
            self.flag_list(meta, &mut line);
            line.extend_from_slice(b")\r\n");
            out.extend_from_slice(&line);
        }
        let max = self.max_uid();
        let before = self.messages.len();
        self.messages
            .extend(snap.messages.iter().filter(|m| m.uid > max).cloned());
        if self.messages.len() != before {
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.messages.len()).as_bytes());
        }
    }

    /// Sends EXPUNGE for every pending vanished message, highest sequence number first so
    /// that each number is valid when sent.
    fn send_expunges(&mut self, out: &mut Vec<u8>) {
        if self.expunged_pending.is_empty() {
            return;
        }
        for i in (0..self.messages.len()).rev() {
            let uid = self.messages[i].uid;
            if self.expunged_pending.contains(&uid) {
                self.recent.remove(&uid);
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
            }
        }
        let gone = std::mem::take(&mut self.expunged_pending);
        self.messages.retain(|m| !gone.contains(&m.uid));
        self.announced_recent = self.announced_recent.min(self.recent.len());
    }

    /// Records that the session itself expunged these UIDs; the EXPUNGE responses are sent
    /// right away (EXPUNGE / CLOSE / MOVE / UID EXPUNGE).
    pub fn expunged_now(&mut self, uids: &[Uid], out: &mut Vec<u8>) {
        self.expunged_pending.extend(uids.iter().copied());
        self.send_expunges(out);
    }

    pub fn is_expunged(&self, uid: Uid) -> bool {
        self.expunged_pending.contains(&uid)
    }
}

/// Keyword lists compared as case-insensitive sets.
fn same_keywords(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|k| b.iter().any(|x| x.eq_ignore_ascii_case(k)))
}
