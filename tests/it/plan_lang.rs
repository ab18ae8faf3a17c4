//! Integration tests: the plan language against the reference server — templated matchers in
//! a shared room, branches (`if`, `pick`, `while`), setup and teardown (`before`/`after`,
//! hooks), and per-scenario `count`/`startAfter`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatload::engine::{self, RunOptions, RunOutcome};
use chatload::plan::{Format, Plan};
use chatload::server::{self, ServerConfig};

fn plan(yaml: &str) -> Plan {
    let dir = std::env::temp_dir();
    chatload::plan::load_str(yaml, &dir.join("plan-lang.yml"), Format::Yaml)
        .unwrap_or_else(|problems| panic!("{problems}"))
}

/// Runs `plan` against its embedded server, collecting the `log` lines.
async fn run_logged(plan: Plan, options: RunOptions) -> (RunOutcome, Vec<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let options = RunOptions {
        on_log: Some(Arc::new(move |line: &str| {
            if let Ok(mut lines) = sink.lock() {
                lines.push(line.to_owned());
            }
        })),
        ..options
    };
    let config = ServerConfig::default();
    let server = server::spawn(config.clone()).await.expect("server starts");
    let target = config.client_address(server.addr());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        engine::run(Arc::new(plan), &target, options),
    )
    .await
    .expect("run ends in time")
    .expect("run starts");
    let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
    (out, lines)
}

fn count(out: &RunOutcome, histogram: &str) -> u64 {
    out.metrics
        .aggregate
        .summaries
        .get(histogram)
        .map_or(0, |s| s.count)
}

fn errors(out: &RunOutcome) -> u64 {
    out.metrics.aggregate.errors_total()
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
    assert_eq!(errors(&out), 0, "{:?}", out.error_samples);
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
