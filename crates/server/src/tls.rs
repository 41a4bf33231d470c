//! HTTPS: the certificate chain and private key (PEM files, `--tls-cert`, `--tls-key`) read
//! once at start into a rustls server configuration (the `ring` provider; TLS 1.2 and 1.3;
//! HTTP/1.1 by ALPN), and the acceptor the listener hands each connection to
//! (`listener::TlsBounded`). Not here: client certificates (tokens say who a client is), and
//! reloading a renewed certificate (restart the server).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{crypto, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Where the certificate chain and its key are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The acceptor for `files`; an error names the file that does not read and why.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let cert_file = files.cert.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {cert_file}: {e}"))?;
    if chain.is_empty() {
        return Err(format!("--tls-cert {cert_file}: no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("--tls-key {}: {e}", files.key.display()))?;
    let provider = Arc::new(crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("--tls-cert {cert_file} with --tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
