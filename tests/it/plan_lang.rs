//! Integration tests: the plan language against the reference server — templated matchers in
//! a shared room, branches (`if`, `pick`, `while`), setup and teardown (`before`/`after`,
//! hooks), and per-scenario `count`/`startAfter`.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatload::engine::{RunOptions, RunOutcome};
use chatload::plan::Plan;
use chatload::server::ServerConfig;

use crate::common::{
    assert_no_errors, chatload, count, counter, run_on_server, write_plan, yaml_plan,
};

/// The YAML plan `yaml`, as if read from a file in the temporary folder.
fn plan(yaml: &str) -> Plan {
    yaml_plan(yaml, &std::env::temp_dir().join("plan-lang.yml"))
}

/// Runs `plan` against its embedded server, collecting the `log` lines.
async fn run_logged(plan: Plan, options: RunOptions) -> (RunOutcome, Vec<String>) {
    run_logging(plan, options, |_| {}).await
}

/// Runs `plan` against its embedded server, collecting the `log` lines and handing each to
/// `also` as it comes.
async fn run_logging(
    plan: Plan,
    options: RunOptions,
    also: impl Fn(&str) + Send + Sync + 'static,
) -> (RunOutcome, Vec<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let options = RunOptions {
        on_log: Some(Arc::new(move |line: &str| {
            if let Ok(mut lines) = sink.lock() {
                lines.push(line.to_owned());
            }
            also(line);
        })),
        ..options
    };
    let out = run_on_server(plan, ServerConfig::default(), options).await;
    let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
    (out, lines)
}

/// Six vusers in one room whose name is regex syntax: each waits for its own echo with a
/// templated regex, captures who sent it, and logs it; every logged sender is the vuser itself.
#[tokio::test]
async fn templated_matchers_pick_out_each_vusers_own_echo_in_a_shared_room() {
    let plan = plan(
        r#"
config:
  target: embedded
  phases: [{duration: 100ms, arrivalCount: 6}]
  defaults: {timeout: 10s}
  variables: {room: "a+b.c"}
scenarios:
  - name: talker
    handlers:
      - {on: "^MSG ", name: others}
    flow:
      - connect
      - send: "LOGIN u{{ vu.id }}"
        expect: {equals: "OK u{{ vu.id }}", name: login}
      - send: "JOIN {{ room }}"
        expect: {match: "^JOINED {{ room }}", name: join}
      - loop:
          - send: "SAY n{{ loop.index }}"
            expect:
              match: "^MSG {{ room }} (?P<who>u{{ vu.id }}) (?P<text>n{{ loop.index }})$"
              capture: {who: who, text: text}
              name: own
          - log: "{{ who }} {{ text }}"
        count: 3
"#,
    );
    let (out, lines) = run_logged(plan, RunOptions::default()).await;
    assert_no_errors(&out);
    assert_eq!(count(&out, "latency.login"), 6);
    assert_eq!(count(&out, "latency.own"), 18);
    assert_eq!(lines.len(), 18, "{lines:?}");
    for line in &lines {
        // `[vu N] uN nK`: the echo each vuser took is its own.
        let words: Vec<&str> = line.split_whitespace().collect();
        let id = words.get(1).map(|w| w.trim_end_matches(']'));
        assert_eq!(
            words.get(2).copied(),
            id.map(|id| format!("u{id}")).as_deref(),
            "{line}"
        );
    }
}

/// 2 000 picks (4 vusers × 500 turns) with a fixed seed land on the 3:1 branches within 5 %
/// of their shares; every turn takes exactly one branch.
#[tokio::test]
async fn pick_draws_branches_by_weight_on_every_execution() {
    let plan = plan(
        r#"
config:
  target: embedded
  phases: [{duration: 100ms, arrivalCount: 4}]
  defaults: {timeout: 10s}
scenarios:
  - name: picker
    flow:
      - connect
      - loop:
          - pick:
              - weight: 3
                flow:
                  - send: "PING a"
                    expect: {match: "^PONG a$", name: a}
              - flow:
                  - send: "PING b"
                    expect: {match: "^PONG b$", name: b}
        count: 500
"#,
    );
    let options = RunOptions {
        seed: Some(12),
        ..RunOptions::default()
    };
    let (out, _) = run_logged(plan, options).await;
    assert_no_errors(&out);
    let (a, b) = (count(&out, "latency.a"), count(&out, "latency.b"));
    assert_eq!(a + b, 2000, "{:?}", out.metrics.aggregate.counters);
    assert!(
        (1400..=1600).contains(&a),
        "a: {a} of 2000, expected 1500 ± 100"
    );
}

/// `if` over a captured value and `ifTrue` over the vuser id; `while` until a captured
/// number reaches 5.
#[tokio::test]
async fn if_and_while_follow_the_vusers_variables() {
    let plan = plan(
        r#"
config:
  target: embedded
  phases: [{duration: 100ms, arrivalCount: 6}]
  defaults: {timeout: 10s}
scenarios:
  - name: brancher
    flow:
      - connect
      - send: "PING {{ 'held' if vu.id % 2 == 0 else 'free' }}"
        expect: {match: "^PONG (?P<status>\\w+)$", capture: {status: status}, name: status}
      - send: "PING confirm"
        expect: {match: "^PONG confirm$", name: confirm}
        if: "status == 'held'"
      - send: "PING cancel"
        expect: {match: "^PONG cancel$", name: cancel}
        ifTrue: "vu.id % 2 == 1"
      - loop:
          - send: "PING {{ loop.index }}"
            expect: {match: "^PONG (?P<n>\\d+)$", capture: {n: n}, name: turn}
        while: "n is undefined or n | int < 5"
"#,
    );
    let (out, _) = run_logged(plan, RunOptions::default()).await;
    assert_no_errors(&out);
    assert_eq!(count(&out, "latency.confirm"), 3);
    assert_eq!(count(&out, "latency.cancel"), 3);
    assert_eq!(count(&out, "latency.turn"), 30, "five turns per vuser");
    assert_eq!(counter(&out, "vusers.completed"), 6);
}

/// `vusers.created` of one scenario.
fn created(out: &RunOutcome, scenario: &str) -> u64 {
    out.metrics
        .scenarios
        .iter()
        .find(|s| s.name == scenario)
        .and_then(|s| s.counters.get("vusers.created").copied())
        .unwrap_or(0)
}

/// Open model: exactly 2 publishers among 12 arrivals, the first two, held back until the 10
/// subscribers are in the room; every subscriber then gets both publishers' messages.
#[tokio::test]
async fn fixed_counts_and_start_after_in_the_open_model() {
    let plan = plan(
        r#"
config:
  target: embedded
  phases: [{duration: 200ms, arrivalCount: 12}, {pause: 3s}]
  defaults: {timeout: 10s}
scenarios:
  - name: subscriber
    flow:
      - send: "LOGIN s{{ vu.id }}"
        expect: {match: "^OK", name: login}
      - send: "JOIN news"
        expect: {match: "^JOINED news", name: joined}
      - loop:
          - expect: {match: "^MSG news p\\d+ hello$", name: got}
        count: 2
  - name: publisher
    count: 2
    startAfter: 1500ms
    flow:
      - send: "LOGIN p{{ vu.id }}"
        expect: {match: "^OK", name: login}
      - send: "JOIN news"
        expect: {match: "^JOINED news", name: joined}
      - send: "SAY hello"
"#,
    );
    let (out, _) = run_logged(plan, RunOptions::default()).await;
    assert_no_errors(&out);
    assert_eq!(created(&out, "publisher"), 2);
    assert_eq!(created(&out, "subscriber"), 10);
    assert_eq!(count(&out, "latency.got"), 20);
}

/// Closed model: 6 vusers at a time, of which exactly 2 run the fixed-count scenario; its
/// vusers start only after `startAfter`, and all-fixed plans start no more than their counts.
#[tokio::test]
async fn fixed_counts_and_start_after_in_the_closed_model() {
    let plan = plan(
        r#"
config:
  target: embedded
  phases: [{duration: 1s, vusers: 6}]
  defaults: {timeout: 10s, gracefulStop: 5s}
scenarios:
  - name: lurker
    flow:
      - send: "PING l"
        expect: {match: "^PONG l$", name: lurk}
      - think: 200ms
  - name: late
    count: 2
    startAfter: 600ms
    flow:
      - send: "PING {{ now_ms() }}"
        expect: {match: "^PONG (?P<t>\\d+)$", capture: {t: t}, name: late}
      - log: "{{ t }}"
      - think: 200ms
"#,
    );
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let (out, lines) = run_logged(plan, RunOptions::default()).await;
    assert_no_errors(&out);
    assert_eq!(created(&out, "late"), 2, "the fixed count, at a time");
    assert_eq!(created(&out, "lurker"), 4, "the rest of the 6");
    let first: u64 = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .min()
        .expect("the late scenario ran");
    assert!(
        first >= started + 600,
        "the late scenario sent at +{} ms, before its startAfter",
        first - started
    );
}

/// `record` turns a number captured from each reply into a custom histogram that `ensure`
/// can judge.
#[tokio::test]
async fn record_feeds_a_custom_histogram_that_ensure_judges() {
    let plan = plan(
        r#"
config:
  target: embedded
  phases: [{duration: 100ms, arrivalCount: 3}]
  defaults: {timeout: 10s}
  ensure:
    thresholds:
      - server_time.max: 50
scenarios:
  - name: timer
    flow:
      - loop:
          - send: "PING {{ 10 * loop.index }}"
            expect: {match: "^PONG (?P<t>\\d+)$", capture: {t: t}, name: pong}
          - record: {name: server_time, value: "{{ t }}"}
        count: 4
"#,
    );
    let (out, _) = run_logged(plan, RunOptions::default()).await;
    assert_no_errors(&out);
    let summary = out.metrics.aggregate.summaries.get("server_time");
    assert_eq!(summary.map(|s| s.count), Some(12));
    let max = summary.map_or(0.0, |s| s.max);
    assert!((39.0..=41.0).contains(&max), "max {max} ms, recorded 40");
    assert_eq!(out.thresholds.len(), 1);
    assert!(
        out.thresholds.iter().all(|t| t.passed),
        "{:?}",
        out.thresholds
    );
}

/// `before` captures a token once (random per run) that every vuser then uses; `after` runs
/// once the run ends, here cut short by Ctrl-C (the run's shutdown token) long before its
/// phase would end.
#[tokio::test]
async fn before_shares_its_captures_and_after_runs_after_ctrl_c() {
    let plan = plan(
        r#"
config:
  target: embedded
  phases: [{duration: 60s, arrivalRate: 5}]
  defaults: {timeout: 10s, gracefulStop: 1s}
before:
  flow:
    - send: "PING tok{{ random_int(1, 1000000000) }}"
      expect: {match: "^PONG (?P<token>\\S+)$", capture: {token: token}}
scenarios:
  - name: user
    flow:
      - send: "PING {{ token }}"
        expect: {equals: "PONG {{ token }}", name: use}
      - log: "{{ token }}"
after:
  flow:
    - send: "PING bye {{ token }}"
      expect: {match: "^PONG bye tok\\d+$", name: bye}
"#,
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ctrl_c = shutdown.clone();
    let lines_seen = Arc::new(Mutex::new(0usize));
    let seen = Arc::clone(&lines_seen);
    let options = RunOptions {
        shutdown,
        on_progress: Some(Arc::new(move |_| {
            // Ctrl-C as soon as a few vusers have used the token.
            if seen.lock().map(|n| *n).unwrap_or(0) >= 3 {
                ctrl_c.cancel();
            }
        })),
        interval: Some(Duration::from_millis(100)),
        ..RunOptions::default()
    };
    let counting = Arc::clone(&lines_seen);
    let (out, lines) = run_logging(plan, options, move |_| {
        if let Ok(mut n) = counting.lock() {
            *n += 1;
        }
    })
    .await;
    assert!(out.interrupted);
    assert_no_errors(&out);
    assert_eq!(count(&out, "latency.before"), 1, "the before flow ran once");
    assert_eq!(
        count(&out, "latency.bye"),
        1,
        "the after flow ran once, after Ctrl-C"
    );
    assert!(lines.len() >= 3, "{lines:?}");
    let tokens: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(tokens.len(), 1, "every vuser saw the one token: {tokens:?}");
    assert_eq!(count(&out, "latency.use"), lines.len() as u64);
}

/// Hooks run from the plan's directory, before and after, and their output is kept.
#[tokio::test]
async fn hooks_run_around_the_run_and_report_their_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = r#"
config:
  target: embedded
  phases: [{duration: 100ms, arrivalCount: 2}]
  hooks:
    before: [{run: ["sh", "-c", "echo seeded > state.txt; echo seeding"], timeout: 10s}]
    after: [{run: ["sh", "-c", "cat state.txt; rm state.txt"]}]
scenarios:
  - flow:
      - send: "PING 1"
        expect: {match: "^PONG 1$", name: ping}
"#;
    let plan = yaml_plan(yaml, &dir.path().join("hooks.yml"));
    let (out, _) = run_logged(plan, RunOptions::default()).await;
    assert_eq!(count(&out, "latency.ping"), 2);
    let summary: Vec<(&str, Option<i32>, &str)> = out
        .hooks
        .iter()
        .map(|h| (h.stage.as_str(), h.exit_code, h.stdout.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("before", Some(0), "seeding\n"),
            ("after", Some(0), "seeded\n")
        ]
    );
    assert!(
        !dir.path().join("state.txt").exists(),
        "the after hook cleaned up"
    );
}

/// Through the real binary: a failing `before` hook ends the run with exit 2, its output
/// shown, before any connection to the target; the `after` hook still runs.
#[test]
fn a_failing_before_hook_stops_the_run_before_any_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("address");
    let plan = format!(
        r#"config:
  target: "{addr}"
  phases: [{{duration: 1s, arrivalRate: 5}}]
  hooks:
    before: [{{run: ["sh", "-c", "echo seed failed >&2; exit 4"]}}]
    after: [{{run: ["sh", "-c", "echo restored > restored.txt"]}}]
scenarios:
  - flow: [connect, {{send: "PING 1"}}]
"#
    );
    let path = write_plan(dir.path(), "failing.yml", &plan);
    let reports = dir.path().join("reports");
    let out = chatload([
        OsStr::new("run"),
        OsStr::new("--quiet"),
        OsStr::new("--out"),
        reports.as_os_str(),
        path.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("seed failed"), "{stderr}");
    assert!(stderr.contains("exit code 4"), "{stderr}");
    assert!(
        dir.path().join("restored.txt").exists(),
        "after hooks run anyway"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection reached the target"
    );
}
