//! SEARCH over a mailbox (RFC 3501 §6.4.4): which messages need their content at all,
//! where that content comes from (the cached envelope, the cached header block, the
//! header read alone, the whole message as stored), and the chunks and threads of a
//! mailbox-wide content search. The protocol parses the keys and encodes the hits.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::mailbox::search::{self, EnvelopeData, MessageContext, NumSet, SearchKey};
use crate::mailbox::{Mailbox, MessageData, MessageMeta, Uid, UNKNOWN_DATE};

use super::HEADER_FIELD;
/// Messages per cache lookup.
const CHUNK: usize = 512;
/// Most threads reading whole messages of one search.
const MAX_WORKERS: usize = 4;

/// The messages a search looks at, as the session numbers them: index `i` is sequence
/// number `i + 1`.
pub trait SearchScope: Sync {
    /// How many messages (the highest sequence number).
    fn count(&self) -> usize;
    /// The message at index `i` with the flags the client knows.
    fn meta(&self, i: usize) -> Option<Cow<'_, MessageMeta>>;
    /// The UID of the message at index `i` (0 past the end).
    fn uid(&self, i: usize) -> Uid {
        self.meta(i).map_or(0, |m| m.uid)
    }
    /// Whether this session holds `\Recent` for `uid`.
    fn recent(&self, uid: Uid) -> bool;
    fn max_uid(&self) -> Uid;
}

/// A protocol's cached envelope, for envelope keys (FROM, TO, CC, BCC, SUBJECT): its
/// cache field, a quick test that a needle may occur in it, and its reading.
pub struct EnvelopeCodec {
    pub field: &'static str,
    pub may_contain: fn(envelope: &[u8], needle: &str) -> bool,
    pub parse: fn(envelope: &[u8]) -> Option<EnvelopeData>,
}

/// Why a search has no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum SearchError {
    /// A search thread stopped unexpectedly; its chunks were not searched.
    WorkerStopped,
}

/// What a key needs, worked out once per search.
struct Needs<'k> {
    key: &'k SearchKey,
    content: bool,
    body: bool,
    date: bool,
    envelope: Option<&'k EnvelopeCodec>,
    needle: Option<String>,
}

/// The indexes (ascending) of the messages of `scope` that match `key`. Messages whose
/// answer needs no content are decided first; the rest are read in chunks with one cache
/// lookup per field and chunk, and a search that reads whole messages of a big mailbox
/// shares its chunks among a few threads.
pub fn search(
    mailbox: &dyn Mailbox,
    scope: &dyn SearchScope,
    key: &SearchKey,
    envelope: Option<&EnvelopeCodec>,
) -> Result<Vec<usize>, SearchError> {
    let content = search::needs_content(key);
    let needs = Needs {
        key,
        content,
        body: search::needs_body(key),
        date: search::needs_internal_date(key),
        // FROM/TO/CC/BCC/SUBJECT alone: the cached envelope answers (RFC 3501 §6.4.4
        // defines them on the envelope); a plain needle rejects most messages unparsed.
        envelope: envelope.filter(|_| content && search::envelope_only(key)),
        needle: search::envelope_needle(key),
    };
    let (mut hits, rest) = decide_cheap(scope, &needs);
    let chunks: Vec<&[usize]> = rest.chunks(CHUNK).collect();
    hits.extend(scan_chunks(mailbox, scope, &needs, &chunks)?);
    hits.sort_unstable();
    Ok(hits)
}

fn context<'m>(scope: &dyn SearchScope, i: usize, meta: &'m MessageMeta) -> MessageContext<'m> {
    MessageContext {
        seq: i as u32 + 1,
        max_seq: scope.count() as u32,
        max_uid: scope.max_uid(),
        meta,
        recent: scope.recent(meta.uid),
        envelope: None,
    }
}

/// The messages a key can match at all: for `UID set` alone or in a top-level AND (what
/// clients send to search a window, `UID 1:500 FROM x`), only the messages whose UID is
/// in the set, found by binary search in the UID-ascending scope; every message otherwise.
/// The evaluation still checks the UID, so this only saves looking at the others.
fn candidates(scope: &dyn SearchScope, key: &SearchKey) -> Vec<usize> {
    let set = match key {
        SearchKey::Uid(set) => Some(set),
        SearchKey::And(keys) => keys.iter().find_map(|k| match k {
            SearchKey::Uid(set) => Some(set),
            _ => None,
        }),
        _ => None,
    };
    let n = scope.count();
    let Some(set) = set else {
        return (0..n).collect();
    };
    let max = scope.max_uid();
    let first_at_least = |uid: Uid| {
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if scope.uid(mid) < uid {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let mut out: Vec<usize> = Vec::new();
    for &(a, b) in &set.ranges {
        let a = if a == NumSet::STAR { max } else { a };
        let b = if b == NumSet::STAR { max } else { b };
        let (lo, hi) = (a.min(b), a.max(b));
        let from = first_at_least(lo);
        let to = match hi.checked_add(1) {
            Some(h) => first_at_least(h),
            None => n,
        };
        out.extend(from..to);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The hits decided without content, and the messages whose content decides.
fn decide_cheap(scope: &dyn SearchScope, needs: &Needs) -> (Vec<usize>, Vec<usize>) {
    let (mut hits, mut rest) = (Vec::new(), Vec::new());
    for i in candidates(scope, needs.key) {
        let Some(meta) = scope.meta(i) else { break };
        let decided = if needs.content {
            search::decide_without_content(needs.key, &context(scope, i, &meta))
        } else {
            None
        };
        match decided {
            Some(true) => hits.push(i),
            Some(false) => {}
            None => rest.push(i),
        }
    }
    (hits, rest)
}

/// The matches among `chunks`, on up to [`MAX_WORKERS`] threads when whole messages of
/// a big mailbox are read: that takes the wall time down by the number of idle cores
/// (the CPU time stays).
fn scan_chunks(
    mailbox: &dyn Mailbox,
    scope: &dyn SearchScope,
    needs: &Needs,
    chunks: &[&[usize]],
) -> Result<Vec<usize>, SearchError> {
    let workers = if needs.body && chunks.len() >= 4 {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
    } else {
        1
    };
    let next = AtomicUsize::new(0);
    let work = || {
        let mut found = Vec::new();
        while let Some(c) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
            found.extend(scan_chunk(mailbox, scope, needs, c));
        }
        found
    };
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..workers)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("loft-search".into())
                    .spawn_scoped(s, work)
                    .ok()
            })
            .collect();
        let mut hits = work();
        let mut stopped = false;
        for h in helpers {
            match h.join() {
                Ok(found) => hits.extend(found),
                // A helper that stopped left its chunks unsearched: no answer rather
                // than one with hits missing.
                Err(_) => stopped = true,
            }
        }
        if stopped {
            Err(SearchError::WorkerStopped)
        } else {
            Ok(hits)
        }
    })
}

/// Per message of a chunk: `Some(None)` cannot match (the needle is not in its
/// envelope), `Some(Some(e))` its envelope, `None` its content decides.
fn chunk_envelopes(
    mailbox: &dyn Mailbox,
    needs: &Needs,
    uids: &[Uid],
) -> Vec<Option<Option<EnvelopeData>>> {
    let mut envelopes = vec![None; uids.len()];
    let Some(codec) = needs.envelope else {
        return envelopes;
    };
    mailbox.cache_lookup(uids, codec.field, &mut |k, v| {
        let (Some(slot), Some(v)) = (envelopes.get_mut(k), v) else {
            return;
        };
        if needs
            .needle
            .as_deref()
            .is_some_and(|n| !(codec.may_contain)(v, n))
        {
            *slot = Some(None);
        } else if let Some(e) = (codec.parse)(v) {
            *slot = Some(Some(e));
        }
    });
    envelopes
}

/// The cached header blocks of the messages of a chunk that need one.
fn chunk_headers(
    mailbox: &dyn Mailbox,
    uids: &[Uid],
    envelopes: &[Option<Option<EnvelopeData>>],
) -> Vec<Option<Vec<u8>>> {
    let mut headers = vec![None; uids.len()];
    if envelopes.iter().all(Option::is_some) {
        return headers;
    }
    mailbox.cache_lookup(uids, HEADER_FIELD, &mut |k, v| {
        let from_envelope = envelopes.get(k).is_some_and(Option::is_some);
        if let (Some(slot), Some(v), false) = (headers.get_mut(k), v, from_envelope) {
            *slot = Some(v.to_vec());
        }
    });
    headers
}

/// The messages of one chunk that match.
fn scan_chunk(
    mailbox: &dyn Mailbox,
    scope: &dyn SearchScope,
    needs: &Needs,
    chunk: &[usize],
) -> Vec<usize> {
    let uids: Vec<Uid> = chunk.iter().map(|&i| scope.uid(i)).collect();
    let envelopes = chunk_envelopes(mailbox, needs, &uids);
    let header_only = needs.content && !needs.body;
    let mut headers = if header_only {
        chunk_headers(mailbox, &uids, &envelopes)
    } else {
        vec![None; chunk.len()]
    };
    let mut found = Vec::new();
    for (k, &i) in chunk.iter().enumerate() {
        let env = envelopes.get(k).and_then(Option::as_ref);
        if let Some(None) = env {
            continue;
        }
        let envelope = env.and_then(Option::as_ref);
        let Some(mut meta) = scope.meta(i) else { break };
        if needs.date && meta.internal_date == UNKNOWN_DATE {
            let date = mailbox.internal_date(meta.uid).unwrap_or(0);
            meta.to_mut().internal_date = date;
        }
        let cached = headers.get_mut(k).and_then(Option::take);
        let content = content(mailbox, needs, &meta, envelope.is_some(), cached);
        let ctx = MessageContext {
            envelope,
            ..context(scope, i, &meta)
        };
        if search::matches(needs.key, &ctx, content.as_deref()) {
            found.push(i);
        }
    }
    found
}

/// The content a message's keys need: none, its header block (cached, or read and
/// offered to the cache), or the whole message as stored.
fn content(
    mailbox: &dyn Mailbox,
    needs: &Needs,
    meta: &MessageMeta,
    has_envelope: bool,
    cached_header: Option<Vec<u8>>,
) -> Option<MessageData> {
    match (needs.content, needs.body) {
        (false, _) => None,
        (true, false) if has_envelope => None,
        (true, false) => match cached_header {
            Some(h) => Some(MessageData::Owned(h)),
            None => mailbox.fetch_header(meta.uid).ok().inspect(|d| {
                mailbox.cache_offer(meta.uid, HEADER_FIELD, d);
            }),
        },
        (true, true) => mailbox.fetch_for_search(meta.uid).ok(),
    }
}
