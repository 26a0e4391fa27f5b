//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2). The items are planned once
//! ([`plan::FetchPlan`]), then the messages are answered in batches: one trip to the
//! blocking pool per batch, in which the message-access layer
//! ([`crate::mailbox::access`]) looks up the cached fields of the whole batch at once and
//! reads what the cache does not answer, and each response line is encoded
//! ([`encode::Line`]). Big literals are sent from their own buffer between the text
//! before and after them.

mod encode;
mod plan;

use super::{storage, Cost, Session, Status};
use crate::imap::command::FetchAtt;
use crate::imap::response::ResponseCode;
use crate::mailbox::access::{self, Batch, BatchBuffer};
use crate::mailbox::search::NumSet;
use crate::mailbox::{Flags, StoreOp, SysFlags, Uid, UidHashSet, UNKNOWN_SIZE};
use encode::{Line, Literals};
use plan::FetchPlan;
pub(super) use plan::ENVELOPE;

/// A batch ends after the message that brings its response text and literals past this.
const BATCH_BYTES: usize = 4 << 20;

/// Storage work that reads more messages than this leaves the worker thread even in a
/// small mailbox (files not in the page cache can take long to read).
pub(super) const IN_PLACE_READS: usize = 32;

/// How one batch went.
struct BatchDone {
    /// Messages of the range handled (answered or left out).
    count: usize,
    /// Some were left out: expunged by another session, their content gone.
    vanished: bool,
}

/// The sizes of the messages at `indexes` (view indexes) that the snapshot does not know
/// (Maildir names without `W=`), computed by the store in one call: (uid, size) in
/// ascending UID order, `None` for a message gone meanwhile.
fn unknown_sizes(view: &super::view::View, indexes: &[usize]) -> Vec<(Uid, Option<u64>)> {
    let mut unknown: Vec<Uid> = (indexes.iter())
        .filter_map(|&i| view.meta(i))
        .filter(|m| m.size == UNKNOWN_SIZE)
        .map(|m| m.uid)
        .collect();
    if unknown.is_empty() {
        return Vec::new();
    }
    unknown.sort_unstable();
    let sizes = view.mailbox.sizes(&unknown);
    unknown.into_iter().zip(sizes).collect()
}

impl Session {
    pub(super) async fn fetch(&mut self, uid: bool, set: &NumSet, atts: &[FetchAtt]) -> Status {
        let Some(view) = self.view.as_ref() else {
            return Status::bad("No mailbox selected.");
        };
        let indexes = if uid {
            view.resolve_uid(set)
        } else {
            match view.resolve_seq(set) {
                Ok(ix) => ix,
                Err(msg) => return Status::bad(msg),
            }
        };
        let plan = FetchPlan::new(uid, atts);
        let mut seen_set = UidHashSet::default();
        let mut buf = BatchBuffer::default();
        let (mut done, mut vanished) = (0, false);
        while done < indexes.len() {
            let mut lits = Literals::new();
            // One storage call per batch (in place when small); \Seen is set in the first.
            let rest = indexes.len() - done;
            let writes = done == 0 && plan.sets_seen;
            let n = rest.min(access::BATCH);
            let cost = match self.sizes_to_read(&plan, &indexes[done..done + n]) {
                true => Cost::Large,
                false => self.batch_cost(&plan, n, writes),
            };
            let step = storage(cost, || {
                if done == 0 && plan.sets_seen {
                    self.mark_seen(&indexes, &mut seen_set)?;
                }
                self.fetch_batch(
                    &plan,
                    indexes.get(done..).unwrap_or_default(),
                    &seen_set,
                    &mut buf,
                    &mut lits,
                )
            });
            match step {
                Ok(b) => {
                    done += b.count.max(1);
                    vanished |= b.vanished;
                }
                Err(st) => return st,
            }
            if self.send_with_literals(lits).await.is_err() {
                return Status::no("Connection error.");
            }
        }
        if vanished {
            // RFC 2180 §4.1: messages expunged by another session whose content is gone
            // are left out; everything still known (metadata, cached items) and every
            // other message was answered, so the command succeeded. As Dovecot does:
            // OK with the RFC 5530 code, not NO (which clients take for a failed FETCH).
            Status::ok_code(
                ResponseCode::ExpungeIssued,
                "Some messages were already expunged.",
            )
        } else {
            Status::ok("Fetch completed.")
        }
    }

    /// How a batch of `n` messages runs: in place when the mailbox is small, no fsync is
    /// waited for (`writes`: it sets `\Seen`), and at most [`IN_PLACE_READS`] messages may
    /// be read; otherwise on the blocking pool (one trip).
    fn batch_cost(&self, plan: &FetchPlan, n: usize, writes: bool) -> Cost {
        match self.cost(writes) {
            Cost::Small if !plan.reads_messages() || n <= IN_PLACE_READS => Cost::Small,
            _ => Cost::Large,
        }
    }

    /// Whether answering RFC822.SIZE for these messages means reading files (sizes not
    /// known yet): work for the blocking pool, however small the mailbox.
    fn sizes_to_read(&self, plan: &FetchPlan, indexes: &[usize]) -> bool {
        let Some(view) = self.view.as_ref() else {
            return false;
        };
        plan.items.contains(&FetchAtt::Rfc822Size)
            && (indexes.iter())
                .filter_map(|&i| view.meta(i))
                .any(|m| m.size == UNKNOWN_SIZE)
    }

    /// Sets `\Seen` on the messages of `indexes` that lack it (RFC 3501 §6.4.5) and
    /// records which changed: their new FLAGS are reported. Blocking.
    fn mark_seen(&mut self, indexes: &[usize], changed: &mut UidHashSet) -> Result<(), Status> {
        let Some(view) = self.view.as_mut() else {
            return Err(Status::bad("No mailbox selected."));
        };
        if view.read_only {
            return Ok(());
        }
        let unseen: Vec<Uid> = (indexes.iter())
            .filter_map(|&i| view.meta(i))
            .filter(|m| !m.flags.sys.contains(SysFlags::SEEN) && !view.is_expunged(m.uid))
            .map(|m| m.uid)
            .collect();
        if unseen.is_empty() {
            return Ok(());
        }
        let seen = Flags {
            sys: SysFlags::SEEN,
            keywords: Vec::new(),
        };
        match view.mailbox.store(&unseen, StoreOp::Add, &seen) {
            Ok(new) => {
                // Their FLAGS may carry keywords another session just set.
                view.announce_keywords(
                    new.iter().flat_map(|(_, f)| f.keywords.iter()),
                    &mut self.conn.out,
                );
                let seqs = view.seqs_of(new.iter().map(|(u, _)| *u));
                for ((u, f), seq) in new.into_iter().zip(seqs) {
                    if seq.is_some() {
                        view.set_flags_of_seen(u, f);
                    }
                    changed.insert(u);
                }
                Ok(())
            }
            Err(e) => Err(self.storage_error("fetch: setting \\Seen", &e)),
        }
    }

    /// Answers the first messages of `indexes` (at most [`access::BATCH`], fewer when
    /// their answers grow past [`BATCH_BYTES`]) into the output buffer. Blocking.
    fn fetch_batch(
        &mut self,
        plan: &FetchPlan,
        indexes: &[usize],
        seen_set: &UidHashSet,
        buf: &mut BatchBuffer,
        lits: &mut Literals,
    ) -> Result<BatchDone, Status> {
        let Some(view) = self.view.as_ref() else {
            return Err(Status::bad("No mailbox selected."));
        };
        let indexes = indexes
            .get(..indexes.len().min(access::BATCH))
            .unwrap_or_default();
        let uids: Vec<Uid> = indexes
            .iter()
            .map(|&i| view.uid_at(i).unwrap_or(0))
            .collect();
        let sizes = match plan.items.contains(&FetchAtt::Rfc822Size) {
            true => unknown_sizes(view, indexes),
            false => Vec::new(),
        };
        let mut batch = Batch::new(view.mailbox.as_ref(), &plan.access, buf);
        batch.prefetch(&uids);
        let line = Line {
            view,
            plan,
            seen_set,
        };
        let out = &mut self.conn.out;
        let start = out.len();
        let mut done = BatchDone {
            count: indexes.len(),
            vanished: false,
        };
        let mut failed = None;
        for (k, &i) in indexes.iter().enumerate() {
            let Some(mut meta) = view.meta(i) else {
                continue;
            };
            if meta.size == UNKNOWN_SIZE && !sizes.is_empty() {
                match sizes.binary_search_by_key(&meta.uid, |(u, _)| *u) {
                    Ok(j) if sizes[j].1.is_some() => meta.to_mut().size = sizes[j].1.unwrap_or(0),
                    // The file is gone: nothing to say its size (RFC 2180 §4.1).
                    _ => {
                        done.vanished = true;
                        continue;
                    }
                }
            }
            let msg = batch.message(k, &meta);
            let (mark, lit_mark) = (out.len(), lits.len());
            if let Err(e) = line.encode(&msg, i as u64 + 1, out, lits) {
                // Nothing of a line that could not be completed is sent.
                out.truncate(mark);
                lits.truncate(lit_mark);
                if !access::vanished(&e) {
                    failed = Some(e);
                    break;
                }
                done.vanished = true;
            }
            let big: usize = lits.iter().map(|l| l.1.len()).sum();
            if out.len() - start + big > BATCH_BYTES {
                done.count = k + 1;
                break;
            }
        }
        match failed {
            Some(e) => Err(self.storage_error("fetch", &e)),
            None => Ok(done),
        }
    }

    /// Sends the output buffer once it is big, with the literals set aside spliced in at
    /// their offsets (each written from its own buffer).
    async fn send_with_literals(&mut self, lits: Literals) -> std::io::Result<()> {
        if lits.is_empty() {
            return self.conn.write_if_full().await;
        }
        let text = std::mem::take(&mut self.conn.out);
        let mut from = 0;
        for (at, body) in lits {
            self.conn
                .out
                .extend_from_slice(text.get(from..at).unwrap_or_default());
            self.conn.write_bytes(&body).await?;
            from = at;
        }
        self.conn
            .out
            .extend_from_slice(text.get(from..).unwrap_or_default());
        self.conn.write_if_full().await
    }
}
