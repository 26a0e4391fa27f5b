//! TLS: certificate loading, self-signed default, the rustls acceptor.
