//! What the per-message optimisations must not weaken, on tokio's paused clock against a
//! scripted loopback server (the clock only moves when every task waits, so each latency is
//! exact): latencies are measured from the *scheduled* send, every received stamp is a
//! delivery sample when the plan uses `stamp()`, and a plan without `stamp()` does not scan
//! received frames for stamps.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatload::engine::vuser::stamp;
use chatload::engine::{RunOptions, RunOutcome};
use chatload::metrics::Summary;
use chatload::plan::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::common::{counter, errors, expect_match, hand_plan, run_within};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A line server: each line is answered with `reply(line)` after `delay`, in order (an
/// empty reply is not sent).
async fn scripted_server(
    delay: Duration,
    reply: impl Fn(&str) -> String + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let reply = Arc::clone(&reply);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tokio::time::sleep(delay).await;
                    let mut out = reply(&line);
                    if out.is_empty() {
                        // An empty reply is none at all: the server stays silent.
                        continue;
                    }
                    out.push('\n');
                    if write.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One vuser running `steps` `turns` times against `target`.
fn plan(env: minijinja::Environment<'static>, steps: Vec<Step>, turns: u64) -> Plan {
    let load = Load::Phases(vec![Phase {
        name: "one".into(),
        shape: PhaseShape::ArrivalCount {
            duration: ms(10),
            count: 1,
        },
    }]);
    let flow = vec![
        Step::Connect { timeout: None },
        Step::Loop {
            steps,
            bound: LoopBound::Count(turns),
        },
    ];
    let plan = hand_plan(load, flow, env);
    Plan {
        source: PathBuf::from("measures.yml"),
        name: "measures".into(),
        defaults: Defaults {
            graceful_stop: Duration::from_secs(30),
            ..plan.defaults
        },
        ..plan
    }
}

fn send_expect(message: Text, pattern: &str, metric: &str) -> Step {
    Step::Send {
        message: SendSpec::Text(message),
        expect: Some(expect_match(pattern, metric)),
    }
}

fn think(ms_each: u64) -> Step {
    Step::Think(Think {
        min: ms(ms_each),
        max: ms(ms_each),
    })
}

async fn go(plan: Plan, target: &str, run_id: &str) -> RunOutcome {
    let options = RunOptions {
        run_id: Some(run_id.to_owned()),
        ..RunOptions::default()
    };
    run_within(Duration::from_secs(120), plan, target, options).await
}

fn summary<'a>(out: &'a RunOutcome, name: &str) -> Option<&'a Summary> {
    out.metrics.aggregate.summaries.get(name)
}

/// Equal within HdrHistogram's 3 significant digits.
fn close(got_ms: f64, want_ms: f64) -> bool {
    (got_ms - want_ms).abs() <= want_ms * 0.001 + 0.001
}

#[tokio::test(start_paused = true)]
async fn a_late_send_is_measured_from_its_schedule_not_from_when_it_went() {
    // Replies take 250 ms, the pacing is one send per 100 ms: each send goes out when the
    // previous reply arrived, later and later behind its schedule (0, 100, 200 ms), and its
    // latency runs from the schedule: 250, 500 - 100, 750 - 200 ms.
    let target = scripted_server(ms(250), |_| "PONG".to_owned()).await;
    let steps = vec![
        send_expect(Text::Literal("PING".into()), "^PONG", "ping"),
        think(100),
    ];
    let out = go(
        plan(minijinja::Environment::new(), steps, 3),
        &target,
        "late",
    )
    .await;
    assert_eq!(errors(&out), 0, "{:?}", out.error_samples);
    let ping = summary(&out, "latency.ping").expect("latency.ping");
    assert_eq!(ping.count, 3);
    assert!(close(ping.min, 250.0), "min {} ms", ping.min);
    assert!(close(ping.max, 550.0), "max {} ms", ping.max);
    // 250 + 400 + 550: the middle one is from its schedule too.
    assert!(close(ping.mean, 400.0), "mean {} ms", ping.mean);
    assert_eq!(counter(&out, "messages.sent"), 3);
    assert_eq!(counter(&out, "messages.received"), 3);
}

#[tokio::test(start_paused = true)]
async fn an_expect_times_out_a_whole_timeout_after_it_began_not_after_an_earlier_one() {
    // Replies take 1 s and stop after the second ping. The third expect begins at 2 s, so its
    // 5 s timeout ends at 7 s; the first expect's would have ended at 5 s (the wait keeps its
    // timer armed for an earlier deadline and must re-arm it, not give up, when that fires).
    let answered = std::sync::atomic::AtomicU32::new(0);
    let target = scripted_server(ms(1000), move |_| {
        if answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2 {
            "PONG".to_owned()
        } else {
            String::new()
        }
    })
    .await;
    let steps = vec![send_expect(Text::Literal("PING".into()), "^PONG", "ping")];
    let started = tokio::time::Instant::now();
    let out = go(
        plan(minijinja::Environment::new(), steps, 3),
        &target,
        "deadline",
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(
        counter(&out, "errors.timeout"),
        1,
        "{:?}",
        out.error_samples
    );
    assert_eq!(summary(&out, "latency.ping").map(|s| s.count), Some(2));
    assert!(
        elapsed >= Duration::from_secs(7) && elapsed < Duration::from_millis(7_500),
        "the run ended after {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_delayed_reply_on_schedule_is_measured_whole() {
    // Replies take 40 ms, the pacing 100 ms: every send is on time, latency is the delay.
    let target = scripted_server(ms(40), |_| "PONG".to_owned()).await;
    let steps = vec![
        send_expect(Text::Literal("PING".into()), "^PONG", "ping"),
        think(100),
    ];
    let out = go(
        plan(minijinja::Environment::new(), steps, 5),
        &target,
        "on-time",
    )
    .await;
    assert_eq!(errors(&out), 0, "{:?}", out.error_samples);
    let ping = summary(&out, "latency.ping").expect("latency.ping");
    assert_eq!(ping.count, 5);
    assert!(close(ping.min, 40.0) && close(ping.max, 40.0), "{ping:?}");
}

/// The stamp the server adds to every reply: of this run's token, sent at the epoch (so it
/// is a first delivery, never "from the future").
fn server_stamp(run_id: &str) -> String {
    stamp::format(&stamp::token(run_id), 99, 1)
}

#[tokio::test(start_paused = true)]
async fn with_stamp_in_the_plan_every_received_stamp_is_a_delivery() {
    let run_id = "stamps-on";
    let extra = server_stamp(run_id);
    // The server echoes the line 40 ms later and adds a stamp of its own (another sender).
    let target = scripted_server(ms(40), move |line| format!("{line} {extra}")).await;
    let mut env = minijinja::Environment::new();
    env.add_template_owned("say".to_owned(), "SAY {{ stamp() }}".to_owned())
        .expect("template compiles");
    let steps = vec![
        send_expect(Text::Template(TemplateId("say".into())), "^SAY", "say"),
        think(100),
    ];
    let out = go(plan(env, steps, 4), &target, run_id).await;
    assert_eq!(errors(&out), 0, "{:?}", out.error_samples);
    let delivery = summary(&out, "delivery").expect("delivery samples");
    // 4 own stamps (40 ms each) + the server's one stamp, counted once (a repeat is not a
    // new delivery).
    assert_eq!(delivery.count, 5, "{delivery:?}");
    assert!(close(delivery.min, 40.0), "{delivery:?}");
    assert_eq!(counter(&out, "delivery.invalid"), 3, "the server's repeats");
}

#[tokio::test(start_paused = true)]
async fn without_stamp_in_the_plan_frames_are_not_scanned_for_stamps() {
    let run_id = "stamps-off";
    let extra = server_stamp(run_id);
    // The same stamp-carrying replies, but the plan never calls stamp(): no frame of this
    // run can carry one of its stamps, so none is looked for.
    let target = scripted_server(ms(40), move |_| format!("PONG {extra}")).await;
    let steps = vec![
        send_expect(Text::Literal("PING".into()), "^PONG", "ping"),
        think(100),
    ];
    let out = go(
        plan(minijinja::Environment::new(), steps, 4),
        &target,
        run_id,
    )
    .await;
    assert_eq!(errors(&out), 0, "{:?}", out.error_samples);
    assert_eq!(summary(&out, "latency.ping").map(|s| s.count), Some(4));
    assert_eq!(summary(&out, "delivery").map_or(0, |s| s.count), 0);
    assert_eq!(counter(&out, "delivery.invalid"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_send_whose_reply_is_cut_off_by_the_hard_stop_is_still_counted() {
    // The reply never comes within the run: the vuser is still waiting for it when the
    // graceful stop runs out and the run aborts it. A send and its expect count together
    // under one lock; the message went out, so it must be counted all the same.
    let target = scripted_server(Duration::from_secs(3600), |_| "PONG".to_owned()).await;
    let steps = vec![send_expect(Text::Literal("PING".into()), "^PONG", "ping")];
    let mut plan = plan(minijinja::Environment::new(), steps, 1);
    plan.defaults.timeout = Duration::from_secs(600);
    plan.defaults.graceful_stop = Duration::from_secs(1);
    let out = go(plan, &target, "cut-off").await;
    assert_eq!(
        counter(&out, "messages.sent"),
        1,
        "{:?}",
        out.metrics.aggregate.counters
    );
    assert_eq!(counter(&out, "bytes.sent"), 4);
    assert_eq!(counter(&out, "messages.received"), 0);
    assert_eq!(summary(&out, "latency.ping").map_or(0, |s| s.count), 0);
}
