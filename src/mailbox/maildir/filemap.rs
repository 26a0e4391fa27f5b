//! The file of every UID of one folder, in ascending UID order: two parallel vectors
//! (UIDs, files) looked up by binary search.
//!
//! A folder's first scan lists 100,000 files into one vector, orders it by delivery time
//! in place and numbers it: the vector becomes this map without moving a file again. A
//! `BTreeMap` needed every file moved into 9,000 fresh nodes, and the first SELECT paid
//! for the page faults. UIDs only grow, so new files are appended at the end.
//!
//! This module must not know about IMAP or the index.

use super::folder::FileInfo;
use crate::mailbox::Uid;

#[derive(Clone, Debug, Default)]
pub struct FileMap {
    uids: Vec<Uid>,
    files: Vec<FileInfo>,
}

impl FileMap {
    /// A map of `files` numbered by `uids` (same length). Orders them by UID when they
    /// are not in order already; of a UID given twice the file given last stays.
    pub fn from_parts(mut uids: Vec<Uid>, mut files: Vec<FileInfo>) -> FileMap {
        let n = uids.len().min(files.len());
        uids.truncate(n);
        files.truncate(n);
        if uids.windows(2).all(|w| w[0] < w[1]) {
            return FileMap { uids, files };
        }
        // Sort small (uid, position) pairs, then gather the files into a new vector:
        // independent reads that the CPU overlaps, where following the permutation's
        // cycles in place waits for one cache miss after another.
        let mut order: Vec<(Uid, usize)> = uids.iter().copied().zip(0..n).collect();
        order.sort_unstable();
        let mut m = FileMap {
            uids: Vec::with_capacity(n),
            files: Vec::with_capacity(n),
        };
        for (k, &(u, i)) in order.iter().enumerate() {
            if order.get(k + 1).is_some_and(|next| next.0 == u) {
                continue;
            }
            m.uids.push(u);
            m.files.push(std::mem::take(&mut files[i]));
        }
        m
    }

    pub fn len(&self) -> usize {
        self.uids.len()
    }

    fn find(&self, uid: Uid) -> Result<usize, usize> {
        // New mail is at the end: look there first.
        match self.uids.last() {
            Some(&last) if uid > last => Err(self.uids.len()),
            Some(&last) if uid == last => Ok(self.uids.len() - 1),
            _ => self.uids.binary_search(&uid),
        }
    }

    pub fn get(&self, uid: Uid) -> Option<&FileInfo> {
        self.find(uid).ok().and_then(|i| self.files.get(i))
    }

    pub fn contains(&self, uid: Uid) -> bool {
        self.find(uid).is_ok()
    }

    /// Sets the file of `uid`; returns the one it replaces.
    pub fn insert(&mut self, uid: Uid, f: FileInfo) -> Option<FileInfo> {
        match self.find(uid) {
            Ok(i) => Some(std::mem::replace(&mut self.files[i], f)),
            Err(i) => {
                self.uids.insert(i, uid);
                self.files.insert(i, f);
                None
            }
        }
    }

    /// Keeps the files for which `keep(uid, file)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(Uid, &FileInfo) -> bool) {
        let mut w = 0;
        for r in 0..self.uids.len() {
            if keep(self.uids[r], &self.files[r]) {
                self.uids.swap(w, r);
                self.files.swap(w, r);
                w += 1;
            }
        }
        self.uids.truncate(w);
        self.files.truncate(w);
    }

    /// `(uid, file)` in ascending UID order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (Uid, &FileInfo)> + ExactSizeIterator {
        self.uids.iter().copied().zip(self.files.iter())
    }

    /// `(uid, file)` in ascending UID order, the files mutable (not their UIDs).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Uid, &mut FileInfo)> {
        self.uids.iter().copied().zip(self.files.iter_mut())
    }

    /// The files in UID order.
    pub fn values(&self) -> std::slice::Iter<'_, FileInfo> {
        self.files.iter()
    }

    /// The UIDs, ascending.
    pub fn uids(&self) -> &[Uid] {
        &self.uids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::maildir::filename;
    use crate::mailbox::maildir::folder::Sub;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn file(n: u32) -> FileInfo {
        let name = format!("{n}.x");
        FileInfo {
            sub: Sub::Cur,
            parsed: filename::parse(&name).unwrap(),
            name: name.into(),
            mtime: None,
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
        Retain(u32),
    }

    proptest! {
        /// Built from pairs in any order (UIDs repeated too), the map holds the last file
        /// given for each UID, in UID order.
        #[test]
        fn from_parts_orders(uids in proptest::collection::vec(1u32..40, 0..60)) {
            let files: Vec<FileInfo> = uids.iter().enumerate().map(|(i, &u)| {
                let mut f = file(u);
                f.name = format!("{u}.{i}").into();
                f
            }).collect();
            let mut model: BTreeMap<u32, String> = BTreeMap::new();
            for f in &files {
                model.insert(f.name.split('.').next().unwrap().parse().unwrap(), f.name.to_string());
            }
            let m = FileMap::from_parts(uids, files);
            let got: Vec<(u32, String)> = m.iter().map(|(u, f)| (u, f.name.to_string())).collect();
            prop_assert_eq!(got, model.into_iter().collect::<Vec<_>>());
        }

        /// Whatever is done to it, the map answers like a BTreeMap of the same pairs.
        #[test]
        fn same_as_btreemap(
            start in proptest::collection::vec(1u32..200, 0..60),
            ops in proptest::collection::vec(prop_oneof![
                (1u32..220).prop_map(Op::Insert),
                (1u32..220).prop_map(Op::Remove),
                (2u32..5).prop_map(Op::Retain),
            ], 0..40),
        ) {
            let mut model: BTreeMap<u32, String> = BTreeMap::new();
            for &u in &start {
                model.insert(u, file(u).name.to_string());
            }
            let mut m = FileMap::from_parts(start.clone(), start.iter().map(|&u| file(u)).collect());
            for op in ops {
                match op {
                    Op::Insert(u) => {
                        let mut f = file(u);
                        f.name = format!("{}y", f.name).into();
                        let had = model.insert(u, f.name.to_string());
                        prop_assert_eq!(m.insert(u, f).map(|f| f.name.to_string()), had);
                    }
                    Op::Remove(u) => {
                        model.remove(&u);
                        m.retain(|x, _| x != u);
                    }
                    Op::Retain(k) => {
                        model.retain(|x, _| x % k != 0);
                        m.retain(|x, _| x % k != 0);
                    }
                }
                let got: Vec<(u32, String)> = m.iter().map(|(u, f)| (u, f.name.to_string())).collect();
                let want: Vec<(u32, String)> = model.iter().map(|(u, n)| (*u, n.clone())).collect();
                prop_assert_eq!(got, want);
                for u in 0..222 {
                    prop_assert_eq!(m.get(u).map(|f| f.name.to_string()), model.get(&u).cloned());
                    prop_assert_eq!(m.contains(u), model.contains_key(&u));
                }
                prop_assert_eq!(m.len(), model.len());
            }
        }
    }
}
