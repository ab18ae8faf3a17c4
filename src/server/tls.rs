//! TLS for the reference server: the certificate material it is configured with
//! ([`ServerTls`]), the rustls server configuration built from it (ring provider, safe
//! default protocol versions, optional client certificate verification), and the
//! per-connection handshake, bounded by [`HANDSHAKE_TIMEOUT`].
//!
//! Files are read by the caller (`cli::serve` via [`crate::certs`]); this module only takes
//! DER already in memory, so `validate()` and `spawn` do no file I/O.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::server::ServerError;

/// How long a client gets to complete the TLS handshake (and, separately, the WebSocket
/// upgrade) before its connection is dropped: a silent client must not hold a task forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The names [`self_signed_tls`] certifies: what a local client connects to.
pub const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The server's TLS material, already loaded (DER).
#[derive(PartialEq, Eq)]
pub struct ServerTls {
    /// The server's certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf certificate's private key.
    pub key: PrivateKeyDer<'static>,
    /// Mutual TLS: when set, every client must present a certificate issued by one of
    /// these CA certificates, or its handshake fails.
    pub client_ca: Option<Vec<CertificateDer<'static>>>,
}

impl ServerTls {
    /// TLS with `cert_chain` (leaf first) and its `key`, no client certificates.
    pub fn new(cert_chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        ServerTls {
            cert_chain,
            key,
            client_ca: None,
        }
    }

    /// Requires client certificates issued by one of `client_ca` (mutual TLS).
    pub fn with_client_ca(mut self, client_ca: Vec<CertificateDer<'static>>) -> Self {
        self.client_ca = Some(client_ca);
        self
    }
}

// Manual: the key has no `Clone` (on purpose upstream) and must not be printed.
impl Clone for ServerTls {
    fn clone(&self) -> Self {
        ServerTls {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            client_ca: self.client_ca.clone(),
        }
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field(
                "cert_chain",
                &format!("{} certificate(s)", self.cert_chain.len()),
            )
            .field("key", &"<redacted>")
            .field(
                "client_ca",
                &self
                    .client_ca
                    .as_ref()
                    .map(|cas| format!("{} certificate(s)", cas.len())),
            )
            .finish()
    }
}

/// A fresh self-signed certificate for `localhost`, `127.0.0.1` and `::1`, as server TLS
/// material plus the certificate's PEM, which a client uses as its CA file.
pub fn self_signed_tls() -> Result<(ServerTls, String), ServerError> {
    let issued = crate::certs::self_signed(&SELF_SIGNED_NAMES)?;
    let tls = ServerTls::new(vec![issued.cert_der], issued.key_der);
    Ok((tls, issued.cert_pem))
}

/// Builds the acceptor, offering `alpn` (in preference order; empty: no ALPN). Uses the ring
/// provider explicitly (never a process-wide default) so the crate works whatever else is
/// linked.
pub fn acceptor(tls: &ServerTls, alpn: &[&[u8]]) -> Result<TlsAcceptor, ServerError> {
    let config_error = |what: &str, error: &dyn std::fmt::Display| ServerError::Tls {
        reason: format!("{what}: {error}"),
    };
    if tls.cert_chain.is_empty() {
        return Err(ServerError::Tls {
            reason: "the certificate chain is empty: give at least the server certificate"
                .to_string(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("no usable TLS protocol version", &e))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots
                    .add(ca.clone())
                    .map_err(|e| config_error("the client CA certificate is not usable", &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    config_error("cannot verify client certificates with the client CA", &e)
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(tls.cert_chain.clone(), tls.key.clone_key())
        .map_err(|e| {
            config_error(
                "the certificate and key do not form a usable pair (is the key the certificate's?)",
                &e,
            )
        })?;
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS handshake of one connection, in its own task. `None` when it fails, times out or
/// the server stops: the client just sees its connection closed.
pub async fn accept(
    acceptor: &TlsAcceptor,
    socket: TcpStream,
    stop: &CancellationToken,
) -> Option<TlsStream<TcpStream>> {
    tokio::select! {
        _ = stop.cancelled() => None,
        result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)) => {
            result.ok()?.ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::TestCa;

    #[test]
    fn builds_plain_mutual_and_websocket_configs() {
        let (tls, pem) = self_signed_tls().expect("self-signed");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(acceptor(&tls, &[]).is_ok());
        let ws = acceptor(&tls, &[b"http/1.1"]).expect("websocket config");
        assert_eq!(ws.config().alpn_protocols, [b"http/1.1".to_vec()]);
        let plain = acceptor(&tls, &[]).expect("plain config");
        assert!(plain.config().alpn_protocols.is_empty());

        let ca = TestCa::new("clients").expect("ca");
        let mutual = tls.clone().with_client_ca(vec![ca.cert_der()]);
        assert!(acceptor(&mutual, &[]).is_ok());
        assert!(format!("{mutual:?}").contains("<redacted>"));
    }

    #[test]
    fn rejects_unusable_material() {
        let (tls, _) = self_signed_tls().expect("self-signed");
        let other = crate::certs::self_signed(&["localhost"]).expect("other");
        // The key of another certificate.
        let mismatched = ServerTls::new(tls.cert_chain.clone(), other.key_der);
        let error = acceptor(&mismatched, &[]).err().expect("key mismatch");
        assert!(
            error.to_string().contains("do not form a usable pair"),
            "{error}"
        );

        let empty = ServerTls::new(vec![], tls.key.clone_key());
        assert!(acceptor(&empty, &[]).is_err());

        let no_roots = tls.clone().with_client_ca(vec![]);
        let error = acceptor(&no_roots, &[]).err().expect("no client CA");
        assert!(error.to_string().contains("client CA"), "{error}");
    }
}
