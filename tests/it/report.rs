//! Integration tests: the HTML report (self-contained, carries the chart data, small for a
//! 1-hour run), the CSV files (Locust's header, the Aggregated row), the report folder checks,
//! and `chatload report` / `chatload compare` exit codes through the real binary.

#[path = "report/fixture.rs"]
pub(crate) mod fixture;

use std::path::Path;

use chatload::report::{
    Formats, STATS_HEADER, history_csv, prepare_outputs, render_html, stats_csv, write_reports,
    write_result,
};

use crate::common::chatload;
use fixture::synthetic_result;

#[test]
fn html_is_self_contained_carries_chart_data_and_stays_small_for_an_hour() {
    let result = fixture::hour_long_result(3_600, 20);
    assert!(
        result.intermediate.len() >= 3_600,
        "an hour of 1 s intervals"
    );
    let html = render_html(&result).expect("renders");
    assert!(html.len() < 5 * 1024 * 1024, "{} bytes", html.len());

    let external =
        regex::Regex::new(r#"(?i)\b(src|href|xlink:href|action)\s*=\s*["']?\s*(https?:)?//"#)
            .expect("regex");
    assert!(!external.is_match(&html), "no external reference");
    let url = regex::Regex::new(r#"(?i)url\(\s*["']?\s*(https?:)?//"#).expect("regex");
    assert!(!url.is_match(&html), "no CSS url() to the network");
    assert!(!html.contains("<script"), "no script at all");
    assert!(!html.contains("@import"));

    // Charts are inline SVG paths with (downsampled) points.
    let points = regex::Regex::new(r#"<path class="line"[^>]* d="([^"]+)""#).expect("regex");
    let lines: Vec<usize> = points
        .captures_iter(&html)
        .filter_map(|c| c.get(1).map(|m| m.as_str().split_whitespace().count()))
        .collect();
    assert!(lines.len() >= 10, "{} lines", lines.len());
    assert!(lines.iter().all(|&n| n <= 600), "downsampled: {lines:?}");
    assert!(
        lines.iter().any(|&n| n >= 500),
        "long series keep detail: {lines:?}"
    );
    for name in [
        "Latency · latency.chat",
        "Latency · latency.login",
        "Delivery latency",
        "Messages per second",
        "Active vusers",
        "Errors per second",
        "Schedule lag",
        "Server CPU",
        "Server memory",
    ] {
        assert!(html.contains(name), "chart {name:?} missing");
    }
    // Threshold table: the overall condition held, the windowed one caught the stall.
    assert!(html.contains("latency.chat.p95 &lt; 200ms"));
    assert!(html.contains("✓") && html.contains("✗"));
    assert!(html.contains("every 30s"));
    // Per-phase and per-scenario tables, and the plan as run.
    for text in ["ramp down", "chatter", "lurker", "&quot;arrivalRate&quot;"] {
        assert!(html.contains(text), "{text:?} missing");
    }
}

#[test]
fn stats_csv_has_locusts_columns_and_an_aggregated_row() {
    let result = synthetic_result(60, 50, 1.0);
    let bytes = stats_csv(&result).expect("stats");
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, STATS_HEADER.to_vec());
    assert_eq!(
        header.join(","),
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
         Min Response Time,Max Response Time,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,\
         99%,99.9%,99.99%,100%"
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let names: Vec<&str> = rows.iter().filter_map(|r| r.get(1)).collect();
    assert_eq!(
        names,
        vec![
            "connect",
            "delivery",
            "latency.chat",
            "latency.login",
            "schedule.lag",
            "Aggregated"
        ]
    );
    let num = |row: &csv::StringRecord, i: usize| -> f64 {
        row.get(i).and_then(|v| v.parse().ok()).expect("a number")
    };
    let chat = rows.get(2).expect("chat row");
    let login = rows.get(3).expect("login row");
    let aggregated = rows.last().expect("aggregated row");
    assert_eq!(num(chat, 2), 60.0 * 50.0);
    // Aggregated = every expect latency merged.
    assert_eq!(num(aggregated, 2), num(chat, 2) + num(login, 2));
    assert_eq!(num(aggregated, 3), result.aggregate.errors_total() as f64);
    // Percentiles are ordered and come from the full histogram (66 %, 99.99 % included).
    let percentiles: Vec<f64> = (10..21).map(|i| num(chat, i)).collect();
    assert!(
        percentiles.windows(2).all(|w| w[0] <= w[1]),
        "{percentiles:?}"
    );
    assert_eq!(num(chat, 4), num(chat, 10), "median = 50%");
    assert_eq!(num(chat, 7), num(chat, 20), "max = 100%");
}

#[test]
fn history_csv_has_a_row_per_interval() {
    let result = synthetic_result(30, 10, 1.0);
    let bytes = history_csv(&result).expect("history");
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header = reader.headers().expect("header").clone();
    for col in [
        "Timestamp",
        "Active Vusers",
        "Messages Sent/s",
        "Messages Received/s",
        "Errors",
        "latency.chat p95 (ms)",
        "delivery p99 (ms)",
    ] {
        assert!(header.iter().any(|h| h == col), "{col} missing: {header:?}");
    }
    let rows = reader.records().count();
    assert_eq!(rows, result.intermediate.len());
}

#[test]
fn outputs_are_checked_before_the_run_and_all_written_after() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run-1");
    let planned = prepare_outputs(&dir, Formats::ALL).expect("prepared");
    // result.json and its histogram sidecar, three CSV files, report.html.
    assert_eq!(planned.len(), 6);
    let written =
        write_reports(&synthetic_result(20, 5, 1.0), &dir, Formats::ALL).expect("written");
    assert_eq!(written, planned);
    assert!(written.iter().all(|p| p.is_file()));

    // A report directory under a regular file cannot be created: fails before any load.
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("file");
    let err = prepare_outputs(&file.join("run"), Formats::ALL).expect_err("must fail");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    // An output path taken by a directory is refused too.
    let taken = tmp.path().join("taken");
    std::fs::create_dir_all(taken.join("report.html")).expect("dir");
    let err = prepare_outputs(&taken, Formats::ALL).expect_err("must fail");
    assert!(err.to_string().contains("report.html"), "{err}");
    // Only what was asked for.
    let csv_only = Formats {
        json: false,
        csv: true,
        html: false,
    };
    assert_eq!(
        prepare_outputs(&taken, csv_only).map(|p| p.len()).ok(),
        Some(3)
    );
}

fn save(dir: &Path, name: &str, scale: f64) -> std::path::PathBuf {
    let path = dir.join(name);
    write_result(&path, &synthetic_result(20, 20, scale)).expect("saved");
    path
}

#[test]
fn report_command_rerenders_next_to_the_result() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let result = save(tmp.path(), "result.json", 1.0);
    let out = chatload(["report".as_ref(), result.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for f in ["report.html", "stats.csv", "history.csv"] {
        assert!(tmp.path().join(f).is_file(), "{f}");
    }
    let html = tmp.path().join("elsewhere/r.html");
    let out = chatload([
        "report".as_ref(),
        result.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(html.is_file());
    assert!(
        !tmp.path().join("elsewhere/stats.csv").exists(),
        "only what was asked"
    );

    let missing = tmp.path().join("missing.json");
    let out = chatload(["report".as_ref(), missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn compare_exits_1_on_a_regression_0_within_the_limit_2_on_bad_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = save(tmp.path(), "base.json", 1.0);
    let same = save(tmp.path(), "same.json", 1.0);
    let slower = save(tmp.path(), "slower.json", 1.5);

    let out = chatload(["compare".as_ref(), base.as_os_str(), same.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("latency.chat p95") && text.contains("messages.sent rate"),
        "{text}"
    );

    let out = chatload(["compare".as_ref(), base.as_os_str(), slower.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("✗"));

    // 50 % slower passes a 60 % limit.
    let out = chatload([
        "compare".as_ref(),
        base.as_os_str(),
        slower.as_os_str(),
        "--max-regression".as_ref(),
        "60%".as_ref(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let garbage = tmp.path().join("garbage.json");
    std::fs::write(&garbage, b"{ not json").expect("write");
    let out = chatload(["compare".as_ref(), base.as_os_str(), garbage.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let out = chatload([
        "compare".as_ref(),
        base.as_os_str(),
        same.as_os_str(),
        "--max-regression".as_ref(),
        "lots".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    // A noise floor above every change: no timing regressed, whatever the percentage (the
    // error rate and the throughput still did).
    let out = chatload([
        "compare".as_ref(),
        base.as_os_str(),
        slower.as_os_str(),
        "--min-delta".as_ref(),
        "1h".as_ref(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("latency.chat p95"), "{text}");
    assert!(
        !text.contains("✗ latency") && !text.contains("✗ delivery"),
        "{text}"
    );
    let out = chatload([
        "compare".as_ref(),
        base.as_os_str(),
        same.as_os_str(),
        "--min-delta".as_ref(),
        "a bit".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_html_report_shows_the_plan_as_written_without_its_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("secret.yml");
    std::fs::write(
        &plan,
        r#"# the login plan (this comment is part of the plan as written)
config:
  target: embedded
  phases:
    - {duration: 1s, arrivalRate: 4}
  variables:
    password: hunter2
    auth: {token: "s3cr3t-t0k3n", user: alice}
scenarios:
  - name: login
    flow:
      - connect
      - send: "LOGIN {{ auth.user }}{{ vu.id }}"
        expect: {match: "^OK", name: login}
      - send: "SAY {{ password }}"
      - send: "PING 1"
        expect: {match: "^PONG", name: ping}
      - disconnect
"#,
    )
    .expect("plan written");
    let out = dir.path().join("out");
    let output = chatload([
        "run".as_ref(),
        plan.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    let json = std::fs::read_to_string(out.join("result.json")).expect("result.json");
    for secret in ["hunter2", "s3cr3t-t0k3n"] {
        assert!(!html.contains(secret), "{secret} in report.html");
        assert!(!json.contains(secret), "{secret} in result.json");
    }
    // The YAML as written, comment included, in a <pre>; not the re-serialized JSON.
    assert!(html.contains("Plan as written (YAML)"));
    assert!(html.contains("# the login plan (this comment is part of the plan as written)"));
    assert!(html.contains("    password: ***\n"));
    assert!(html.contains("auth: {token: ***, user: alice}"));
    assert!(!html.contains("&quot;arrivalRate&quot;"));
    let result: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(result["planSource"]["format"], "yaml");
    // The distribution chart of both expects.
    assert!(html.contains("Latency distribution"));
    assert!(html.contains(r#"<path class="line spectrum""#));
    // An old result (no planSource) still renders, showing the plan as run.
    let mut old = chatload::report::read_result(&out.join("result.json")).expect("reads");
    old.plan_source = None;
    let html = render_html(&old).expect("renders");
    assert!(html.contains("Plan as run"));
}

#[test]
fn html_tables_errors_by_scenario_and_kind() {
    let mut result = synthetic_result(60, 50, 1.0);
    let html = render_html(&result).expect("renders");
    assert!(
        !html.contains("Errors by scenario"),
        "no table without errors"
    );
    result.scenarios[0]
        .counters
        .insert("errors.timeout".into(), 1234);
    result.scenarios[1]
        .counters
        .insert("errors.closed".into(), 7);
    let html = render_html(&result).expect("renders");
    assert!(html.contains("Errors by scenario"));
    let section = html
        .split("Errors by scenario")
        .nth(1)
        .and_then(|s| s.split("</table>").next())
        .expect("the table");
    assert!(section.contains(r#"<th class="mono">closed</th><th class="mono">timeout</th>"#));
    let chatter = "<td>chatter</td><td>0</td><td>1\u{2009}234</td><td>1\u{2009}234</td>";
    assert!(section.contains(chatter), "{section}");
    assert!(
        section.contains("<td>lurker</td><td>7</td><td>0</td><td>7</td>"),
        "{section}"
    );
}

#[test]
fn report_and_compare_still_read_v1_results() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A v1 file: the v1 tag, none of the fields v2 added, every interval summary written.
    let original = synthetic_result(20, 20, 1.0);
    let mut json = serde_json::to_value(&original).expect("json");
    json["format"] = "chatload.result/v1".into();
    let intervals = json["intermediate"].as_array_mut().expect("intervals");
    for (interval, summary) in intervals.iter_mut().zip(&original.intermediate) {
        let fields = interval.as_object_mut().expect("object");
        fields.remove("histograms");
        fields.remove("phaseIndex");
        fields.insert(
            "summaries".into(),
            serde_json::to_value(&summary.summaries).expect("summaries"),
        );
    }
    for scenario in json["scenarios"].as_array_mut().expect("scenarios") {
        scenario
            .as_object_mut()
            .expect("object")
            .remove("histograms");
    }
    let v1 = tmp.path().join("v1.json");
    std::fs::write(&v1, serde_json::to_vec(&json).expect("bytes")).expect("written");
    let v2 = save(tmp.path(), "v2.json", 1.0);
    let out = chatload(["report".as_ref(), v1.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(tmp.path().join("report.html").is_file());
    let out = chatload(["compare".as_ref(), v1.as_os_str(), v2.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // `merge` needs v2: a v1 piece is refused with the reason.
    let out = chatload([
        "merge".as_ref(),
        v1.as_os_str(),
        "--out".as_ref(),
        tmp.path().join("m").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("v1 file"));
}
