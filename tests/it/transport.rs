//! Integration tests: the same chat flow over every transport (plain TCP, TLS, mutual TLS,
//! WebSocket, WebSocket over TLS) against the reference server on port 0, and the errors a
//! user meets when TLS or the upgrade goes wrong.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chatload::certs::TestCa;
use chatload::engine::{RunOptions, RunOutcome};
use chatload::plan::Plan;
use chatload::server::{self, ServerConfig, ServerTls};

use crate::common::{assert_no_errors, count, counter, errors, run_at, serve, yaml_plan};

/// Certificates for one test: a CA, a server certificate for 127.0.0.1 and a client one.
struct Pki {
    dir: tempfile::TempDir,
    ca: TestCa,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("chatload test CA").expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).expect("write CA");
        let client = ca.issue_client("vu").expect("client cert");
        std::fs::write(dir.path().join("client.pem"), &client.cert_pem).expect("write");
        std::fs::write(dir.path().join("client.key"), &client.key_pem).expect("write");
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_tls(&self) -> ServerTls {
        let issued = self
            .ca
            .issue_server(&["localhost", "127.0.0.1"])
            .expect("server cert");
        ServerTls::new(vec![issued.cert_der], issued.key_der)
    }
}

/// Five vusers in one room: log in (capturing the name), join, say something stamped, ping,
/// and let a handler count the room's messages.
fn chat_plan(tls_yaml: &str, dir: &Path) -> Plan {
    let yaml = format!(
        r#"
config:
  target: embedded
{tls_yaml}
  phases:
    - {{duration: 100ms, arrivalCount: 5}}
  defaults: {{timeout: 10s}}
  handlers:
    - {{on: "^MSG lobby ", name: chat}}
scenarios:
  - name: chatter
    flow:
      - connect
      - send: "LOGIN u{{{{ vu.id }}}}"
        expect: {{match: "^OK (?P<me>\\S+)", name: login, capture: {{me: me}}}}
      - send: "JOIN lobby"
        expect: {{match: "^JOINED lobby", name: join}}
      - think: 700ms
      - send: "SAY {{{{ stamp() }}}} from {{{{ me }}}}"
      - send: "PING {{{{ me }}}}"
        expect: {{match: "^PONG u", name: ping}}
      - think: 700ms
      - disconnect
"#
    );
    yaml_plan(&yaml, &dir.join("chat.yml"))
}

/// Runs `plan` against `target` with the default options.
async fn run_against(plan: Plan, target: &str) -> RunOutcome {
    run_at(plan, target, RunOptions::default()).await
}

/// A plan of one vuser running `flow` (YAML list items, indented six spaces) once, as if read
/// from `name`; `config` adds lines under `config:` (indented two spaces). Its phase lasts a
/// second: the engine drops an arrival it reaches only after the end of its phase, and a
/// loaded machine can start the generator later than a 10 ms phase lasts.
fn one_vuser_plan(name: &str, config: &str, flow: &str) -> Plan {
    let yaml = format!(
        "config:\n  target: embedded\n{config}  phases:\n    - {{duration: 1s, arrivalCount: 1}}\n  defaults: {{timeout: 5s}}\nscenarios:\n  - flow:\n{flow}"
    );
    yaml_plan(&yaml, Path::new(name))
}

/// Runs the chat flow over one transport and checks the counts every transport must give.
async fn chat_over(config: ServerConfig, tls_yaml: &str, pki: &Pki) -> RunOutcome {
    let server = serve(config.clone()).await;
    let target = config.client_address(server.addr());
    let out = run_against(chat_plan(tls_yaml, pki.dir.path()), &target).await;
    assert_eq!(errors(&out), 0, "{target}: {:?}", out.error_samples);
    let url = chatload::plan::Endpoint::parse(&target).expect("a URL");
    assert_eq!(out.target, url.to_string(), "the outcome names the URL");
    assert_eq!(count(&out, "latency.login"), 5, "{target}");
    assert_eq!(count(&out, "latency.ping"), 5, "{target}");
    assert_eq!(count(&out, "connect"), 5, "{target}");
    // Every member gets every stamped SAY, its own included: 5 × 5.
    assert_eq!(count(&out, "delivery"), 25, "{target}");
    assert_eq!(counter(&out, "handled.chat"), 25, "{target}");
    assert_eq!(counter(&out, "messages.sent"), 20, "{target}");
    assert_eq!(counter(&out, "vusers.completed"), 5, "{target}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_runs_the_same_chat_flow_with_the_same_counts() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let tls_yaml = format!("  tls: {{caFile: {:?}}}", ca.display().to_string());
    let mutual_yaml = format!(
        "  tls: {{caFile: {:?}, clientCert: {:?}, clientKey: {:?}}}",
        ca.display().to_string(),
        pki.path("client.pem").display().to_string(),
        pki.path("client.key").display().to_string()
    );

    let plain = chat_over(ServerConfig::default(), "", &pki).await;
    assert!(plain.target.starts_with("tcp://"), "{}", plain.target);
    assert_eq!(count(&plain, "tls"), 0);
    assert_eq!(count(&plain, "handshake"), 0);

    let tls = ServerConfig {
        tls: Some(pki.server_tls()),
        ..ServerConfig::default()
    };
    let out = chat_over(tls.clone(), &tls_yaml, &pki).await;
    assert!(out.target.starts_with("tls://"), "{}", out.target);
    assert_eq!(count(&out, "tls"), 5, "one TLS handshake per connection");

    let mutual = ServerConfig {
        tls: Some(pki.server_tls().with_client_ca(vec![pki.ca.cert_der()])),
        ..ServerConfig::default()
    };
    let out = chat_over(mutual, &mutual_yaml, &pki).await;
    assert_eq!(count(&out, "tls"), 5);

    let ws = ServerConfig {
        websocket: true,
        ..ServerConfig::default()
    };
    let out = chat_over(ws, "", &pki).await;
    assert!(out.target.starts_with("ws://"), "{}", out.target);
    assert_eq!(count(&out, "handshake"), 5, "one upgrade per connection");
    assert_eq!(count(&out, "tls"), 0);

    let wss = ServerConfig {
        websocket: true,
        tls: Some(pki.server_tls()),
        ..ServerConfig::default()
    };
    let out = chat_over(wss, &tls_yaml, &pki).await;
    assert!(out.target.starts_with("wss://"), "{}", out.target);
    assert_eq!(count(&out, "tls"), 5);
    assert_eq!(count(&out, "handshake"), 5);
}

/// One vuser that only connects and pings, against `config`, with `tls_yaml`; returns the
/// outcome.
async fn connect_once(
    config: ServerConfig,
    target_scheme: Option<&str>,
    tls_yaml: &str,
) -> RunOutcome {
    let server = serve(config.clone()).await;
    let target = match target_scheme {
        Some("") => server.addr().to_string(),
        Some(scheme) => format!("{scheme}://{}", server.addr()),
        None => config.client_address(server.addr()),
    };
    let flow = r#"      - connect
      - send: "PING x"
        expect: {match: "^PONG", name: ping}
"#;
    let plan = one_vuser_plan("one.yml", &format!("{tls_yaml}\n"), flow);
    run_against(plan, &target).await
}

fn only_error(out: &RunOutcome, kind: &str) -> String {
    assert_eq!(
        counter(out, &format!("errors.{kind}")),
        1,
        "{:?}",
        out.error_samples
    );
    assert_eq!(errors(out), 1, "{:?}", out.error_samples);
    out.error_samples.first().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verification_failures_name_the_setting_to_change() {
    let pki = Pki::new();
    let tls = ServerConfig {
        tls: Some(pki.server_tls()),
        ..ServerConfig::default()
    };
    let ca = pki.path("ca.pem").display().to_string();

    // The certificate holds localhost and 127.0.0.1, not this name.
    let wrong_name = format!("  tls: {{caFile: {ca:?}, serverName: wrong.example}}");
    let out = connect_once(tls.clone(), None, &wrong_name).await;
    let message = only_error(&out, "tls_verify");
    assert!(message.contains("serverName"), "{message}");

    // Signed by a CA the run does not trust.
    let other = TestCa::new("another CA").expect("CA");
    let other_path = pki.path("other.pem");
    std::fs::write(&other_path, other.cert_pem()).expect("write");
    let unknown = format!("  tls: {{caFile: {:?}}}", other_path.display().to_string());
    let out = connect_once(tls.clone(), None, &unknown).await;
    let message = only_error(&out, "tls_verify");
    assert!(message.contains("caFile"), "{message}");

    // Mutual TLS without a client certificate: the server refuses the handshake.
    let mutual = ServerConfig {
        tls: Some(pki.server_tls().with_client_ca(vec![pki.ca.cert_der()])),
        ..ServerConfig::default()
    };
    let trusted = format!("  tls: {{caFile: {ca:?}}}");
    let out = connect_once(mutual, None, &trusted).await;
    let message = only_error(&out, "tls_handshake");
    assert!(message.contains("clientCert"), "{message}");

    // `config.tls` under a bare host:port target is TLS too.
    let out = connect_once(tls.clone(), Some(""), &trusted).await;
    assert_no_errors(&out);
    assert!(out.target.starts_with("tls://"), "{}", out.target);
    assert_eq!(count(&out, "tls"), 1);

    // A plain client on the TLS port: the failure says to use tls://.
    let out = connect_once(tls, Some("tcp"), "").await;
    assert_eq!(errors(&out), 1, "{:?}", out.error_samples);
    let message = out.error_samples.first().cloned().unwrap_or_default();
    assert!(message.contains("use tls://"), "{message}");

    // A TLS client on a plain port.
    let out = connect_once(ServerConfig::default(), Some("tls"), &trusted).await;
    let message = only_error(&out, "tls_handshake");
    assert!(message.contains("TLS port"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_is_ws_upgrade_with_the_status_and_body() {
    let refusing = ServerConfig {
        websocket: true,
        ws_refuse: Some(403),
        ..ServerConfig::default()
    };
    let out = connect_once(refusing, None, "").await;
    let message = only_error(&out, "ws_upgrade");
    assert!(message.contains("403"), "{message}");
    assert!(message.contains(server::REFUSED_BODY), "{message}");
    assert_eq!(
        count(&out, "handshake"),
        0,
        "a refused upgrade records no handshake"
    );
}

/// A WebSocket server we script in the test: pings the client first, records whether the
/// pong came back, answers `PING x` with `PONG x`, `BIG?` with 100 000 `x`s in one message,
/// and closes with 4001 on `BYE?`.
async fn scripted_ws_server() -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Receiver<bool>,
    tokio::sync::oneshot::Receiver<()>,
    tokio::task::JoinHandle<()>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (pong_tx, pong_rx) = tokio::sync::oneshot::channel();
    let (ping_tx, ping_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
            return;
        };
        let _ = ws
            .send(Message::Ping(bytes::Bytes::from_static(b"hi")))
            .await;
        let mut pong_tx = Some(pong_tx);
        let mut ping_tx = Some(ping_tx);
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Pong(payload) if payload.as_ref() == b"hi" => {
                    if let Some(tx) = pong_tx.take() {
                        let _ = tx.send(true);
                    }
                }
                Message::Ping(_) => {
                    if let Some(tx) = ping_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Message::Text(text) if text.as_str() == "BYE?" => {
                    let frame = CloseFrame {
                        code: CloseCode::from(4001),
                        reason: "done".into(),
                    };
                    let _ = ws.close(Some(frame)).await;
                }
                Message::Text(text) if text.as_str() == "BIG?" => {
                    let _ = ws.send(Message::text("x".repeat(BIG_MESSAGE_BYTES))).await;
                }
                Message::Text(text) => {
                    let reply = text.as_str().replacen("PING", "PONG", 1);
                    let _ = ws.send(Message::text(reply)).await;
                }
                _ => {}
            }
        }
    });
    (addr, pong_rx, ping_rx, task)
}

/// One vuser running `flow` (see [`one_vuser_plan`]) against the scripted WebSocket server at
/// `addr`.
async fn one_vuser_over_ws(addr: std::net::SocketAddr, config: &str, flow: &str) -> RunOutcome {
    let plan = one_vuser_plan("ws.yml", config, flow);
    run_against(plan, &format!("ws://{addr}/")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pings_are_answered_and_close_codes_counted() {
    let (addr, pong_rx, _ping_rx, server) = scripted_ws_server().await;
    let out = one_vuser_over_ws(
        addr,
        "",
        r#"      - connect
      - send: "PING 1"
        expect: {match: "^PONG 1", name: ping}
      - send: "BYE?"
      - think: 2s
"#,
    )
    .await;
    assert_eq!(count(&out, "latency.ping"), 1, "{:?}", out.error_samples);
    assert_eq!(counter(&out, "ws.pings"), 1);
    let ponged = tokio::time::timeout(Duration::from_secs(10), pong_rx)
        .await
        .expect("the server hears back in time");
    assert_eq!(ponged, Ok(true), "the ping was answered with its payload");
    // The close ended a connection the flow still needed (it was thinking on it).
    assert_eq!(counter(&out, "ws.close.4001"), 1);
    let message = only_error(&out, "closed");
    assert!(message.contains("close code 4001: done"), "{message}");
    server.abort();
}

/// The scripted server's answer to `BIG?`: many times the client's read chunk (4 KiB).
const BIG_MESSAGE_BYTES: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_message_many_reads_long_arrives_whole_and_is_matched_once() {
    let (addr, _pong_rx, _ping_rx, server) = scripted_ws_server().await;
    let out = one_vuser_over_ws(
        addr,
        "",
        r#"      - connect
      - send: "BIG?"
        expect: {match: "^x+$", name: big}
      - send: "PING 1"
        expect: {match: "^PONG 1$", name: ping}
"#,
    )
    .await;
    assert_no_errors(&out);
    assert_eq!(count(&out, "latency.big"), 1);
    assert_eq!(count(&out, "latency.ping"), 1);
    // One message of 100 000 bytes and the pong: nothing split into more messages.
    assert_eq!(counter(&out, "messages.received"), 2);
    assert_eq!(
        counter(&out, "bytes.received"),
        (BIG_MESSAGE_BYTES + "PONG 1".len()) as u64
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_interval_sends_client_pings_while_the_vuser_waits() {
    let (addr, _pong_rx, ping_rx, server) = scripted_ws_server().await;
    let out = one_vuser_over_ws(
        addr,
        "  websocket: {pingInterval: 100ms}\n",
        r#"      - connect
      - think: 500ms
      - send: "PING 1"
        expect: {match: "^PONG 1", name: ping}
"#,
    )
    .await;
    assert_no_errors(&out);
    let pinged = tokio::time::timeout(Duration::from_secs(10), ping_rx).await;
    assert!(matches!(pinged, Ok(Ok(()))), "the server saw a client ping");
    server.abort();
}
