//! One shared value per folder path in this process (a folder's state, its lock),
//! alive while someone holds it: weak references, dropped with their last user.
//!
//! This module must not know about mail formats.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// One shared `T` per folder directory, alive while someone holds it.
pub struct Registry<T>(Mutex<HashMap<PathBuf, Weak<T>>>);

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry(Mutex::new(HashMap::new()))
    }
}

impl<T> Registry<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Weak<T>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `T` of `path` if someone holds it.
    pub fn get(&self, path: &Path) -> Option<Arc<T>> {
        self.map().get(path).and_then(Weak::upgrade)
    }

    /// The `T` of `path` when someone holds one and `usable` says it still serves, else
    /// a new one made by `make` that takes its place (holders of the old keep it).
    pub fn get_usable_or_make(
        &self,
        path: &Path,
        usable: impl Fn(&T) -> bool,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let mut reg = self.map();
        if let Some(s) = reg.get(path).and_then(Weak::upgrade).filter(|s| usable(s)) {
            return s;
        }
        reg.retain(|_, w| w.strong_count() > 0);
        let s = Arc::new(make());
        reg.insert(path.to_path_buf(), Arc::downgrade(&s));
        s
    }

    /// Calls `f` with every `T` someone holds whose path is `under` or below it.
    pub fn each_under(&self, under: &Path, mut f: impl FnMut(&T)) {
        let reg = self.map();
        for (p, w) in reg.iter() {
            if let Some(s) = w.upgrade().filter(|_| p.starts_with(under)) {
                f(&s);
            }
        }
    }

    /// The `T` of `path`, made by `make` when nobody holds one (no I/O inside `make`:
    /// the registry is locked meanwhile).
    pub fn get_or_make(&self, path: &Path, make: impl FnOnce() -> T) -> Arc<T> {
        let mut reg = self.map();
        if let Some(s) = reg.get(path).and_then(Weak::upgrade) {
            return s;
        }
        reg.retain(|_, w| w.strong_count() > 0);
        let s = Arc::new(make());
        reg.insert(path.to_path_buf(), Arc::downgrade(&s));
        s
    }
}
