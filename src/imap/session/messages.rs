//! Commands on the messages of the selected mailbox: SEARCH, STORE, COPY, MOVE (RFC 6851),
//! EXPUNGE and UID EXPUNGE (RFC 4315), plus APPEND (streamed into the store) and IDLE
//! (RFC 2177).

use std::time::Duration;

use tracing::debug;

use super::fetch::ENVELOPE_FIELD;
use super::{blocking, Flow, Session, Status};
use crate::imap::command::AppendHead;
use crate::imap::response::ResponseCode;
use crate::imap::syntax::envelope;
use crate::imap::syntax::seqset;
use crate::mailbox::search::{self, EnvelopeData, MessageContext, NumSet, SearchKey};
use crate::mailbox::{
    ErrorKind, Flags, MessageData, StoreOp, SysFlags, Uid, UNKNOWN_DATE, UNKNOWN_SIZE,
};
use crate::net::{storage, Cost};

/// Cache field holding a message's header block (opaque to the store). Named `hdr2`
/// since header blocks longer than 8 KiB could be cut short at a read boundary before;
/// values cached under the old name are never read again and age out of the cache.
const HEADER_FIELD: &str = "hdr2";
/// Messages per cache lookup in SEARCH.
const SEARCH_CHUNK: usize = 512;

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
        Ok(ix
            .into_iter()
            .filter_map(|i| view.uid_at(i).map(|u| (i, u)))
            .filter(|(_, u)| !view.is_expunged(*u))
            .collect())
    }

    pub(super) fn search(&mut self, uid: bool, key: &SearchKey) -> Status {
        let Some(view) = self.view.as_ref() else {
            return Status::bad("No mailbox selected.");
        };
        let needs_content = search::needs_content(key);
        let needs_body = search::needs_body(key);
        let needs_date = search::needs_internal_date(key);
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
        // A size still unknown (file gone) counts 0 octets.
        let known_size = |meta: &mut std::borrow::Cow<'_, crate::mailbox::MessageMeta>| {
            if meta.size == UNKNOWN_SIZE {
                if let Ok(k) = sizes.binary_search_by_key(&meta.uid, |(u, _)| *u) {
                    meta.to_mut().size = sizes[k].1.unwrap_or(0);
                }
            }
        };
        // FROM/TO/CC/BCC/SUBJECT alone: the cached ENVELOPE answers (RFC 3501 §6.4.4
        // defines them on the envelope); a plain needle rejects most messages unparsed.
        let by_envelope = needs_content && search::envelope_only(key);
        let needle = search::envelope_needle(key);
        let max_seq = view.exists();
        let max_uid = view.max_uid();
        let mut hits: Vec<u32> = Vec::new();
        let mut failed = false;
        // Header-only keys read the header block from the cache when the store has it
        // (field `hdr`), else from the file, and offer it to the cache.
        let header_only = needs_content && !needs_body;
        blocking(|| {
            // Messages whose answer needs no content are decided first (`UID 1:500 FROM x`
            // looks at the content of 500 messages, not of the whole mailbox).
            let mut all: Vec<usize> = Vec::new();
            for i in 0..max_seq as usize {
                let Some(mut meta) = view.meta(i) else { break };
                known_size(&mut meta);
                let decided = if needs_content {
                    let ctx = MessageContext {
                        seq: i as u32 + 1,
                        max_seq,
                        max_uid,
                        meta: &meta,
                        recent: view.recent.contains(&meta.uid),
                        envelope: None,
                    };
                    search::decide_without_content(key, &ctx)
                } else {
                    None
                };
                match decided {
                    Some(true) => hits.push(if uid { meta.uid } else { i as u32 + 1 }),
                    Some(false) => {}
                    None => all.push(i),
                }
            }
            // The messages of one chunk that match.
            let scan_chunk = |chunk: &[usize]| -> Vec<u32> {
                let mut found = Vec::new();
                let uids: Vec<Uid> = chunk.iter().map(|&i| view.uid_at(i).unwrap_or(0)).collect();
                // Per message: Some(None) = cannot match (needle not in its ENVELOPE),
                // Some(Some(e)) = its envelope, None = use the header.
                let mut envelopes: Vec<Option<Option<EnvelopeData>>> = vec![None; chunk.len()];
                if by_envelope {
                    view.mailbox
                        .cache_lookup(&uids, ENVELOPE_FIELD, &mut |k, v| {
                            let (Some(slot), Some(v)) = (envelopes.get_mut(k), v) else {
                                return;
                            };
                            if needle
                                .as_deref()
                                .is_some_and(|n| !envelope::may_contain(v, n))
                            {
                                *slot = Some(None);
                            } else if let Some(e) = envelope::parse_for_search(v) {
                                *slot = Some(Some(e));
                            }
                        });
                }
                let mut headers: Vec<Option<Vec<u8>>> = vec![None; chunk.len()];
                if header_only && envelopes.iter().any(Option::is_none) {
                    view.mailbox.cache_lookup(&uids, HEADER_FIELD, &mut |k, v| {
                        let from_envelope = envelopes.get(k).is_some_and(Option::is_some);
                        if let (Some(slot), Some(v), false) = (headers.get_mut(k), v, from_envelope)
                        {
                            *slot = Some(v.to_vec());
                        }
                    });
                }
                for (k, &i) in chunk.iter().enumerate() {
                    let env = envelopes.get(k).and_then(Option::as_ref);
                    if let Some(None) = env {
                        continue;
                    }
                    let envelope = env.and_then(Option::as_ref);
                    let Some(mut meta) = view.meta(i) else { break };
                    known_size(&mut meta);
                    if needs_date && meta.internal_date == UNKNOWN_DATE {
                        let date = view.mailbox.internal_date(meta.uid).unwrap_or(0);
                        meta.to_mut().internal_date = date;
                    }
                    let meta = &*meta;
                    let content: Option<MessageData> = match (needs_content, needs_body) {
                        (false, _) => None,
                        (true, false) if envelope.is_some() => None,
                        (true, false) => match headers.get_mut(k).and_then(Option::take) {
                            Some(h) => Some(MessageData::Owned(h)),
                            None => view.mailbox.fetch_header(meta.uid).ok().inspect(|d| {
                                view.mailbox.cache_offer(meta.uid, HEADER_FIELD, d);
                            }),
                        },
                        (true, true) => view.mailbox.fetch_for_search(meta.uid).ok(),
                    };
                    let ctx = MessageContext {
                        seq: i as u32 + 1,
                        max_seq,
                        max_uid,
                        meta,
                        recent: view.recent.contains(&meta.uid),
                        envelope,
                    };
                    if search::matches(key, &ctx, content.as_deref()) {
                        found.push(if uid { meta.uid } else { i as u32 + 1 });
                    }
                }
                found
            };
            let chunks: Vec<&[usize]> = all.chunks(SEARCH_CHUNK).collect();
            // Reading and decoding whole messages (BODY, TEXT) of a big mailbox: the
            // chunks are shared among a few threads, which takes the wall time of a
            // mailbox-wide search down by the number of idle cores (the CPU time stays).
            let workers = if needs_body && chunks.len() >= 4 {
                std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
            } else {
                1
            };
            let next = std::sync::atomic::AtomicUsize::new(0);
            let work = || {
                let mut found = Vec::new();
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(c) = chunks.get(k) else { break };
                    found.extend(scan_chunk(c));
                }
                found
            };
            std::thread::scope(|scope| {
                let helpers: Vec<_> = (1..workers)
                    .filter_map(|_| {
                        std::thread::Builder::new()
                            .name("loft-search".into())
                            .spawn_scoped(scope, work)
                            .ok()
                    })
                    .collect();
                hits.extend(work());
                for h in helpers {
                    match h.join() {
                        Ok(found) => hits.extend(found),
                        // A helper that stopped left its chunks unsearched: say so
                        // rather than answer with hits missing.
                        Err(_) => failed = true,
                    }
                }
            });
        });
        if failed {
            tracing::warn!(user = %self.user_name(), "a search thread stopped unexpectedly; SEARCH answered NO");
            return Status::no("Search failed, try again.");
        }
        // Hits decided without content came first: back into ascending order.
        hits.sort_unstable();
        let out = &mut self.conn.out;
        out.extend_from_slice(b"* SEARCH");
        for h in hits {
            out.extend_from_slice(format!(" {h}").as_bytes());
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
        for (u, f) in changed {
            view.set_flags(u, f);
            if silent {
                continue;
            }
            let Some(seq) = view.seq_of(u) else { continue };
            let Some(meta) = view.meta(seq as usize - 1) else {
                continue;
            };
            let mut line = format!("* {seq} FETCH (").into_bytes();
            if uid {
                line.extend_from_slice(format!("UID {u} ").as_bytes());
            }
            line.extend_from_slice(b"FLAGS ");
            view.flag_list(&meta, &mut line);
            line.extend_from_slice(b")\r\n");
            self.conn.out.extend_from_slice(&line);
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
        // In place only into the selected mailbox when it is small (another folder may
        // be big, or not open yet in this process: its first scan is no small work).
        let cost = match self.view.as_ref().is_some_and(|v| v.mailbox.name() == name) {
            true => self.cost(true),
            false => Cost::Large,
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
            Ok((uid_validity, uid)) => Ok(Status::ok_code(
                ResponseCode::AppendUid { uid_validity, uid },
                "Append completed.",
            )),
            Err(e) => Ok(self.storage_error("append: saving the message", &e)),
        }
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
