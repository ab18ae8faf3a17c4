//! Integration tests: `chatload run` — the engine in-process against the reference server on
//! port 0, with plans built by hand (`builder`) or from YAML; the runs of the real binary are
//! in `binary`.

mod binary;
mod builder;

use std::sync::Arc;
use std::time::Duration;

use chatload::engine::{self, RunOptions};
use chatload::plan::*;
use chatload::protocol::CaptureSource;
use chatload::server::{self, ServerConfig};
use tokio_util::sync::CancellationToken;

use crate::common::{
    assert_no_errors, count, counter, errors, expect_match as expect, run_at, run_with, run_within,
    serve, yaml_plan,
};

use builder::{
    Builder, SECOND, always_failing, arrival_count, closed, connect, ms, one_arrival, rate, run,
    run_on_own_runtime, think,
};

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
