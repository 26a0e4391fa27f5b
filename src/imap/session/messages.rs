//! Commands on the messages of the selected mailbox: SEARCH, STORE, COPY, MOVE (RFC 6851),
//! EXPUNGE and UID EXPUNGE (RFC 4315), plus APPEND (streamed into the store) and IDLE
//! (RFC 2177).

use std::borrow::Cow;
use std::io::Write as _;
use std::time::Duration;

use tracing::debug;

use super::fetch::ENVELOPE;
use super::view::View;
use super::{blocking, storage, Cost, Flow, Session, Status};
use crate::imap::command::AppendHead;
use crate::imap::response::ResponseCode;
use crate::imap::syntax::envelope;
use crate::imap::syntax::seqset;
use crate::mailbox::access::{self, search::SearchError, EnvelopeCodec, SearchScope};
use crate::mailbox::search::{self, NumSet, SearchKey};
use crate::mailbox::{ErrorKind, Flags, MessageMeta, StoreOp, SysFlags, Uid, UNKNOWN_SIZE};

/// The cached ENVELOPE, for SEARCH FROM/TO/CC/BCC/SUBJECT.
static ENVELOPE_CODEC: EnvelopeCodec = EnvelopeCodec {
    field: ENVELOPE.field,
    may_contain: envelope::may_contain,
    parse: envelope::parse_for_search,
};

/// The selected mailbox as SEARCH sees it, with the sizes the store computed for this
/// search (LARGER/SMALLER on messages whose size was not known yet).
struct ViewScope<'v>(&'v View, Vec<(Uid, Option<u64>)>);

impl SearchScope for ViewScope<'_> {
    fn count(&self) -> usize {
        self.0.exists() as usize
    }
    fn meta(&self, i: usize) -> Option<Cow<'_, MessageMeta>> {
        let mut meta = self.0.meta(i)?;
        if meta.size == UNKNOWN_SIZE {
            // A size still unknown (file gone) counts 0 octets.
            if let Ok(k) = self.1.binary_search_by_key(&meta.uid, |(u, _)| *u) {
                meta.to_mut().size = self.1[k].1.unwrap_or(0);
            }
        }
        Some(meta)
    }
    fn uid(&self, i: usize) -> Uid {
        self.0.uid_at(i).unwrap_or(0)
    }
    fn recent(&self, uid: Uid) -> bool {
        self.0.recent.contains(&uid)
    }
    fn max_uid(&self) -> Uid {
        self.0.max_uid()
    }
}

/// Longest line accepted while idling (it should be `DONE`).
const IDLE_LINE_LIMIT: usize = 1024;

/// `1:3,5,7:9` from ascending UIDs (RFC 4315 `uid-set`).
fn compact_uids(uids: &[Uid]) -> String {
    seqset::format(&seqset::compress(uids))
}

impl Session {
    /// Messages named by a set, as (index, uid), leaving out those already expunged by
    /// another session but not yet announced.
    fn targets(&self, uid: bool, set: &NumSet) -> Result<Vec<(usize, Uid)>, Status> {
        let Some(view) = self.view.as_ref() else {
            return Err(Status::bad("No mailbox selected."));
        };
        let ix = if uid {
            view.resolve_uid(set)
        } else {
            view.resolve_seq(set).map_err(Status::bad)?
        };
        let mut found = view.uids_at(&ix);
        found.retain(|(_, u)| !view.is_expunged(*u));
        Ok(found)
    }

    pub(super) fn search(&mut self, uid: bool, key: &SearchKey) -> Status {
        let Some(view) = self.view.as_ref() else {
            return Status::bad("No mailbox selected.");
        };
        // LARGER/SMALLER: sizes the store has not computed yet, asked once for all.
        let sizes: Vec<(Uid, Option<u64>)> = if search::needs_size(key) {
            let unknown: Vec<Uid> = (0..view.exists() as usize)
                .filter_map(|i| view.meta(i))
                .filter(|m| m.size == UNKNOWN_SIZE)
                .map(|m| m.uid)
                .collect();
            let got = blocking(|| view.mailbox.sizes(&unknown));
            unknown.into_iter().zip(got).collect()
        } else {
            Vec::new()
        };
        let scope = ViewScope(view, sizes);
        // In place in a small mailbox unless many messages may have to be read.
        let cost = match self.cost(false) {
            Cost::Small
                if !search::needs_content(key) || scope.count() <= super::fetch::IN_PLACE_READS =>
            {
                Cost::Small
            }
            _ => Cost::Large,
        };
        let found = storage(cost, || {
            access::search(view.mailbox.as_ref(), &scope, key, Some(&ENVELOPE_CODEC))
        });
        let hits = match found {
            Ok(h) => h,
            Err(SearchError::WorkerStopped) => {
                tracing::warn!(user = %self.user_name(), "a search thread stopped unexpectedly; SEARCH answered NO");
                return Status::no("Search failed, try again.");
            }
        };
        let out = &mut self.conn.out;
        out.extend_from_slice(b"* SEARCH");
        for i in hits {
            let n = if uid {
                view.uid_at(i).unwrap_or(0)
            } else {
                i as u32 + 1
            };
            out.extend_from_slice(format!(" {n}").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        Status::ok("Search completed.")
    }

    pub(super) fn store(
        &mut self,
        uid: bool,
        set: &NumSet,
        op: StoreOp,
        silent: bool,
        flags: &Flags,
    ) -> Status {
        let targets = match self.targets(uid, set) {
            Ok(t) => t,
            Err(s) => return s,
        };
        let cost = self.cost(true);
        let Some(view) = self.view.as_mut() else {
            return Status::bad("No mailbox selected.");
        };
        if view.read_only {
            return Status::no_code(ResponseCode::ReadOnly, "Mailbox is read-only.");
        }
        let uids: Vec<Uid> = targets.iter().map(|t| t.1).collect();
        let changed = match storage(cost, || view.mailbox.store(&uids, op, flags)) {
            Ok(c) => c,
            Err(e) => return self.storage_error("store", &e),
        };
        let Some(view) = self.view.as_mut() else {
            return Status::bad("No mailbox selected.");
        };
        // A keyword this session has not been told about: announce FLAGS (and
        // PERMANENTFLAGS) before the FETCHes that show it (RFC 3501 §7.2.6). The new
        // flags of a message may carry keywords another session just set, not only the
        // ones of this command.
        let requested = (op != StoreOp::Remove).then_some(&flags.keywords);
        view.announce_keywords(
            requested
                .into_iter()
                .flatten()
                .chain(changed.iter().flat_map(|(_, f)| f.keywords.iter())),
            &mut self.conn.out,
        );
        let seqs = view.seqs_of(changed.iter().map(|(u, _)| *u));
        view.reserve_flags(changed.len());
        let out = &mut self.conn.out;
        for ((u, f), seq) in changed.into_iter().zip(seqs) {
            let Some(seq) = seq else { continue };
            if !silent {
                // The message's new flags as this session set them (RFC 3501 §6.4.6).
                let _ = write!(out, "* {seq} FETCH (");
                if uid {
                    let _ = write!(out, "UID {u} ");
                }
                out.extend_from_slice(b"FLAGS ");
                view.flag_list_of(u, &f, out);
                out.extend_from_slice(b")\r\n");
            }
            view.set_flags_of_seen(u, f);
        }
        Status::ok("Store completed.")
    }

    pub(super) fn copy(&mut self, uid: bool, set: &NumSet, wire: &str, is_move: bool) -> Status {
        let dest = match self.mailbox_name(wire) {
            Ok(n) => n,
            Err(s) => return s,
        };
        let targets = match self.targets(uid, set) {
            Ok(t) => t,
            Err(s) => return s,
        };
        let Some(view) = self.view.as_mut() else {
            return Status::bad("No mailbox selected.");
        };
        if is_move && view.read_only {
            return Status::no_code(ResponseCode::ReadOnly, "Mailbox is read-only.");
        }
        if targets.is_empty() {
            return Status::ok(if is_move {
                "No messages moved."
            } else {
                "No messages copied."
            });
        }
        let uids: Vec<Uid> = targets.iter().map(|t| t.1).collect();
        let copied = match blocking(|| view.mailbox.copy_to(&uids, &dest)) {
            Ok(c) => c,
            Err(e) if e.kind == ErrorKind::NonExistent => {
                return Status::no_code(ResponseCode::TryCreate, "Mailbox doesn't exist.");
            }
            Err(e) => return self.storage_error("copy", &e),
        };
        let code = ResponseCode::CopyUid {
            uid_validity: copied.dest_uid_validity,
            source: compact_uids(&copied.source_uids),
            dest: compact_uids(&copied.dest_uids),
        };
        if !is_move {
            return Status::ok_code(code, "Copy completed.");
        }
        // RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
        crate::imap::response::push_untagged_ok(&mut self.conn.out, &code, "Moved UIDs.");
        let deleted = Flags {
            sys: SysFlags::DELETED,
            keywords: Vec::new(),
        };
        let removed = blocking(|| {
            view.mailbox
                .store(&copied.source_uids, StoreOp::Add, &deleted)?;
            view.mailbox.expunge(Some(&copied.source_uids))
        });
        match removed {
            Ok(removed) => {
                view.expunged_now(&removed, &mut self.conn.out);
                Status::ok("Move completed.")
            }
            Err(e) => self.storage_error("move: expunging the source", &e),
        }
    }

    pub(super) fn expunge(&mut self, only: Option<&NumSet>) -> Status {
        let only_uids = match only {
            Some(set) => match self.targets(true, set) {
                Ok(t) => Some(t.into_iter().map(|t| t.1).collect::<Vec<_>>()),
                Err(s) => return s,
            },
            None => None,
        };
        let cost = self.cost(true);
        let Some(view) = self.view.as_mut() else {
            return Status::bad("No mailbox selected.");
        };
        if view.read_only {
            return Status::no_code(ResponseCode::ReadOnly, "Mailbox is read-only.");
        }
        match storage(cost, || view.mailbox.expunge(only_uids.as_deref())) {
            Ok(removed) => {
                view.expunged_now(&removed, &mut self.conn.out);
                Status::ok("Expunge completed.")
            }
            Err(e) => self.storage_error("expunge", &e),
        }
    }

    /// APPEND (RFC 3501 §6.3.11) with the message literal streamed into the store as it
    /// arrives; APPENDLIMIT (RFC 7889) is enforced before the first octet is accepted.
    pub(super) async fn append(&mut self, head: AppendHead) -> Flow {
        match self.append_inner(&head).await {
            Ok(status) => {
                // Our own new message is announced (EXISTS) before the tagged OK.
                self.send_updates(true);
                self.tagged(&head.tag, status);
                Flow::Continue
            }
            Err((status, flow)) => {
                self.tagged(&head.tag, status);
                if flow == Flow::Close {
                    self.conn.out.extend_from_slice(b"* BYE Too much data.\r\n");
                }
                flow
            }
        }
    }

    /// Swallows a non-synchronizing literal the client sends regardless of our answer.
    async fn drain_literal(&mut self, head: &AppendHead) -> Result<(), (Status, Flow)> {
        if !head.non_sync {
            return Ok(());
        }
        if head.size > self.ctx.cfg.imap.append_limit {
            // RFC 7888 §4: too big to read and throw away; close the connection.
            return Err((
                Status::no_code(ResponseCode::TooBig, "Message too large."),
                Flow::Close,
            ));
        }
        match self.conn.stream_literal(head.size, |_| true).await {
            Ok(true) => {}
            _ => return Err((Status::bad("Connection lost."), Flow::Close)),
        }
        let _ = self.conn.read_line(self.ctx.cfg.imap.max_line_length).await;
        Ok(())
    }

    async fn append_inner(&mut self, head: &AppendHead) -> Result<Status, (Status, Flow)> {
        let early = if self.user.is_none() {
            Some(Status::bad("Please log in first."))
        } else if head.size > self.ctx.cfg.imap.append_limit {
            Some(Status::no_code(ResponseCode::TooBig, "Message too large."))
        } else {
            None
        };
        if let Some(status) = early {
            self.drain_literal(head).await?;
            return Ok(status);
        }
        let name = match self.mailbox_name(&head.mailbox) {
            Ok(n) => n,
            Err(s) => {
                self.drain_literal(head).await?;
                return Ok(s);
            }
        };
        let store = match self.user_store() {
            Ok(s) => s,
            Err(s) => return Ok(s),
        };
        // In place into the selected mailbox when it is small, or into the folder the
        // last APPEND kept open (the new file is handed to its state: no listing) when
        // no fsync is waited for; another folder may be big or not open yet in this
        // process, and its first scan is no small work.
        let selected = self.view.as_ref().is_some_and(|v| v.mailbox.name() == name);
        let kept = self
            .append_target
            .as_ref()
            .is_some_and(|m| m.name() == name);
        let cost = match (selected, kept) {
            (true, _) => self.cost(true),
            (false, true) if self.ctx.cfg.storage.fsync == crate::config::FsyncMode::Never => {
                Cost::Small
            }
            _ => Cost::Large,
        };
        let mut sink = match storage(cost, || store.append(&name)) {
            Ok(sink) => sink,
            Err(e) => {
                self.drain_literal(head).await?;
                return Ok(if e.kind == ErrorKind::NonExistent {
                    Status::no_code(ResponseCode::TryCreate, "Mailbox doesn't exist.")
                } else {
                    self.storage_error("append", &e)
                });
            }
        };
        if !head.non_sync {
            self.conn.out.extend_from_slice(b"+ OK\r\n");
            if self.conn.flush().await.is_err() {
                sink.abort();
                return Err((Status::bad("Connection lost."), Flow::Close));
            }
        }
        self.conn.stream.quickack();
        let mut write_error = None;
        let complete = self
            .conn
            .stream_literal(head.size, |chunk| {
                match storage(cost, || sink.write(chunk)) {
                    Ok(()) => true,
                    Err(e) => {
                        write_error = Some(e);
                        false
                    }
                }
            })
            .await;
        if !matches!(complete, Ok(true)) {
            storage(cost, || sink.abort());
            return Err((Status::bad("Connection lost during APPEND."), Flow::Close));
        }
        // The command line goes on after the literal: it must end here (no MULTIAPPEND).
        let rest = self.conn.read_line(self.ctx.cfg.imap.max_line_length).await;
        if let Some(e) = write_error {
            storage(cost, || sink.abort());
            return Ok(self.storage_error("append: writing the message", &e));
        }
        match rest {
            Ok(Some(r)) if r.is_empty() => {}
            Ok(Some(_)) | Err(_) => {
                storage(cost, || sink.abort());
                return Ok(Status::bad(
                    "Unexpected data after the APPEND message literal.",
                ));
            }
            Ok(None) => {
                storage(cost, || sink.abort());
                return Err((Status::bad("Connection lost."), Flow::Close));
            }
        }
        match storage(cost, || sink.commit(&head.flags, head.date)) {
            Ok((uid_validity, uid)) => {
                self.keep_append_target(&store, &name);
                Ok(Status::ok_code(
                    ResponseCode::AppendUid { uid_validity, uid },
                    "Append completed.",
                ))
            }
            Err(e) => Ok(self.storage_error("append: saving the message", &e)),
        }
    }

    /// Keeps the folder of a successful APPEND open when it is not the selected one (see
    /// `Session::append_target`); a folder that cannot be opened is simply not kept.
    fn keep_append_target(
        &mut self,
        store: &std::sync::Arc<dyn crate::mailbox::Store>,
        name: &str,
    ) {
        let selected = self.view.as_ref().is_some_and(|v| v.mailbox.name() == name);
        let kept = self
            .append_target
            .as_ref()
            .is_some_and(|m| m.name() == name);
        if selected || kept {
            return;
        }
        self.append_target = None;
        self.append_target = blocking(|| store.open(name, true)).ok();
    }

    /// IDLE (RFC 2177): report changes as they happen until the client says DONE.
    pub(super) async fn idle(&mut self) -> (Status, Flow) {
        self.conn.out.extend_from_slice(b"+ idling\r\n");
        if self.conn.flush().await.is_err() {
            self.end = Some("disconnected");
            return (Status::bad("Connection lost."), Flow::Close);
        }
        let mut shutdown = self.ctx.shutdown.clone();
        let mut tick =
            tokio::time::interval(self.ctx.cfg.imap.idle_poll.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = tokio::time::Instant::now() + self.ctx.cfg.imap.autologout;
        // Woken at once by a change where the store can tell (inotify on a Maildir), the
        // poll tick staying as the fallback.
        let signal = self
            .view
            .as_ref()
            .and_then(|v| v.mailbox.change_signal())
            .and_then(crate::net::async_signal);
        enum Event {
            Line(std::io::Result<Option<Vec<u8>>>),
            Tick,
            /// The BYE line and the reason for the session's last log line.
            Stop(&'static str, &'static str),
        }
        loop {
            let ev = tokio::select! {
                r = self.conn.read_line(IDLE_LINE_LIMIT) => Event::Line(r),
                _ = tick.tick() => Event::Tick,
                _ = changed(signal.as_ref()) => Event::Tick,
                _ = shutdown.changed() => Event::Stop("* BYE Server shutting down.\r\n", "server shutdown"),
                _ = tokio::time::sleep_until(deadline) => Event::Stop("* BYE Disconnected for inactivity.\r\n", "inactivity"),
            };
            match ev {
                Event::Line(Ok(Some(line))) if line.eq_ignore_ascii_case(b"DONE") => {
                    return (Status::ok("Idle completed."), Flow::Continue);
                }
                Event::Line(Ok(Some(_))) => return (Status::bad("Expected DONE."), Flow::Continue),
                Event::Line(_) => {
                    self.end = Some("disconnected");
                    return (Status::bad("Connection lost."), Flow::Close);
                }
                Event::Tick => {
                    self.send_updates(true);
                    if self.closing {
                        let _ = self.conn.flush().await;
                        return (Status::bad("Idle aborted."), Flow::Close);
                    }
                    if self.conn.flush().await.is_err() {
                        self.end = Some("disconnected");
                        return (Status::bad("Connection lost."), Flow::Close);
                    }
                }
                Event::Stop(bye, why) => {
                    self.end = Some(why);
                    self.conn.out.extend_from_slice(bye.as_bytes());
                    let _ = self.conn.flush().await;
                    debug!(session = %self.id, user = %self.user_name(), "IDLE ended: {}", bye.trim_end());
                    return (Status::bad("Idle aborted."), Flow::Close);
                }
            }
        }
    }
}

/// Waits until `signal` reports a change and reads it empty (forever without one).
async fn changed(signal: Option<&tokio::io::unix::AsyncFd<std::fs::File>>) {
    use std::io::Read;
    let Some(fd) = signal else {
        return std::future::pending().await;
    };
    let Ok(mut ready) = fd.readable().await else {
        return std::future::pending().await;
    };
    let mut buf = [0u8; 4096];
    // Until the read would block: `try_io` then clears the readiness.
    while let Ok(Ok(n)) = ready.try_io(|f| f.get_ref().read(&mut buf)) {
        if n == 0 {
            break;
        }
    }
}
