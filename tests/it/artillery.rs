//! Integration tests: Artillery's spellings in plans — the `$` template built-ins rendered by
//! the engine (seeded, replayable), a target templated from the environment, and the keys
//! that need JavaScript refused by `check` with their declarative replacement.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatload::engine::{self, RunOptions};
use chatload::plan::{Format, Plan, Problems};
use chatload::server::{self, ServerConfig};

fn load(yaml: &str) -> Result<Plan, Problems> {
    chatload::plan::load_str(yaml, Path::new("artillery.yml"), Format::Yaml)
}

/// Runs `plan` with `seed` against the chat server, returning its `log` lines in order.
async fn logged(plan: Plan, seed: u64) -> Vec<String> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let options = RunOptions {
        seed: Some(seed),
        on_log: Some(Arc::new(move |line: &str| {
            if let Ok(mut lines) = sink.lock() {
                lines.push(line.to_owned());
            }
        })),
        ..RunOptions::default()
    };
    let config = ServerConfig::default();
    let server = server::spawn(config.clone()).await.expect("server starts");
    let target = config.client_address(server.addr());
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        engine::run(Arc::new(plan), &target, options),
    )
    .await
    .expect("run ends in time")
    .expect("run starts");
    assert_eq!(outcome.metrics.aggregate.errors_total(), 0);
    let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
    // Each line is prefixed with its vuser: `[vu 0] text`.
    lines
        .iter()
        .map(|line| {
            line.split_once("] ")
                .map_or(line.as_str(), |(_, text)| text)
                .to_owned()
        })
        .collect()
}

const BUILTINS_PLAN: &str = r#"
config:
  target: embedded
  phases: [{duration: 100ms, arrivalCount: 1}]
scenarios:
  - name: builtins
    flow:
      - connect
      - loop:
          - log: "{{ $loopCount }}|{{ $loopElement }}|{{ $randomNumber(3, 7) }}|{{ $randomString(12) }}|{{ $randomString() }}|{{ $uuid }}|{{ $processEnvironment.PATH == $env.PATH }}|{{ $env.PATH|length }}"
        over: [red, green, blue]
      - loop:
          - log: "count {{ $loopCount }}"
        count: 2
"#;

#[tokio::test]
async fn artillery_builtins_render_from_the_seeded_generator_and_the_vuser_scope() {
    let first = logged(load(BUILTINS_PLAN).expect("valid plan"), 7).await;
    assert_eq!(first.len(), 5, "{first:?}");
    for (i, (line, colour)) in first.iter().zip(["red", "green", "blue"]).enumerate() {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[0], (i + 1).to_string(), "$loopCount is 1-based");
        assert_eq!(fields[1], colour);
        let number: i64 = fields[2].parse().expect("a number");
        assert!((3..=7).contains(&number), "{number}");
        assert_eq!(fields[3].len(), 12);
        assert!(fields[3].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(fields[4].len(), 10, "$randomString() defaults to 10");
        let uuid = fields[5];
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.as_bytes()[14], b'4', "version 4: {uuid}");
        assert_eq!(
            fields[6], "true",
            "$processEnvironment and $env are one environment"
        );
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(fields[7], path.chars().count().to_string());
    }
    assert_eq!(first[3..], ["count 1", "count 2"]);
    // The same seed replays every random built-in; another seed does not.
    assert_eq!(
        logged(load(BUILTINS_PLAN).expect("valid plan"), 7).await,
        first
    );
    assert_ne!(
        logged(load(BUILTINS_PLAN).expect("valid plan"), 8).await,
        first
    );
}

#[test]
fn check_names_unknown_builtins_and_unset_target_variables() {
    let problems = load(
        r#"
config:
  target: "{{ $processEnvironment.CHATLOAD_TEST_NEVER_SET_42 }}"
  phases: [{duration: 1s, arrivalRate: 1}]
scenarios:
  - name: main
    flow:
      - connect
      - send: "PING {{ $randomNumbr(1, 2) }}"
"#,
    )
    .expect_err("two problems")
    .to_string();
    assert!(
        problems.contains("3:11")
            && problems.contains("environment variable `CHATLOAD_TEST_NEVER_SET_42` is not set"),
        "{problems}"
    );
    assert!(
        problems.contains("9:24")
            && problems.contains(
                "unknown Artillery built-in `$randomNumbr`, did you mean `$randomNumber`?"
            ),
        "{problems}"
    );
}

#[test]
fn check_refuses_javascript_keys_and_names_the_declarative_way() {
    let problems = load(
        r#"
config:
  target: embedded
  processor: "./helpers.js"
  phases: [{duration: 1s, arrivalRate: 1}]
scenarios:
  - name: main
    beforeRequest: addAuth
    flow:
      - connect
      - function: computeTotals
"#,
    )
    .expect_err("three problems")
    .to_string();
    for (position, key, replacement) in [
        ("4:3", "processor", "`capture` and `expect`"),
        ("8:5", "beforeRequest", "templates in `url`, `headers`"),
        ("11:9", "function", "`set: {name:"),
    ] {
        assert!(
            problems.contains(position)
                && problems.contains(&format!("`{key}` runs JavaScript in Artillery"))
                && problems.contains(replacement),
            "{key}: {problems}"
        );
    }
}

/// `target: "{{ $processEnvironment.X }}"` through the real binary, whose environment the test
/// sets without touching its own: unset → exit 2 naming the variable; set → the run uses it.
#[test]
fn the_binary_takes_its_target_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("env-target.yml");
    std::fs::write(
        &plan,
        r#"
config:
  target: "{{ $processEnvironment.CHATLOAD_TEST_TARGET }}"
  phases: [{duration: 200ms, arrivalCount: 2}]
scenarios:
  - name: ping
    flow:
      - connect
      - send: "PING {{ $uuid }}"
        expect: {match: "^PONG ", name: ping}
"#,
    )
    .expect("plan written");
    let binary = env!("CARGO_BIN_EXE_chatload");
    let unset = std::process::Command::new(binary)
        .arg("check")
        .arg(&plan)
        .env_remove("CHATLOAD_TEST_TARGET")
        .output()
        .expect("binary runs");
    assert_eq!(unset.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unset.stderr).into_owned()
        + &String::from_utf8_lossy(&unset.stdout);
    assert!(
        stderr.contains("environment variable `CHATLOAD_TEST_TARGET` is not set"),
        "{stderr}"
    );
    let out = dir.path().join("out");
    let run = std::process::Command::new(binary)
        .arg("run")
        .arg(&plan)
        .args(["--quiet", "--format", "json", "--out"])
        .arg(&out)
        .env("CHATLOAD_TEST_TARGET", "embedded")
        .output()
        .expect("binary runs");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("result.json")).expect("result.json"),
    )
    .expect("json");
    assert_eq!(result["aggregate"]["summaries"]["latency.ping"]["count"], 2);
}
