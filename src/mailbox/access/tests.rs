//! The message-access layer against an in-memory store that counts what it is asked:
//! lazy fields equal the eager computation (parse everything) on the MIME corpus and on
//! every truncation of it, with a cold cache, a warm one and with and without range
//! reads; and the number of storage calls per batch.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use proptest::prelude::*;

use super::*;
use crate::mailbox::message::partmap::tests::{mimeish, specs};
use crate::mailbox::message::{self, header, section, Section};
use crate::mailbox::search::{EnvField, NumSet, SearchKey};
use crate::mailbox::{
    CopyResult, Error, ErrorKind, Flags, MessageData, Result, StoreOp, SyncResult,
};

/// Calls made of a [`Memory`] store, by kind.
#[derive(Default)]
pub(crate) struct Calls {
    pub whole: AtomicUsize,
    pub header: AtomicUsize,
    pub range: AtomicUsize,
    pub lookup: AtomicUsize,
    pub offer: AtomicUsize,
}

impl Calls {
    fn bump(c: &AtomicUsize) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Messages in memory (UID `i + 1` is `messages[i]`), a cache keeping every offer, and
/// range reads when `ranges` is set.
pub(crate) struct Memory {
    pub messages: Vec<Vec<u8>>,
    pub cache: Mutex<HashMap<(Uid, String), Vec<u8>>>,
    pub ranges: bool,
    pub calls: Calls,
}

impl Memory {
    pub fn new(messages: Vec<Vec<u8>>) -> Memory {
        Memory {
            messages,
            cache: Mutex::new(HashMap::new()),
            ranges: true,
            calls: Calls::default(),
        }
    }

    pub fn meta(&self, uid: Uid) -> MessageMeta {
        MessageMeta {
            uid,
            flags: Flags::default(),
            size: self.get(uid).map_or(0, |d| d.len() as u64),
            internal_date: 1_700_000_000,
        }
    }

    fn get(&self, uid: Uid) -> Result<&Vec<u8>> {
        (uid as usize)
            .checked_sub(1)
            .and_then(|i| self.messages.get(i))
            .ok_or_else(|| Error::new(ErrorKind::Expunged, "gone"))
    }
}

impl Mailbox for Memory {
    fn name(&self) -> &str {
        "memory"
    }
    fn read_only(&self) -> bool {
        true
    }
    fn sync(&mut self) -> Result<SyncResult> {
        Err(Error::new(ErrorKind::Temporary, "not here"))
    }
    fn fetch_message(&self, uid: Uid) -> Result<MessageData> {
        Calls::bump(&self.calls.whole);
        Ok(MessageData::Owned(self.get(uid)?.clone()))
    }
    fn fetch_header(&self, uid: Uid) -> Result<MessageData> {
        Calls::bump(&self.calls.header);
        let d = self.get(uid)?;
        Ok(MessageData::Owned(d[..header::body_start(d)].to_vec()))
    }
    fn fetch_range(&self, uid: Uid, r: std::ops::Range<u64>) -> Result<Option<MessageData>> {
        Calls::bump(&self.calls.range);
        let d = self.get(uid)?;
        let got = d
            .get(r.start as usize..r.end as usize)
            .filter(|_| self.ranges);
        Ok(got.map(|b| MessageData::Owned(b.to_vec())))
    }
    fn cache_lookup(&self, uids: &[Uid], field: &str, f: &mut dyn FnMut(usize, Option<&[u8]>)) {
        Calls::bump(&self.calls.lookup);
        let cache = self.cache.lock().unwrap();
        for (i, u) in uids.iter().enumerate() {
            f(i, cache.get(&(*u, field.to_string())).map(|v| &v[..]));
        }
    }
    fn cache_offer(&self, uid: Uid, field: &str, value: &[u8]) {
        Calls::bump(&self.calls.offer);
        let mut cache = self.cache.lock().unwrap();
        cache.insert((uid, field.to_string()), value.to_vec());
    }
    fn store(&mut self, _: &[Uid], _: StoreOp, _: &Flags) -> Result<Vec<(Uid, Flags)>> {
        Ok(Vec::new())
    }
    fn expunge(&mut self, _: Option<&[Uid]>) -> Result<Vec<Uid>> {
        Ok(Vec::new())
    }
    fn copy_to(&mut self, _: &[Uid], _: &str) -> Result<CopyResult> {
        Ok(CopyResult::default())
    }
}

/// The MIME corpus of the tree (tests/data/mime).
pub(crate) fn corpus() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mime");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let out: Vec<Vec<u8>> = names.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(out.len() >= 30, "the corpus is there");
    out
}

/// The corpus and its variations: every message cut short at steps through it, and
/// with bare LF line ends.
pub(crate) fn variations() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for m in corpus() {
        let step = (m.len() / 24).max(1);
        for cut in (0..m.len()).step_by(step) {
            out.push(m[..cut].to_vec());
        }
        out.push(
            String::from_utf8_lossy(&m)
                .replace("\r\n", "\n")
                .into_bytes(),
        );
        out.push(m);
    }
    out
}

fn header_field(data: &[u8], root: &Part, out: &mut Vec<u8>) {
    out.extend_from_slice(root.header_bytes(data));
    out.extend_from_slice(format!("{:?}", root.content_type).as_bytes());
}

fn tree_field(data: &[u8], root: &Part, out: &mut Vec<u8>) {
    root.walk(&mut |p| {
        out.extend_from_slice(format!("{:?}{:?};", p.content_type, p.body).as_bytes());
        out.extend_from_slice(p.body_bytes(data));
    });
}

static HEADER_DERIVED: Derived = Derived {
    field: "test.header",
    needs: Needs::Header,
    compute: header_field,
};
static TREE_DERIVED: Derived = Derived {
    field: "test.tree",
    needs: Needs::Whole,
    compute: tree_field,
};

/// Every section shape (partmap's test specs) on parts up to two levels deep, with and
/// without partials.
fn sections() -> Vec<(Section, Option<(u32, u32)>)> {
    (specs().into_iter())
        .filter(|s| s.part.len() <= 2)
        .flat_map(|s| [None, Some((3, 100)), Some((100_000, 2))].map(|p| (s.clone(), p)))
        .collect()
}

/// What a full parse gives, cut to the partial.
fn eager_section(data: &[u8], root: &Part, s: &Section, p: Option<(u32, u32)>) -> Vec<u8> {
    let b = section(data, root, s)
        .map(Cow::into_owned)
        .unwrap_or_default();
    b[ranges::cut(b.len(), p)].to_vec()
}

/// Every field of every message through a [`Batch`] equals the eager computation.
fn check_all(mb: &Memory, plan: &Plan, what: &str) {
    let uids: Vec<Uid> = (1..=mb.messages.len() as u32).collect();
    let secs = sections();
    for chunk in uids.chunks(BATCH) {
        let mut buf = BatchBuffer::default();
        let mut batch = Batch::new(mb, plan, &mut buf);
        batch.prefetch(chunk);
        for (k, &uid) in chunk.iter().enumerate() {
            let data = &mb.messages[uid as usize - 1];
            let root = message::parse(data);
            let meta = mb.meta(uid);
            let msg = batch.message(k, &meta);
            for (i, d) in plan.derived.iter().enumerate() {
                let (mut lazy, mut eager) = (Vec::new(), Vec::new());
                msg.derived_into(i, &mut lazy).unwrap();
                (d.compute)(data, &root, &mut eager);
                assert_eq!(lazy, eager, "{what}: uid {uid} field {}", d.field);
            }
            for (s, p) in &secs {
                let lazy = msg.section(s, *p).unwrap();
                let eager = eager_section(data, &root, s, *p);
                assert_eq!(&lazy[..], &eager[..], "{what}: uid {uid} {s:?} {p:?}");
            }
            assert_eq!(msg.size(), data.len() as u64);
            assert_eq!(msg.internal_date(), 1_700_000_000);
        }
    }
}

#[test]
fn lazy_fields_equal_eager_computation_on_the_corpus() {
    for ranges in [true, false] {
        let mut mb = Memory::new(variations());
        mb.ranges = ranges;
        for derived in [
            vec![],
            vec![&HEADER_DERIVED],
            vec![&HEADER_DERIVED, &TREE_DERIVED],
        ] {
            for (part_sections, whole, header_sections) in [
                (true, false, false),
                (false, false, false),
                (true, true, false),
                (false, false, true),
                (true, false, true),
            ] {
                let plan = Plan {
                    derived: derived.clone(),
                    part_sections,
                    whole,
                    header_sections,
                };
                // Cold, then warm: the cache now holds what the first run offered.
                check_all(&mb, &plan, "cold");
                check_all(&mb, &plan, "warm");
            }
        }
        let cache = mb.cache.lock().unwrap();
        assert!(
            cache.keys().any(|(_, f)| f == PARTS_FIELD),
            "part maps offered"
        );
    }
}

/// A cached header block that cannot be the start of the message (damage in the cache
/// file, a value of another message) is not used: the message's own header answers.
#[test]
fn damaged_cached_header_is_ignored() {
    let msgs = corpus();
    let mb = Memory::new(msgs.clone());
    for (i, m) in msgs.iter().enumerate() {
        let uid = i as u32 + 1;
        let bad: Vec<u8> = match i % 3 {
            0 => b"Subject: not this one".to_vec(),
            1 => [m.as_slice(), b"more\r\n\r\n"].concat(),
            _ => Vec::new(),
        };
        mb.cache_offer(uid, HEADER_FIELD, &bad);
    }
    let plan = Plan {
        header_sections: true,
        ..Plan::default()
    };
    check_all(&mb, &plan, "damaged header");
}

/// A part map cached for another size (the file changed) is not used.
#[test]
fn stale_part_map_is_ignored() {
    let msgs = corpus();
    let multi = (msgs.iter())
        .find(|m| matches!(message::parse(m).kind, message::Body::Multipart(_)))
        .unwrap();
    let mb = Memory::new(vec![multi.clone()]);
    let other = message::parse(&msgs[0]);
    let stale = message::PartMap::encode(&other, msgs[0].len() as u64).unwrap();
    mb.cache_offer(1, PARTS_FIELD, &stale);
    let plan = Plan {
        part_sections: true,
        ..Plan::default()
    };
    check_all(&mb, &plan, "stale");
}

/// A scope of every message of a [`Memory`] store, none recent.
struct All<'m>(&'m Memory);

impl SearchScope for All<'_> {
    fn count(&self) -> usize {
        self.0.messages.len()
    }
    fn meta(&self, i: usize) -> Option<Cow<'_, MessageMeta>> {
        (i < self.count()).then(|| Cow::Owned(self.0.meta(i as u32 + 1)))
    }
    fn recent(&self, _: Uid) -> bool {
        false
    }
    fn max_uid(&self) -> Uid {
        self.count() as u32
    }
}

fn run_plan(mb: &Memory, plan: &Plan, sec: Option<&Section>) {
    let uids: Vec<Uid> = (1..=mb.messages.len() as u32).collect();
    for chunk in uids.chunks(BATCH) {
        let mut buf = BatchBuffer::default();
        let mut batch = Batch::new(mb, plan, &mut buf);
        batch.prefetch(chunk);
        for (k, &uid) in chunk.iter().enumerate() {
            let meta = mb.meta(uid);
            let msg = batch.message(k, &meta);
            for i in 0..plan.derived.len() {
                msg.derived_into(i, &mut Vec::new()).unwrap();
            }
            if let Some(s) = sec {
                msg.section(s, None).unwrap();
            }
        }
    }
}

/// What each kind of call counted since the last `take`.
fn take(mb: &Memory) -> [usize; 5] {
    let c = &mb.calls;
    [&c.lookup, &c.header, &c.whole, &c.range, &c.offer].map(|a| a.swap(0, Ordering::Relaxed))
}

/// One cache lookup per field and batch; a message is read at most once per command,
/// header-only when that is all it needs, not at all when the cache answers; sections
/// inside a message are read by range once its part map is cached.
#[test]
fn storage_calls_per_batch() {
    let msgs: Vec<Vec<u8>> = corpus().into_iter().cycle().take(600).collect();
    let n = msgs.len();
    let mb = Memory::new(msgs);
    let header_only = Plan {
        derived: vec![&HEADER_DERIVED],
        ..Plan::default()
    };
    run_plan(&mb, &header_only, None);
    // [lookups, header reads, whole reads, range reads, offers]; 600 messages = 2 batches.
    assert_eq!(take(&mb), [2, n, 0, 0, n], "cold, header only");
    run_plan(&mb, &header_only, None);
    assert_eq!(take(&mb), [2, 0, 0, 0, 0], "warm");
    let both = Plan {
        derived: vec![&HEADER_DERIVED, &TREE_DERIVED],
        ..Plan::default()
    };
    run_plan(&mb, &both, None);
    assert_eq!(
        take(&mb),
        [4, 0, n, 0, n],
        "tree not cached: read whole once"
    );
    let part1 = Section {
        part: vec![1],
        text: None,
    };
    let parts = Plan {
        part_sections: true,
        ..Plan::default()
    };
    run_plan(&mb, &parts, Some(&part1));
    assert_eq!(
        take(&mb),
        [2, 0, n, 0, n],
        "no part map: read whole, offer the map"
    );
    run_plan(&mb, &parts, Some(&part1));
    let [lookups, header, whole, range, offers] = take(&mb);
    assert_eq!([lookups, header, whole, offers], [2, 0, 0, 0], "map cached");
    assert!(range > 0 && range <= n, "by range: {range}");
    let fields = Section {
        part: vec![],
        text: Some(message::SectionText::HeaderFields(vec!["Subject".into()])),
    };
    let headers = Plan {
        header_sections: true,
        ..Plan::default()
    };
    run_plan(&mb, &headers, Some(&fields));
    assert_eq!(take(&mb), [2, n, 0, 0, n], "header fields: read, offered");
    run_plan(&mb, &headers, Some(&fields));
    // This store hands out header blocks with their line ends as stored: those of the
    // LF messages cannot be told from damage, and are read again.
    let lf = (mb.messages.iter())
        .filter(|m| {
            let h = &m[..header::body_start(m)];
            !h.ends_with(b"\r\n\r\n") && h.len() != m.len()
        })
        .count();
    assert!(lf < n / 4);
    assert_eq!(take(&mb), [2, lf, 0, 0, lf], "header fields from the cache");
}

fn codec_parse(v: &[u8]) -> Option<crate::mailbox::search::EnvelopeData> {
    Some(crate::mailbox::search::EnvelopeData {
        subject: Some(v.to_vec()),
        ..Default::default()
    })
}

fn codec_may_contain(v: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(v)
        .to_ascii_lowercase()
        .contains(needle)
}

/// SEARCH answers what evaluating every message one by one answers, on one thread and
/// on several (a body search over more than four chunks), and a header search the
/// second time from the cached header blocks.
#[test]
fn search_equals_one_by_one_evaluation() {
    let msgs: Vec<Vec<u8>> = variations().into_iter().cycle().take(2100).collect();
    let mb = Memory::new(msgs);
    let keys = [
        SearchKey::Body("the".into()),
        SearchKey::Text("alternative".into()),
        SearchKey::Header("subject".into(), "test".into()),
        SearchKey::Envelope(EnvField::From, "example".into()),
        SearchKey::And(vec![
            SearchKey::Uid(NumSet {
                ranges: vec![(5, 40)],
            }),
            SearchKey::Envelope(EnvField::Subject, "e".into()),
        ]),
        SearchKey::Larger(300),
        // UID windows (the candidates are narrowed by binary search): reversed ranges,
        // `*`, several ranges, past the last UID, the largest number.
        SearchKey::Uid(NumSet {
            ranges: vec![(40, 5), (2000, NumSet::STAR), (7, 7)],
        }),
        SearchKey::And(vec![
            SearchKey::Larger(300),
            SearchKey::Uid(NumSet {
                ranges: vec![(9000, NumSet::STAR), (1, 3), (4294967295, 2099)],
            }),
        ]),
        SearchKey::Uid(NumSet {
            ranges: vec![(5000, 6000)],
        }),
    ];
    let scope = All(&mb);
    for key in &keys {
        let want: Vec<usize> = (0..scope.count())
            .filter(|&i| {
                let meta = mb.meta(i as u32 + 1);
                let ctx = crate::mailbox::search::MessageContext {
                    seq: i as u32 + 1,
                    max_seq: scope.count() as u32,
                    max_uid: scope.max_uid(),
                    meta: &meta,
                    recent: false,
                    envelope: None,
                };
                crate::mailbox::search::matches(key, &ctx, Some(&mb.messages[i]))
            })
            .collect();
        assert_eq!(search(&mb, &scope, key, None).unwrap(), want, "{key:?}");
    }
    take(&mb);
    let subject = SearchKey::Header("subject".into(), "test".into());
    search(&mb, &scope, &subject, None).unwrap();
    let [_, header, whole, _, _] = take(&mb);
    assert_eq!((header, whole), (0, 0), "header blocks came from the cache");
}

/// Envelope keys are answered from the protocol's cached envelope when it is there,
/// and a needle not in it rejects the message without reading it.
#[test]
fn search_uses_the_cached_envelope() {
    let mb = Memory::new(vec![b"Subject: one\r\n\r\nx\r\n".to_vec(); 3]);
    let codec = EnvelopeCodec {
        field: "test.env",
        may_contain: codec_may_contain,
        parse: codec_parse,
    };
    // The cached "envelopes" say otherwise than the messages: they are what is read.
    mb.cache_offer(1, "test.env", b"needle here");
    mb.cache_offer(2, "test.env", b"nothing");
    take(&mb);
    let key = SearchKey::Envelope(EnvField::Subject, "needle".into());
    let hits = search(&mb, &All(&mb), &key, Some(&codec)).unwrap();
    assert_eq!(hits, vec![0]);
    let [_, header, whole, _, _] = take(&mb);
    assert_eq!(
        (header, whole),
        (1, 0),
        "only message 3 (no envelope) read, header only"
    );
}

/// Corpus messages with MIME-ish runs (partmap's test strategy: boundaries, content
/// types, blank lines, bare LFs, NULs, random bytes) spliced in at random places, cut
/// short at random.
fn spliced() -> impl Strategy<Value = Vec<u8>> {
    let corpus = corpus();
    let n = corpus.len();
    let runs = proptest::collection::vec((any::<usize>(), mimeish()), 0..3);
    (0..n, runs, any::<usize>()).prop_map(move |(i, inserts, cut)| {
        let mut m = corpus[i].clone();
        for (at, f) in inserts {
            let at = at % (m.len() + 1);
            m.splice(at..at, f);
        }
        m.truncate(m.len() - cut % (m.len() / 2 + 1));
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Lazy fields equal the eager computation on mutated corpus messages.
    #[test]
    fn lazy_equals_eager_on_mutated_messages(m in spliced()) {
        let mb = Memory::new(vec![m]);
        for part_sections in [true, false] {
            let plan = Plan {
                derived: vec![&HEADER_DERIVED, &TREE_DERIVED],
                part_sections,
                whole: false,
                header_sections: !part_sections,
            };
            check_all(&mb, &plan, "cold");
            check_all(&mb, &plan, "warm");
        }
    }
}
