//! The command line as a user meets it: one-liner load shapes, usage errors, error messages.

use crate::common::chatload;

const PING_PLAN: &str = r#"
config:
  target: embedded
  phases:
    - {duration: 1h, vusers: 50}
scenarios:
  - name: ping
    flow:
      - connect
      - send: "PING {{ vu.id }}"
        expect: {match: "^PONG", name: ping}
      - think: 200ms
"#;

#[test]
fn vusers_spawn_rate_and_duration_replace_the_plan_s_phases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("ping.yml");
    std::fs::write(&plan, PING_PLAN).expect("plan written");
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    let output = chatload([
        "run",
        plan.to_str().expect("utf-8 path"),
        "--out",
        out.to_str().expect("utf-8 path"),
        "--quiet",
        "--format",
        "json",
        "--vusers",
        "4",
        "--spawn-rate",
        "2",
        "--duration",
        "3s",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    // Bounded: the plan's hour-long phase is gone (3 s of load plus the graceful stop).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
    let text = std::fs::read_to_string(out.join("result.json")).expect("result.json exists");
    let result: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    // Closed model: 4 vusers started, none replaced, none skipped.
    assert_eq!(
        result["aggregate"]["counters"]["vusers.created"], 4,
        "{text:.2000}"
    );
    let phases = result["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 2, "{phases:?}");
    assert!(
        phases[0]["name"]
            .as_str()
            .is_some_and(|n| n.contains("0→4")),
        "{phases:?}"
    );
}

#[test]
fn conflicting_or_incomplete_shape_flags_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("ping.yml");
    std::fs::write(&plan, PING_PLAN).expect("plan written");
    let plan = plan.to_str().expect("utf-8 path");
    for (args, said) in [
        (
            &["--vusers", "3", "--arrival-rate", "2", "--duration", "5s"][..],
            "exclude each other",
        ),
        (&["--vusers", "3"][..], "--vusers needs --duration"),
        (
            &["--spawn-rate", "2", "--duration", "5s"][..],
            "--spawn-rate needs --vusers",
        ),
        (
            &[
                "--preset",
                "spike",
                "--arrival-rate",
                "2",
                "--duration",
                "5s",
            ][..],
            "give one",
        ),
        (
            &["--vusers", "100", "--spawn-rate", "1", "--duration", "5s"][..],
            "longer than --duration",
        ),
        (&["--target", "localhost"][..], "--target localhost: "),
    ] {
        let mut argv = vec!["run", plan];
        argv.extend_from_slice(args);
        let output = chatload(&argv);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("plan.yml:"),
            "points at the flag: {stderr}"
        );
    }
}

#[test]
fn a_missing_file_is_said_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nowhere.json");
    let output = chatload(["report", missing.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    assert!(
        !stderr.contains("writable"),
        "reading needs no write advice: {stderr}"
    );

    let missing_plan = dir.path().join("nowhere.yml");
    let output = chatload(["run", missing_plan.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    assert!(stderr.contains("nowhere.yml"), "{stderr}");
}

#[test]
fn completions_and_the_man_page_print() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let output = chatload(["completions", shell]);
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        assert!(text.contains("run"), "{shell}: {text:.300}");
    }
    let output = chatload(["man"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains(".TH chatload 1"));
}
