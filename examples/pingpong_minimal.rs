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
//!   cargo run --release --example pingpong_minimal -- --addr 127.0.0.1:9200 \
//!       --connections 100 --seconds 6

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

struct Args {
    addr: SocketAddr,
    connections: usize,
    seconds: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut addr = None;
    let mut connections = 100;
    let mut seconds = 6.0;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
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
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let addr = addr.ok_or("--addr HOST:PORT is required (e.g. 127.0.0.1:9200)")?;
    Ok(Args {
        addr,
        connections,
        seconds,
    })
}

/// Runs one connection's loop until `stop`; returns its round trips' latencies (µs).
async fn pingpong(
    mut stream: TcpStream,
    start: Arc<Barrier>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut buf = [0u8; 256];
    start.wait().await;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        stream.write_all(b"PING x\n").await?;
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("pingpong_minimal: {e}");
            std::process::exit(2);
        }
    };
    let mut streams = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        match TcpStream::connect(args.addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                streams.push(s);
            }
            Err(e) => {
                eprintln!("pingpong_minimal: cannot connect to {}: {e}", args.addr);
                std::process::exit(1);
            }
        }
    }
    // Everyone starts together once all are connected, so connecting is not measured.
    let start = Arc::new(Barrier::new(args.connections + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(pingpong(s, start.clone(), stop.clone())))
        .collect();
    start.wait().await;
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| {
        eprintln!("pingpong_minimal: cannot create a histogram");
        std::process::exit(1);
    });
    let mut errors = 0u64;
    for task in tasks {
        match task.await {
            Ok(Ok(h)) => {
                let _ = total.add(h);
            }
            _ => errors += 1,
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    println!(
        "{{\"connections\":{},\"round_trips\":{},\"seconds\":{:.3},\"rt_per_s\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"errors\":{}}}",
        args.connections,
        total.len(),
        elapsed,
        total.len() as f64 / elapsed,
        total.value_at_quantile(0.5) as f64 / 1000.0,
        total.value_at_quantile(0.99) as f64 / 1000.0,
        errors
    );
}
