//! Checks of the files a configuration points at: certificate, key, passwd-file.
//! Only existence and readability; their contents are the business of `tls` and `auth`.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::walk::Walker;
use super::Config;

/// Where to point diagnostics about each file (its key, or its section).
pub struct Spans {
    pub cert: Range<usize>,
    pub key: Range<usize>,
    pub passwd_file: Range<usize>,
}

/// Why a file the configuration names cannot be used.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error("{} is a directory", .0.display())]
    Directory(PathBuf),
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn readable(path: &Path) -> Result<(), Unreadable> {
    let io = |source| Unreadable::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = File::open(path).and_then(|f| f.metadata()).map_err(io)?;
    if meta.is_dir() {
        return Err(Unreadable::Directory(path.to_path_buf()));
    }
    Ok(())
}

/// Fills `generate_if_missing` / `create_if_missing` and reports unreadable files.
///
/// The shipped default pair (`tls/cert.pem`, `tls/key.pem` beside the config) may both be
/// missing: the daemon generates a self-signed pair on first start. Explicitly configured
/// other paths must be readable. Likewise the default passwd-file (`users` beside the
/// config) may be missing and is then created empty; any other must exist.
pub fn check(w: &mut Walker<'_>, cfg: &mut Config, at: &Spans) {
    let default_cert = w.dir.join("tls/cert.pem");
    let default_key = w.dir.join("tls/key.pem");
    let is_default = cfg.tls.cert == default_cert && cfg.tls.key == default_key;
    let cert_exists = cfg.tls.cert.exists();
    let key_exists = cfg.tls.key.exists();
    cfg.tls.generate_if_missing = is_default && !cert_exists && !key_exists;
    if !cfg.tls.generate_if_missing {
        if let Err(e) = readable(&cfg.tls.cert) {
            let hint = if is_default && key_exists {
                " (the key exists without its certificate: remove both to regenerate)"
            } else {
                ""
            };
            w.error(at.cert.clone(), format!("[tls] cert: {e}{hint}"));
        }
        if let Err(e) = readable(&cfg.tls.key) {
            let hint = if is_default && cert_exists {
                " (the certificate exists without its key: remove both to regenerate)"
            } else {
                ""
            };
            w.error(at.key.clone(), format!("[tls] key: {e}{hint}"));
        }
    }

    let default_passwd = w.dir.join("users");
    let passwd_exists = cfg.auth.passwd_file.exists();
    cfg.auth.create_if_missing = !passwd_exists && cfg.auth.passwd_file == default_passwd;
    if !cfg.auth.create_if_missing {
        if let Err(e) = readable(&cfg.auth.passwd_file) {
            w.error(at.passwd_file.clone(), format!("[auth] passwd_file: {e}"));
        }
    }
}
