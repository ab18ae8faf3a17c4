//! Certificates and keys: loading PEM files into rustls types, and generating certificates
//! for offline tests and `chatload serve --tls-self-signed`.
//!
//! A leaf: imports nothing else from the crate, so the server (`server::tls`) and the client
//! transports can both use it. It does not build rustls configurations (each side knows its
//! own verifier rules) and never touches the network.
//!
//! Generated certificates are for loopback testing only: they use fresh ECDSA P-256 keys,
//! are valid from 1975 to 4096 (so no test depends on the clock), and each name that parses
//! as an IP address becomes an IP subject alternative name, every other one a DNS name.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What went wrong loading or generating a certificate or key; messages name the file and
/// say what it should contain.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not a valid PEM file ({reason}); expected `-----BEGIN ...-----` / `-----END ...-----` blocks",
        path.display()
    )]
    Pem { path: PathBuf, reason: String },
    #[error(
        "{} holds no certificate: expected at least one `-----BEGIN CERTIFICATE-----` block",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "{} holds no private key: expected a `-----BEGIN PRIVATE KEY-----` (PKCS#8), \
         `RSA PRIVATE KEY` or `EC PRIVATE KEY` block",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },
    #[error("cannot generate a certificate for {names:?}: {reason}")]
    Generate { names: Vec<String>, reason: String },
}

impl CertError {
    /// Maps a PEM parsing error of `path`; "nothing found" becomes `none_found`.
    fn from_pem(path: &Path, error: pem::Error, none_found: CertError) -> CertError {
        match error {
            pem::Error::Io(source) => CertError::Read {
                path: path.to_path_buf(),
                source,
            },
            pem::Error::NoItemsFound => none_found,
            other => CertError::Pem {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        }
    }
}

/// Every certificate of a PEM file, in file order (a chain: leaf first). Other blocks (keys)
/// are skipped; a file without any certificate is an error.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let path = path.as_ref();
    let no_cert = || CertError::NoCertificate {
        path: path.to_path_buf(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| CertError::from_pem(path, error, no_cert()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| CertError::from_pem(path, error, no_cert()))?;
    if certs.is_empty() {
        return Err(no_cert());
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, CertError> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|error| {
        let none_found = CertError::NoPrivateKey {
            path: path.to_path_buf(),
        };
        CertError::from_pem(path, error, none_found)
    })
}

/// A generated certificate and its private key, in both PEM and DER.
#[derive(Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_der: PrivateKeyDer<'static>,
}

impl Issued {
    fn new(cert: &rcgen::Certificate, key: &KeyPair) -> Issued {
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

/// A throw-away certificate authority for tests: issues server and client certificates
/// that a peer trusting [`TestCa::cert_pem`] / [`TestCa::cert_der`] accepts.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA whose certificate's common name is `name`.
    pub fn new(name: &str) -> Result<TestCa, CertError> {
        let failed = generate_error(&[name]);
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(&failed)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(&failed)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(&failed)?;
        Ok(TestCa { issuer })
    }

    /// The CA certificate in PEM: what a peer passes as its CA file.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate in DER: what a peer adds to its root store.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate valid for `names` (DNS names and/or IP addresses).
    pub fn issue_server(&self, names: &[&str]) -> Result<Issued, CertError> {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (for mutual TLS) whose common name is `name`.
    pub fn issue_client(&self, name: &str) -> Result<Issued, CertError> {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Result<Issued, CertError> {
        let failed = generate_error(names);
        let params = leaf_params(names, usage).map_err(&failed)?;
        let key = KeyPair::generate().map_err(&failed)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(&failed)?;
        Ok(Issued::new(&cert, &key))
    }
}

/// A single self-signed server certificate for `names`; a client trusts it by using the
/// certificate itself as its CA file (`cert_pem`).
pub fn self_signed(names: &[&str]) -> Result<Issued, CertError> {
    let failed = generate_error(names);
    let params = leaf_params(names, ExtendedKeyUsagePurpose::ServerAuth).map_err(&failed)?;
    let key = KeyPair::generate().map_err(&failed)?;
    let cert = params.self_signed(&key).map_err(&failed)?;
    Ok(Issued::new(&cert, &key))
}

/// End-entity parameters: `names` as SANs (rcgen turns IP literals into IP SANs), the first
/// name as common name, and one extended key usage so webpki accepts it for that role.
fn leaf_params(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Result<CertificateParams, rcgen::Error> {
    let clean: Vec<String> = names
        .iter()
        .map(|name| {
            name.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        })
        .collect();
    let mut params = match usage {
        // Client names are labels, not host names: no SAN parsing that could reject them.
        ExtendedKeyUsagePurpose::ClientAuth => CertificateParams::new(Vec::<String>::new())?,
        _ => CertificateParams::new(clean.clone())?,
    };
    if let Some(first) = clean.first() {
        params.distinguished_name.push(DnType::CommonName, first);
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    Ok(params)
}

fn generate_error(names: &[&str]) -> impl Fn(rcgen::Error) -> CertError + use<> {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    move |error| CertError::Generate {
        names: names.clone(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificates_load_back_from_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("chatload test CA").expect("ca");
        let server = ca
            .issue_server(&["localhost", "127.0.0.1"])
            .expect("server");
        let client = ca.issue_client("vu-1").expect("client");
        for (stem, issued) in [("server", &server), ("client", &client)] {
            let cert_path = dir.path().join(format!("{stem}.pem"));
            let key_path = dir.path().join(format!("{stem}-key.pem"));
            std::fs::write(&cert_path, &issued.cert_pem).expect("write cert");
            std::fs::write(&key_path, &issued.key_pem).expect("write key");
            let certs = load_certs(&cert_path).expect("certs");
            assert_eq!(certs.len(), 1);
            assert_eq!(certs[0], issued.cert_der);
            let key = load_private_key(&key_path).expect("key");
            assert_eq!(key.secret_der(), issued.key_der.secret_der());
        }
        // A chain file (leaf then CA) keeps its order; the key in a combined file is found.
        let chain = dir.path().join("chain.pem");
        let combined = format!("{}{}{}", server.cert_pem, ca.cert_pem(), server.key_pem);
        std::fs::write(&chain, combined).expect("write chain");
        assert_eq!(
            load_certs(&chain).expect("chain"),
            [server.cert_der.clone(), ca.cert_der()]
        );
        assert!(load_private_key(&chain).is_ok());
    }

    #[test]
    fn ip_names_become_ip_sans() {
        let issued = self_signed(&["localhost", "127.0.0.1", "::1"]).expect("self-signed");
        let der: &[u8] = issued.cert_der.as_ref();
        // An IP SAN is the context tag [7] with the raw address octets; a DNS SAN is [2].
        let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        assert!(contains(&[0x87, 4, 127, 0, 0, 1]), "no IPv4 SAN");
        let mut v6 = vec![0x87, 16];
        v6.extend_from_slice(&[0; 15]);
        v6.push(1);
        assert!(contains(&v6), "no IPv6 SAN");
        assert!(contains(b"\x82\x09localhost"), "no DNS SAN");
        assert!(!contains(b"\x82\x09127.0.0.1"), "the IP became a DNS name");
    }

    #[test]
    fn files_without_the_expected_block_are_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issued = self_signed(&["localhost"]).expect("self-signed");
        let key_only = dir.path().join("key-only.pem");
        std::fs::write(&key_only, &issued.key_pem).expect("write");
        let error = load_certs(&key_only).expect_err("no certificate");
        assert!(
            matches!(error, CertError::NoCertificate { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("key-only.pem"), "{error}");

        let cert_only = dir.path().join("cert-only.pem");
        std::fs::write(&cert_only, &issued.cert_pem).expect("write");
        let error = load_private_key(&cert_only).expect_err("no key");
        assert!(matches!(error, CertError::NoPrivateKey { .. }), "{error:?}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello, this is not PEM\n").expect("write");
        assert!(matches!(
            load_certs(&garbage),
            Err(CertError::NoCertificate { .. })
        ));
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n").expect("write");
        let error = load_certs(&broken).expect_err("broken PEM");
        assert!(matches!(error, CertError::Pem { .. }), "{error:?}");

        let missing = dir.path().join("missing.pem");
        let error = load_certs(&missing).expect_err("missing");
        assert!(matches!(error, CertError::Read { .. }), "{error:?}");
        assert!(error.to_string().contains("missing.pem"), "{error}");
    }
}
