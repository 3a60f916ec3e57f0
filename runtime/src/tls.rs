//! TLS set-up shared by every binary.

/// Installs ring as the process's one rustls crypto provider, whichever TLS features the
/// build happens to unify (with two, rustls cannot choose and refuses). Call before any TLS
/// client or server is made; a second call changes nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
