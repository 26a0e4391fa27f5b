//! Placeholder for the per-message field cache (`loft.index.cache`); the real `Cache`
//! is built separately and replaces this file. It must not know IMAP or MIME.

use std::path::Path;

use super::{Error, Options};

pub struct Cache;

impl Cache {
    pub fn open(_dir: &Path, _opts: &Options) -> Result<Cache, Error> {
        Ok(Cache)
    }
}
