//! Maildir / Maildir++ storage.

use std::path::Path;
use std::sync::Arc;

use super::{Error, ErrorKind, Result, Store};

pub fn open_store(
    cfg: &crate::config::StorageConfig,
    user: &str,
    home: Option<&Path>,
) -> Result<Arc<dyn Store>> {
    let _ = (cfg, user, home);
    Err(Error::new(ErrorKind::Temporary, "maildir not built yet"))
}
