//! The selected mailbox as this session sees it: message sequence numbers, flags, \Recent,
//! and the untagged updates (EXISTS, EXPUNGE, FETCH FLAGS, RECENT) that bring the client
//! from its view to the store's current state.
//!
//! RFC 3501 §7.4.1 / §5.5: EXPUNGE must not be sent while responding to FETCH, STORE or
//! SEARCH; during those commands expunged messages stay in the view (their metadata is
//! kept) and the EXPUNGEs are sent after a later command.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::imap::response::{push_untagged_ok, ResponseCode};
use crate::mailbox::search::NumSet;
use crate::mailbox::{Flags, Mailbox, MessageMeta, Messages, Result, Snapshot, SysFlags, Uid};

/// A set of UIDs hashed cheaply (see [`crate::mailbox::UidHashSet`]).
pub type UidSet = crate::mailbox::UidHashSet;

/// Memory: a view normally *shares* the store's `Arc<Snapshot>` (1,000 sessions on one
/// 100,000-message mailbox hold one copy of its metadata). It keeps a private copy of the
/// message list only while the client's view differs from the store's — while EXPUNGEs
/// are held back — and drops it as soon as they are sent.
pub struct View {
    pub mailbox: Box<dyn Mailbox>,
    pub read_only: bool,
    /// The latest snapshot the view has taken in.
    snapshot: Arc<Snapshot>,
    /// The client's message list when it differs from `snapshot.messages` (messages
    /// expunged by others and not yet announced are still in it). Sequence number i+1 is
    /// entry i; ascending UIDs.
    local: Option<Messages>,
    /// Flags this session stored and announced that the snapshot does not show yet.
    own_flags: crate::mailbox::UidHashMap<Flags>,
    pub recent: UidSet,
    /// UIDs the store no longer has but the client has not been told about yet.
    pub expunged_pending: HashSet<Uid>,
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
            local: None,
            own_flags: HashMap::default(),
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

    /// The client's messages in sequence order (flags possibly older than `meta` gives).
    fn list(&self) -> &Messages {
        self.local.as_ref().unwrap_or(&self.snapshot.messages)
    }

    /// The message at index `i` (sequence number i+1) with the flags the client was told.
    pub fn meta(&self, i: usize) -> Option<Cow<'_, MessageMeta>> {
        self.list().get(i).map(|m| Cow::Owned(self.as_told(m)))
    }

    /// `m` with the flags this session set itself, where it did.
    fn as_told(&self, mut m: MessageMeta) -> MessageMeta {
        if let Some(f) = self.own_flags.get(&m.uid) {
            m.flags = f.clone();
        }
        m
    }

    pub fn uid_at(&self, i: usize) -> Option<Uid> {
        self.list().uid(i)
    }

    /// `(i, uid)` of each index of `ix` (ascending, as `resolve_*` give them) that is in
    /// the view: a search each when they are few, one walk when they are many (`1:*`).
    pub fn uids_at(&self, ix: &[usize]) -> Vec<(usize, Uid)> {
        let records = self.list().records();
        if ix.len().saturating_mul(16) < records.len() {
            return (ix.iter())
                .filter_map(|&i| records.get(i).map(|r| (i, r.uid)))
                .collect();
        }
        let mut walk = records.iter().enumerate();
        let mut out = Vec::with_capacity(ix.len());
        for &i in ix {
            match walk.find(|(k, _)| *k >= i) {
                Some((k, r)) if k == i => out.push((i, r.uid)),
                Some(_) => debug_assert!(false, "indexes not ascending"),
                None => break,
            }
        }
        out
    }

    pub fn exists(&self) -> u32 {
        self.list().len() as u32
    }

    pub fn max_uid(&self) -> Uid {
        self.list().last_uid().unwrap_or(0)
    }

    pub fn recent_count(&self) -> usize {
        self.recent.len()
    }

    /// Index of the first message without \Seen.
    pub fn first_unseen(&self) -> Option<usize> {
        (self.list().records().iter()).position(|r| match self.own_flags.get(&r.uid) {
            Some(f) => !f.sys.contains(SysFlags::SEEN),
            None => r.flags & SysFlags::SEEN.0 == 0,
        })
    }

    /// Sequence number (1-based) of a UID in the view.
    pub fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.list().find(uid).ok().map(|i| i as u32 + 1)
    }

    /// Indexes (0-based) of the messages a sequence set names, ascending, or `Err` when it
    /// names a sequence number that does not exist (RFC 3501 §6.4: invalid message set).
    pub fn resolve_seq(&self, set: &NumSet) -> std::result::Result<Vec<usize>, &'static str> {
        let max = self.exists();
        let mut out = Vec::new();
        for &(a, b) in &set.ranges {
            let a = if a == NumSet::STAR { max } else { a };
            let b = if b == NumSet::STAR { max } else { b };
            let (lo, mut hi) = if a <= b { (a, b) } else { (b, a) };
            // `n:4294967295` is how some clients write "from n on"; no mailbox has that
            // many messages, so it is read as the last one, not as an invalid number.
            if hi == u32::MAX && lo <= max {
                hi = max;
            }
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
            let start = self.list().count_uids(|u| u < lo);
            let end = self.list().count_uids(|u| u <= hi);
            out.extend(start..end);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Applies flags the session itself just stored.
    pub fn set_flags(&mut self, uid: Uid, flags: Flags) {
        if self.seq_of(uid).is_some() {
            self.own_flags.insert(uid, flags);
        }
    }

    /// Sequence numbers of `uids` (`None`: not in the view), found in one walk when
    /// they ascend (a STORE's results).
    pub fn seqs_of(&self, uids: impl Iterator<Item = Uid>) -> Vec<Option<u32>> {
        let mut seek = self.list().seeker();
        uids.map(|u| seek.find(u).ok().map(|i| i as u32 + 1))
            .collect()
    }

    /// [`View::set_flags`] of a message [`View::seqs_of`] found in the view.
    pub fn set_flags_of_seen(&mut self, uid: Uid, flags: Flags) {
        self.own_flags.insert(uid, flags);
    }

    /// Room for `n` more [`View::set_flags_of_seen`] (a STORE over many messages).
    pub fn reserve_flags(&mut self, n: usize) {
        self.own_flags.reserve(n);
    }

    /// The FLAGS list of one message, with `\Recent` where this session holds it.
    pub fn flag_list(&self, meta: &MessageMeta, out: &mut Vec<u8>) {
        self.flag_list_of(meta.uid, &meta.flags, out)
    }

    /// [`View::flag_list`] of message `uid` with `flags`.
    pub fn flag_list_of(&self, uid: Uid, flags: &Flags, out: &mut Vec<u8>) {
        out.push(b'(');
        let mut first = true;
        for (flag, name) in SysFlags::ALL {
            if flags.sys.contains(flag) {
                if !first {
                    out.push(b' ');
                }
                out.extend_from_slice(name.as_bytes());
                first = false;
            }
        }
        if self.recent.contains(&uid) {
            if !first {
                out.push(b' ');
            }
            out.extend_from_slice(b"\\Recent");
            first = false;
        }
        for kw in &flags.keywords {
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
        let (list, text) = if self.read_only {
            ("()".to_string(), "Read-only mailbox.")
        } else {
            (
                format!("(\\Answered \\Flagged \\Deleted \\Seen \\Draft{kws} \\*)"),
                "Flags permitted.",
            )
        };
        push_untagged_ok(out, &ResponseCode::PermanentFlags(list), text);
    }

    /// Sends FLAGS / PERMANENTFLAGS again when any of `keywords` is new to this session,
    /// so that no FETCH shows a keyword before a FLAGS response named it (RFC 3501
    /// §7.2.6).
    pub fn announce_keywords<'a>(
        &mut self,
        keywords: impl Iterator<Item = &'a String>,
        out: &mut Vec<u8>,
    ) {
        let mut fresh: Vec<String> = Vec::new();
        for k in keywords {
            let same = |v: &String| v.eq_ignore_ascii_case(k);
            if !self.keywords.iter().any(same) && !fresh.iter().any(same) {
                fresh.push(k.clone());
            }
        }
        if !fresh.is_empty() {
            self.keywords.extend(fresh);
            self.flags_lines(out);
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
            self.apply_snapshot(res.snapshot, out);
        }
        if allow_expunge && !self.expunged_pending.is_empty() {
            self.send_expunges(out);
        }
        if (new_snapshot || got_recent) && self.recent.len() != self.announced_recent {
            self.announced_recent = self.recent.len();
            out.extend_from_slice(format!("* {} RECENT\r\n", self.recent.len()).as_bytes());
        }
        Ok(true)
    }

    fn apply_snapshot(&mut self, snap: Arc<Snapshot>, out: &mut Vec<u8>) {
        if !same_keywords(&snap.keywords, &self.keywords) {
            self.keywords = snap.keywords.clone();
            self.flags_lines(out);
        }
        self.uid_next = snap.uid_next;
        let mut flag_updates = Vec::new();
        let mut vanished = Vec::new();
        // Only messages that differ between the snapshot this view is based on and the
        // new one (chunks both share are skipped unread), and those whose flags this
        // session announced itself, can differ from what the client was told.
        let mut uids = self.snapshot.messages.diff(&snap.messages);
        uids.extend(self.own_flags.keys().copied());
        uids.sort_unstable();
        uids.dedup();
        let (mut in_list, mut in_snap) = (self.list().seeker(), snap.messages.seeker());
        for uid in uids {
            let Ok(i) = in_list.find(uid) else {
                continue;
            };
            // The record the seeker stands on (no search by position).
            let Some(old) = in_list
                .record(uid)
                .map(|r| self.as_told(self.list().meta(r)))
            else {
                continue;
            };
            match in_snap.record(uid).map(|r| snap.messages.meta(r)) {
                Some(now) => {
                    if now.flags != old.flags {
                        flag_updates.push((i, now));
                    }
                }
                None => vanished.push(old),
            }
        }
        let max = self.max_uid();
        let added = snap.messages.len() - snap.messages.count_uids(|u| u <= max);
        // Dropped, not cleared: after a STORE over 100,000 messages a cleared map would
        // keep its buckets (megabytes) for the rest of the session.
        self.own_flags = Default::default();
        self.expunged_pending.extend(vanished.iter().map(|m| m.uid));
        let pending: Vec<MessageMeta> = if self.expunged_pending.is_empty() {
            Vec::new()
        } else {
            self.list()
                .iter()
                .filter(|m| self.expunged_pending.contains(&m.uid))
                .collect()
        };
        // From here on the view is based on the new snapshot.
        self.snapshot = Arc::clone(&snap);
        self.local = if pending.is_empty() {
            None
        } else {
            // Diverged: keep the held-back messages in the client's list.
            let mut merged = Vec::with_capacity(snap.messages.len() + pending.len());
            let mut p = pending.into_iter().peekable();
            for m in snap.messages.iter() {
                while p.peek().is_some_and(|x| x.uid < m.uid) {
                    merged.extend(p.next());
                }
                merged.push(m.clone());
            }
            merged.extend(p);
            Some(Messages::from_metas(merged))
        };
        let mut seek = self.list().seeker();
        for (_, m) in &flag_updates {
            if let Some(seq) = seek.find(m.uid).ok().map(|i| i as u32 + 1) {
                let mut line = format!("* {seq} FETCH (FLAGS ").into_bytes();
                self.flag_list(m, &mut line);
                line.extend_from_slice(b")\r\n");
                out.extend_from_slice(&line);
            }
        }
        if added > 0 {
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.exists()).as_bytes());
        }
    }

    /// Sends EXPUNGE for every pending vanished message, highest sequence number first so
    /// that each number is valid when sent.
    fn send_expunges(&mut self, out: &mut Vec<u8>) {
        if self.expunged_pending.is_empty() {
            return;
        }
        let list = self.list();
        for (i, uid) in list.uids().enumerate().rev() {
            if self.expunged_pending.contains(&uid) {
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
            }
        }
        let gone = std::mem::take(&mut self.expunged_pending);
        for uid in &gone {
            self.recent.remove(uid);
            self.own_flags.remove(uid);
        }
        let left = self.list().len() - self.list().uids().filter(|u| gone.contains(u)).count();
        // Back to sharing the snapshot when the client's list now matches it.
        let same = left == self.snapshot.messages.len()
            && (self.list().uids().filter(|u| !gone.contains(u))).eq(self.snapshot.messages.uids());
        self.local = match same {
            true => None,
            false => Some(Messages::from_metas(
                self.list().iter().filter(|m| !gone.contains(&m.uid)),
            )),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::{CopyResult, MessageData, StoreOp, SyncResult};
    use std::sync::Mutex;

    /// A mailbox whose state the test sets directly.
    struct Fake(Arc<Mutex<Arc<Snapshot>>>);

    impl Mailbox for Fake {
        fn name(&self) -> &str {
            "INBOX"
        }
        fn read_only(&self) -> bool {
            false
        }
        fn sync(&mut self) -> Result<SyncResult> {
            let snapshot = self.0.lock().unwrap().clone();
            Ok(SyncResult {
                snapshot,
                new_recent: vec![],
            })
        }
        fn fetch_message(&self, _: Uid) -> Result<MessageData> {
            Ok(MessageData::Owned(vec![]))
        }
        fn store(&mut self, _: &[Uid], _: StoreOp, _: &Flags) -> Result<Vec<(Uid, Flags)>> {
            Ok(vec![])
        }
        fn expunge(&mut self, _: Option<&[Uid]>) -> Result<Vec<Uid>> {
            Ok(vec![])
        }
        fn copy_to(&mut self, _: &[Uid], _: &str) -> Result<CopyResult> {
            Ok(CopyResult::default())
        }
    }

    fn snap(uids: &[(Uid, u8)]) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            uid_validity: 7,
            uid_next: uids.last().map(|u| u.0 + 1).unwrap_or(1),
            messages: Messages::from_metas(uids.iter().map(|&(uid, f)| MessageMeta {
                uid,
                flags: Flags {
                    sys: SysFlags(f),
                    keywords: vec![],
                },
                size: 10,
                internal_date: 0,
            })),
            keywords: vec![],
        })
    }

    fn text(out: &[u8]) -> String {
        String::from_utf8_lossy(out).into_owned()
    }

    #[test]
    fn shares_the_snapshot_and_holds_back_expunges() {
        let state = Arc::new(Mutex::new(snap(&[(1, 0), (2, 0), (3, 0)])));
        let mut v = View::open(Box::new(Fake(state.clone())), false).unwrap();
        assert!(v.local.is_none(), "no private copy while in step");
        // another session expunges 2, flags 3 and delivers 4
        *state.lock().unwrap() = snap(&[(1, 0), (3, 1), (4, 0)]);
        let mut out = Vec::new();
        assert!(v.update(false, &mut out).unwrap());
        assert_eq!(text(&out), "* 3 FETCH (FLAGS (\\Seen))\r\n* 4 EXISTS\r\n");
        assert_eq!(
            v.exists(),
            4,
            "expunged message held back during FETCH/STORE/SEARCH"
        );
        assert!(v.local.is_some());
        out.clear();
        assert!(v.update(true, &mut out).unwrap());
        assert_eq!(text(&out), "* 2 EXPUNGE\r\n");
        assert_eq!(v.exists(), 3);
        assert!(
            v.local.is_none(),
            "back to sharing after the EXPUNGE was sent"
        );
        assert_eq!(v.seq_of(4), Some(3));
    }

    #[test]
    fn own_flags_are_not_announced_twice() {
        let state = Arc::new(Mutex::new(snap(&[(1, 0)])));
        let mut v = View::open(Box::new(Fake(state.clone())), false).unwrap();
        v.set_flags(
            1,
            Flags {
                sys: SysFlags::SEEN,
                keywords: vec![],
            },
        );
        assert!(v.meta(0).unwrap().flags.sys.contains(SysFlags::SEEN));
        *state.lock().unwrap() = snap(&[(1, 1)]);
        let mut out = Vec::new();
        v.update(true, &mut out).unwrap();
        assert_eq!(text(&out), "");
    }

    proptest::proptest! {
        /// A view that updates from the store's deltas (snapshots made with
        /// `Snapshot::succeed`, the view possibly several generations behind) sends
        /// exactly what a view comparing every message sends.
        #[test]
        fn delta_updates_match_full_compares(
            steps in proptest::collection::vec((0u8..6, proptest::prelude::any::<u16>(), proptest::prelude::any::<u8>()), 1..60)
        ) {
            use std::collections::BTreeMap;
            let mut msgs: BTreeMap<Uid, u8> = (1..=20).map(|u| (u, 0)).collect();
            let mut next: Uid = 21;
            let make = |m: &BTreeMap<Uid, u8>, next: Uid| {
                let mut s = (*snap(&m.iter().map(|(u, f)| (*u, *f)).collect::<Vec<_>>())).clone();
                s.uid_next = next;
                s
            };
            let inc_state = Arc::new(Mutex::new(Arc::new(
                Snapshot::default().succeed(make(&msgs, next)).unwrap(),
            )));
            let full_state = Arc::new(Mutex::new(Arc::new(make(&msgs, next))));
            let mut a = View::open(Box::new(Fake(inc_state.clone())), false).unwrap();
            let mut b = View::open(Box::new(Fake(full_state.clone())), false).unwrap();
            for (op, x, y) in steps {
                let nth = |m: &BTreeMap<Uid, u8>| m.keys().nth(usize::from(x) % m.len().max(1)).copied();
                match op {
                    0 => {
                        if let Some(u) = nth(&msgs) {
                            msgs.insert(u, y & 0x1f);
                        }
                    }
                    1 => {
                        msgs.insert(next, y & 0x1f);
                        next += 1;
                    }
                    2 => {
                        if let Some(u) = nth(&msgs) {
                            msgs.remove(&u);
                        }
                    }
                    3 | 4 => {
                        let (mut oa, mut ob) = (Vec::new(), Vec::new());
                        let allow = op == 3;
                        proptest::prop_assert_eq!(a.update(allow, &mut oa).unwrap(), b.update(allow, &mut ob).unwrap());
                        proptest::prop_assert_eq!(text(&oa), text(&ob));
                        proptest::prop_assert_eq!(a.exists(), b.exists());
                        continue;
                    }
                    _ => {
                        // The session stores flags itself.
                        if let Some(uid) = a.uid_at(usize::from(x) % (a.exists().max(1) as usize)) {
                            let f = Flags { sys: SysFlags(y & 0x1f), keywords: vec![] };
                            a.set_flags(uid, f.clone());
                            b.set_flags(uid, f);
                            if msgs.contains_key(&uid) {
                                msgs.insert(uid, y & 0x1f);
                            }
                        }
                    }
                }
                let cur = inc_state.lock().unwrap().clone();
                if let Some(n) = cur.succeed(make(&msgs, next)) {
                    *inc_state.lock().unwrap() = Arc::new(n);
                }
                *full_state.lock().unwrap() = Arc::new(make(&msgs, next));
            }
        }
    }

    #[test]
    fn uidvalidity_change_is_reported() {
        let state = Arc::new(Mutex::new(snap(&[(1, 0)])));
        let mut v = View::open(Box::new(Fake(state.clone())), false).unwrap();
        let mut other = (*snap(&[(1, 0)])).clone();
        other.uid_validity = 8;
        *state.lock().unwrap() = Arc::new(other);
        assert!(!v.update(true, &mut Vec::new()).unwrap());
    }
}
