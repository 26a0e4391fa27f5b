//! The message list of a [`Snapshot`](super::Snapshot): the index's own records (shared
//! chunks, see [`index::Records`]) and the keyword names their bits stand for. Made from
//! an index state without copying it, so a change to one message costs one chunk, not a
//! list of every message; [`MessageMeta`] values are made when asked for.

use std::sync::Arc;

use super::{Flags, MessageMeta, SysFlags, Uid};
use crate::index::{self, Record, Records};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Messages {
    records: Records,
    /// Keyword names by bit of [`Record::keywords`].
    names: Arc<Vec<String>>,
}

impl Messages {
    pub fn new(records: Records, names: Arc<Vec<String>>) -> Messages {
        Messages { records, names }
    }

    /// From plain values (tests, stores without an index): keyword names numbered in
    /// order of first use (at most 64, more are dropped).
    pub fn from_metas(metas: impl IntoIterator<Item = MessageMeta>) -> Messages {
        let mut names: Vec<String> = Vec::new();
        let mut bit = |k: &String| keyword_bit(&mut names, k);
        let records: Records = metas
            .into_iter()
            .map(|m| Record {
                uid: m.uid,
                flags: m.flags.sys.0,
                dirty: false,
                keywords: m.flags.keywords.iter().map(&mut bit).fold(0, |a, b| a | b),
                modseq: 1,
                size: m.size,
                internal_date: m.internal_date,
                key: index::Key::default(),
            })
            .collect();
        Messages::new(records, Arc::new(names))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn records(&self) -> &Records {
        &self.records
    }

    /// The message a record of these messages describes.
    pub fn meta(&self, r: &Record) -> MessageMeta {
        MessageMeta {
            uid: r.uid,
            flags: self.flags_of(r),
            size: r.size,
            internal_date: r.internal_date,
        }
    }

    fn flags_of(&self, r: &Record) -> Flags {
        Flags {
            sys: SysFlags(r.flags),
            keywords: keyword_names(r.keywords, &self.names),
        }
    }

    /// Message `i` (sequence number i+1).
    pub fn get(&self, i: usize) -> Option<MessageMeta> {
        self.records.get(i).map(|r| self.meta(r))
    }

    pub fn uid(&self, i: usize) -> Option<Uid> {
        self.records.get(i).map(|r| r.uid)
    }

    pub fn size(&self, i: usize) -> Option<u64> {
        self.records.get(i).map(|r| r.size)
    }

    pub fn first(&self) -> Option<MessageMeta> {
        self.records.first().map(|r| self.meta(r))
    }

    pub fn last(&self) -> Option<MessageMeta> {
        self.records.last().map(|r| self.meta(r))
    }

    pub fn last_uid(&self) -> Option<Uid> {
        self.records.last().map(|r| r.uid)
    }

    /// Position of `uid` (`Ok`) or where it would be (`Err`).
    pub fn find(&self, uid: Uid) -> Result<usize, usize> {
        self.records.find(uid)
    }

    /// For many [`Messages::find`]s in ascending UID order, each from where the last
    /// ended.
    pub fn seeker(&self) -> crate::index::Seeker<'_> {
        self.records.seeker()
    }

    /// How many messages have a UID for which `pred` holds (`pred` true for a prefix).
    pub fn count_uids(&self, mut pred: impl FnMut(Uid) -> bool) -> usize {
        self.records.partition_point(|r| pred(r.uid))
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = MessageMeta> + ExactSizeIterator + '_ {
        self.records.iter().map(|r| self.meta(r))
    }

    pub fn uids(&self) -> impl DoubleEndedIterator<Item = Uid> + ExactSizeIterator + '_ {
        self.records.iter().map(|r| r.uid)
    }

    pub fn sizes(&self) -> impl Iterator<Item = u64> + '_ {
        self.records.iter().map(|r| r.size)
    }

    /// Sets the size of message `i` (its chunk is copied when shared).
    pub fn set_size(&mut self, i: usize, size: u64) {
        self.records.update_range(i..i + 1, |r| r.size = size);
    }

    /// UIDs whose message differs between `self` and `next` as a client sees it (added,
    /// removed, flags, keywords, size or date), ascending; chunks both share are skipped.
    pub fn diff(&self, next: &Messages) -> Vec<Uid> {
        let same_names = Arc::ptr_eq(&self.names, &next.names) || self.names == next.names;
        self.records.diff(&next.records, |a, b| {
            a.flags != b.flags
                || a.size != b.size
                || a.internal_date != b.internal_date
                || match same_names {
                    true => a.keywords != b.keywords,
                    false => {
                        keyword_names(a.keywords, &self.names)
                            != keyword_names(b.keywords, &next.names)
                    }
                }
        })
    }
}

impl<'a> IntoIterator for &'a Messages {
    type Item = MessageMeta;
    type IntoIter = Box<dyn Iterator<Item = MessageMeta> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// The names of keyword `bits` among `names`, sorted (the order FETCH FLAGS lists them
/// in).
pub fn keyword_names(bits: u64, names: &[String]) -> Vec<String> {
    if bits == 0 {
        return Vec::new();
    }
    let mut v: Vec<String> = (names.iter().enumerate())
        .filter(|(i, _)| *i < 64 && bits & (1 << i) != 0)
        .map(|(_, n)| n.clone())
        .collect();
    v.sort();
    v
}

/// The bit of keyword `k` among `names` (case-insensitive), adding it while there are
/// fewer than 64; 0 past them.
pub fn keyword_bit(names: &mut Vec<String>, k: &str) -> u64 {
    let i = match names.iter().position(|n| n.eq_ignore_ascii_case(k)) {
        Some(i) => i,
        None if names.len() < 64 => {
            names.push(k.to_string());
            names.len() - 1
        }
        None => return 0,
    };
    1 << i
}

/// The message list of an index state.
impl From<&index::IndexSnapshot> for Messages {
    fn from(s: &index::IndexSnapshot) -> Messages {
        Messages::new(s.records.clone(), Arc::new(s.keywords.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: Uid, kw: &[&str]) -> MessageMeta {
        MessageMeta {
            uid,
            flags: Flags {
                sys: SysFlags::SEEN,
                keywords: kw.iter().map(|k| k.to_string()).collect(),
            },
            size: 10 + u64::from(uid),
            internal_date: 7,
        }
    }

    #[test]
    fn values_round_trip_and_the_diff_sees_what_a_client_sees() {
        let metas = vec![meta(1, &[]), meta(2, &["$Junk"]), meta(5, &["$Junk", "a"])];
        let m = Messages::from_metas(metas.clone());
        assert!(m.iter().eq(metas.iter().cloned()));
        assert_eq!(m.get(2).unwrap().flags.keywords, ["$Junk", "a"]);
        assert_eq!(m.find(5), Ok(2));
        assert_eq!(m.count_uids(|u| u < 3), 2);
        let mut n = m.clone();
        n.set_size(0, 99);
        assert_eq!(m.diff(&n), vec![1]);
        let other = Messages::from_metas(vec![meta(1, &[]), meta(2, &["$Junk"]), meta(6, &[])]);
        assert_eq!(m.diff(&other), vec![5, 6]);
    }
}
