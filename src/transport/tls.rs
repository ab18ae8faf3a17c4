//! TLS on the client side (rustls with the ring provider, no OpenSSL): building the client
//! configuration from `config.tls` once per run, the handshake, and turning rustls' errors
//! into `tls_verify` / `tls_handshake` failures that say what to change in the plan.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{ConnectError, SetupError};
use crate::plan::{TlsRoots, TlsSettings};
use crate::vocab::ErrorKind;

/// What every TLS connection of a run shares.
#[derive(Clone)]
pub(super) struct TlsClient {
    connector: TlsConnector,
    server_name: ServerName<'static>,
    /// Shown in error messages (`serverName`, or the target's host).
    name: String,
}

impl TlsClient {
    /// Builds the client configuration: roots, client identity, ALPN, versions.
    /// `default_alpn` is offered when the plan names none (WebSocket offers `http/1.1`).
    pub(super) fn new(
        settings: &TlsSettings,
        host: &str,
        default_alpn: &[&str],
    ) -> Result<TlsClient, SetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if settings.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(|e| SetupError::Tls(e.to_string()))?;
        let builder = if settings.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
        } else {
            builder.with_root_certificates(roots(&settings.roots)?)
        };
        let mut config = match &settings.client_identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let chain = crate::certs::load_certs(&identity.cert)?;
                let key = crate::certs::load_private_key(&identity.key)?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    SetupError::Tls(format!(
                        "clientCert {} and clientKey {} do not form a usable identity: {e}",
                        identity.cert.display(),
                        identity.key.display()
                    ))
                })?
            }
        };
        config.alpn_protocols = if settings.alpn.is_empty() {
            default_alpn.iter().map(|p| p.as_bytes().to_vec()).collect()
        } else {
            settings
                .alpn
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect()
        };
        let name = settings
            .server_name
            .clone()
            .unwrap_or_else(|| host.to_owned());
        let server_name = ServerName::try_from(name.clone()).map_err(|_| {
            SetupError::Tls(format!(
                "`{name}` is not a valid TLS server name; set config.tls.serverName"
            ))
        })?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            name,
        })
    }

    /// The same configuration for another host: a new SNI name unless `serverName` fixed
    /// one (HTTP requests may go to any origin).
    pub(super) fn for_host(
        &self,
        settings: &TlsSettings,
        host: &str,
    ) -> Result<TlsClient, SetupError> {
        if settings.server_name.is_some() || host == self.name {
            return Ok(self.clone());
        }
        let server_name = ServerName::try_from(host.to_owned()).map_err(|_| {
            SetupError::Tls(format!(
                "`{host}` is not a valid TLS server name; set config.tls.serverName"
            ))
        })?;
        Ok(TlsClient {
            connector: self.connector.clone(),
            server_name,
            name: host.to_owned(),
        })
    }

    /// The TLS handshake over an open TCP connection, within `limit`.
    pub(super) async fn handshake(
        &self,
        tcp: TcpStream,
        limit: Duration,
    ) -> Result<TlsStream<TcpStream>, ConnectError> {
        let handshake = self.connector.connect(self.server_name.clone(), tcp);
        match tokio::time::timeout(limit, handshake).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(err)) => Err(classify(&err, &self.name)),
            Err(_) => Err(ConnectError::new(
                ErrorKind::TlsHandshake,
                format!(
                    "the TLS handshake with {} took longer than {limit:?}; is this a TLS port?",
                    self.name
                ),
            )),
        }
    }
}

fn roots(roots: &TlsRoots) -> Result<RootCertStore, SetupError> {
    let mut store = RootCertStore::empty();
    let certs = match roots {
        TlsRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(SetupError::Tls(
                    "no system CA certificates were found; set config.tls.caFile to a PEM \
                     bundle"
                        .to_owned(),
                ));
            }
            found.certs
        }
        TlsRoots::File(path) => crate::certs::load_certs(path)?,
        TlsRoots::Pem(pem) => CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SetupError::Tls(format!("the in-memory CA certificate: {e}")))?,
    };
    for cert in certs {
        // A bundle may hold certificates rustls cannot use as roots; the rest still count.
        let _ = store.add(cert);
    }
    if store.is_empty() {
        return Err(SetupError::Tls(
            "none of the CA certificates could be used as a trust root".to_owned(),
        ));
    }
    Ok(store)
}

/// A TLS error reported on an established connection (a TLS 1.3 server refusing the client
/// certificate after the handshake), classified like a handshake failure.
pub(super) fn classify_alert(err: &std::io::Error) -> Option<ConnectError> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(|_| classify(err, "the server"))
}

/// Turns a failed handshake into the error kind and a message that says what to change.
fn classify(err: &std::io::Error, name: &str) -> ConnectError {
    let tls = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(cert)) => {
            let hint = match cert {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    "the certificate is signed by a CA this run does not trust: set \
                     config.tls.caFile to that CA's PEM bundle (insecureSkipVerify: true \
                     accepts any certificate, for testing only)"
                        .to_owned()
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "the certificate is not valid for `{name}`: set config.tls.serverName to \
                     a name the certificate holds, or use that name in the target"
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the certificate has expired (or this machine's clock is wrong)".to_owned()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the certificate is not valid yet (or this machine's clock is wrong)".to_owned()
                }
                _ => "set config.tls.caFile / serverName to match the server's certificate"
                    .to_owned(),
            };
            ConnectError::new(
                ErrorKind::TlsVerify,
                format!("the server's certificate was refused ({cert:?}): {hint}"),
            )
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            let hint = match alert {
                rustls::AlertDescription::CertificateRequired
                | rustls::AlertDescription::HandshakeFailure => {
                    "; if the server wants a client certificate, set config.tls.clientCert \
                     and clientKey"
                }
                rustls::AlertDescription::ProtocolVersion => {
                    "; the server does not accept the offered TLS versions (see \
                     config.tls.minVersion)"
                }
                _ => "",
            };
            ConnectError::new(
                ErrorKind::TlsHandshake,
                format!("{name} refused the TLS handshake with alert {alert:?}{hint}"),
            )
        }
        Some(other) => ConnectError::new(
            ErrorKind::TlsHandshake,
            format!(
                "the TLS handshake with {name} failed: {other}; is this a TLS port? (a \
                 plain-text server needs a tcp:// or ws:// target)"
            ),
        ),
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => ConnectError::new(
            ErrorKind::TlsHandshake,
            format!(
                "{name} closed the connection during the TLS handshake: is this a TLS port, \
                 and does it want a client certificate (config.tls.clientCert)?"
            ),
        ),
        None => ConnectError::new(
            ErrorKind::of_io(err),
            format!("the TLS handshake with {name} failed: {err}"),
        ),
    }
}

/// `insecureSkipVerify`: accepts any certificate, but still checks that the handshake is
/// signed by the key in it, so the connection is encrypted to *someone*.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
