//! Runner behaviour on tokio's paused clock: flows made of thinks only (no sockets), so
//! time-dependent rules (maxVusers, retiring, the graceful stop) are checked exactly.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{RunOptions, RunOutcome, run};
use crate::engine::vuser::stamp;
use crate::metrics::PeriodSummary;
use crate::plan::*;

fn plan(phases: Vec<PhaseShape>, flow: Vec<Step>, graceful_stop: Duration) -> Plan {
    Plan {
        source: PathBuf::from("t.yml"),
        name: "t".into(),
        target: Target::Address("127.0.0.1:1".into()),
        protocol: crate::protocol::CodecConfig {
            max_frame_bytes: 1024,
            ..crate::protocol::CodecConfig::lines()
        },
        tls: None,
        websocket: Default::default(),
        http: Default::default(),
        messages: Vec::new(),
        load: Load::Phases(
            phases
                .into_iter()
                .map(|shape| Phase {
                    name: "p".into(),
                    shape,
                })
                .collect(),
        ),
        payloads: Vec::new(),
        variables: Vec::new(),
        defaults: Defaults {
            timeout: Duration::from_secs(1),
            think_jitter: 0.0,
            reconnect: Reconnect {
                attempts: 0,
                backoff: Duration::ZERO,
            },
            graceful_stop,
        },
        source_addresses: Vec::new(),
        handlers: Vec::new(),
        ensure: Ensure::default(),
        monitor: None,
        report: ReportConfig {
            dir: PathBuf::from("reports"),
            json: false,
            csv: false,
            html: false,
            interval: Duration::from_secs(1),
        },
        metrics: Default::default(),
        scenarios: vec![Scenario {
            name: "s".into(),
            weight: 1,
            target: None,
            flow,
            handlers: Vec::new(),
            allocation: Default::default(),
        }],
        setup: Default::default(),
        templates: Templates {
            env: minijinja::Environment::new(),
        },
        as_written: serde_json::Value::Null,
        source_text: None,
    }
}

fn think(ms: u64) -> Step {
    Step::Think(Think {
        min: Duration::from_millis(ms),
        max: Duration::from_millis(ms),
    })
}

fn forever(steps: Vec<Step>) -> Step {
    Step::Loop {
        steps,
        bound: LoopBound::Forever,
    }
}

async fn go(plan: Plan) -> RunOutcome {
    match run(Arc::new(plan), "127.0.0.1:1", RunOptions::default()).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("run failed to start: {e}"),
    }
}

fn counter(s: &PeriodSummary, name: &str) -> u64 {
    s.counters.get(name).copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn max_vusers_drops_and_counts_arrivals() {
    let shape = PhaseShape::Arrivals {
        duration: Duration::from_secs(2),
        rate_per_sec: 10.0,
        ramp_to_per_sec: None,
        max_vusers: Some(5),
        distribution: Arrivals::Uniform,
    };
    let out = go(plan(vec![shape], vec![think(1000)], Duration::from_secs(5))).await;
    let agg = &out.metrics.aggregate;
    let created = counter(agg, "vusers.created");
    let skipped = counter(agg, "vusers.skipped");
    assert_eq!(created + skipped, 20);
    assert!(skipped >= 5, "skipped {skipped}");
    assert_eq!(agg.gauges.get("vusers.active").map(|g| g.max), Some(5));
    assert_eq!(counter(agg, "vusers.completed"), created);
}

#[tokio::test(start_paused = true)]
async fn a_closed_ramp_down_retires_vusers_gracefully() {
    let hold = PhaseShape::Concurrency {
        duration: Duration::from_secs(1),
        vusers: 10,
        ramp_to: None,
        curve: Curve::Linear,
        steps: None,
    };
    let down = PhaseShape::Concurrency {
        duration: Duration::from_secs(1),
        vusers: 10,
        ramp_to: Some(0),
        curve: Curve::Linear,
        steps: None,
    };
    let flow = vec![forever(vec![think(100)])];
    let out = go(plan(vec![hold, down], flow, Duration::from_secs(30))).await;
    let agg = &out.metrics.aggregate;
    assert_eq!(counter(agg, "vusers.created"), 10);
    assert_eq!(counter(agg, "vusers.completed"), 10);
    assert_eq!(out.vusers_cancelled, 0);
    // Retired during the ramp down, not by the end of the run: no graceful wait needed.
    assert!(
        out.duration < Duration::from_millis(2100),
        "{:?}",
        out.duration
    );
    let down_phase = out.metrics.phases.get(1).map(|p| &p.summary);
    assert_eq!(
        down_phase
            .and_then(|s| s.gauges.get("vusers.active"))
            .map(|g| g.last),
        Some(0)
    );
}

#[tokio::test(start_paused = true)]
async fn open_model_vusers_finish_their_flow_after_the_last_phase() {
    let shape = PhaseShape::ArrivalCount {
        duration: Duration::from_millis(100),
        count: 2,
    };
    let out = go(plan(
        vec![shape],
        vec![think(3000)],
        Duration::from_secs(30),
    ))
    .await;
    let agg = &out.metrics.aggregate;
    assert_eq!(counter(agg, "vusers.completed"), 2);
    assert_eq!(out.vusers_cancelled, 0);
    assert!(out.duration >= Duration::from_millis(3050));
}

#[tokio::test(start_paused = true)]
async fn the_graceful_stop_ends_by_cancelling_and_counting() {
    let shape = PhaseShape::ArrivalCount {
        duration: Duration::from_millis(100),
        count: 3,
    };
    let out = go(plan(
        vec![shape],
        vec![think(60_000)],
        Duration::from_secs(1),
    ))
    .await;
    let agg = &out.metrics.aggregate;
    assert_eq!(out.vusers_cancelled, 3);
    assert_eq!(counter(agg, "vusers.cancelled"), 3);
    assert_eq!(counter(agg, "vusers.completed"), 0);
    assert_eq!(agg.gauges.get("vusers.active").map(|g| g.last), Some(0));
    assert!(
        out.duration < Duration::from_millis(1200),
        "{:?}",
        out.duration
    );
}

#[tokio::test(start_paused = true)]
async fn think_ranges_are_respected() {
    // Six thinks of 100..200 ms each: between 0.6 s and 1.2 s on the paused clock.
    let flow = vec![Step::Loop {
        steps: vec![Step::Think(Think {
            min: Duration::from_millis(100),
            max: Duration::from_millis(200),
        })],
        bound: LoopBound::Count(6),
    }];
    let shape = PhaseShape::ArrivalCount {
        duration: Duration::from_millis(10),
        count: 1,
    };
    let out = go(plan(vec![shape], flow, Duration::from_secs(30))).await;
    assert!(
        out.duration >= Duration::from_millis(600),
        "{:?}",
        out.duration
    );
    assert!(
        out.duration <= Duration::from_millis(1210),
        "{:?}",
        out.duration
    );
}

#[tokio::test(start_paused = true)]
async fn thinks_pace_the_loop_and_count_iterations() {
    // 10 iterations of a 100 ms think: exactly one second on the paused clock.
    let flow = vec![Step::Loop {
        steps: vec![think(100)],
        bound: LoopBound::Count(10),
    }];
    let shape = PhaseShape::ArrivalCount {
        duration: Duration::from_millis(10),
        count: 1,
    };
    let out = go(plan(vec![shape], flow, Duration::from_secs(30))).await;
    assert!(out.duration >= Duration::from_secs(1));
    assert!(
        out.duration < Duration::from_millis(1020),
        "{:?}",
        out.duration
    );
}

#[tokio::test(start_paused = true)]
async fn log_steps_go_to_the_log_callback_with_the_vuser_id() {
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let options = RunOptions {
        on_log: Some(Arc::new(move |line: &str| {
            if let Ok(mut lines) = sink.lock() {
                lines.push(line.to_owned());
            }
        })),
        ..RunOptions::default()
    };
    let shape = PhaseShape::ArrivalCount {
        duration: Duration::from_millis(10),
        count: 1,
    };
    let flow = vec![Step::Log(Text::Literal("hello".into()))];
    let plan = plan(vec![shape], flow, Duration::from_secs(1));
    let outcome = run(Arc::new(plan), "127.0.0.1:1", options).await;
    assert!(outcome.is_ok());
    let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(lines, vec!["[vu 0] hello".to_owned()]);
}

/// The sorted `log` lines and per-scenario `vusers.created` of a run with `seed`: Poisson
/// arrivals, two weighted scenarios, a variable and a `random` payload picked per vuser, think
/// ranges with jitter and template functions, each line stamped with its run-clock time.
async fn seeded_run(seed: u64) -> (Vec<String>, Vec<(String, u64)>) {
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let options = RunOptions {
        on_log: Some(Arc::new(move |line: &str| {
            if let Ok(mut lines) = sink.lock() {
                lines.push(line.to_owned());
            }
        })),
        seed: Some(seed),
        ..RunOptions::default()
    };
    let poisson = PhaseShape::Arrivals {
        duration: Duration::from_secs(5),
        rate_per_sec: 4.0,
        ramp_to_per_sec: Some(12.0),
        max_vusers: None,
        distribution: Arrivals::Poisson,
    };
    let mut env = minijinja::Environment::new();
    register_functions(&mut env);
    let mut log = |id: &str, source: &str| {
        let _ = env.add_template_owned(id.to_owned(), source.to_owned());
        Step::Log(Text::Template(TemplateId(id.to_owned())))
    };
    // `stamp()` carries the vuser id and the run-clock time (the run id is cut out below).
    let line = "{{ vu.scenario }} {{ random_int(1, 1000000) }} {{ words(2) }} {{ uuid() }} \
                {{ room }} {{ name }} {{ stamp() }}";
    let flow = |log: &mut dyn FnMut(&str, &str) -> Step, name: &str| {
        vec![
            log(&format!("{name}1"), line),
            Step::Think(Think {
                min: Duration::from_secs(1),
                max: Duration::from_secs(3),
            }),
            log(&format!("{name}2"), line),
        ]
    };
    let chat = flow(&mut log, "chat");
    let lurk = flow(&mut log, "lurk");
    let mut plan = plan(vec![poisson], Vec::new(), Duration::from_secs(10));
    plan.defaults.think_jitter = 0.2;
    plan.scenarios = vec![
        Scenario {
            name: "chat".into(),
            weight: 3,
            target: None,
            flow: chat,
            handlers: Vec::new(),
            allocation: Default::default(),
        },
        Scenario {
            name: "lurk".into(),
            weight: 1,
            target: None,
            flow: lurk,
            handlers: Vec::new(),
            allocation: Default::default(),
        },
    ];
    plan.variables = vec![Variable {
        name: "room".into(),
        values: vec!["lobby".into(), "games".into(), "music".into()],
    }];
    plan.payloads = vec![Payload {
        path: PathBuf::from("users.csv"),
        fields: vec!["name".into()],
        order: PayloadOrder::Random,
        load_all_as: None,
        rows: Arc::new((0..100).map(|i| vec![format!("user{i}")]).collect()),
    }];
    plan.templates = Templates { env };
    let outcome = match run(Arc::new(plan), "127.0.0.1:1", options).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("run failed to start: {e}"),
    };
    assert_eq!(outcome.seed, seed);
    assert!(
        outcome.error_samples.is_empty(),
        "{:?}",
        outcome.error_samples
    );
    // The run id is fresh per run by design (a replayed seed must not count an earlier run's
    // messages as deliveries), and stamps carry the wall clock: both are cut out, the send
    // time is kept relative to the run's start.
    let token = stamp::token(&outcome.run_id);
    let wall_start_us = crate::metrics::epoch_us(outcome.started_at);
    let relative = |line: &str| -> String {
        let mut out = line.to_owned();
        for found in stamp::scan(line.as_bytes(), &token) {
            let written = stamp::format(&token, found.sender, found.sent_us);
            let kept = stamp::format("RUN", found.sender, found.sent_us - wall_start_us);
            out = out.replace(&written, &kept);
        }
        out
    };
    let mut lines: Vec<String> = lines
        .lock()
        .map(|l| l.iter().map(|l| relative(l)).collect())
        .unwrap_or_default();
    lines.sort();
    let created = outcome
        .metrics
        .scenarios
        .iter()
        .map(|s| (s.name.clone(), counter_of(&s.counters, "vusers.created")))
        .collect();
    (lines, created)
}

fn counter_of(counters: &std::collections::BTreeMap<String, u64>, name: &str) -> u64 {
    counters.get(name).copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_replays_arrivals_picks_thinks_and_template_functions() {
    let (lines, created) = seeded_run(20240506).await;
    // Two lines per vuser, about ∫ (4 → 12/s) over 5 s = 40 vusers, both scenarios used.
    assert!(lines.len() > 40, "{} lines", lines.len());
    assert!(created.iter().all(|(_, n)| *n > 0), "{created:?}");
    assert_eq!(
        created.iter().map(|(_, n)| n).sum::<u64>() * 2,
        lines.len() as u64
    );
    let (again, created_again) = seeded_run(20240506).await;
    assert_eq!(created, created_again);
    assert_eq!(lines, again);
    let (other, _) = seeded_run(20240507).await;
    assert_ne!(lines, other);
}

/// The end-of-run race: a reader of the results so far (the dashboard, `stats`) upgraded its
/// handle on the intervals just before the run detached it, and still holds it when the run
/// takes the intervals back. The run must wait for it, not fail with "internal error: the
/// interval timer outlived the run". Deterministic: the reader lets go 5 ms (paused clock)
/// after it sees the run detach, so it always holds the handle at the moment the run ends.
#[tokio::test(start_paused = true)]
async fn a_reader_holding_the_intervals_as_the_run_ends_is_waited_for() {
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::engine::load::RunControl;

    let control = RunControl::new();
    let reading = Arc::new(AtomicBool::new(false));
    let released = Arc::new(AtomicBool::new(false));
    let on_progress: crate::engine::ProgressFn = {
        let control = control.clone();
        let reading = Arc::clone(&reading);
        let released = Arc::clone(&released);
        Arc::new(move |_: &crate::engine::Progress| {
            if reading.swap(true, Ordering::SeqCst) {
                return;
            }
            let Some(held) = control.intervals_handle() else {
                return;
            };
            let control = control.clone();
            let released = Arc::clone(&released);
            tokio::spawn(async move {
                // Still attached: the run has not reached its end yet.
                while control.intervals_handle().is_some() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(held);
                released.store(true, Ordering::SeqCst);
            });
        })
    };
    let shape = PhaseShape::ArrivalCount {
        duration: Duration::from_millis(100),
        count: 2,
    };
    let options = RunOptions {
        control: Some(control),
        on_progress: Some(on_progress),
        ..RunOptions::default()
    };
    let plan = plan(vec![shape], vec![think(1500)], Duration::from_secs(5));
    let outcome = run(Arc::new(plan), "127.0.0.1:1", options).await;
    assert!(
        reading.load(Ordering::SeqCst),
        "the reader never got the intervals"
    );
    match outcome {
        Ok(out) => assert_eq!(counter(&out.metrics.aggregate, "vusers.completed"), 2),
        Err(e) => panic!("the run failed at its end: {e}"),
    }
    assert!(released.load(Ordering::SeqCst));
}

/// A long run on the paused clock keeps only a bounded window of its interval history in
/// memory, and its result still has every interval.
#[tokio::test(start_paused = true)]
async fn a_long_run_holds_a_bounded_interval_history_and_keeps_every_interval() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let most_held = Arc::new(AtomicUsize::new(0));
    let cuts = Arc::new(AtomicUsize::new(0));
    let on_progress: crate::engine::ProgressFn = {
        let most_held = Arc::clone(&most_held);
        let cuts = Arc::clone(&cuts);
        Arc::new(move |p: &crate::engine::Progress| {
            most_held.fetch_max(p.intervals_in_memory, Ordering::SeqCst);
            cuts.fetch_add(1, Ordering::SeqCst);
        })
    };
    let minutes = 20;
    let shape = PhaseShape::Concurrency {
        duration: Duration::from_secs(60 * minutes),
        vusers: 2,
        ramp_to: None,
        curve: Curve::Linear,
        steps: None,
    };
    let options = RunOptions {
        on_progress: Some(on_progress),
        ..RunOptions::default()
    };
    let flow = vec![forever(vec![think(250)])];
    let plan = plan(vec![shape], flow, Duration::from_secs(1));
    let out = match run(Arc::new(plan), "127.0.0.1:1", options).await {
        Ok(out) => out,
        Err(e) => panic!("run failed: {e}"),
    };
    let intervals = out.metrics.intermediate.len();
    assert!(intervals >= 60 * minutes as usize, "{intervals} intervals");
    assert_eq!(intervals, cuts.load(Ordering::SeqCst));
    assert_eq!(
        most_held.load(Ordering::SeqCst),
        crate::metrics::SPILL_WINDOW
    );
    // Every interval is there, in order, with what it counted.
    assert!(
        out.metrics
            .intermediate
            .windows(2)
            .all(|w| w[0].end_ms <= w[1].start_ms)
    );
    let iterations: u64 = out
        .metrics
        .intermediate
        .iter()
        .map(|p| counter(p, "vusers.created") + counter(p, "vusers.completed"))
        .sum();
    assert_eq!(
        iterations,
        counter(&out.metrics.aggregate, "vusers.created")
            + counter(&out.metrics.aggregate, "vusers.completed")
    );
}
