//! Unit tests of recording, snapshots, aggregation and serialization.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::vocab::{Stat, names};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

#[test]
fn concurrent_recording_loses_no_sample() {
    let mut reg = Registry::new();
    let hist = reg.histogram("latency.chat");
    let sent = reg.counter("messages.sent");
    let collector = Arc::new(Collector::with_start(reg, t(0)));
    let threads = 8u64;
    let per_thread = 20_000u64;
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let rec = collector.recorder();
            std::thread::spawn(move || {
                for j in 0..per_thread {
                    rec.record_us(hist, 1_000 + (i * per_thread + j) % 5_000);
                    rec.incr(sent);
                }
            })
        })
        .collect();
    // Cut intervals while the threads record: nothing may fall between two cuts.
    let mut agg = Aggregator::new();
    let mut secs = 0;
    while !handles.iter().all(|h| h.is_finished()) {
        secs += 1;
        agg.push(collector.snapshot_at(t(secs)));
    }
    for h in handles {
        h.join().unwrap();
    }
    agg.push(collector.snapshot_at(t(secs + 1)));
    let total = agg.total().unwrap();
    assert_eq!(total.counter("messages.sent"), threads * per_thread);
    assert_eq!(total.histograms["latency.chat"].len(), threads * per_thread);
    let sum_of_intervals: u64 = agg
        .intervals()
        .recent()
        .map(|p| p.counters["messages.sent"])
        .sum();
    assert_eq!(sum_of_intervals, threads * per_thread);
}

#[test]
fn snapshot_resets_the_interval_but_the_aggregate_keeps_everything() {
    let mut reg = Registry::new().with_standard_metrics();
    let connect = reg.histogram(names::CONNECT);
    let sent = reg.counter(names::MESSAGES_SENT);
    let collector = Collector::with_start(reg, t(0));
    let rec = collector.recorder();
    let mut agg = Aggregator::new();

    rec.add(sent, 10);
    rec.record_us(connect, 2_000);
    let first = agg.push(collector.snapshot_at(t(2))).unwrap().clone();
    assert_eq!(first.counters["messages.sent"], 10);
    assert_eq!(first.rates["messages.sent"], 5.0);
    assert_eq!(first.summaries["connect"].count, 1);

    rec.add(sent, 3);
    let second = agg.push(collector.snapshot_at(t(3))).unwrap().clone();
    assert_eq!(
        second.counters["messages.sent"], 3,
        "the second interval starts from zero"
    );
    assert!(
        !second.summaries.contains_key("connect"),
        "no connect in the second interval"
    );
    assert_eq!(second.start_ms, first.end_ms);
    // Registered but idle counters are reported as zeros.
    assert_eq!(second.counters["errors.timeout"], 0);

    let run = agg.finish().unwrap();
    assert_eq!(run.aggregate.counters["messages.sent"], 13);
    assert_eq!(run.aggregate.summaries["connect"].count, 1);
    assert_eq!(run.aggregate.end_ms - run.aggregate.start_ms, 3_000);
    assert!((run.aggregate.rates["messages.sent"] - 13.0 / 3.0).abs() < 1e-3);
    assert_eq!(run.intermediate.len(), 2);
}

#[test]
fn percentiles_in_milliseconds_on_known_data() {
    let mut h = new_histogram();
    // 1 ms, 2 ms, ..., 1000 ms.
    for ms in 1..=1000u64 {
        h.record(ms * 1_000).unwrap();
    }
    let s = Summary::from_histogram(&h);
    let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 1e-9;
    assert_eq!(s.count, 1000);
    assert!(close(s.min, 1.0), "min {}", s.min);
    assert!(close(s.max, 1000.0), "max {}", s.max);
    assert!(close(s.mean, 500.5), "mean {}", s.mean);
    assert!(close(s.p50, 500.0), "p50 {}", s.p50);
    assert_eq!(s.median, s.p50);
    assert!(close(s.p75, 750.0), "p75 {}", s.p75);
    assert!(close(s.p90, 900.0), "p90 {}", s.p90);
    assert!(close(s.p95, 950.0), "p95 {}", s.p95);
    assert!(close(s.p99, 990.0), "p99 {}", s.p99);
    assert!(close(s.p999, 999.0), "p999 {}", s.p999);
}

#[test]
fn serialized_histograms_merge_to_the_original() {
    let mut a = new_histogram();
    let mut b = new_histogram();
    let mut both = new_histogram();
    for v in 0..5_000u64 {
        let x = (v * 7919) % 2_000_000 + 1;
        if v % 2 == 0 {
            a.record(x).unwrap()
        } else {
            b.record(x).unwrap()
        }
        both.record(x).unwrap();
    }
    let mut merged = decode_histogram(&encode_histogram(&a).unwrap()).unwrap();
    merged
        .add(decode_histogram(&encode_histogram(&b).unwrap()).unwrap())
        .unwrap();
    assert_eq!(merged, both);
    assert_eq!(
        Summary::from_histogram(&merged),
        Summary::from_histogram(&both)
    );
}

#[test]
fn decoding_garbage_is_a_typed_error() {
    assert!(matches!(
        decode_histogram("%%%"),
        Err(MetricsError::HistogramDecode(_))
    ));
    assert!(matches!(
        decode_histogram("aGVsbG8="),
        Err(MetricsError::HistogramDecode(_))
    ));
}

#[test]
fn scenario_metrics_roll_up_into_run_wide_totals() {
    let mut reg = Registry::new();
    let chat = reg.scenario("chatter", 3);
    let lurk = reg.scenario("lurker", 1);
    let chat_created = reg.scenario_counter(chat, names::VUSERS_CREATED);
    let lurk_created = reg.scenario_counter(lurk, names::VUSERS_CREATED);
    let chat_login = reg.scenario_histogram(chat, "latency.login");
    let lurk_login = reg.scenario_histogram(lurk, "latency.login");
    let collector = Collector::with_start(reg, t(0));
    let rec = collector.recorder();
    rec.add(chat_created, 3);
    rec.add(lurk_created, 1);
    rec.record_us(chat_login, 10_000);
    rec.record_us(chat_login, 20_000);
    rec.record_us(lurk_login, 30_000);

    let mut agg = Aggregator::new();
    agg.push(collector.snapshot_at(t(1)));
    let run = agg.finish().unwrap();
    assert_eq!(run.aggregate.counters["vusers.created"], 4);
    assert_eq!(run.aggregate.summaries["latency.login"].count, 3);
    let chatter = run.scenarios.iter().find(|s| s.name == "chatter").unwrap();
    assert_eq!(chatter.weight, 3);
    assert_eq!(chatter.counters["vusers.created"], 3);
    assert_eq!(chatter.summaries["latency.login"].count, 2);
    let lurker = run.scenarios.iter().find(|s| s.name == "lurker").unwrap();
    assert!((lurker.summaries["latency.login"].max - 30.0).abs() <= 0.03);
}

#[test]
fn phases_split_exactly_at_their_boundaries() {
    let mut reg = Registry::new();
    let sent = reg.counter(names::MESSAGES_SENT);
    let collector = Collector::with_start(reg, t(0));
    let rec = collector.recorder();
    let mut agg = Aggregator::new();

    assert!(
        agg.push(collector.begin_phase_at(0, "warm up", t(0)))
            .is_none(),
        "empty sliver"
    );
    rec.add(sent, 5);
    agg.push(collector.snapshot_at(t(1)));
    rec.add(sent, 2);
    agg.push(collector.begin_phase_at(1, "hold", t(1) + Duration::from_millis(500)));
    rec.add(sent, 7);
    agg.push(collector.end_phase_at(t(3)));
    rec.add(sent, 1);
    agg.push(collector.snapshot_at(t(4)));

    let run = agg.finish().unwrap();
    assert_eq!(run.phases.len(), 2);
    let warm = &run.phases[0];
    assert_eq!(
        (warm.name.as_str(), warm.start_offset_ms, warm.end_offset_ms),
        ("warm up", 0, 1_500)
    );
    assert_eq!(warm.summary.counters["messages.sent"], 7);
    let hold = &run.phases[1];
    assert_eq!(
        (hold.index, hold.start_offset_ms, hold.end_offset_ms),
        (1, 1_500, 3_000)
    );
    assert_eq!(hold.summary.counters["messages.sent"], 7);
    assert_eq!(
        run.aggregate.counters["messages.sent"], 15,
        "the graceful stop counts too"
    );
    assert_eq!(run.intermediate.last().unwrap().phase, None);
    assert_eq!(run.intermediate[0].phase.as_deref(), Some("warm up"));
}

#[test]
fn gauges_are_levels_across_threads_and_exited_threads() {
    let mut reg = Registry::new();
    let active = reg.gauge(names::VUSERS_ACTIVE);
    let collector = Collector::with_start(reg, t(0));
    let rec = collector.recorder();
    // Up on one thread (which then exits), down on another.
    let up = rec.clone();
    std::thread::spawn(move || up.gauge_add(active, 10))
        .join()
        .unwrap();
    let mut agg = Aggregator::new();
    agg.push(collector.snapshot_at(t(1)));
    rec.gauge_add(active, -4);
    let second = agg.push(collector.snapshot_at(t(2))).unwrap().clone();
    assert_eq!(second.gauges["vusers.active"].last, 6);
    rec.gauge_set(active, 2);
    agg.push(collector.snapshot_at(t(3)));
    let run = agg.finish().unwrap();
    assert_eq!(
        run.aggregate.gauges["vusers.active"],
        GaugeSummary { last: 2, max: 10 }
    );
}

#[test]
fn out_of_range_samples_are_clamped_and_counted() {
    let mut reg = Registry::new();
    let h = reg.histogram("latency.x");
    let collector = Collector::with_start(reg, t(0));
    let rec = collector.recorder();
    rec.record_us(h, u64::MAX);
    rec.record_us(h, 5);
    let snap = collector.snapshot_at(t(1));
    assert_eq!(snap.counter(names::CLAMPED), 1);
    let s = snap.summary();
    assert_eq!(s.summaries["latency.x"].count, 2);
    let max_ms = HISTOGRAM_MAX_US as f64 / 1000.0;
    assert!((s.summaries["latency.x"].max - max_ms).abs() <= max_ms * 0.001);
}

#[test]
fn names_can_be_registered_during_the_run() {
    let collector = Collector::with_start(Registry::new(), t(0));
    let rec = collector.recorder();
    let weird = rec.counter("errors.weird");
    assert_eq!(
        rec.counter("errors.weird"),
        weird,
        "registration is idempotent"
    );
    rec.incr(weird);
    assert_eq!(collector.snapshot_at(t(1)).counter("errors.weird"), 1);
}

#[test]
fn stat_lookup_covers_every_kind() {
    let mut reg = Registry::new().with_standard_metrics();
    let sent = reg.counter(names::MESSAGES_SENT);
    let created = reg.counter(names::VUSERS_CREATED);
    let timeout = reg.counter(&names::error(crate::vocab::ErrorKind::Timeout));
    let chat = reg.histogram("latency.chat");
    let active = reg.gauge(names::VUSERS_ACTIVE);
    let collector = Collector::with_start(reg, t(0));
    let rec = collector.recorder();
    rec.add(sent, 190);
    rec.add(created, 10);
    rec.add(timeout, 4);
    rec.gauge_add(active, 7);
    for ms in 1..=100u64 {
        rec.record_us(chat, ms * 1_000);
    }
    let s = collector.snapshot_at(t(10)).summary();
    let close =
        |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() <= want * 0.001 + 1e-9);
    assert!(close(s.stat("latency.chat", Stat::P95), 95.0));
    assert!(close(s.stat("latency.chat", Stat::Mean), 50.5));
    assert!(close(s.stat("latency.chat", Stat::Count), 100.0));
    assert!(close(s.stat("latency.chat", Stat::Rate), 10.0));
    assert!(close(s.stat("messages.sent", Stat::Rate), 19.0));
    assert!(close(s.stat("messages.sent", Stat::Count), 190.0));
    assert_eq!(s.stat("messages.sent", Stat::P95), None);
    assert!(
        close(s.stat("errors", Stat::Rate), 2.0),
        "4 errors / (190 sent + 10 vusers) = 2%"
    );
    assert!(close(s.stat("errors", Stat::Count), 4.0));
    assert!(close(s.stat("vusers.active", Stat::Max), 7.0));
    assert_eq!(s.stat("latency.nope", Stat::P95), None);
}

#[test]
fn stat_names_parse_and_split() {
    for stat in Stat::ALL {
        assert_eq!(Stat::parse(stat.as_str()), Some(stat));
    }
    assert_eq!(Stat::parse("median"), Some(Stat::P50));
    assert_eq!(
        Stat::split("latency.chat.p95"),
        Some(("latency.chat", Stat::P95))
    );
    assert_eq!(Stat::split("errors.rate"), Some(("errors", Stat::Rate)));
    assert_eq!(Stat::split("p95"), None);
    assert_eq!(Stat::split("latency.chat.p42"), None);
}

#[test]
fn windows_merge_histograms_rather_than_average_percentiles() {
    let mut reg = Registry::new();
    let chat = reg.histogram("latency.chat");
    let collector = Collector::with_start(reg, t(0));
    let rec = collector.recorder();
    let mut window = Window::new(Duration::from_secs(2));
    // Second 1: 99 fast samples; second 2: one very slow sample.
    for _ in 0..99 {
        rec.record_us(chat, 1_000);
    }
    assert!(window.push(&collector.snapshot_at(t(1))).is_none());
    rec.record_us(chat, 1_000_000);
    let w = window.push(&collector.snapshot_at(t(2))).unwrap();
    assert_eq!(w.summaries["latency.chat"].count, 100);
    assert!(
        w.stat("latency.chat", Stat::P99).unwrap() < 2.0,
        "p99 of the window is fast"
    );
    assert!(w.stat("latency.chat", Stat::Max).unwrap() > 999.0);
    rec.record_us(chat, 5_000);
    let partial = {
        window.push(&collector.snapshot_at(t(3)));
        window.finish().unwrap()
    };
    assert_eq!(partial.summaries["latency.chat"].count, 1);
    assert!(window.finish().is_none());
}

#[test]
fn add_many_counts_each_counter() {
    let mut reg = Registry::new().with_standard_metrics();
    let sent = reg.counter(names::MESSAGES_SENT);
    let bytes = reg.counter(names::BYTES_SENT);
    let collector = Collector::with_start(reg, t(0));
    let rec = collector.recorder();
    let mut agg = Aggregator::new();
    rec.add_many(&[(sent, 1), (bytes, 7)]);
    rec.add_many(&[(sent, 1), (bytes, 5)]);
    let period = agg.push(collector.snapshot_at(t(1))).unwrap().clone();
    assert_eq!(period.counters["messages.sent"], 2);
    assert_eq!(period.counters["bytes.sent"], 12);
}
