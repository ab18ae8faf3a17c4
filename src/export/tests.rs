//! Unit tests of the exposition: both formats parse with an independent parser, histogram
//! buckets are cumulative and end at `_count`, counters only grow, names follow the
//! conventions.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use openmetrics_parser::{
    OpenMetricsValue, PrometheusValue, openmetrics::parse_openmetrics, prometheus::parse_prometheus,
};

use super::*;
use crate::metrics::{Collector, Registry};
use crate::vocab::{ErrorKind, names};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// Two scenarios, two phases, a run-wide-only histogram, an error; returns the totals after
/// each of four intervals.
fn recorded_run() -> Vec<Totals> {
    let mut registry = Registry::new().with_standard_metrics();
    let chatter = registry.scenario("chatter", 3);
    let lurker = registry.scenario("lurk er\"s", 1);
    let sent_chatter = registry.scenario_counter(chatter, names::MESSAGES_SENT);
    let sent_lurker = registry.scenario_counter(lurker, names::MESSAGES_SENT);
    let login = registry.scenario_histogram(chatter, &names::latency("login"));
    let delivery = registry.histogram(names::DELIVERY);
    let timeouts = registry.counter(&names::error(ErrorKind::Timeout));
    let active = registry.gauge(names::VUSERS_ACTIVE);
    let collector = Collector::with_start(registry, t(0));
    let rec = collector.recorder();
    let mut totals = Totals::new("r1", None, vec!["warm up".into(), "hold".into()]);
    let mut seen = Vec::new();
    collector.begin_phase_at(0, "warm up", t(0));
    for second in 1..=4u64 {
        if second == 3 {
            totals.fold(&collector.begin_phase_at(1, "hold", t(2)));
            seen.push(totals.clone());
            continue;
        }
        rec.add(sent_chatter, 10 * second);
        rec.add(sent_lurker, second);
        rec.gauge_add(active, 2);
        for i in 0..50 {
            rec.record_us(login, 800 + i * 40);
            rec.record_us(delivery, 2_000 + i * 1_000);
        }
        rec.incr(timeouts);
        totals.fold(&collector.snapshot_at(t(second)));
        seen.push(totals.clone());
    }
    seen
}

#[test]
fn the_prometheus_text_parses_and_keeps_its_promises() {
    let all = recorded_run();
    let last = all.last().expect("intervals");
    let text = render(last, Format::Prometheus);
    let parsed = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let families = &parsed.families;
    for name in [
        "chatload_messages_sent_total",
        "chatload_errors_total",
        "chatload_vusers_active",
        "chatload_latency_seconds",
        "chatload_delivery_seconds",
        "chatload_elapsed_seconds",
    ] {
        assert!(families.contains_key(name), "{name} missing:\n{text}");
    }
    // Counters: sums over scenarios and phases give what was recorded.
    let sent: f64 = families["chatload_messages_sent_total"]
        .iter_samples()
        .map(|s| match &s.value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            other => panic!("not a counter: {other:?}"),
        })
        .sum();
    assert_eq!(sent, (10 + 20 + 40) as f64 + (1 + 2 + 4) as f64);
    assert_eq!(last.counter_total(names::MESSAGES_SENT), 77);
    assert!(
        text.contains(r#"scenario="lurk er\"s""#),
        "escaped label:\n{text}"
    );
    assert!(text.contains(r#"kind="timeout""#));
    // Every phase of the plan has its counters from the start, zeros included.
    assert!(text.contains(
        r#"chatload_messages_sent_total{scenario="chatter",phase="hold",name="",run_id="r1",shard=""} 40"#
    ));
    // Histograms: cumulative buckets ending at +Inf == _count.
    for sample in families["chatload_latency_seconds"].iter_samples() {
        let PrometheusValue::Histogram(h) = &sample.value else {
            panic!("not a histogram");
        };
        let counts: Vec<f64> = h.buckets.iter().map(|b| b.count.as_f64()).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "not cumulative");
        let inf = h
            .buckets
            .iter()
            .find(|b| b.upper_bound.is_infinite())
            .map(|b| b.count.as_f64());
        assert_eq!(inf, h.count.map(|c| c as f64));
        assert_eq!(h.buckets.len(), bucket_layout().bounds_us.len() + 1);
    }
}

#[test]
fn the_openmetrics_text_parses_too() {
    let all = recorded_run();
    let text = render(all.last().expect("intervals"), Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"));
    let parsed = parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let sent = &parsed.families["chatload_messages_sent"];
    assert!(
        sent.iter_samples()
            .all(|s| matches!(s.value, OpenMetricsValue::Counter(_)))
    );
    assert_eq!(parsed.families["chatload_elapsed_seconds"].unit, "seconds");
    assert!(parsed.families.contains_key("chatload_latency_seconds"));
}

/// Every series' value at each interval, by its text (name and labels).
fn values(totals: &Totals) -> HashMap<String, f64> {
    render(totals, Format::Prometheus)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn counters_and_histograms_never_go_down_between_renderings() {
    let all = recorded_run();
    for pair in all.windows(2) {
        let (before, after) = (values(&pair[0]), values(&pair[1]));
        for (series, old) in &before {
            let cumulative = series.contains("_total{")
                || series.contains("_bucket{")
                || series.contains("_count{")
                || series.contains("_sum{");
            if !cumulative {
                continue;
            }
            let new = after.get(series).copied();
            assert!(
                new.is_some_and(|n| n >= *old),
                "{series}: {old} then {new:?}"
            );
        }
    }
}

#[test]
fn run_wide_series_hold_only_what_no_scenario_holds() {
    let all = recorded_run();
    let last = all.last().expect("intervals");
    // `latency.login` was recorded per scenario only: no run-wide copy to double-count.
    assert!(
        last.histograms
            .keys()
            .filter(|k| k.metric == "latency.login")
            .all(|k| k.scenario == "chatter")
    );
    assert!(
        !last
            .counters
            .contains_key(&(names::MESSAGES_SENT.to_owned(), String::new()))
    );
    // `delivery` was recorded run-wide only.
    let delivery: u64 = last
        .histograms
        .iter()
        .filter(|(k, _)| k.metric == names::DELIVERY)
        .map(|(k, b)| {
            assert_eq!(k.scenario, "");
            b.count()
        })
        .sum();
    assert_eq!(delivery, 150);
}

#[test]
fn content_negotiation_and_listen_addresses() {
    assert_eq!(Format::from_accept(None), Format::Prometheus);
    assert_eq!(
        Format::from_accept(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )),
        Format::OpenMetrics
    );
    assert_eq!(
        crate::plan::listen_address("9464").ok().as_deref(),
        Some("127.0.0.1:9464")
    );
    assert_eq!(
        crate::plan::listen_address(":0").ok().as_deref(),
        Some("127.0.0.1:0")
    );
    assert_eq!(
        crate::plan::listen_address("0.0.0.0:8089").ok().as_deref(),
        Some("0.0.0.0:8089")
    );
    let err = crate::plan::listen_address("nowhere").expect_err("no port");
    assert!(err.contains("give a port"), "{err}");
}
