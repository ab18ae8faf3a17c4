//! The live `/metrics` endpoint during a real run against the reference server: every scrape
//! parses, counters and histograms only grow, buckets add up to `_count`, and the last
//! rendering agrees with the run's own result.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chatload::engine::{self, RunOptions};
use chatload::export::{self, MetricsExporter};
use chatload::plan::{self, Format};
use chatload::server::{self, ServerConfig};
use openmetrics_parser::PrometheusValue;
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::prometheus::parse_prometheus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const PLAN: &str = r#"
config:
  target: placeholder:1
  phases:
    - {name: warm, duration: 1s, vusers: 4}
    - {name: hold, duration: 1s, vusers: 8}
scenarios:
  - name: pinger
    flow:
      - connect
      - send: "LOGIN p{{ vu.id }}"
        expect: "^OK "
      - loop:
          - send: "PING {{ loop.index }}"
            expect: {match: "^PONG ", name: ping}
          - think: 20ms
"#;

/// `GET path` over HTTP/1.0; returns the content type and the body.
async fn get(addr: std::net::SocketAddr, path: &str, accept: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\nAccept: {accept}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("reads a response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    (content_type, body.to_owned())
}

/// Series (name and labels as written) → value, for every cumulative sample.
fn cumulative(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            ["_total{", "_bucket{", "_count{", "_sum{"]
                .iter()
                .any(|s| l.contains(s))
        })
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sum_counter(text: &str, family: &str) -> f64 {
    let parsed = parse_prometheus(text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    parsed.families[family]
        .iter_samples()
        .map(|s| match &s.value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            other => panic!("{family} is not a counter: {other:?}"),
        })
        .sum()
}

/// Checks one scrape on its own: it parses and every histogram's buckets end at `_count`.
fn check_scrape(text: &str) {
    let parsed = parse_prometheus(text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    for family in parsed.families.values() {
        for sample in family.iter_samples() {
            if let PrometheusValue::Histogram(h) = &sample.value {
                let counts: Vec<f64> = h.buckets.iter().map(|b| b.count.as_f64()).collect();
                assert!(
                    counts.windows(2).all(|w| w[0] <= w[1]),
                    "buckets not cumulative"
                );
                assert_eq!(counts.last().copied(), h.count.map(|c| c as f64));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_during_a_run_parse_only_grow_and_end_at_the_result() {
    let server = server::spawn(ServerConfig::default())
        .await
        .expect("server");
    let options = plan::LoadOptions {
        variables: Vec::new(),
        environment: None,
        target: Some(server.addr().to_string()),
    };
    let plan = plan::load_str_with(PLAN, Path::new("live.yml"), Format::Yaml, &options)
        .unwrap_or_else(|p| panic!("{p:?}"));
    let exporter = MetricsExporter::start(None, vec!["warm".into(), "hold".into()]);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(export::http::serve(
        listener,
        Arc::new(exporter.endpoint()),
        shutdown.clone(),
    ));
    let mut published = exporter.subscribe();
    let target = server.addr().to_string();
    let options = RunOptions {
        interval: Some(Duration::from_millis(250)),
        on_progress: Some(exporter.progress_fn()),
        ..RunOptions::default()
    };
    let run = tokio::spawn(async move { engine::run(Arc::new(plan), &target, options).await });
    let run = tokio::time::timeout(Duration::from_secs(60), async {
        let mut scrapes = Vec::new();
        let mut run = run;
        loop {
            tokio::select! {
                done = &mut run => break (done, scrapes),
                changed = published.changed() => {
                    if changed.is_ok() {
                        scrapes.push(get(addr, "/metrics", "*/*").await.1);
                    }
                }
            }
        }
    })
    .await
    .expect("the run ends in time");
    let (outcome, mut scrapes) = run;
    let outcome = outcome.expect("task").expect("run");
    let sent = outcome.metrics.aggregate.counters["messages.sent"] as f64;
    let pings = outcome.metrics.aggregate.summaries["latency.ping"].count as f64;

    // The last interval is folded after the run returns: wait (bounded) for it to show.
    let last = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (content_type, text) = get(addr, "/metrics", "text/plain").await;
            assert!(
                content_type.starts_with("text/plain; version=0.0.4"),
                "{content_type}"
            );
            if sum_counter(&text, "chatload_messages_sent_total") >= sent {
                break text;
            }
            let _ = published.changed().await;
        }
    })
    .await
    .expect("the last interval is published");
    scrapes.push(last.clone());
    assert!(scrapes.len() >= 3, "{} scrapes", scrapes.len());

    for text in &scrapes {
        check_scrape(text);
    }
    for pair in scrapes.windows(2) {
        let (before, after) = (cumulative(&pair[0]), cumulative(&pair[1]));
        for (series, old) in &before {
            let new = after.get(series).copied();
            assert!(
                new.is_some_and(|n| n >= *old),
                "{series}: {old} then {new:?}"
            );
        }
    }
    assert_eq!(sum_counter(&last, "chatload_messages_sent_total"), sent);
    let parsed = parse_prometheus(&last).expect("parses");
    let ping_count: f64 = parsed.families["chatload_latency_seconds"]
        .iter_samples()
        .filter(|s| {
            s.get_labelset()
                .ok()
                .and_then(|l| l.get_label_value("name").map(|n| n == "ping"))
                .unwrap_or(false)
        })
        .map(|s| match &s.value {
            PrometheusValue::Histogram(h) => h.count.unwrap_or(0) as f64,
            _ => 0.0,
        })
        .sum();
    assert_eq!(ping_count, pings);
    assert!(last.contains(&format!("run_id=\"{}\"", outcome.run_id)));

    let (content_type, open) = get(addr, "/metrics", "application/openmetrics-text").await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    parse_openmetrics(&open).unwrap_or_else(|e| panic!("{e:?}\n{open}"));

    shutdown.cancel();
    serving.await.expect("task").expect("serves");
}

#[test]
fn config_metrics_listen_is_checked_with_the_plan() {
    let text = "config:\n  target: 127.0.0.1:9\n  metrics: {listen: nowhere}\n  phases: [{duration: 1s, vusers: 1}]\nscenarios:\n  - flow: [connect]\n";
    let problems =
        plan::load_str(text, Path::new("m.yml"), Format::Yaml).expect_err("a bad listen address");
    let shown = format!("{problems:?}");
    assert!(
        shown.contains("metrics") && shown.contains("listen"),
        "{shown}"
    );
    assert!(shown.contains("give a port"), "{shown}");
    let good = text.replace("nowhere", "9464");
    let plan = plan::load_str(&good, Path::new("m.yml"), Format::Yaml).expect("valid");
    assert_eq!(plan.metrics.listen.as_deref(), Some("127.0.0.1:9464"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_exposes_its_own_counters() {
    let stats = Arc::new(server::ServerStats::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let server_addr = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    let serving_chat = tokio::spawn(server::run_with_stats(
        listener,
        ServerConfig::default(),
        Arc::clone(&stats),
        stop.clone().cancelled_owned(),
    ));
    let metrics_listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let metrics_addr = metrics_listener.local_addr().expect("address");
    let published =
        export::publish_server(Arc::clone(&stats), Duration::from_millis(50), stop.clone());
    let serving_metrics = tokio::spawn(export::http::serve(
        metrics_listener,
        Arc::new(export::MetricsEndpoint::new(published)),
        stop.clone(),
    ));

    let mut client = TcpStream::connect(server_addr).await.expect("connects");
    client
        .write_all(b"LOGIN ann\nPING 1\nNONSENSE\n")
        .await
        .expect("writes");
    let mut replies = String::new();
    while replies.lines().count() < 3 {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf))
            .await
            .expect("replies in time")
            .expect("reads");
        assert!(n > 0, "closed early: {replies}");
        replies.push_str(&String::from_utf8_lossy(&buf[..n]));
    }

    let expected = [
        "chatload_server_connections_total 1",
        "chatload_server_commands_total 3",
        "chatload_server_command_errors_total 1",
        "chatload_server_messages_sent_total 3",
        "chatload_server_clients 1",
    ];
    let text = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (_, text) = get(metrics_addr, "/metrics", "*/*").await;
            if expected.iter().all(|line| text.lines().any(|l| l == *line)) {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the counters show up");
    parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert!(text.contains("# TYPE chatload_server_sent_bytes_total counter"));

    stop.cancel();
    serving_chat.await.expect("task").expect("server");
    serving_metrics.await.expect("task").expect("metrics");
}

/// `POST path` with a body over HTTP/1.0; returns the status line and the body.
async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

async fn dashboard(
    control: Option<export::ControlFn>,
) -> (
    std::net::SocketAddr,
    tokio::sync::watch::Sender<Arc<export::LivePage>>,
    CancellationToken,
) {
    let page = export::LivePage::from_report(
        export::RunView {
            plan: "p".into(),
            phase: Some("hold".into()),
            control: control.is_some(),
            ..export::RunView::default()
        },
        "<html><head><style>b{}</style></head><body><svg></svg></script></body></html>",
    );
    let (publish, pages) = tokio::sync::watch::channel(Arc::new(page));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    tokio::spawn(export::http::serve(
        listener,
        Arc::new(export::Dashboard::new(pages, control, stop.clone())),
        stop.clone(),
    ));
    (addr, publish, stop)
}

#[tokio::test]
async fn the_dashboard_is_read_only_unless_control_is_on() {
    let (addr, _publish, stop) = dashboard(None).await;
    let (status, body) = post(addr, "/control", "stop").await;
    assert!(status.contains("403"), "{status}");
    assert!(body.contains("--dashboard-control"), "{body}");
    stop.cancel();

    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&seen);
    let control: export::ControlFn = Arc::new(move |line: &str| {
        record.lock().expect("lock").push(line.to_owned());
        vec![format!("did {line}")]
    });
    let (addr, _publish, stop) = dashboard(Some(control)).await;
    let (status, body) = post(addr, "/control", "scale 5").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "did scale 5\n");
    // Only the console's steering commands: no broadcast or export from the page.
    let (status, _) = post(addr, "/control", "broadcast SAY hi").await;
    assert!(status.contains("400"), "{status}");
    let (status, _) = post(addr, "/control", "export /tmp/x.json").await;
    assert!(status.contains("400"), "{status}");
    assert_eq!(*seen.lock().expect("lock"), vec!["scale 5".to_owned()]);
    stop.cancel();
}

#[tokio::test]
async fn the_page_embeds_the_current_state_and_streams_each_publication() {
    let (addr, publish, stop) = dashboard(None).await;
    let (content_type, shell) = get(addr, "/", "text/html").await;
    assert!(content_type.starts_with("text/html"), "{content_type}");
    // The embedded JSON cannot end its <script> element early.
    let initial = shell
        .split_once(r#"<script id="initial" type="application/json">"#)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(json, _)| json.to_owned())
        .expect("an embedded page");
    let value: serde_json::Value = serde_json::from_str(&initial).expect("JSON");
    assert_eq!(value["state"]["phase"], "hold");
    assert_eq!(value["body"], "<svg></svg></script>");
    assert!(
        !shell.contains("http://") && !shell.contains("https://"),
        "no network"
    );

    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    let mut read = String::new();
    let mut next_event = async |read: &mut String, want: &str| {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !read.contains(want) {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).await.expect("reads");
                assert!(n > 0, "stream ended: {read}");
                read.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
        .await
        .expect("an event in time");
    };
    next_event(&mut read, r#""phase":"hold""#).await;
    assert!(read.contains("text/event-stream"), "{read}");
    publish.send_replace(Arc::new(export::LivePage {
        state: export::RunView {
            phase: Some("ramp".into()),
            finished: true,
            ..export::RunView::default()
        },
        ..export::LivePage::default()
    }));
    next_event(&mut read, r#""phase":"ramp""#).await;
    assert!(read.contains(r#""finished":true"#));
    stop.cancel();
}

/// Through the real binary: while the run goes, the page's badge says how the thresholds
/// stand so far and shows no exit code — thresholds are judged at the end; once the run is
/// over the page is the final report with its verdict.
#[tokio::test]
async fn the_page_shows_thresholds_so_far_mid_run_and_the_verdict_at_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("live.yml");
    std::fs::write(
        &plan,
        r#"
config:
  target: embedded
  phases: [{name: hold, duration: 4s, vusers: 2}]
  ensure:
    thresholds:
      - latency.ping.p99: 60000
    maxErrorRate: 100
scenarios:
  - flow:
      - connect
      - loop:
          - send: "PING 1"
            expect: {match: "^PONG", name: ping}
          - think: 50ms
"#,
    )
    .expect("writes the plan");
    let out = dir.path().join("out");
    let args = ["run", "--dashboard", "127.0.0.1:0", "--out"].map(std::ffi::OsStr::new);
    let (mut child, address) = crate::common::spawn_watching_stderr(
        args.into_iter().chain([out.as_os_str(), plan.as_os_str()]),
        |line| {
            let rest = line.strip_prefix("dashboard on http://")?;
            Some(rest.split('/').next().unwrap_or_default().to_owned())
        },
    );
    let addr: std::net::SocketAddr = address
        .recv_timeout(Duration::from_secs(60))
        .expect("the dashboard address is printed")
        .parse()
        .expect("an address");
    let state = async || -> serde_json::Value {
        let (_, body) = get(addr, "/state", "application/json").await;
        serde_json::from_str(&body).expect("JSON")
    };
    // Mid-run: a page rendered from the results so far, once a reply has been counted (on a
    // loaded machine the first interval can end before the first round trip, and a threshold
    // on a latency with no data yet does not hold).
    let nothing_received = r#"messages.received</td><td>0</td><td>0</td>"#;
    let mid = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let page = state().await;
            let body = page["body"].as_str().unwrap_or_default();
            assert!(
                page["state"]["finished"] == true
                    || !(body.contains(">Passed<") || body.contains("Exit code")),
                "a verdict mid-run: {body}"
            );
            if page["state"]["finished"] == false
                && !body.is_empty()
                && !body.contains(nothing_received)
            {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("a page mid-run");
    // The report's HTML escaping writes `/` as `&#x2f;`.
    let body = mid["body"]
        .as_str()
        .unwrap_or_default()
        .replace("&#x2f;", "/");
    assert!(
        body.contains("Running · thresholds so far: 2/2 holding"),
        "{body}"
    );
    assert!(
        !body.contains(">Passed<") && !body.contains("Exit code"),
        "{body}"
    );
    // The end: the final report, with the verdict (the page lingers after the run).
    let end = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let page = state().await;
            if page["state"]["finished"] == true {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the final page");
    let body = end["body"].as_str().unwrap_or_default();
    assert!(
        body.contains(">Passed<") && body.contains("Exit code"),
        "{body}"
    );
    assert!(!body.contains("thresholds so far"), "{body}");
    let status = child.wait().expect("chatload ends");
    assert_eq!(status.code(), Some(0));
}
