//! The kernel's floor for closed-loop ping-pong: the same loop as
//! `examples/pingpong_minimal.rs` (N connections, `PING x\n` out, one reply line back,
//! repeat until the deadline), but with no async runtime at all — one io_uring ring whose
//! sends and receives for every connection go to the kernel in one `io_uring_enter` per turn.
//!
//! It answers one question for docs/performance.md: how far batching system calls across
//! connections could take a generator below what a tokio client costs per round trip. It
//! does no work of its own beyond taking the time and recording a histogram, so what it
//! costs is what the kernel costs. It is a benchmark yardstick (`bench/suite.py`), not part
//! of chatload, and it runs on Linux only.
//!
//!   cargo run --release --example pingpong-uring -- --addr 127.0.0.1:9200 \
//!       --connections 100 --seconds 6
//!
//! Output: one JSON line with the fields of pingpong_minimal's.

#[cfg(target_os = "linux")]
#[path = "pingpong_result.rs"]
mod pingpong_result;
#[cfg(target_os = "linux")]
use pingpong_result::PingpongResult;

#[cfg(target_os = "linux")]
fn main() {
    match floor::run() {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("pingpong-uring: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("pingpong-uring: io_uring is Linux only");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod floor {
    use std::io;
    use std::net::{SocketAddr, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    use hdrhistogram::Histogram;
    use io_uring::{IoUring, cqueue, opcode, squeue, types};

    use super::PingpongResult;

    const PING: &[u8] = b"PING x\n";
    const BUFFER_BYTES: usize = 256;

    struct Args {
        addr: SocketAddr,
        connections: usize,
        seconds: f64,
    }

    fn parse_args() -> Result<Args, String> {
        let (mut addr, mut connections, mut seconds) = (None, 100, 6.0);
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--addr" => addr = Some(value.parse().map_err(|e| bad(&e))?),
                "--connections" => connections = value.parse().map_err(|e| bad(&e))?,
                "--seconds" => seconds = value.parse().map_err(|e| bad(&e))?,
                other => return Err(format!("unknown flag {other}")),
            }
        }
        let addr = addr.ok_or("--addr HOST:PORT is required (e.g. 127.0.0.1:9200)")?;
        if connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        Ok(Args {
            addr,
            connections,
            seconds,
        })
    }

    /// One connection: its socket, the reply read so far, when its ping went out.
    struct Client {
        stream: TcpStream,
        buffer: Box<[u8; BUFFER_BYTES]>,
        filled: usize,
        sent: Instant,
        round_trips: u64,
    }

    // user_data: the client's index times two, plus one for a receive.
    fn send_entry(client: &Client, index: usize) -> squeue::Entry {
        let fd = types::Fd(client.stream.as_raw_fd());
        opcode::Send::new(fd, PING.as_ptr(), PING.len() as u32)
            .build()
            .user_data((index * 2) as u64)
    }

    fn recv_entry(client: &mut Client, index: usize) -> squeue::Entry {
        let fd = types::Fd(client.stream.as_raw_fd());
        let free = &mut client.buffer[client.filled..];
        opcode::Recv::new(fd, free.as_mut_ptr(), free.len() as u32)
            .build()
            .user_data((index * 2 + 1) as u64)
    }

    /// Queues `entry`, handing what is queued to the kernel first when the queue is full.
    fn push(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every buffer an entry points at (the static PING, a client's boxed
            // buffer) outlives the operation: clients are dropped only after the ring drains.
            if unsafe { ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            ring.submit()?;
        }
    }

    pub fn run() -> Result<String, String> {
        let args = parse_args()?;
        let mut clients = Vec::with_capacity(args.connections);
        for _ in 0..args.connections {
            let stream = TcpStream::connect(args.addr)
                .map_err(|e| format!("cannot connect to {}: {e}", args.addr))?;
            let _ = stream.set_nodelay(true);
            clients.push(Client {
                stream,
                buffer: Box::new([0; BUFFER_BYTES]),
                filled: 0,
                sent: Instant::now(),
                round_trips: 0,
            });
        }
        // Two operations per client at most; the queue need not hold them all at once.
        let entries = (2 * args.connections).next_power_of_two().clamp(8, 4096) as u32;
        let mut ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
            .or_else(|_| IoUring::new(entries))
            .map_err(|e| format!("cannot set up io_uring: {e}"))?;
        let mut latencies =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
        let began = Instant::now();
        let deadline = began + Duration::from_secs_f64(args.seconds);
        for (index, client) in clients.iter_mut().enumerate() {
            client.sent = Instant::now();
            push(&mut ring, &send_entry(client, index)).map_err(|e| e.to_string())?;
            let recv = recv_entry(client, index);
            push(&mut ring, &recv).map_err(|e| e.to_string())?;
        }
        // Operations the kernel has not completed yet: the run ends when none are left.
        let mut in_flight = 2 * clients.len();
        let mut completed: Vec<(u64, i32)> = Vec::with_capacity(entries as usize * 2);
        while in_flight > 0 {
            ring.submit_and_wait(1).map_err(|e| e.to_string())?;
            completed.extend(
                ring.completion()
                    .map(|c: cqueue::Entry| (c.user_data(), c.result())),
            );
            let stopping = Instant::now() >= deadline;
            for (user_data, result) in completed.drain(..) {
                let index = (user_data / 2) as usize;
                let client = &mut clients[index];
                in_flight -= 1;
                if result <= 0 {
                    let what = if user_data % 2 == 0 {
                        "send"
                    } else {
                        "receive"
                    };
                    return Err(format!(
                        "connection {index}: {what} failed: {}",
                        if result == 0 {
                            "closed by the server".to_string()
                        } else {
                            io::Error::from_raw_os_error(-result).to_string()
                        }
                    ));
                }
                if user_data % 2 == 0 {
                    if result as usize != PING.len() {
                        return Err(format!("connection {index}: short send ({result} bytes)"));
                    }
                    continue;
                }
                client.filled += result as usize;
                let whole = client.buffer[..client.filled].contains(&b'\n');
                if !whole {
                    if client.filled == BUFFER_BYTES {
                        client.filled = 0;
                    }
                    in_flight += 1;
                    let recv = recv_entry(client, index);
                    push(&mut ring, &recv).map_err(|e| e.to_string())?;
                    continue;
                }
                latencies.saturating_record(client.sent.elapsed().as_micros() as u64);
                client.round_trips += 1;
                client.filled = 0;
                if stopping {
                    continue;
                }
                client.sent = Instant::now();
                in_flight += 2;
                push(&mut ring, &send_entry(client, index)).map_err(|e| e.to_string())?;
                let recv = recv_entry(client, index);
                push(&mut ring, &recv).map_err(|e| e.to_string())?;
            }
        }
        Ok(PingpongResult {
            connections: args.connections,
            latencies: &latencies,
            seconds: began.elapsed().as_secs_f64(),
            errors: 0,
            fewest: clients.iter().map(|c| c.round_trips).min().unwrap_or(0),
            most: clients.iter().map(|c| c.round_trips).max().unwrap_or(0),
        }
        .line())
    }
}
