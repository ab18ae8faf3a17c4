//! A synthetic but realistic run recorded through the public metrics API: four phases, two
//! scenarios, two expect latencies, delivery, connect, schedule lag, errors, gauges, monitor
//! samples and thresholds. Shared by the report tests and the render benchmark
//! (`benches/report.rs` includes this file).

use std::time::{Duration, SystemTime};

use chatload::engine::thresholds::ThresholdEvaluator;
use chatload::metrics::{Aggregator, Collector, Registry};
use chatload::plan::{CompareOp, Condition, Ensure, Expr};
use chatload::report::{MonitorSample, ObservedValue, RunInfo, RunResult, ThresholdResult};
use chatload::vocab::names;
use chatload::vocab::{ErrorKind, Stat};

const START_MS: u64 = 1_700_000_000_000;

fn at(offset_ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(START_MS + offset_ms)
}

/// Deterministic pseudo-random numbers in [0, 1) (xorshift; no dependency, no flakiness).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `intervals` one-second intervals; `samples` latency samples per metric per interval.
/// `latency_scale` multiplies every latency (to make a slower "new" run for compare tests).
pub fn synthetic_result(intervals: u64, samples: u64, latency_scale: f64) -> RunResult {
    let mut reg = Registry::new().with_standard_metrics();
    let chatter = reg.scenario("chatter", 3);
    let lurker = reg.scenario("lurker", 1);
    let created = [
        reg.scenario_counter(chatter, names::VUSERS_CREATED),
        reg.scenario_counter(lurker, names::VUSERS_CREATED),
    ];
    let sent = reg.scenario_counter(chatter, names::MESSAGES_SENT);
    let received = reg.scenario_counter(lurker, names::MESSAGES_RECEIVED);
    let chat = reg.scenario_histogram(chatter, &names::latency("chat"));
    let login = reg.scenario_histogram(chatter, &names::latency("login"));
    let delivery = reg.scenario_histogram(lurker, names::DELIVERY);
    let connect = reg.histogram(names::CONNECT);
    let lag = reg.histogram(names::SCHEDULE_LAG);
    let active = reg.gauge(names::VUSERS_ACTIVE);
    let open = reg.gauge(names::CONNECTIONS_OPEN);
    let timeout = reg.counter(&names::error(ErrorKind::Timeout));
    let closed = reg.counter(&names::error(ErrorKind::Closed));
    let collector = Collector::with_start(reg, at(0));
    let rec = collector.recorder();
    let mut agg = Aggregator::new();
    let ensure = Ensure {
        conditions: vec![
            Condition {
                source: "latency.chat.p95 < 200ms".into(),
                expr: Expr::Compare {
                    metric: "latency.chat".into(),
                    stat: Stat::P95,
                    op: CompareOp::Lt,
                    value: 200.0,
                },
                strict: true,
                window: None,
            },
            Condition {
                source: "latency.chat.p99 < 250ms".into(),
                expr: Expr::Compare {
                    metric: "latency.chat".into(),
                    stat: Stat::P99,
                    op: CompareOp::Lt,
                    value: 250.0,
                },
                strict: true,
                window: Some(Duration::from_secs(30)),
            },
        ],
        max_error_rate_percent: Some(1.0),
        abort_on_fail: false,
    };
    let mut evaluator = ThresholdEvaluator::new(&ensure, at(0));

    let phases = [
        ("warm up", 0.0),
        ("ramp", 0.05),
        ("hold", 0.3),
        ("ramp down", 0.9),
    ];
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut phase = 0usize;
    let mut level = 0i64;
    let total = intervals as f64;
    let push = |snap, agg: &mut Aggregator, ev: &mut ThresholdEvaluator| {
        ev.push_interval(&snap);
        agg.push(snap);
    };
    for second in 0..intervals {
        let progress = second as f64 / total;
        while phases
            .get(phase)
            .is_some_and(|(_, starts)| progress >= *starts)
        {
            if let Some((name, _)) = phases.get(phase) {
                push(
                    collector.begin_phase_at(phase, name, at(second * 1000)),
                    &mut agg,
                    &mut evaluator,
                );
            }
            phase += 1;
        }
        let target = if progress < 0.3 {
            (progress / 0.3 * 500.0) as i64
        } else if progress < 0.9 {
            500
        } else {
            ((1.0 - progress) / 0.1 * 500.0) as i64
        };
        let arrivals = (target - level).max(0) as u64;
        for i in 0..arrivals {
            rec.incr(created[(i % 4 == 0) as usize]);
            rec.record_us(connect, 300 + (noise.next() * 900.0) as u64);
        }
        rec.gauge_add(active, target - level);
        rec.gauge_add(open, target - level);
        level = target;
        // A stall between 60 % and 61 % of the run: slow replies and timeouts.
        let stall = (0.6..0.61).contains(&progress);
        let slow = if stall { 40.0 } else { 1.0 } * latency_scale;
        for _ in 0..samples {
            let base = 6_000.0 + 4_000.0 * progress + noise.next().powi(4) * 60_000.0;
            rec.record_us(chat, (base * slow) as u64);
            rec.record_us(login, (base * 0.5 * slow) as u64);
            rec.record_us(delivery, (base * 1.4 * slow) as u64);
            rec.record_us(lag, (noise.next() * 800.0) as u64);
        }
        rec.add(
            sent,
            (level as f64 * 0.5 * latency_scale.recip()) as u64 + samples,
        );
        rec.add(received, (level as f64 * 4.0) as u64 + samples);
        if stall {
            rec.add(timeout, 5);
        }
        if noise.next() < 0.02 {
            rec.incr(closed);
        }
        push(
            collector.snapshot_at(at((second + 1) * 1000)),
            &mut agg,
            &mut evaluator,
        );
    }
    let end = intervals * 1000 + 400;
    push(collector.end_phase_at(at(end)), &mut agg, &mut evaluator);
    let metrics = agg.finish().expect("histograms encode");
    let outcomes = evaluator.finish(&metrics.aggregate);

    let mut info = RunInfo::new("chat-basic", "127.0.0.1:9200", at(0), at(end));
    info.plan_path = Some("plans/basic.yml".into());
    let plan = serde_json::json!({
        "config": {
            "target": "embedded",
            "phases": [{"name": "warm up", "duration": "3m", "arrivalRate": 2}],
            "ensure": {"thresholds": [{"latency.chat.p95": 200}], "maxErrorRate": 1},
        },
        "scenarios": [{"name": "chatter", "weight": 3, "flow": ["connect", {"send": "LOGIN {{ name }}"}]}],
    });
    let mut result = RunResult::new(info, metrics, plan);
    result.thresholds = outcomes
        .into_iter()
        .map(|o| ThresholdResult {
            expression: o.expression,
            window_ms: o.window.map(|w| w.as_millis() as u64),
            observed: o
                .observed
                .into_iter()
                .map(|v| ObservedValue {
                    metric: v.metric,
                    value: v.value,
                    unit: v.unit.into(),
                })
                .collect(),
            passed: o.passed,
            strict: o.strict,
            windows_evaluated: o.windows_evaluated,
            windows_failed: o.windows_failed,
            first_failure_offset_ms: o.first_failure_offset.map(|d| d.as_millis() as u64),
        })
        .collect();
    result.run.exit_code = if result.thresholds_passed() { 0 } else { 1 };
    result.monitor = (0..intervals)
        .step_by(2)
        .map(|s| {
            let progress = s as f64 / total;
            MonitorSample {
                unix_time_ms: START_MS + s * 1000,
                elapsed_ms: s * 1000,
                process_count: 1,
                process_cpu_percent: 20.0 + 60.0 * progress.min(0.9) + noise.next() * 8.0,
                process_rss_bytes: 40_000_000 + (progress * 80_000_000.0) as u64,
                process_threads: Some(8),
                host_cpu_percent: 15.0 + 30.0 * progress.min(0.9),
                host_memory_used_bytes: 4_000_000_000,
                host_memory_total_bytes: 16_000_000_000,
                net_received_bytes: 100_000,
                net_transmitted_bytes: 120_000,
                net_received_total_bytes: 9_000_000 + s * 100_000,
                net_transmitted_total_bytes: 11_000_000 + s * 120_000,
                tcp_established: Some(500),
            }
        })
        .collect();
    result
}

/// `synthetic_result(120, ...)` stretched to `intervals` one-second intervals by repeating its
/// history (what the HTML and history.csv read), so a 1-hour result is cheap to build in a
/// debug test. Aggregate, phases and histograms stay those of the short run.
pub fn hour_long_result(intervals: u64, samples: u64) -> RunResult {
    let mut result = synthetic_result(120, samples, 1.0);
    let pattern = std::mem::take(&mut result.intermediate);
    let span_ms = intervals * 1000;
    result.intermediate = (0..intervals)
        .filter_map(|i| {
            let mut p = pattern.get((i as usize) % pattern.len().max(1))?.clone();
            p.start_ms = START_MS + i * 1000;
            p.end_ms = p.start_ms + 1000;
            Some(p)
        })
        .collect();
    let stretch = |ms: u64| ms * intervals / 120;
    for phase in &mut result.phases {
        phase.start_offset_ms = stretch(phase.start_offset_ms);
        phase.end_offset_ms = stretch(phase.end_offset_ms);
    }
    result.monitor = (0..intervals)
        .map(|i| {
            let mut m = result
                .monitor
                .get((i as usize / 2) % result.monitor.len().max(1))
                .cloned()
                .unwrap_or_default();
            m.unix_time_ms = START_MS + i * 1000;
            m.elapsed_ms = i * 1000;
            m
        })
        .collect();
    result.run.ended_at_ms = START_MS + span_ms;
    result.run.duration_ms = span_ms;
    result.run.ended_at = chatload::report::format_rfc3339_ms(START_MS + span_ms);
    result.aggregate.end_ms = START_MS + span_ms;
    result
}
