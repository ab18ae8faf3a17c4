//! Integration tests: `chatload run` — the engine in-process against the reference server on
//! port 0, plus one run of the real binary.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatload::engine::{self, RunOptions, RunOutcome};
use chatload::plan::*;
use chatload::protocol::{CaptureSource, CodecConfig, Matcher};
use chatload::server::{self, ServerConfig, ServerHandle};
use chatload::vocab::Stat;
use tokio_util::sync::CancellationToken;

use crate::common::{
    assert_no_errors, chatload, count, counter, errors, expect_match as expect, result_json,
    run_at, run_with, run_within, serve, write_plan, yaml_plan,
};

const SECOND: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Plans built by hand: the validated form the engine consumes.
struct Builder {
    env: minijinja::Environment<'static>,
    next: usize,
    handlers: Vec<Handler>,
    timeout: Duration,
    reconnect_attempts: u32,
}

impl Builder {
    fn new() -> Self {
        Builder {
            env: minijinja::Environment::new(),
            next: 0,
            handlers: Vec::new(),
            timeout: Duration::from_secs(5),
            reconnect_attempts: 0,
        }
    }

    /// A template text (compiled into the plan's environment).
    fn t(&mut self, source: &str) -> Text {
        self.next += 1;
        let id = format!("t{}", self.next);
        self.env
            .add_template_owned(id.clone(), source.to_owned())
            .expect("template compiles");
        Text::Template(TemplateId(id))
    }

    fn send(&mut self, source: &str) -> Step {
        Step::Send {
            message: SendSpec::Text(self.t(source)),
            expect: None,
        }
    }

    fn send_expect(&mut self, source: &str, pattern: &str, metric: &str) -> Step {
        Step::Send {
            message: SendSpec::Text(self.t(source)),
            expect: Some(expect(pattern, metric)),
        }
    }

    /// A loop of `message` expecting a PONG (metric `ping`), each turn followed by a think.
    fn ping_loop(&mut self, message: &str, pause_ms: u64, bound: LoopBound) -> Step {
        Step::Loop {
            steps: vec![
                self.send_expect(message, "^PONG", "ping"),
                think(pause_ms, pause_ms),
            ],
            bound,
        }
    }

    fn handler(&mut self, pattern: &str, reply: &str, name: &str) {
        let reply = SendSpec::Text(self.t(reply));
        self.handlers.push(Handler {
            matcher: Matcher::regex(regex::Regex::new(pattern).expect("regex")),
            template: None,
            types: None,
            decode: Vec::new(),
            captures: Vec::new(),
            reply: Some(reply),
            name: Some(name.to_owned()),
        });
    }

    fn plan(self, phases: Vec<PhaseShape>, flow: Vec<Step>) -> Plan {
        Plan {
            source: PathBuf::from("test.yml"),
            name: "test".into(),
            target: Target::Address("127.0.0.1:1".into()),
            protocol: CodecConfig::lines(),
            tls: None,
            websocket: Default::default(),
            http: Default::default(),
            messages: Vec::new(),
            load: Load::Phases(
                phases
                    .into_iter()
                    .enumerate()
                    .map(|(i, shape)| Phase {
                        name: format!("phase {}", i + 1),
                        shape,
                    })
                    .collect(),
            ),
            payloads: Vec::new(),
            variables: Vec::new(),
            defaults: Defaults {
                timeout: self.timeout,
                think_jitter: 0.0,
                reconnect: Reconnect {
                    attempts: self.reconnect_attempts,
                    backoff: ms(100),
                },
                graceful_stop: Duration::from_secs(5),
            },
            source_addresses: Vec::new(),
            handlers: self.handlers,
            ensure: Ensure::default(),
            monitor: None,
            report: ReportConfig {
                dir: PathBuf::from("reports"),
                json: true,
                csv: false,
                html: false,
                interval: SECOND,
            },
            metrics: Default::default(),
            scenarios: vec![Scenario {
                name: "main".into(),
                weight: 1,
                target: None,
                flow,
                handlers: Vec::new(),
                allocation: Default::default(),
            }],
            setup: Default::default(),
            templates: Templates { env: self.env },
            as_written: serde_json::Value::Null,
            source_text: None,
        }
    }
}

fn think(min_ms: u64, max_ms: u64) -> Step {
    Step::Think(Think {
        min: ms(min_ms),
        max: ms(max_ms),
    })
}

fn connect() -> Step {
    Step::Connect { timeout: None }
}

fn rate(duration: Duration, per_sec: f64) -> PhaseShape {
    PhaseShape::Arrivals {
        duration,
        rate_per_sec: per_sec,
        ramp_to_per_sec: None,
        max_vusers: None,
        distribution: Arrivals::Uniform,
    }
}

fn arrival_count(duration: Duration, n: u64) -> PhaseShape {
    PhaseShape::ArrivalCount { duration, count: n }
}

/// One vuser, due at the start of a one-second phase. The engine drops an arrival it reaches
/// only after the end of its phase: with a 10 ms phase a loaded machine that started the
/// generator 10 ms late lost the only vuser, and the test saw an empty run.
fn one_arrival() -> PhaseShape {
    arrival_count(SECOND, 1)
}

fn closed(duration: Duration, vusers: u64, ramp_to: Option<u64>) -> PhaseShape {
    PhaseShape::Concurrency {
        duration,
        vusers,
        ramp_to,
        curve: Curve::Linear,
        steps: None,
    }
}

/// Runs `plan` against `server` with the default options.
async fn run(plan: Plan, server: &ServerHandle) -> RunOutcome {
    run_with(plan, server, RunOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_arrivals_per_second_for_four_seconds_create_200_vusers() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    let flow = vec![
        connect(),
        b.send_expect("PING {{ vu.id }}", "^PONG", "ping"),
        Step::Disconnect,
    ];
    let out = run(b.plan(vec![rate(4 * SECOND, 50.0)], flow), &server).await;
    let agg = &out.metrics.aggregate;
    let created = counter(agg, "vusers.created");
    assert!((198..=202).contains(&created), "created {created}");
    assert_eq!(counter(agg, "vusers.completed"), created);
    assert_no_errors(&out);
    assert_eq!(count(agg, "latency.ping"), created);
    assert!(!out.interrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_ramp_from_0_to_100_reaches_100_connected() {
    let server = serve(ServerConfig::default()).await;
    let b = Builder::new();
    let flow = vec![
        connect(),
        Step::Loop {
            steps: vec![think(100, 100)],
            bound: LoopBound::Forever,
        },
    ];
    let phases = vec![closed(SECOND, 0, Some(100)), closed(SECOND, 100, None)];
    let out = run(b.plan(phases, flow), &server).await;
    let agg = &out.metrics.aggregate;
    assert_eq!(agg.gauges.get("connections.open").map(|g| g.max), Some(100));
    assert_eq!(agg.gauges.get("vusers.active").map(|g| g.max), Some(100));
    assert_eq!(counter(agg, "vusers.created"), 100);
    // Retired at the end, not cancelled: every vuser completed and every connection closed.
    assert_eq!(counter(agg, "vusers.completed"), 100);
    assert_eq!(out.vusers_cancelled, 0);
    assert_eq!(agg.gauges.get("connections.open").map(|g| g.last), Some(0));
    assert_no_errors(&out);
    // The ramp phase saw the target grow. (How close to 100 it got within its second depends
    // on the machine's load; the ramp's exact targets are unit-tested in engine/load/schedule.rs.)
    let ramp = out.metrics.phases.first().expect("ramp phase");
    let ramp_peak = ramp
        .summary
        .gauges
        .get("vusers.active")
        .map_or(0, |g| g.max);
    assert!((1..=100).contains(&ramp_peak), "ramp peak {ramp_peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_feed_later_sends() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    let mut login = expect(r"^OK (?P<who>\w+)$", "login");
    login.captures = vec![Capture {
        variable: "me".into(),
        source: CaptureSource::Group("who".into()),
    }];
    let flow = vec![
        connect(),
        Step::Send {
            message: SendSpec::Text(b.t("LOGIN user{{ vu.id }}x")),
            expect: Some(login),
        },
        // Only the captured value can make the server echo exactly this.
        Step::Send {
            message: SendSpec::Text(b.t("ECHO hello {{ me }}")),
            expect: Some(expect(r"^hello user\d+x$", "echo")),
        },
        Step::Disconnect,
    ];
    let out = run(b.plan(vec![arrival_count(ms(100), 3)], flow), &server).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    assert_eq!(count(agg, "latency.echo"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_capture_is_a_counted_capture_error() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    let mut pong = expect(r"^PONG(?P<none>zzz)?", "ping");
    pong.captures = vec![Capture {
        variable: "x".into(),
        source: CaptureSource::Group("none".into()),
    }];
    let flow = vec![
        connect(),
        Step::Send {
            message: SendSpec::Text(b.t("PING 1")),
            expect: Some(pong),
        },
    ];
    let out = run(b.plan(vec![arrival_count(ms(100), 2)], flow), &server).await;
    let agg = &out.metrics.aggregate;
    assert_eq!(counter(agg, "errors.capture"), 2);
    assert_eq!(counter(agg, "vusers.failed"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_answers_server_pushes() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    // Two vusers whisper a PING to each other; each one's handler answers the other's PING
    // while it waits, and each flow expects the PONG its partner's handler sent.
    b.handler(
        r"^DM (?P<from>\w+) PING (?P<token>\d+)$",
        "WHISPER {{ from }} PONG {{ token }}",
        "ping",
    );
    let flow = vec![
        connect(),
        b.send_expect("LOGIN u{{ vu.id }}", "^OK", "login"),
        think(300, 300),
        b.send_expect(
            "WHISPER u{{ 1 - vu.id }} PING {{ 40 + vu.id }}",
            r"^DM u\d PONG 4\d$",
            "pong",
        ),
        think(300, 300),
        Step::Disconnect,
    ];
    let out = run(b.plan(vec![arrival_count(ms(100), 2)], flow), &server).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    assert_eq!(counter(agg, "handled.ping"), 2);
    assert_eq!(count(agg, "latency.pong"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamped_says_in_a_five_member_room_give_exactly_75_deliveries() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    let flow = vec![
        connect(),
        b.send_expect("LOGIN u{{ vu.id }}", "^OK", "login"),
        b.send_expect("JOIN lobby", "^JOINED", "join"),
        // Everyone is in the room before the first SAY.
        think(400, 400),
        Step::Loop {
            steps: vec![b.send("SAY {{ stamp() }} hello"), think(30, 30)],
            bound: LoopBound::Count(3),
        },
        // Stay to receive everyone else's messages.
        think(500, 500),
        Step::Disconnect,
    ];
    let out = run(b.plan(vec![arrival_count(ms(100), 5)], flow), &server).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    let delivery = agg.summaries.get("delivery").expect("delivery recorded");
    assert_eq!(delivery.count, 75);
    assert!(
        delivery.min >= 0.0 && delivery.max >= delivery.min,
        "{delivery:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_delay_shows_in_latency() {
    let server = serve(ServerConfig {
        delay: ms(30),
        ..ServerConfig::default()
    })
    .await;
    let mut b = Builder::new();
    let flow = vec![
        connect(),
        b.ping_loop("PING {{ loop.index }}", 50, LoopBound::Count(10)),
    ];
    let out = run(b.plan(vec![arrival_count(ms(200), 5)], flow), &server).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    let ping = agg.summaries.get("latency.ping").expect("latency");
    assert_eq!(ping.count, 50);
    // Every reply waits the 30 ms delay (HdrHistogram reports within 0.1 %); how much longer
    // depends on the machine's load, so there is no upper bound here.
    assert!(ping.min >= 30.0 * 0.999, "min {} ms", ping.min);
    assert!(ping.p50 >= 30.0 * 0.999, "p50 {} ms", ping.p50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn think_ranges_are_respected() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    // Each loop sends a stamp; the server echoes it back, so the receive times of consecutive
    // stamps of one vuser are its send times plus a loopback hop.
    let flow = vec![
        connect(),
        b.send_expect("LOGIN u{{ vu.id }}", "^OK", "login"),
        Step::Loop {
            steps: vec![
                b.send_expect("ECHO {{ now_ms() }}", r"^\d+$", "echo"),
                think(100, 200),
            ],
            bound: LoopBound::Count(6),
        },
    ];
    let mut plan = b.plan(vec![one_arrival()], flow);
    plan.templates.env.add_function("now_ms", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    });
    let started = tokio::time::Instant::now();
    let out = run(plan, &server).await;
    let took = started.elapsed();
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    assert_eq!(count(agg, "latency.echo"), 6);
    // Six thinks of 100..200 ms each: at least 600 ms. (The upper bound depends on the
    // machine's load; the engine's paused-clock test `think_ranges_are_respected` checks it.)
    assert!(took >= ms(600), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_gives_counted_errors() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    b.timeout = ms(500);
    let flow = vec![
        connect(),
        b.ping_loop("PING {{ loop.index }}", 20, LoopBound::Forever),
    ];
    let plan = b.plan(vec![closed(ms(1500), 5, None)], flow);
    let target = server.addr().to_string();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(ms(500)).await;
        server.shutdown().await;
    });
    let out = run_within(30 * SECOND, plan, &target, RunOptions::default()).await;
    killer.await.expect("killer");
    // The results still serialize and write.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("result.json");
    let info = chatload::report::RunInfo::new("killed", &target, out.started_at, out.started_at);
    let result =
        chatload::report::RunResult::new(info, out.metrics.clone(), serde_json::Value::Null);
    chatload::report::write_result(&path, &result).expect("result written");
    assert!(chatload::report::read_result(&path).is_ok());
    let agg = &out.metrics.aggregate;
    assert!(errors(agg) > 0);
    assert!(counter(agg, "vusers.failed") >= 5);
    assert!(
        counter(agg, "errors.connect_refused") > 0,
        "{:?}",
        agg.counters
    );
    assert!(count(agg, "latency.ping") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_request_stops_the_run_and_keeps_partial_results() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    let flow = vec![connect(), b.ping_loop("PING 1", 50, LoopBound::Forever)];
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    let started = tokio::time::Instant::now();
    let options = RunOptions {
        shutdown,
        // The stop request comes once more than 20 round trips have been counted (a fixed
        // 700 ms assumed 20 were done by then, which a loaded machine need not manage).
        interval: Some(ms(100)),
        on_progress: Some(Arc::new(move |p: &engine::load::Progress| {
            let pings = p
                .aggregate
                .as_ref()
                .and_then(|a| a.summaries.get("latency.ping"))
                .map_or(0, |s| s.count);
            if pings > 20 {
                trigger.cancel();
            }
        })),
        ..RunOptions::default()
    };
    let out = run_with(
        b.plan(vec![closed(Duration::from_secs(30), 4, None)], flow),
        &server,
        options,
    )
    .await;
    // Stopped long before the 30 s phase ended.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(out.interrupted);
    let agg = &out.metrics.aggregate;
    assert_eq!(counter(agg, "vusers.created"), 4);
    assert!(count(agg, "latency.ping") > 20);
    assert!(!out.metrics.intermediate.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_server_shows_in_p99_despite_coordinated_omission() {
    let server = serve(ServerConfig {
        stall: Some(server::Stall {
            duration: SECOND,
            every: 5 * SECOND,
        }),
        ..ServerConfig::default()
    })
    .await;
    let mut b = Builder::new();
    let flow = vec![connect(), b.ping_loop("PING x", 10, LoopBound::Forever)];
    let out = run(b.plan(vec![closed(12 * SECOND, 10, None)], flow), &server).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    let ping = agg.summaries.get("latency.ping").expect("latency");
    assert!(ping.p99 >= 900.0, "p99 {} ms", ping.p99);
}

#[test]
fn the_binary_runs_a_tiny_embedded_plan_and_writes_result_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "tiny.yml",
        r#"
config:
  target: embedded
  phases:
    - {duration: 1s, arrivalRate: 5}
scenarios:
  - name: ping
    flow:
      - connect
      - send: "PING {{ vu.id }}"
        expect: {match: "^PONG", name: ping}
      - disconnect
"#,
    );
    let out = dir.path().join("out");
    let output = chatload([
        OsStr::new("run"),
        plan.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--quiet"),
        OsStr::new("--seed"),
        OsStr::new("9007199254740993"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let result = result_json(&out);
    assert_eq!(result["format"], "chatload.result/v2");
    // Above 2^53 on purpose: the seed is written exactly, not through a double.
    assert_eq!(result["run"]["seed"].as_u64(), Some(9_007_199_254_740_993));
    let schema_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/result.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).expect("schema exists"))
            .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let problems: Vec<String> = validator
        .iter_errors(&result)
        .map(|e| e.to_string())
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(result["aggregate"]["counters"]["vusers.created"], 5);
    assert_eq!(result["aggregate"]["summaries"]["latency.ping"]["count"], 5);
    assert!(stdout.contains("latency.ping"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_on_the_binary_writes_partial_results_and_exits_130() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "long.yml",
        r#"
config:
  target: embedded
  phases:
    - {duration: 60s, vusers: 3}
scenarios:
  - name: ping
    flow:
      - connect
      - loop:
          - send: "PING 1"
            expect: {match: "^PONG", name: ping}
          - log: "ping answered"
          - think: 50ms
"#,
    );
    let out = dir.path().join("out");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatload"))
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary starts");
    // Ctrl-C once more than 10 replies are in (each logs after it is recorded), not after a
    // fixed time: a loaded machine may take any part of a second to start the run. The
    // reader drains stderr to the end so the binary never blocks on it.
    let stderr = child.stderr.take().expect("stderr");
    let (answered, eleven) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let lines = std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok);
        let mut replies = 0;
        for line in lines {
            if line.ends_with("ping answered") {
                replies += 1;
                if replies == 11 {
                    let _ = answered.send(());
                }
            }
        }
    });
    eleven
        .recv_timeout(Duration::from_secs(60))
        .expect("eleven replies before the Ctrl-C");
    let signalled = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chatload did not stop after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let result = result_json(&out);
    assert_eq!(result["run"]["interrupted"], true);
    assert_eq!(result["run"]["exitCode"], 130);
    assert!(result["aggregate"]["summaries"]["latency.ping"]["count"].as_u64() > Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_reconnected_per_the_policy_then_fails() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    b.reconnect_attempts = 2;
    // QUIT makes the server close the connection, which the think then notices.
    let flow = vec![
        connect(),
        b.send_expect("QUIT", "^BYE", "quit"),
        think(200, 200),
        Step::Disconnect,
    ];
    let out = run(b.plan(vec![one_arrival()], flow), &server).await;
    let agg = &out.metrics.aggregate;
    assert_eq!(counter(agg, "errors.closed"), 3, "{:?}", agg.counters);
    assert_eq!(count(agg, "connect"), 3);
    assert_eq!(counter(agg, "vusers.created"), 1);
    assert_eq!(counter(agg, "vusers.failed"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_worker_drives_binary_xor_packets_with_named_messages() {
    let server = serve(ServerConfig {
        framing: server::ServerFraming::Binary,
        xor_key: Some(b"k3y".to_vec()),
        ..ServerConfig::default()
    })
    .await;
    let yaml = r#"
config:
  target: embedded
  protocol:
    framing:
      lengthPrefixed:
        header: [{length: 2}, {type: 2}]
        endian: little
        lengthCounts: frame
    transform: {xor: {key: "k3y"}}
  messages:
    login: {type: 1, body: "bin{{ vu.id }}"}
    join: {type: 2, body: "lobby"}
    say: {type: 3, body: "{{ text }}"}
    ping: {type: 5, body: "{{ vu.id }}"}
  phases:
    - {duration: 100ms, arrivalCount: 2}
scenarios:
  - name: binary
    flow:
      - connect
      - send: {message: login}
        expect: {type: 101, name: login}
      - send: {message: join}
        expect: {type: 102, name: join}
      - think: 300ms
      - send: {message: say, with: {text: "hi {{ stamp() }}"}}
      - send: {message: ping}
        expect: {type: 105, name: ping}
      - think: 300ms
      - disconnect
"#;
    let plan = yaml_plan(yaml, std::path::Path::new("binary.yml"));
    let out = run(plan, &server).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    assert_eq!(count(agg, "latency.ping"), 2);
    // Both members receive both stamped SAYs (the server echoes to the sender too).
    assert_eq!(count(agg, "delivery"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expect_takes_a_reply_that_arrived_during_a_think() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    let flow = vec![
        connect(),
        b.send("ECHO early"),
        // The reply arrives while the vuser thinks; the expect finds it afterwards and measures
        // from the send, not from the end of the think.
        think(300, 300),
        Step::Expect(expect("^early$", "echo")),
        Step::Disconnect,
    ];
    let out = run(b.plan(vec![one_arrival()], flow), &server).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    let echo = agg.summaries.get("latency.echo").expect("latency");
    assert_eq!(echo.count, 1);
    // Measured to the reply's arrival: shorter than the 300 ms think it arrived during.
    assert!(echo.max < 300.0, "max {} ms", echo.max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_spread_over_source_addresses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let target = listener.local_addr().expect("addr").to_string();
    let accept = tokio::spawn(async move {
        let mut peers = Vec::new();
        let mut sockets = Vec::new();
        for _ in 0..4 {
            let (socket, peer) = listener.accept().await.expect("accept");
            peers.push(peer.ip().to_string());
            sockets.push(socket);
        }
        peers.sort();
        // Returned, not dropped: the connections stay open while the vusers think.
        (peers, sockets)
    });
    let b = Builder::new();
    let flow = vec![connect(), think(200, 200), Step::Disconnect];
    // One arrival a second: the engine drops an arrival only when it is more than a second
    // behind (or the phase is over), so a loaded machine still starts all four. (Four in
    // 20 ms lost the later ones whenever the generator was a few ms late, and the accept
    // below then waited forever for connections that were never made.)
    let mut plan = b.plan(vec![arrival_count(4 * SECOND, 4)], flow);
    plan.source_addresses = vec![
        "127.0.0.2".parse().expect("ip"),
        "127.0.0.3".parse().expect("ip"),
    ];
    let out = run_within(30 * SECOND, plan, &target, RunOptions::default()).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    assert_eq!(counter(agg, "vusers.created"), 4, "{:?}", agg.counters);
    // Every vuser connected, so the four connections are queued on the listener already;
    // the bound only turns a hang into a failure.
    let (peers, _sockets) = tokio::time::timeout(Duration::from_secs(60), accept)
        .await
        .expect("four connections accepted")
        .expect("accepted");
    assert_eq!(peers, ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]);
}

fn always_failing(metric: &str, abort_on_fail: bool) -> Ensure {
    Ensure {
        conditions: vec![Condition {
            source: format!("{metric}.max < 0ms"),
            expr: Expr::Compare {
                metric: metric.into(),
                stat: Stat::Max,
                op: CompareOp::Lt,
                value: 0.0,
            },
            strict: true,
            window: None,
        }],
        max_error_rate_percent: Some(1.0),
        abort_on_fail,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_are_evaluated_and_abort_on_fail_stops_the_run() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    let flow = vec![connect(), b.ping_loop("PING 1", 20, LoopBound::Forever)];
    let mut plan = b.plan(vec![closed(Duration::from_secs(30), 2, None)], flow);
    plan.ensure = always_failing("latency.ping", true);
    let options = RunOptions {
        interval: Some(ms(200)),
        ..RunOptions::default()
    };
    let started = tokio::time::Instant::now();
    let out = run_with(plan, &server, options).await;
    // Aborted long before the 30 s phase ended.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(!out.interrupted);
    let breach = out.aborted.expect("aborted by the breach");
    assert_eq!(breach.expression, "latency.ping.max < 0ms");
    let passed: Vec<bool> = out.thresholds.iter().map(|t| t.passed).collect();
    assert_eq!(
        passed,
        vec![false, true],
        "the latency check fails, maxErrorRate holds"
    );
}

#[test]
fn the_binary_exits_1_when_a_threshold_fails_and_writes_every_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "strict.yml",
        r#"
config:
  target: embedded
  phases:
    - {duration: 1s, arrivalRate: 4}
  ensure:
    thresholds:
      - latency.ping.p95: 0
scenarios:
  - name: ping
    flow:
      - send: "PING 1"
        expect: {match: "^PONG", name: ping}
"#,
    );
    let out = dir.path().join("out");
    let output = chatload(
        ["run", "--quiet", "--format", "json,csv,html", "--out"]
            .map(OsStr::new)
            .into_iter()
            .chain([out.as_os_str(), plan.as_os_str()]),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    for file in ["result.json", "stats.csv", "history.csv", "report.html"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let result = result_json(&out);
    assert_eq!(result["run"]["exitCode"], 1);
    assert_eq!(result["thresholds"][0]["passed"], false);
}

#[cfg(target_os = "linux")]
#[test]
fn the_binary_records_monitor_samples_of_the_plan_s_process_alongside_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Any live process will do: the test process itself.
    let plan = write_plan(
        dir.path(),
        "monitored.yml",
        &format!(
            r#"
config:
  target: embedded
  monitor: {{pid: {pid}, interval: 200ms}}
  phases:
    - {{duration: 2s, arrivalRate: 4}}
scenarios:
  - name: ping
    flow:
      - send: "PING 1"
        expect: {{match: "^PONG", name: ping}}
"#,
            pid = std::process::id()
        ),
    );
    let out = dir.path().join("out");
    let output = chatload(
        ["run", "--quiet", "--format", "json", "--out"]
            .map(OsStr::new)
            .into_iter()
            .chain([out.as_os_str(), plan.as_os_str()]),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let result = result_json(&out);
    // About ten samples in 2 s; three leave a loaded machine room for late ones.
    let samples = result["monitor"].as_array().map_or(0, Vec::len);
    assert!(
        samples >= 3,
        "{samples} samples; warnings {}",
        result["run"]["warnings"]
    );
    assert!(result["monitor"][0]["processRssBytes"].as_u64() > Some(0));
}

#[test]
fn the_binary_exits_2_on_a_bad_plan_or_an_unwritable_output_before_any_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write_plan(
        dir.path(),
        "bad.yml",
        "config:\n  target: embedded\n  phases:\n    - {duration: 5 mins, arrivalRate: 1}\nscenarios:\n  - flow: [connect]\n",
    );
    let output = chatload([OsStr::new("run"), bad.as_os_str()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.yml:4:18"), "{stderr}");

    // A minute-long plan whose output folder cannot be created: it must fail at once.
    let long = write_plan(
        dir.path(),
        "long.yml",
        "config:\n  target: embedded\n  phases:\n    - {duration: 60s, vusers: 2}\nscenarios:\n  - flow: [connect, {think: 1s}]\n",
    );
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a folder").expect("file written");
    let started = std::time::Instant::now();
    let output = chatload([
        OsStr::new("run"),
        long.as_os_str(),
        OsStr::new("--out"),
        blocker.join("out").as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the run started before failing on its output folder"
    );
    assert!(stderr.contains("a-file"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_vusers_that_fail_are_replaced_after_a_backoff_not_at_once() {
    let (_held, refused) = crate::refusing_port();
    let refused = refused.to_string();
    let mut b = Builder::new();
    let flow = vec![connect(), b.send("PING 1")];
    // 5 slots for 2 s with a 100 ms backoff: at most ~5 × 20 attempts, not a busy loop.
    let plan = b.plan(vec![closed(2 * SECOND, 5, None)], flow);
    let outcome = run_at(plan, &refused, RunOptions::default()).await;
    let agg = &outcome.metrics.aggregate;
    let created = counter(agg, "vusers.created");
    assert!(created >= 5, "the pool was filled: {created}");
    // Each slot fails within ~100 ms of its start, so in 2 s every one is replaced many times:
    // ten is far below that even on a loaded machine, and above a pool never refilled (5).
    assert!(created >= 10, "failed vusers were not replaced: {created}");
    assert!(
        created <= 130,
        "failed vusers were replaced at once: {created}"
    );
    assert_eq!(counter(agg, "errors.connect_refused"), created);
}

/// Runs `plan` against a reference server on a runtime of its own (two worker threads) and
/// waits for it from this thread: vusers that never give their threads up would starve a
/// timeout inside that runtime too, so the wait must be outside it. A run that does not end
/// fails the test after 60 s instead of hanging it (the stuck thread ends with the process).
fn run_on_own_runtime(plan: Plan) -> RunOutcome {
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let outcome = runtime.block_on(async move {
            let server = serve(ServerConfig::default()).await;
            run(plan, &server).await
        });
        let _ = done.send(outcome);
    });
    outcome
        .recv_timeout(Duration::from_secs(60))
        .expect("the run ends: its vusers give their threads up")
}

#[test]
fn a_loop_that_never_awaits_still_lets_the_run_end() {
    let mut b = Builder::new();
    let value = b.t("x");
    let flow = vec![Step::Loop {
        steps: vec![Step::Set {
            variable: "a".into(),
            value,
        }],
        bound: LoopBound::Forever,
    }];
    // More spinning vusers than worker threads: without yielding they would starve the
    // runner and the run would never end.
    let plan = b.plan(vec![arrival_count(ms(500), 4)], flow);
    let outcome = run_on_own_runtime(plan);
    assert_eq!(counter(&outcome.metrics.aggregate, "vusers.created"), 4);
    assert_eq!(counter(&outcome.metrics.aggregate, "vusers.completed"), 4);
}

#[test]
fn a_closed_model_flow_that_never_awaits_still_lets_the_run_end() {
    let mut b = Builder::new();
    let value = b.t("x");
    let flow = vec![Step::Set {
        variable: "a".into(),
        value,
    }];
    // Closed-model vusers repeat the flow at once: more of them than worker threads, with a
    // flow that never awaits, would starve the runner if a pass never gave the thread up.
    let plan = b.plan(vec![closed(ms(500), 4, None)], flow);
    let outcome = run_on_own_runtime(plan);
    assert_eq!(counter(&outcome.metrics.aggregate, "vusers.created"), 4);
    assert_eq!(counter(&outcome.metrics.aggregate, "vusers.completed"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_boundaries_near_the_interval_grid_leave_no_sliver_intervals() {
    let server = serve(ServerConfig::default()).await;
    let mut b = Builder::new();
    let flow = vec![connect(), b.send_expect("PING 1", "^PONG", "ping")];
    // Boundaries at 1 s and 2 s from a start anywhere on the 1 s wall-clock grid.
    let plan = b.plan(
        vec![rate(SECOND, 5.0), rate(SECOND, 5.0), rate(SECOND, 5.0)],
        flow,
    );
    let outcome = run(plan, &server).await;
    let phased: Vec<_> = outcome
        .metrics
        .intermediate
        .iter()
        .filter(|i| i.phase.is_some())
        .collect();
    for interval in &phased {
        let length_ms = interval.end_ms - interval.start_ms;
        assert!(
            length_ms >= 250,
            "a {length_ms} ms interval in {:?}",
            interval.phase
        );
    }
    // Each phase is cut at most once more, by the wall-clock grid.
    assert!(phased.len() >= 3 && phased.len() <= 6, "{}", phased.len());
}
