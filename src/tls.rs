//! TLS: certificate loading, self-signed default, the rustls server configuration.
//! Knows files and rustls; nothing of IMAP or of connections.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// What went wrong with the certificate or key; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `action` is "read", "create" or "write".
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad PEM in {}: {source}", .path.display())]
    Pem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate found in {}", .0.display())]
    NoCertificate(PathBuf),
    #[error("no private key found in {} (expected PKCS#8, RSA or EC PEM)", .0.display())]
    NoKey(PathBuf),
    #[error("TLS setup: {0}")]
    Setup(rustls::Error),
    #[error("key {} does not match certificate {}", .key.display(), .cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("cannot use key {} with certificate {}: {source}", .key.display(), .cert.display())]
    Unusable {
        key: PathBuf,
        cert: PathBuf,
        source: rustls::Error,
    },
    #[error("cannot generate a certificate for {hostname:?}: {source}")]
    Generate {
        hostname: String,
        source: rcgen::Error,
    },
}

/// Loads (or, for the shipped default paths, first generates) the certificate and key and
/// builds the rustls server configuration. Errors name the file and what is wrong.
pub fn server_config(cfg: &TlsConfig, hostname: &str) -> Result<Arc<rustls::ServerConfig>, Error> {
    if cfg.generate_if_missing && !cfg.cert.exists() && !cfg.key.exists() {
        generate_self_signed(&cfg.cert, &cfg.key, hostname)?;
        tracing::info!(
            cert = %cfg.cert.display(),
            key = %cfg.key.display(),
            "generated a self-signed certificate for {hostname}; replace it with a real one"
        );
    }
    build(&cfg.cert, &cfg.key)
}

/// Validates the configured pair without generating anything (for `check-config`):
/// `Ok(false)` when the default pair is absent and would be generated on start.
pub fn check(cfg: &TlsConfig) -> Result<bool, Error> {
    if cfg.generate_if_missing && !cfg.cert.exists() && !cfg.key.exists() {
        return Ok(false);
    }
    build(&cfg.cert, &cfg.key).map(|_| true)
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// The PEM certificate chain in `path`, server certificate first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// The first private key in `path`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => Error::NoKey(path.to_path_buf()),
        source => Error::Pem {
            path: path.to_path_buf(),
            source,
        },
    })
}

fn build(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs = load_certs(cert)?;
    let key_der = load_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions() // TLS 1.2 and 1.3
        .map_err(Error::Setup)?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => Error::KeyMismatch {
                key: key.to_path_buf(),
                cert: cert.to_path_buf(),
            },
            source => Error::Unusable {
                key: key.to_path_buf(),
                cert: cert.to_path_buf(),
                source,
            },
        })?;
    Ok(Arc::new(config))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename,
/// so a crash never leaves half a file; `mode` applies from creation on.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Generates a self-signed certificate for `hostname` (plus `localhost`, 127.0.0.1 and
/// ::1) and writes it and its key (mode 0600), creating their folders.
pub fn generate_self_signed(cert: &Path, key: &Path, hostname: &str) -> Result<(), Error> {
    let mut names: Vec<String> = vec![hostname.to_string()];
    for n in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    let ck = rcgen::generate_simple_self_signed(names).map_err(|source| Error::Generate {
        hostname: hostname.to_string(),
        source,
    })?;
    // Key first: a certificate without its key is useless, the reverse is regenerated.
    write_atomic(key, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(cert, ck.cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cfg(dir: &Path) -> TlsConfig {
        TlsConfig {
            cert: dir.join("tls/cert.pem"),
            key: dir.join("tls/key.pem"),
            generate_if_missing: true,
        }
    }

    #[test]
    fn generates_then_reuses_the_default_pair() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path());
        assert!(matches!(check(&c), Ok(false)));
        server_config(&c, "mail.example.org").unwrap();
        let mode = std::fs::metadata(&c.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = std::fs::read(&c.cert).unwrap();
        server_config(&c, "mail.example.org").unwrap();
        assert_eq!(std::fs::read(&c.cert).unwrap(), first, "not regenerated");
        assert!(matches!(check(&c), Ok(true)));
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(d.path().join("tls")).unwrap().count(), 2);
    }

    #[test]
    fn missing_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        c.generate_if_missing = false;
        let e = server_config(&c, "h").unwrap_err();
        assert!(matches!(e, Error::Io { action: "read", .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("cert.pem"),
            "{e}"
        );
    }

    #[test]
    fn mismatched_key_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        generate_self_signed(&a.join("c.pem"), &a.join("k.pem"), "h").unwrap();
        generate_self_signed(&b.join("c.pem"), &b.join("k.pem"), "h").unwrap();
        let c = TlsConfig {
            cert: a.join("c.pem"),
            key: b.join("k.pem"),
            generate_if_missing: false,
        };
        let e = server_config(&c, "h").unwrap_err();
        assert!(matches!(e, Error::KeyMismatch { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.starts_with("key ") && e.contains(" does not match certificate "),
            "{e}"
        );
    }

    #[test]
    fn wrong_contents_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path());
        generate_self_signed(&c.cert, &c.key, "h").unwrap();
        let swapped = TlsConfig {
            cert: c.key.clone(),
            key: c.cert.clone(),
            generate_if_missing: false,
        };
        let e = server_config(&swapped, "h").unwrap_err().to_string();
        assert!(e.starts_with("no certificate found in"), "{e}");
        let e = load_key(&c.cert).unwrap_err().to_string();
        assert!(e.starts_with("no private key found in"), "{e}");
        assert!(e.ends_with(" (expected PKCS#8, RSA or EC PEM)"), "{e}");
    }

    // openssl-made fixtures: a SEC1 ("EC PRIVATE KEY") and a PKCS#1 ("RSA PRIVATE KEY")
    // key with matching self-signed certificates.
    const EC_KEY: &str = include_str!("tls/fixtures/ec.pem");
    const EC_CERT: &str = include_str!("tls/fixtures/ec-cert.pem");
    const RSA_KEY: &str = include_str!("tls/fixtures/rsa.pem");
    const RSA_CERT: &str = include_str!("tls/fixtures/rsa-cert.pem");

    #[test]
    fn sec1_and_pkcs1_keys_load() {
        let d = tempfile::tempdir().unwrap();
        for (k, c) in [(EC_KEY, EC_CERT), (RSA_KEY, RSA_CERT)] {
            let kp = d.path().join("k.pem");
            let cp = d.path().join("c.pem");
            std::fs::write(&kp, k).unwrap();
            std::fs::write(&cp, c).unwrap();
            let cfg = TlsConfig {
                cert: cp,
                key: kp,
                generate_if_missing: false,
            };
            server_config(&cfg, "localhost").unwrap();
        }
    }
}
