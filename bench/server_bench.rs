//! Load benchmark for the reference chat server: connects N clients over loopback, spreads
//! them over rooms, has every client `SAY` at a fixed rate, and measures broadcast deliveries
//! per second and sender→receiver latency. Bounded in time.
//!
//! Run through `bench/server-bench.sh` (which starts `chatload serve` in its own process), or
//! directly: `cargo run --release --example server-bench -- --addr 127.0.0.1:9200`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::codec::{Encoder, FramedRead};

use chatload::protocol::{CodecConfig, FrameCodec};

#[derive(Debug, Parser)]
struct Args {
    /// Server address (start it with `chatload serve`); without it the server runs in-process.
    #[arg(long)]
    addr: Option<String>,
    #[arg(long, default_value_t = 2000)]
    clients: usize,
    /// Clients are spread evenly over this many rooms.
    #[arg(long, default_value_t = 20)]
    rooms: usize,
    /// Each client says something this often.
    #[arg(long, default_value_t = 1000)]
    say_every_ms: u64,
    /// Measured time, after all clients are connected and one second of warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Report this process's resident memory at the end of the measurement (Linux).
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    delivered: AtomicU64,
    measuring: AtomicBool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let _embedded;
    let addr = match &args.addr {
        Some(addr) => addr.clone(),
        None => {
            let server = chatload::server::spawn(Default::default()).await?;
            let addr = server.addr().to_string();
            _embedded = server;
            addr
        }
    };
    let epoch = Instant::now();
    let totals = Arc::new(Totals::default());
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let connecting = Arc::new(Semaphore::new(256));
    let connect_started = Instant::now();
    let mut ready = Vec::with_capacity(args.clients);
    for id in 0..args.clients {
        let (addr, totals, latency, connecting) = (
            addr.clone(),
            totals.clone(),
            latency.clone(),
            connecting.clone(),
        );
        let room = id % args.rooms.max(1);
        let every = Duration::from_millis(args.say_every_ms);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        tokio::spawn(async move {
            let permit = connecting.acquire_owned().await;
            let client = Client {
                id,
                room,
                every,
                epoch,
                totals,
                latency,
            };
            client.run(&addr, permit.ok(), ready_tx).await;
        });
    }
    let mut connected = 0;
    for rx in ready {
        if rx.await.unwrap_or(false) {
            connected += 1;
        }
    }
    let connect_time = connect_started.elapsed();
    println!(
        "connected and joined: {connected}/{} clients in {:.2} s ({} rooms, ~{} per room)",
        args.clients,
        connect_time.as_secs_f64(),
        args.rooms,
        args.clients / args.rooms.max(1)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    latency.lock().await.reset();
    let (sent0, delivered0) = (
        totals.sent.load(Ordering::Relaxed),
        totals.delivered.load(Ordering::Relaxed),
    );
    totals.measuring.store(true, Ordering::Relaxed);
    let measured = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    totals.measuring.store(false, Ordering::Relaxed);
    let elapsed = measured.elapsed().as_secs_f64();
    let sent = totals.sent.load(Ordering::Relaxed) - sent0;
    let delivered = totals.delivered.load(Ordering::Relaxed) - delivered0;
    let expected = sent as f64 * (args.clients as f64 / args.rooms.max(1) as f64);
    let hist = latency.lock().await;
    println!(
        "over {elapsed:.1} s: {:.0} SAY/s sent, {:.0} MSG deliveries/s received ({:.1}% of the fan-out)",
        sent as f64 / elapsed,
        delivered as f64 / elapsed,
        100.0 * delivered as f64 / expected.max(1.0)
    );
    println!(
        "delivery latency (sampled): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        hist.len()
    );
    if let Some(pid) = args.server_pid {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(rss) = status.lines().find(|line| line.starts_with("VmRSS:")) {
            println!(
                "server memory with {connected} clients connected: {}",
                rss.trim_start_matches("VmRSS:").trim()
            );
        }
    }
    Ok(())
}

struct Client {
    id: usize,
    room: usize,
    every: Duration,
    epoch: Instant,
    totals: Arc<Totals>,
    latency: Arc<Mutex<Histogram<u64>>>,
}

impl Client {
    async fn run(
        self,
        addr: &str,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        ready: tokio::sync::oneshot::Sender<bool>,
    ) {
        let Ok(socket) = TcpStream::connect(addr).await else {
            let _ = ready.send(false);
            return;
        };
        let _ = socket.set_nodelay(true);
        let Ok(codec) = FrameCodec::new(CodecConfig::lines()) else {
            return;
        };
        let (read, mut write) = socket.into_split();
        let mut frames = FramedRead::new(read, codec.clone());
        let hello = format!("LOGIN u{}\nJOIN room{}\n", self.id, self.room);
        if write.write_all(hello.as_bytes()).await.is_err() {
            let _ = ready.send(false);
            return;
        }
        // OK, then JOINED.
        for _ in 0..2 {
            if !matches!(frames.next().await, Some(Ok(_))) {
                let _ = ready.send(false);
                return;
            }
        }
        drop(permit);
        let _ = ready.send(true);
        let (every, epoch, totals) = (self.every, self.epoch, self.totals.clone());
        let mut encoder = codec;
        tokio::spawn(async move {
            // Spread the first sends so clients do not all speak at the same instant.
            let offset = every.mul_f64(rand::random::<f64>());
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
            let mut wire = BytesMut::new();
            loop {
                ticks.tick().await;
                let body = format!("SAY {}", epoch.elapsed().as_micros());
                wire.clear();
                if encoder.encode(body.as_bytes(), &mut wire).is_err()
                    || write.write_all(&wire).await.is_err()
                {
                    return;
                }
                totals.sent.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Only some receivers sample latency, so the shared histogram is not a hot lock.
        let samples = self.id.is_multiple_of(50);
        while let Some(Ok(frame)) = frames.next().await {
            self.totals.delivered.fetch_add(1, Ordering::Relaxed);
            if samples && self.totals.measuring.load(Ordering::Relaxed) {
                let sent_us = frame
                    .body_str()
                    .and_then(|text| text.rsplit(' ').next())
                    .and_then(|stamp| stamp.parse::<u128>().ok());
                if let Some(sent_us) = sent_us {
                    let now_us = self.epoch.elapsed().as_micros();
                    let _ = self
                        .latency
                        .lock()
                        .await
                        .record(now_us.saturating_sub(sent_us).max(1) as u64);
                }
            }
        }
    }
}
