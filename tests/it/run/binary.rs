//! Integration tests: `chatload run` through the real binary — exit codes, the reports it
//! writes, Ctrl-C, and monitor samples.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::{chatload, result_json, spawn_watching_stderr, write_plan};

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
    // Ctrl-C once more than 10 replies are in (each logs after it is recorded).
    let mut replies = 0;
    let args = [plan.as_os_str(), OsStr::new("--out"), out.as_os_str()];
    let (mut child, eleven) = spawn_watching_stderr(
        [OsStr::new("run")]
            .into_iter()
            .chain(args)
            .chain([OsStr::new("--quiet")]),
        move |line| {
            if !line.ends_with("ping answered") {
                return None;
            }
            replies += 1;
            (replies == 11).then(String::new)
        },
    );
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
