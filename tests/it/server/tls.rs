//! The server over TLS and mutual TLS, with a real rustls client.

use std::sync::Arc;

use chatload::certs::{Issued, TestCa};
use chatload::server::{ServerConfig, ServerHandle, ServerTls};
use futures_util::StreamExt;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::{FramedRead, LinesCodec};

use super::{STEP, start};

/// A rustls client configuration trusting `ca`, presenting `identity` when given.
pub fn client_config(
    ca: &CertificateDer<'static>,
    identity: Option<&Issued>,
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("CA certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(issued) => builder
            .with_client_auth_cert(vec![issued.cert_der.clone()], issued.key_der.clone_key())
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    config
}

/// Connects and runs the TLS handshake (from the client's side: with TLS 1.3 the server
/// may still reject the client's certificate after this returns).
pub async fn tls_connect(
    server: &ServerHandle,
    config: rustls::ClientConfig,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = timeout(STEP, TcpStream::connect(server.addr()))
        .await
        .expect("connect in time")?;
    let name = ServerName::try_from(name.to_string()).expect("server name");
    timeout(
        STEP,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
}

/// A text-flavour client over TLS.
struct Lines {
    read: FramedRead<ReadHalf<TlsStream<TcpStream>>, LinesCodec>,
    write: WriteHalf<TlsStream<TcpStream>>,
}

impl Lines {
    fn new(stream: TlsStream<TcpStream>) -> Lines {
        let (read, write) = tokio::io::split(stream);
        Lines {
            read: FramedRead::new(read, LinesCodec::new()),
            write,
        }
    }

    async fn send(&mut self, line: &str) {
        let wire = format!("{line}\n");
        self.write.write_all(wire.as_bytes()).await.expect("sends");
    }

    async fn recv(&mut self) -> String {
        timeout(STEP, self.read.next())
            .await
            .expect("a reply in time")
            .expect("connection still open")
            .expect("a line")
    }
}

fn server_tls(ca: &TestCa) -> ServerTls {
    let issued = ca
        .issue_server(&["localhost", "127.0.0.1"])
        .expect("server cert");
    ServerTls::new(vec![issued.cert_der], issued.key_der)
}

#[tokio::test]
async fn tls_text_chat_reaches_every_member() {
    let ca = TestCa::new("chatload test CA").expect("ca");
    let server = start(ServerConfig {
        tls: Some(server_tls(&ca)),
        ..ServerConfig::default()
    })
    .await;
    let config = client_config(&ca.cert_der(), None, &[]);
    // One client by DNS name, one by IP address: both SAN kinds must verify.
    let mut ann = Lines::new(
        tls_connect(&server, config.clone(), "localhost")
            .await
            .expect("tls"),
    );
    let mut bob = Lines::new(
        tls_connect(&server, config, "127.0.0.1")
            .await
            .expect("tls"),
    );
    for (client, name, members) in [(&mut ann, "ann", 1), (&mut bob, "bob", 2)] {
        client.send(&format!("LOGIN {name}")).await;
        assert_eq!(client.recv().await, format!("OK {name}"));
        client.send("JOIN lobby").await;
        assert_eq!(client.recv().await, format!("JOINED lobby {members}"));
    }
    ann.send("SAY hello over tls").await;
    assert_eq!(ann.recv().await, "MSG lobby ann hello over tls");
    assert_eq!(bob.recv().await, "MSG lobby ann hello over tls");
    bob.send("QUIT").await;
    assert_eq!(bob.recv().await, "BYE");
    let end = timeout(STEP, bob.read.next())
        .await
        .expect("closes in time");
    assert!(end.is_none(), "expected end of stream, got {end:?}");
    server.shutdown().await;
}

/// Whether a PING gets its PONG over this connection (false: closed or failed instead).
async fn ping_answered(stream: std::io::Result<TlsStream<TcpStream>>) -> bool {
    let Ok(mut stream) = stream else {
        return false;
    };
    if stream.write_all(b"PING 1\n").await.is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buffer = [0u8; 64];
    while !reply.ends_with(b"\n") {
        match timeout(STEP, stream.read(&mut buffer))
            .await
            .expect("answer or close in time")
        {
            Ok(0) | Err(_) => return false,
            Ok(n) => reply.extend_from_slice(&buffer[..n]),
        }
    }
    assert_eq!(reply, b"PONG 1\n");
    true
}

#[tokio::test]
async fn mutual_tls_accepts_only_clients_with_a_certificate_from_the_ca() {
    let ca = TestCa::new("clients and server").expect("ca");
    let server = start(ServerConfig {
        tls: Some(server_tls(&ca).with_client_ca(vec![ca.cert_der()])),
        ..ServerConfig::default()
    })
    .await;
    let trusted = ca.issue_client("vu-1").expect("client cert");
    let with_cert = client_config(&ca.cert_der(), Some(&trusted), &[]);
    assert!(ping_answered(tls_connect(&server, with_cert, "localhost").await).await);

    let without = client_config(&ca.cert_der(), None, &[]);
    assert!(!ping_answered(tls_connect(&server, without, "localhost").await).await);

    let stranger = TestCa::new("someone else").expect("other ca");
    let foreign = stranger.issue_client("vu-2").expect("foreign cert");
    let foreign_config = client_config(&ca.cert_der(), Some(&foreign), &[]);
    assert!(!ping_answered(tls_connect(&server, foreign_config, "localhost").await).await);
    server.shutdown().await;
}

#[tokio::test]
async fn self_signed_certificate_is_trusted_through_its_own_pem() {
    let (tls, pem) = chatload::server::self_signed_tls().expect("self-signed");
    let server = start(ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    })
    .await;
    let cert = CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM");
    let config = client_config(&cert, None, &[]);
    assert!(ping_answered(tls_connect(&server, config, "localhost").await).await);
    server.shutdown().await;
}

#[tokio::test]
async fn a_failed_handshake_closes_only_that_connection() {
    let ca = TestCa::new("chatload test CA").expect("ca");
    let server = start(ServerConfig {
        tls: Some(server_tls(&ca)),
        ..ServerConfig::default()
    })
    .await;
    // A plain-text client on the TLS port: its handshake fails and the server closes it.
    let mut plain = TcpStream::connect(server.addr()).await.expect("connects");
    plain.write_all(b"PING 1\n").await.expect("sends");
    let mut rest = Vec::new();
    let read = timeout(STEP, plain.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(read.is_err() || !rest.starts_with(b"PONG"), "{rest:?}");
    // Clients that speak TLS are still served.
    let config = client_config(&ca.cert_der(), None, &[]);
    assert!(ping_answered(tls_connect(&server, config, "localhost").await).await);
    server.shutdown().await;
}
