//! Threshold evaluation on synthetic interval data.

use std::time::{Duration, SystemTime};

use super::*;
use crate::metrics::{GaugeLevel, new_histogram};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// One second `[secs, secs+1)`: 100 sends, `latencies_ms` recorded as `latency.chat`,
/// `errors` timeouts, 50 vusers active.
fn interval(secs: u64, latencies_ms: &[u64], errors: u64) -> IntervalSnapshot {
    let mut s = IntervalSnapshot::empty(at(secs), at(secs + 1));
    s.counters.insert("messages.sent".into(), 100);
    s.counters.insert("vusers.created".into(), 0);
    s.counters.insert("errors.timeout".into(), errors);
    s.gauges.insert(
        "vusers.active".into(),
        GaugeLevel {
            last: 50,
            max: 50 + i64::try_from(secs).unwrap_or(0),
        },
    );
    if !latencies_ms.is_empty() {
        let mut h = new_histogram();
        for &ms in latencies_ms {
            h.record(ms * 1000).ok();
        }
        s.histograms.insert("latency.chat".into(), h);
    }
    s
}

fn cmp(metric: &str, stat: Stat, op: CompareOp, value: f64) -> Expr {
    Expr::Compare {
        metric: metric.into(),
        stat,
        op,
        value,
    }
}

fn total(intervals: &[IntervalSnapshot]) -> PeriodSummary {
    let mut iter = intervals.iter();
    let mut acc = iter.next().cloned().expect("at least one interval");
    for i in iter {
        acc.merge(i);
    }
    acc.summary()
}

fn one_to_hundred() -> Vec<u64> {
    (1..=100).collect()
}

#[test]
fn every_latency_stat_is_compared_in_ms() {
    let period = interval(0, &one_to_hundred(), 0).summary();
    let cases = [
        (Stat::Min, 1.0),
        (Stat::Max, 100.0),
        (Stat::Mean, 50.5),
        (Stat::P50, 50.0),
        (Stat::P75, 75.0),
        (Stat::P90, 90.0),
        (Stat::P95, 95.0),
        (Stat::P99, 99.0),
        (Stat::P999, 100.0),
        (Stat::Count, 100.0),
        (Stat::Rate, 100.0),
    ];
    for (stat, expected) in cases {
        // HdrHistogram keeps 3 significant digits: bucket edges are within 0.1 %.
        let just_above = expected * 1.002;
        let just_below = expected * 0.998;
        let ok = evaluate(
            &cmp("latency.chat", stat, CompareOp::Lt, just_above),
            &period,
        );
        assert!(ok.passed, "{stat:?} < {just_above}: {ok:?}");
        let ko = evaluate(
            &cmp("latency.chat", stat, CompareOp::Lt, just_below),
            &period,
        );
        assert!(!ko.passed, "{stat:?} < {just_below} should fail: {ko:?}");
        let value = ok.observed.first().and_then(|o| o.value).expect("a value");
        assert!(
            (value - expected).abs() <= expected * 0.002,
            "{stat:?} = {value}"
        );
        let unit = ok.observed.first().map(|o| o.unit).unwrap_or("?");
        let expected_unit = match stat {
            Stat::Count => "",
            Stat::Rate => "/s",
            _ => "ms",
        };
        assert_eq!(unit, expected_unit, "{stat:?}");
    }
}

#[test]
fn error_rate_is_percent_counters_are_per_second_gauges_plain() {
    // 3 errors over 100 sends = 3 %.
    let period = interval(0, &[5], 3).summary();
    let e = evaluate(&cmp("errors", Stat::Rate, CompareOp::Lt, 1.0), &period);
    assert!(!e.passed);
    assert_eq!(
        e.observed.first().map(|o| (o.value, o.unit)),
        Some((Some(3.0), "%"))
    );
    assert!(evaluate(&cmp("errors", Stat::Rate, CompareOp::Le, 3.0), &period).passed);
    assert!(evaluate(&cmp("errors", Stat::Count, CompareOp::Eq, 3.0), &period).passed);

    let sent = evaluate(
        &cmp("messages.sent", Stat::Rate, CompareOp::Ge, 100.0),
        &period,
    );
    assert!(sent.passed);
    assert_eq!(sent.observed.first().map(|o| o.unit), Some("/s"));

    let gauge = evaluate(
        &cmp("vusers.active", Stat::Max, CompareOp::Le, 50.0),
        &period,
    );
    assert!(gauge.passed);
    assert_eq!(gauge.observed.first().map(|o| o.unit), Some(""));
}

#[test]
fn and_or_combine_and_report_every_term() {
    let period = interval(0, &one_to_hundred(), 3).summary();
    let fast = cmp("latency.chat", Stat::P95, CompareOp::Lt, 200.0);
    let slow = cmp("latency.chat", Stat::P95, CompareOp::Lt, 10.0);
    let few_errors = cmp("errors", Stat::Rate, CompareOp::Lt, 1.0);

    let and = Expr::And(Box::new(fast.clone()), Box::new(few_errors.clone()));
    let e = evaluate(&and, &period);
    assert!(!e.passed);
    assert_eq!(e.observed.len(), 2, "both terms reported: {:?}", e.observed);

    let or = Expr::Or(Box::new(fast.clone()), Box::new(few_errors));
    assert!(evaluate(&or, &period).passed);
    let neither = Expr::Or(Box::new(slow.clone()), Box::new(slow));
    let e = evaluate(&neither, &period);
    assert!(!e.passed);
    assert_eq!(e.observed.len(), 1, "a repeated term is reported once");
    assert!(evaluate(&Expr::And(Box::new(fast.clone()), Box::new(fast)), &period).passed);
}

#[test]
fn missing_data_fails_over_the_whole_run() {
    let period = interval(0, &[], 0).summary();
    let e = evaluate(
        &cmp("latency.chat", Stat::P95, CompareOp::Lt, 200.0),
        &period,
    );
    assert!(!e.passed);
    assert_eq!(e.observed.first().map(|o| o.value), Some(None));
}

fn condition(source: &str, expr: Expr, window: Option<Duration>) -> Condition {
    Condition {
        source: source.into(),
        expr,
        strict: true,
        window,
    }
}

/// 60 s at 10 ms, except second 25 where every reply takes 900 ms.
fn spiky_run() -> Vec<IntervalSnapshot> {
    (0..60)
        .map(|s| {
            let ms = if s == 25 { 900 } else { 10 };
            interval(s, &vec![ms; 100], 0)
        })
        .collect()
}

#[test]
fn a_spike_fails_a_windowed_condition_while_the_whole_run_passes() {
    let p95 = cmp("latency.chat", Stat::P95, CompareOp::Lt, 100.0);
    let ensure = Ensure {
        conditions: vec![
            condition("latency.chat.p95 < 100ms", p95.clone(), None),
            condition(
                "latency.chat.p95 < 100ms",
                p95,
                Some(Duration::from_secs(10)),
            ),
        ],
        max_error_rate_percent: Some(1.0),
        abort_on_fail: false,
    };
    let run = spiky_run();
    let mut evaluator = ThresholdEvaluator::new(&ensure, at(0));
    for i in &run {
        assert_eq!(
            evaluator.push_interval(i),
            None,
            "no abort without abortOnFail"
        );
    }
    let outcomes = evaluator.finish(&total(&run));
    assert_eq!(outcomes.len(), 3);
    let [overall, windowed, max_errors] = &outcomes[..] else {
        panic!("three outcomes expected: {outcomes:?}");
    };
    assert!(overall.passed, "{overall:?}");
    assert!(!windowed.passed, "{windowed:?}");
    assert_eq!(windowed.windows_evaluated, Some(6));
    assert_eq!(windowed.windows_failed, Some(1));
    assert_eq!(windowed.window, Some(Duration::from_secs(10)));
    assert_eq!(windowed.first_failure_offset, Some(Duration::from_secs(20)));
    let worst = windowed
        .observed
        .first()
        .and_then(|o| o.value)
        .unwrap_or(0.0);
    assert!(
        worst > 800.0,
        "the failing window's p95 is reported: {worst}"
    );
    assert!(max_errors.passed);
    assert_eq!(max_errors.expression, "errors.rate <= 1%");
}

#[test]
fn a_short_tail_window_is_ignored_and_a_short_run_is_judged_whole() {
    let slow = cmp("latency.chat", Stat::P95, CompareOp::Lt, 100.0);
    let ensure = Ensure {
        conditions: vec![condition("w", slow, Some(Duration::from_secs(10)))],
        ..Ensure::default()
    };
    // 12 s: one full window at 10 ms, then a 2 s tail at 900 ms (< half a window).
    let run: Vec<_> = (0..12)
        .map(|s| interval(s, &[if s >= 10 { 900 } else { 10 }], 0))
        .collect();
    let mut ev = ThresholdEvaluator::new(&ensure, at(0));
    run.iter().for_each(|i| {
        ev.push_interval(i);
    });
    let out = ev.finish(&total(&run));
    assert_eq!(
        out.first().map(|o| (o.passed, o.windows_evaluated)),
        Some((true, Some(1)))
    );

    // 3 s run, shorter than the window: the whole run is the one window.
    let short: Vec<_> = (0..3).map(|s| interval(s, &[900], 0)).collect();
    let mut ev = ThresholdEvaluator::new(&ensure, at(0));
    short.iter().for_each(|i| {
        ev.push_interval(i);
    });
    let out = ev.finish(&total(&short));
    assert_eq!(
        out.first().map(|o| (o.passed, o.windows_evaluated)),
        Some((false, Some(1)))
    );
}

#[test]
fn windows_with_no_data_do_not_fail() {
    let ensure = Ensure {
        conditions: vec![condition(
            "latency.chat.p99 < 50ms",
            cmp("latency.chat", Stat::P99, CompareOp::Lt, 50.0),
            Some(Duration::from_secs(2)),
        )],
        ..Ensure::default()
    };
    let run: Vec<_> = (0..6)
        .map(|s| interval(s, if s < 2 { &[10] } else { &[] }, 0))
        .collect();
    let mut ev = ThresholdEvaluator::new(&ensure, at(0));
    run.iter().for_each(|i| {
        ev.push_interval(i);
    });
    let out = ev.finish(&total(&run));
    assert_eq!(
        out.first().map(|o| (o.passed, o.windows_evaluated)),
        Some((true, Some(3)))
    );
}

#[test]
fn abort_on_fail_reports_the_first_windowed_breach_once() {
    let ensure = Ensure {
        conditions: vec![condition(
            "latency.chat.p95 < 100ms",
            cmp("latency.chat", Stat::P95, CompareOp::Lt, 100.0),
            Some(Duration::from_secs(5)),
        )],
        abort_on_fail: true,
        ..Ensure::default()
    };
    let mut ev = ThresholdEvaluator::new(&ensure, at(0));
    let mut breaches = Vec::new();
    for (i, snap) in spiky_run().iter().enumerate() {
        if let Some(b) = ev.push_interval(snap) {
            breaches.push((i, b));
        }
    }
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    let (i, breach) = &breaches[0];
    // The spike is in second 25, whose window [25, 30) completes with interval 29.
    assert_eq!(*i, 29);
    assert_eq!(breach.offset, Duration::from_secs(30));
    assert_eq!(breach.index, 0);
    assert!(
        breach.describe().contains("latency.chat.p95 = "),
        "{}",
        breach.describe()
    );
}

#[test]
fn abort_on_fail_checks_totals_so_far_but_not_throughput_floors() {
    let ensure = Ensure {
        conditions: vec![
            condition(
                "messages.sent.count > 1000",
                cmp("messages.sent", Stat::Count, CompareOp::Gt, 1000.0),
                None,
            ),
            condition(
                "errors.count < 5",
                cmp("errors", Stat::Count, CompareOp::Lt, 5.0),
                None,
            ),
        ],
        abort_on_fail: true,
        ..Ensure::default()
    };
    let mut ev = ThresholdEvaluator::new(&ensure, at(0));
    // 2 errors per second: the total reaches 6 (≥ 5) in the third second.
    let mut first = None;
    for s in 0..10 {
        if let Some(b) = ev.push_interval(&interval(s, &[10], 2)) {
            first.get_or_insert((s, b));
        }
    }
    let (s, breach) = first.expect("a breach");
    assert_eq!(
        s, 2,
        "the count floor never aborted; the error cap did at 6 errors"
    );
    assert_eq!(breach.index, 1);
    assert_eq!(breach.observed.first().and_then(|o| o.value), Some(6.0));
}

#[test]
fn non_strict_conditions_never_abort() {
    let mut c = condition(
        "errors.count < 1",
        cmp("errors", Stat::Count, CompareOp::Lt, 1.0),
        None,
    );
    c.strict = false;
    let ensure = Ensure {
        conditions: vec![c],
        abort_on_fail: true,
        ..Ensure::default()
    };
    let mut ev = ThresholdEvaluator::new(&ensure, at(0));
    let run: Vec<_> = (0..3).map(|s| interval(s, &[10], 1)).collect();
    assert!(run.iter().all(|i| ev.push_interval(i).is_none()));
    let out = ev.finish(&total(&run));
    assert_eq!(
        out.first().map(|o| (o.passed, o.strict)),
        Some((false, false))
    );
}
