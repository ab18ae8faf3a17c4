//! The practical limit for closed-loop ping-pong: a hand-written tokio client with nothing a
//! load tool needs (no plan, no templates, no per-interval metrics). N connections, each sends
//! `PING x\n`, waits for the reply line, and repeats until the deadline; it prints the round
//! trips and its own latency percentiles as one JSON line.
//!
//! It deliberately uses only tokio and hdrhistogram (both from crates.io), a single-threaded
//! runtime (the suite pins it to one core anyway) and one fixed buffer per connection, so what
//! it costs per round trip is close to what the kernel costs. It is a benchmark yardstick
//! (`bench/suite.py`), not part of chatload.
//!
//! `--tls CA.pem` does the same over TLS (tokio-rustls, the server verified against that CA);
//! `--ws` speaks WebSocket instead (tokio-tungstenite: one text message `PING x`, one reply
//! message), over TLS too when both are given. Handshakes happen before the clock starts.
//!
//!   cargo run --release --example pingpong_minimal -- --addr 127.0.0.1:9200 \
//!       --connections 100 --seconds 6 [--tls CA.pem] [--ws]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

#[path = "../bench/pingpong_result.rs"]
mod pingpong_result;
use pingpong_result::PingpongResult;

struct Args {
    addr: SocketAddr,
    connections: usize,
    seconds: f64,
    /// CA file: speak TLS and verify the server against it.
    tls: Option<String>,
    ws: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut connections = 100;
    let mut seconds = 6.0;
    let mut tls = None;
    let mut ws = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--ws" {
            ws = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => addr = Some(value.parse().map_err(|e| format!("--addr {value}: {e}"))?),
            "--connections" => {
                connections = value
                    .parse()
                    .map_err(|e| format!("--connections {value}: {e}"))?
            }
            "--seconds" => {
                seconds = value
                    .parse()
                    .map_err(|e| format!("--seconds {value}: {e}"))?
            }
            "--tls" => tls = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let addr = addr.ok_or("--addr HOST:PORT is required (e.g. 127.0.0.1:9200)")?;
    Ok(Args {
        addr,
        connections,
        seconds,
        tls,
        ws,
    })
}

fn new_histogram() -> std::io::Result<Histogram<u64>> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Runs one connection's loop until `stop`; returns its round trips' latencies (µs).
async fn pingpong<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    start: Arc<Barrier>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Histogram<u64>> {
    let mut hist = new_histogram()?;
    let mut buf = [0u8; 256];
    start.wait().await;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        stream.write_all(b"PING x\n").await?;
        // TLS: push the record out (a no-op for plain TCP).
        stream.flush().await?;
        // One request is in flight at a time, so the reply is the only thing to read.
        let mut filled = 0;
        loop {
            let n = stream.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
            if buf[..filled].contains(&b'\n') {
                break;
            }
            if filled == buf.len() {
                filled = 0;
            }
        }
        hist.saturating_record(sent.elapsed().as_micros() as u64);
    }
    Ok(hist)
}

/// The WebSocket flavour of `pingpong`: one text message out, one message back.
async fn pingpong_ws<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    start: Arc<Barrier>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Histogram<u64>> {
    let mut hist = new_histogram()?;
    start.wait().await;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        ws.send(Message::text("PING x"))
            .await
            .map_err(std::io::Error::other)?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => break,
                Some(Ok(_)) => continue, // ping/pong frames
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            }
        }
        hist.saturating_record(sent.elapsed().as_micros() as u64);
    }
    let _ = ws.close(None).await;
    Ok(hist)
}

fn tls_connector(ca_file: &str) -> Result<TlsConnector, String> {
    let certs = CertificateDer::pem_file_iter(ca_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls {ca_file}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("--tls {ca_file}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

type Task = tokio::task::JoinHandle<std::io::Result<Histogram<u64>>>;

/// Connects one client (TCP, then TLS and/or the WebSocket upgrade) and spawns its loop.
async fn connect(
    args: &Args,
    tls: Option<&TlsConnector>,
    start: Arc<Barrier>,
    stop: Arc<AtomicBool>,
) -> Result<Task, String> {
    let tcp = TcpStream::connect(args.addr)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.addr))?;
    let _ = tcp.set_nodelay(true);
    let url = format!(
        "{}://{}/",
        if tls.is_some() { "wss" } else { "ws" },
        args.addr
    );
    Ok(match tls {
        Some(tls) => {
            let name = ServerName::from(args.addr.ip());
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {}: {e}", args.addr))?;
            if args.ws {
                let (ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
                    .await
                    .map_err(|e| format!("WebSocket upgrade at {url}: {e}"))?;
                tokio::spawn(pingpong_ws(ws, start, stop))
            } else {
                tokio::spawn(pingpong(stream, start, stop))
            }
        }
        None if args.ws => {
            let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
                .await
                .map_err(|e| format!("WebSocket upgrade at {url}: {e}"))?;
            tokio::spawn(pingpong_ws(ws, start, stop))
        }
        None => tokio::spawn(pingpong(tcp, start, stop)),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("pingpong_minimal: {e}");
            std::process::exit(2);
        }
    };
    let tls = match args.tls.as_deref().map(tls_connector).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("pingpong_minimal: {e}");
            std::process::exit(2);
        }
    };
    // Everyone starts together once all are connected, so connecting is not measured.
    let start = Arc::new(Barrier::new(args.connections + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        match connect(&args, tls.as_ref(), start.clone(), stop.clone()).await {
            Ok(task) => tasks.push(task),
            Err(e) => {
                eprintln!("pingpong_minimal: {e}");
                std::process::exit(1);
            }
        }
    }
    start.wait().await;
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = new_histogram().unwrap_or_else(|_| {
        eprintln!("pingpong_minimal: cannot create a histogram");
        std::process::exit(1);
    });
    let mut errors = 0u64;
    // Round trips per connection, for the fairness spread (max ÷ min).
    let (mut fewest, mut most) = (u64::MAX, 0u64);
    for task in tasks {
        match task.await {
            Ok(Ok(h)) => {
                fewest = fewest.min(h.len());
                most = most.max(h.len());
                let _ = total.add(h);
            }
            _ => errors += 1,
        }
    }
    let result = PingpongResult {
        connections: args.connections,
        latencies: &total,
        seconds: began.elapsed().as_secs_f64(),
        errors,
        fewest: if fewest == u64::MAX { 0 } else { fewest },
        most,
    };
    println!("{}", result.line());
}
