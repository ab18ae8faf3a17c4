//! Integration tests: result.json — built from recorded metrics, written atomically, read back,
//! validated against the committed JSON Schema; the schema file is kept fresh.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use chatload::metrics::{Aggregator, Collector, Registry, Summary, decode_histogram};
use chatload::report::{
    AdaptiveResult, AdaptiveStep, MonitorSample, ObservedValue, ReportError, RunInfo, RunResult,
    ThresholdResult, read_result, result_json_schema, summary_table, write_result,
};
use chatload::vocab::{Stat, names};

fn at(offset_ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + offset_ms)
}

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/result.schema.json")
}

/// A two-phase, two-scenario run recorded through the public metrics API.
fn synthetic_result() -> RunResult {
    let mut reg = Registry::new().with_standard_metrics();
    let chatter = reg.scenario("chatter", 3);
    let lurker = reg.scenario("lurker", 1);
    let created = [
        reg.scenario_counter(chatter, names::VUSERS_CREATED),
        reg.scenario_counter(lurker, names::VUSERS_CREATED),
    ];
    let sent = reg.scenario_counter(chatter, names::MESSAGES_SENT);
    let chat = reg.scenario_histogram(chatter, &names::latency("chat"));
    let delivery = reg.scenario_histogram(lurker, names::DELIVERY);
    let active = reg.gauge(names::VUSERS_ACTIVE);
    let collector = Collector::with_start(reg, at(0));
    let rec = collector.recorder();
    let mut agg = Aggregator::new();

    agg.push(collector.begin_phase_at(0, "warm up", at(0)));
    for second in 0..4u64 {
        if second == 2 {
            agg.push(collector.begin_phase_at(1, "hold", at(2_000)));
        }
        for id in created {
            rec.incr(id);
        }
        rec.gauge_add(active, 2);
        for i in 0..50u64 {
            rec.incr(sent);
            rec.record_us(chat, 1_000 + i * 100 + second * 1_000);
            rec.record_us(delivery, 2_000 + i * 50);
        }
        agg.push(collector.snapshot_at(at((second + 1) * 1_000)));
    }
    let timeout = rec.counter(&names::error(chatload::vocab::ErrorKind::Timeout));
    rec.add(timeout, 2);
    agg.push(collector.end_phase_at(at(4_500)));
    let metrics = agg.finish().expect("histograms encode");

    let mut info = RunInfo::new("basic", "127.0.0.1:9200", at(0), at(4_500));
    info.plan_path = Some("plans/basic.yml".into());
    info.seed = Some(42);
    info.warnings
        .push("schedule.lag p99 reached 120 ms: the generator is overloaded".into());
    let plan = serde_json::json!({"config": {"target": "embedded"}, "scenarios": []});
    let mut result = RunResult::new(info, metrics, plan);
    let p95 = result.aggregate.stat("latency.chat", Stat::P95);
    result.thresholds.push(ThresholdResult {
        expression: "latency.chat.p95 < 200ms".into(),
        window_ms: None,
        observed: vec![ObservedValue {
            metric: "latency.chat.p95".into(),
            value: p95,
            unit: "ms".into(),
        }],
        passed: true,
        strict: true,
        windows_evaluated: None,
        windows_failed: None,
        first_failure_offset_ms: None,
    });
    result.thresholds.push(ThresholdResult {
        expression: "errors.rate < 0.1%".into(),
        window_ms: Some(2_000),
        observed: vec![ObservedValue {
            metric: "errors.rate".into(),
            value: Some(result.aggregate.error_rate_percent()),
            unit: "%".into(),
        }],
        passed: false,
        strict: true,
        windows_evaluated: Some(3),
        windows_failed: Some(1),
        first_failure_offset_ms: Some(4_000),
    });
    result.monitor.push(MonitorSample {
        unix_time_ms: 1_700_000_001_000,
        elapsed_ms: 1_000,
        process_count: 1,
        process_cpu_percent: 12.5,
        process_rss_bytes: 10 << 20,
        ..MonitorSample::default()
    });
    result.adaptive = Some(AdaptiveResult {
        max_stable_vusers: Some(8),
        trajectory: vec![AdaptiveStep {
            offset_ms: 0,
            end_offset_ms: Some(2_000),
            vusers: 8,
            healthy: true,
            reason: None,
            p95_ms: p95,
            error_rate_percent: Some(0.0),
            success_rate_percent: Some(100.0),
            server_cpu_percent: None,
            server_mem_percent: None,
        }],
    });
    result.run.exit_code = 1;
    result
}

fn validate(instance: &serde_json::Value) -> Vec<String> {
    let text = std::fs::read_to_string(schema_path()).expect("schemas/result.schema.json exists");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn result_written_read_back_and_valid_against_the_schema() {
    let result = synthetic_result();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    write_result(&path, &result).unwrap();
    // Atomic write: only the final files remain.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            std::ffi::OsString::from("result.histograms.bin"),
            std::ffi::OsString::from("result.json")
        ]
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["format"], "chatload.result/v2");
    assert_eq!(json["aggregate"]["counters"]["messages.sent"], 200);
    assert_eq!(json["aggregate"]["counters"]["vusers.created"], 8);
    assert_eq!(json["aggregate"]["counters"]["errors.timeout"], 2);
    assert!(json["aggregate"]["summaries"]["latency.chat"]["p95"].is_f64());
    // 4 ticks + the end cut; the zero-length cuts at phase starts are dropped.
    assert_eq!(json["intermediate"].as_array().unwrap().len(), 5);
    assert_eq!(json["phases"][1]["name"], "hold");
    assert_eq!(json["phases"][1]["startOffsetMs"], 2_000);
    assert_eq!(json["scenarios"][0]["counters"]["messages.sent"], 200);
    assert_eq!(json["scenarios"][1]["counters"]["vusers.created"], 4);
    assert!(json["scenarios"][1]["summaries"]["delivery"].is_object());
    assert_eq!(json["run"]["startedAt"], "2023-11-14T22:13:20.000Z");
    assert_eq!(json["run"]["durationMs"], 4_500);
    let errors = validate(&json);
    assert!(
        errors.is_empty(),
        "result.json violates its schema: {errors:#?}"
    );

    let back = read_result(&path).unwrap();
    assert_eq!(back.aggregate.counters, result.aggregate.counters);
    assert_eq!(back.histograms, result.histograms);
    assert_eq!(back.phases.len(), 2);
    assert_eq!(back.thresholds, result.thresholds);
    // The serialized histogram re-renders the same summary exactly.
    let chat = decode_histogram(&back.histograms["latency.chat"]).unwrap();
    assert_eq!(chat.len(), 200);
    assert_eq!(
        Summary::from_histogram(&chat),
        result.aggregate.summaries["latency.chat"]
    );
}

#[test]
fn per_interval_percentiles_survive_the_round_trip_through_the_sidecar() {
    let result = synthetic_result();
    let with_histograms = result
        .intermediate
        .iter()
        .filter(|p| p.histograms.contains_key("latency.chat"))
        .count();
    assert!(with_histograms >= 3, "{with_histograms}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    let sidecar = write_result(&path, &result).unwrap();
    assert_eq!(sidecar, Some(dir.path().join("result.histograms.bin")));

    // The file is compact and keeps neither the interval histograms nor what they imply.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("\n  "), "not compact");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["intervalHistograms"]["file"], "result.histograms.bin");
    for interval in json["intermediate"].as_array().unwrap() {
        assert!(interval.get("histograms").is_none(), "{interval}");
        assert!(interval["summaries"].get("latency.chat").is_none());
    }
    assert!(validate(&json).is_empty());

    let back = read_result(&path).unwrap();
    assert_eq!(back.intermediate, result.intermediate);
    assert_eq!(back, result);
}

#[test]
fn results_written_before_the_sidecar_still_read() {
    // An older v2 file: pretty, interval histograms inline, every summary written out.
    let result = synthetic_result();
    let mut json = serde_json::to_value(&result).unwrap();
    let intervals = json["intermediate"].as_array_mut().unwrap();
    for (interval, original) in intervals.iter_mut().zip(&result.intermediate) {
        assert!(interval.get("histograms").is_some() || original.histograms.is_empty());
        interval["summaries"] = serde_json::to_value(&original.summaries).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    assert_eq!(read_result(&path).unwrap(), result);
    // And one without the summaries (what serializing a result gives): derived on reading.
    let inline = serde_json::to_vec(&result).unwrap();
    std::fs::write(&path, inline).unwrap();
    assert_eq!(read_result(&path).unwrap(), result);
}

#[test]
fn a_missing_or_foreign_sidecar_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    let sidecar = write_result(&path, &synthetic_result()).unwrap().unwrap();

    let other = tempfile::tempdir().unwrap();
    let mut different = synthetic_result();
    different.intermediate.truncate(2);
    let foreign = write_result(&other.path().join("result.json"), &different)
        .unwrap()
        .unwrap();
    std::fs::copy(&foreign, &sidecar).unwrap();
    let err = read_result(&path).unwrap_err();
    assert!(matches!(err, ReportError::Sidecar { .. }), "{err}");
    assert!(err.to_string().contains("another run"), "{err}");

    std::fs::remove_file(&sidecar).unwrap();
    let err = read_result(&path).unwrap_err().to_string();
    assert!(err.contains("result.histograms.bin"), "{err}");
    assert!(err.contains("copy both"), "{err}");
}

#[test]
fn schema_rejects_a_broken_result() {
    let mut json = serde_json::to_value(synthetic_result()).unwrap();
    json["format"] = "chatload.result/v0".into();
    json["aggregate"]["counters"]["messages.sent"] = (-1).into();
    assert!(validate(&json).len() >= 2);
}

#[test]
fn reading_another_format_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.json");
    std::fs::write(&path, r#"{"format": "chatload.result/v0"}"#).unwrap();
    let err = read_result(&path).unwrap_err();
    assert!(
        matches!(err, ReportError::UnsupportedFormat { ref found, .. } if found == "chatload.result/v0")
    );
    assert!(err.to_string().contains("old.json"));
    let missing = read_result(&dir.path().join("nope.json")).unwrap_err();
    assert!(matches!(missing, ReportError::Io { .. }));
}

#[test]
fn writing_into_a_missing_directory_fails_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/result.json");
    let err = write_result(&path, &synthetic_result()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn summary_table_shows_latencies_counters_errors_and_thresholds() {
    let table = summary_table(&synthetic_result());
    println!("{table}");
    for needle in [
        "basic (plans/basic.yml) → 127.0.0.1:9200",
        "· seed 42",
        "latency (ms)",
        "latency.chat",
        "delivery",
        "messages.sent",
        "errors: 2",
        "  timeout",
        "✓ latency.chat.p95 < 200ms",
        "✗ errors.rate < 0.1%",
        "1/3 windows failed",
        "hold",
        "chatter",
        "! schedule.lag",
    ] {
        assert!(table.contains(needle), "missing {needle:?} in\n{table}");
    }
}

/// Regenerate with `UPDATE_SCHEMAS=1 cargo test schema_file_is_fresh`.
#[test]
fn schema_file_is_fresh() {
    let current = serde_json::to_string_pretty(&result_json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(schema_path(), &current).unwrap();
    }
    let committed = std::fs::read_to_string(schema_path()).unwrap_or_default();
    assert!(
        committed == current,
        "schemas/result.schema.json is stale; run `UPDATE_SCHEMAS=1 cargo test schema_file_is_fresh` and commit it"
    );
}

#[test]
fn schema_result_command_prints_the_committed_schema() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatload"))
        .args(["schema", "result"])
        .output()
        .expect("the chatload binary runs");
    assert_eq!(out.status.code(), Some(0));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON schema");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path()).expect("committed schema"))
            .expect("committed schema is JSON");
    assert_eq!(printed, committed);
}
