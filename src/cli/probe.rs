//! `chatload probe`: the connectivity check users run first. Connects, sends a few test
//! messages, prints each reply with its round-trip time, and explains what went wrong when
//! nothing useful comes back.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use super::Exit;
use crate::engine::probe::ProbeMessages;
use crate::protocol::{CodecConfig, Frame, FrameCodec};

/// What to send and how to frame it.
struct Probe {
    codec: FrameCodec,
    /// `config.tls` / `config.websocket` of the plan, for tls://, ws:// and wss:// targets.
    tls: Option<crate::plan::TlsSettings>,
    websocket: crate::plan::WebSocketSettings,
    /// Describes the framing in messages (`lines`, `lengthPrefixed`...).
    framing_label: String,
    /// The test message for probe number `n` (1-based).
    message: Box<dyn FnMut(u32) -> anyhow::Result<Frame>>,
    /// Whether a decoded reply is one: `Err` says why not. Bytes that merely decode with the
    /// framing (any garbage with a newline does, for lines) do not make a reply.
    accepts: Accepts,
}

/// Decides whether a decoded frame is an answer; `Err` says why not.
type Accepts = Box<dyn Fn(&Frame) -> Result<(), String>>;

/// Line framing carries text: a reply that is not printable UTF-8 is noise, not an answer.
fn printable_text(frame: &Frame) -> Result<(), String> {
    match frame.body_str() {
        Some(text) if !text.chars().any(|c| c.is_control() && c != '\t') => Ok(()),
        _ => Err("it is not printable text".to_owned()),
    }
}

pub fn execute(args: super::ProbeArgs) -> anyhow::Result<Exit> {
    let timeout = super::parse_duration(&args.timeout)
        .with_context(|| format!("--timeout {:?}", args.timeout))?;
    let probe = match &args.plan {
        None => Probe {
            codec: FrameCodec::new(CodecConfig::lines())?,
            tls: None,
            websocket: Default::default(),
            framing_label: "lines".to_string(),
            message: Box::new(|n| Ok(Frame::text(format!("PING probe-{n}")))),
            // The reference protocol's answer to `PING x`.
            accepts: Box::new(|reply| {
                printable_text(reply)?;
                match reply.body_str() {
                    Some(text) if text.starts_with("PONG") => Ok(()),
                    _ => Err("expected a `PONG` reply to `PING`".to_owned()),
                }
            }),
        },
        Some(plan) => plan_probe(plan, args.message.as_deref())?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(run(&args.address, probe, args.count, timeout)))
}

/// The plan's framing and one of its messages, rendered as a vuser would.
fn plan_probe(path: &std::path::Path, message: Option<&str>) -> anyhow::Result<Probe> {
    let plan = match crate::plan::load(path) {
        Ok(plan) => std::sync::Arc::new(plan),
        Err(problems) => {
            super::check::report_problems(&problems);
            anyhow::bail!("{} is not a valid plan", path.display());
        }
    };
    let framing_label = framing_label(&plan.protocol.framing);
    let plan_framing = plan.protocol.framing.clone();
    let (tls, websocket) = (plan.tls.clone(), plan.websocket.clone());
    let messages = ProbeMessages::new(plan, message)?;
    println!("probe: sending {} from {}", messages.label, path.display());
    let codec = messages.codec()?;
    // Lines carry text; a delimiter may separate binary messages.
    let text = matches!(plan_framing, crate::protocol::Framing::Lines);
    let expect = messages.expect.clone();
    let accepts: Accepts = Box::new(move |reply| {
        if text {
            printable_text(reply)?;
        }
        match &expect {
            Some(matcher) if !matcher.matches(reply) => {
                Err(format!("it does not match the step's expect ({matcher})"))
            }
            _ => Ok(()),
        }
    });
    let mut messages = messages;
    Ok(Probe {
        codec,
        tls,
        websocket,
        framing_label,
        message: Box::new(move |n| Ok(messages.frame(n)?)),
        accepts,
    })
}

fn framing_label(framing: &crate::protocol::Framing) -> String {
    match framing {
        crate::protocol::Framing::Lines => "lines".to_owned(),
        crate::protocol::Framing::Delimiter(_) => "delimiter".to_owned(),
        crate::protocol::Framing::LengthPrefixed { .. } => "lengthPrefixed".to_owned(),
    }
}

async fn run(address: &str, probe: Probe, count: u32, timeout: Duration) -> Exit {
    let endpoint = match crate::plan::Endpoint::parse(address) {
        Ok(endpoint) => endpoint,
        Err(err) => {
            println!("probe {address}: {err}");
            return Exit::Error;
        }
    };
    if endpoint.scheme == crate::plan::Scheme::Tcp {
        // Plain TCP keeps the byte-level diagnosis (what arrived when nothing decodes).
        return run_tcp(&endpoint.authority(), probe, count, timeout).await;
    }
    run_transport(endpoint, probe, count, timeout).await
}

/// TLS and WebSocket targets: through the same transport the vusers use, timing each stage.
async fn run_transport(
    endpoint: crate::plan::Endpoint,
    mut probe: Probe,
    count: u32,
    timeout: Duration,
) -> Exit {
    use crate::transport::{Connector, Incoming};
    let url = endpoint.to_string();
    let connector = match Connector::new(
        endpoint,
        probe.tls.as_ref(),
        &probe.websocket,
        probe.codec.clone(),
        Vec::new(),
    )
    .await
    {
        Ok(connector) => connector,
        Err(err) => {
            println!("probe {url}: {err}");
            return Exit::Error;
        }
    };
    let (mut conn, timings) = match connector.connect(0, timeout, &[]).await {
        Ok(done) => done,
        Err(err) => {
            println!("probe {url}: {}: {}", err.kind, err.detail);
            return Exit::Error;
        }
    };
    let mut stages = vec![format!("connected in {}", millis(timings.tcp))];
    stages.extend(timings.tls.map(|d| format!("TLS handshake {}", millis(d))));
    stages.extend(
        timings
            .upgrade
            .map(|d| format!("WebSocket upgrade {}", millis(d))),
    );
    println!(
        "probe {url}: {} (framing: {})",
        stages.join(", "),
        probe.framing_label
    );
    let (rtts, failure) = exchange_all(
        &mut probe.message,
        &probe.accepts,
        count,
        async |n, frame: &Frame| {
            let sent = Instant::now();
            conn.send(frame.type_id, &frame.body, frame.type_id.is_some())
                .await
                .map_err(|err| format!("send failed: {err}"))?;
            loop {
                match tokio::time::timeout(timeout, conn.recv()).await {
                    Err(_) => {
                        return Err(format!(
                            "timeout: no reply to message {n} within {timeout:?}"
                        ));
                    }
                    Ok(Ok(Incoming::Frame(reply))) => return Ok((reply, sent)),
                    Ok(Ok(Incoming::Ping)) => continue,
                    Ok(Ok(Incoming::Close { code, reason })) => {
                        return Err(format!(
                            "the server closed the WebSocket (code {code:?}) {reason}"
                        ));
                    }
                    Ok(Ok(Incoming::End)) => return Err("connection closed by peer".to_owned()),
                    Ok(Err(err)) => return Err(format!("receive failed: {err}")),
                }
            }
        },
    )
    .await;
    conn.close().await;
    summarize(&rtts, count, failure)
}

async fn run_tcp(address: &str, mut probe: Probe, count: u32, timeout: Duration) -> Exit {
    let started = Instant::now();
    let connected = tokio::time::timeout(timeout, TcpStream::connect(address)).await;
    let mut socket = match connected {
        Ok(Ok(socket)) => socket,
        Ok(Err(err)) => {
            println!("probe {address}: {}", connect_diagnosis(address, &err));
            return Exit::Error;
        }
        Err(_) => {
            println!(
                "probe {address}: connect timeout: no answer within {timeout:?} \
                 (a firewall dropping packets, or the wrong host?)"
            );
            return Exit::Error;
        }
    };
    let _ = socket.set_nodelay(true);
    println!(
        "probe {address}: connected in {} (framing: {})",
        millis(started.elapsed()),
        probe.framing_label
    );
    let mut codec = probe.codec;
    let framing_label = probe.framing_label;
    let mut buffer = BytesMut::with_capacity(4096);
    let mut bytes_received = 0usize;
    let (rtts, failure) = exchange_all(
        &mut probe.message,
        &probe.accepts,
        count,
        async |n, frame: &Frame| {
            let mut wire = BytesMut::new();
            codec
                .encode_parts(frame.type_id, &frame.body, &mut wire)
                .map_err(|err| format!("cannot encode test message {n}: {err}"))?;
            let sent = Instant::now();
            socket
                .write_all(&wire)
                .await
                .map_err(|err| format!("send failed: {}", io_diagnosis(&err)))?;
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                match codec.decode(&mut buffer) {
                    Ok(Some(reply)) => return Ok((reply, sent)),
                    Ok(None) => {}
                    Err(err) => return Err(undecodable(&framing_label, &err, &buffer)),
                }
                match tokio::time::timeout_at(deadline, socket.read_buf(&mut buffer)).await {
                    Ok(Ok(0)) => {
                        // Every earlier message got its reply: the exchange stops at the first
                        // that does not.
                        let replies = n - 1;
                        return Err(format!(
                            "connection closed by peer after {replies} repl{} \
                             ({bytes_received} bytes received)",
                            if replies == 1 { "y" } else { "ies" }
                        ));
                    }
                    Ok(Ok(read)) => bytes_received += read,
                    Ok(Err(err)) => {
                        return Err(format!("receive failed: {}", io_diagnosis(&err)));
                    }
                    Err(_) if buffer.is_empty() => {
                        return Err(format!(
                            "timeout: no reply to message {n} within {timeout:?}"
                        ));
                    }
                    Err(_) => {
                        return Err(format!(
                            "timeout: {} bytes arrived but nothing that decodes as \
                             {framing_label} frames (first bytes: {}); is the framing right?",
                            buffer.len(),
                            hex_preview(&buffer)
                        ));
                    }
                }
            }
        },
    )
    .await;
    summarize(&rtts, count, failure)
}

/// Sends test messages 1..=`count` one at a time through `exchange`, which sends one and
/// returns its reply with the time it was sent; prints and judges each reply. Stops at the
/// first failure: the round trips so far, and why it stopped.
async fn exchange_all(
    message: &mut Box<dyn FnMut(u32) -> anyhow::Result<Frame>>,
    accepts: &Accepts,
    count: u32,
    mut exchange: impl AsyncFnMut(u32, &Frame) -> Result<(Frame, Instant), String>,
) -> (Vec<Duration>, Option<String>) {
    let mut rtts = Vec::new();
    for n in 1..=count {
        let frame = match message(n) {
            Ok(frame) => frame,
            Err(err) => {
                return (
                    rtts,
                    Some(format!("cannot build test message {n}: {err:#}")),
                );
            }
        };
        let judged = exchange(n, &frame)
            .await
            .and_then(|(reply, sent)| judge_reply(accepts, n, &frame, &reply, sent));
        match judged {
            Ok(rtt) => rtts.push(rtt),
            Err(reason) => return (rtts, Some(reason)),
        }
    }
    (rtts, None)
}

/// Prints probe `n`'s line and returns its round trip, or says why the reply is not an
/// answer to the probe.
fn judge_reply(
    accepts: &Accepts,
    n: u32,
    frame: &Frame,
    reply: &Frame,
    sent: Instant,
) -> Result<Duration, String> {
    let rtt = print_reply(n, frame, reply, sent);
    accepts(reply)
        .map(|()| rtt)
        .map_err(|why| format!("reply {n} is not an answer to the probe: {why}"))
}

/// One probe line: what was sent, what came back, the round trip; returns the round trip.
fn print_reply(n: u32, frame: &Frame, reply: &Frame, sent: Instant) -> Duration {
    let rtt = sent.elapsed();
    println!(
        "  {n:>3}  {}  ->  {}  {}",
        show(frame),
        show(reply),
        millis(rtt)
    );
    rtt
}

fn summarize(rtts: &[Duration], count: u32, failure: Option<String>) -> Exit {
    if let (Some(min), Some(max)) = (rtts.iter().min(), rtts.iter().max()) {
        let mean = rtts.iter().sum::<Duration>() / rtts.len() as u32;
        println!(
            "{}/{count} replies; round trip min {} / mean {} / max {}",
            rtts.len(),
            millis(*min),
            millis(mean),
            millis(*max)
        );
    }
    match failure {
        None if rtts.len() as u32 == count => Exit::Success,
        None => Exit::Error,
        Some(reason) => {
            println!("FAILED: {reason}");
            Exit::Error
        }
    }
}

fn connect_diagnosis(address: &str, err: &std::io::Error) -> String {
    match err.kind() {
        ErrorKind::ConnectionRefused => format!(
            "connection refused: nothing listens on {address} (is the server running, and on this port?)"
        ),
        ErrorKind::InvalidInput | ErrorKind::NotFound => {
            format!("cannot resolve {address:?}: expected HOST:PORT ({err})")
        }
        _ if err.to_string().contains("resolve") || err.to_string().contains("lookup") => {
            format!("cannot resolve {address:?}: {err}")
        }
        _ => format!("cannot connect: {}", io_diagnosis(err)),
    }
}

fn io_diagnosis(err: &std::io::Error) -> String {
    match err.kind() {
        ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        ErrorKind::BrokenPipe => "connection closed by peer".to_string(),
        _ => err.to_string(),
    }
}

fn undecodable(framing: &str, err: &crate::protocol::ProtocolError, buffer: &[u8]) -> String {
    format!(
        "nothing that decodes with this framing ({framing}): {err}; first bytes: {}",
        hex_preview(buffer)
    )
}

fn hex_preview(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 16 { " ..." } else { "" };
    format!("{}{more}", shown.join(" "))
}

/// A frame for the terminal: text when printable, hex otherwise, never too long.
fn show(frame: &Frame) -> String {
    let body = match frame.body_str() {
        Some(text) if !text.chars().any(char::is_control) => {
            let cut: String = text.chars().take(120).collect();
            let more = if cut.len() < text.len() { "..." } else { "" };
            format!("{cut:?}{more}")
        }
        _ => format!("[{} bytes: {}]", frame.body.len(), hex_preview(&frame.body)),
    };
    match frame.type_id {
        Some(type_id) => format!("type {type_id} {body}"),
        None => body,
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}
