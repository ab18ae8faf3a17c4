//! HTTP targets and settings: a scenario's templated `target`, `target: embedded` with HTTP
//! steps, `maxSockets`, and captured JSON values sent back in a body.

use std::process::Command;
use std::sync::atomic::Ordering;

use chatload::plan::{self, Format, Plan, Problems};

use super::http::server::{Flavour, start};
use crate::common::{counter, demo, load_in, run_plan};

/// Loads the YAML plan `yaml` as `plan.yml` in `dir`, or says what is wrong with it.
fn load(yaml: &str, dir: &std::path::Path) -> Result<Plan, Problems> {
    plan::load_str(yaml, &dir.join("plan.yml"), Format::Yaml)
}

/// Runs the real binary with `args` and `CHATLOAD_IT_API_URL=url`, off the runtime's threads
/// so the servers of the test keep answering.
async fn binary(args: Vec<std::ffi::OsString>, url: String) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_chatload"))
            .args(args)
            .env("CHATLOAD_IT_API_URL", url)
            .output()
            .expect("binary runs")
    })
    .await
    .expect("joined")
}

/// `target: "{{ $processEnvironment.API_URL }}"` on a scenario is rendered, like
/// `config.target`: the requests go to the demo API it names, not to the plan's target; a
/// value that is not a URL is a `check` error that says what it rendered to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templated_scenario_target_is_rendered_from_the_environment() {
    let demo = demo().await;
    let other = start(Flavour::Plain).await;
    let dir = tempfile::tempdir().expect("dir");
    let plan = dir.path().join("plan.yml");
    std::fs::write(
        &plan,
        format!(
            r#"config:
  target: "http://{other}"
  phases: [{{duration: 200ms, arrivalCount: 2}}]
scenarios:
  - name: health
    target: "{{{{ $processEnvironment.CHATLOAD_IT_API_URL }}}}"
    flow:
      - get: {{url: /health, name: health, expect: {{statusCode: 200}}}}
"#,
            other = other.addr
        ),
    )
    .expect("plan");
    let out = dir.path().join("out");
    let args = vec![
        "run".into(),
        plan.clone().into(),
        "--quiet".into(),
        "--format".into(),
        "json".into(),
        "--out".into(),
        out.clone().into(),
    ];
    let ran = binary(args, format!("http://{}", demo.addr())).await;
    assert_eq!(
        ran.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("result.json")).expect("result.json"),
    )
    .expect("json");
    let counters = &result["aggregate"]["counters"];
    assert_eq!(counters["http.codes.200"], 2, "{counters}");
    assert!(
        other.state.seen().is_empty(),
        "the plan's target got {:?}",
        other.state.seen()
    );

    let check = binary(vec!["check".into(), plan.into()], "not a url".to_owned()).await;
    assert_eq!(check.status.code(), Some(2));
    let said = String::from_utf8_lossy(&check.stderr).into_owned()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains("renders to `not a url`, not a URL") && said.contains("6:13"),
        "{said}"
    );
}

#[test]
fn http_steps_on_the_embedded_target_need_the_embedded_http_api() {
    let dir = tempfile::tempdir().expect("dir");
    let plan = |embedded: &str, flow: &str| {
        format!(
            "config:\n  target: embedded\n{embedded}  phases: [{{duration: 1, arrivalCount: 1}}]\nscenarios:\n  - name: s\n    flow:\n{flow}"
        )
    };
    let http_flow = "      - get: {url: /health}\n";
    let socket_flow = "      - connect\n      - send: PING 1\n";
    let problems = load(&plan("", http_flow), dir.path())
        .expect_err("HTTP steps need the HTTP demo API")
        .to_string();
    assert!(
        problems.contains("HTTP steps against `target: embedded` need the embedded HTTP demo API")
            && problems.contains("add `embedded: {http: true}` under `config`"),
        "{problems}"
    );
    let with_http = "  embedded: {http: true}\n";
    load_in(&plan(with_http, http_flow), dir.path());
    load_in(&plan("", socket_flow), dir.path());
    let problems = load(&plan(with_http, socket_flow), dir.path())
        .expect_err("socket steps need the chat server")
        .to_string();
    assert!(
        problems.contains("the embedded server serves the HTTP demo API"),
        "{problems}"
    );
}

/// A vuser needs one connection per origin (it sends one request at a time); `maxSockets`
/// caps how many it keeps open over all origins, closing the least recently used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_sockets_caps_the_connections_a_vuser_keeps_open() {
    let dir = tempfile::tempdir().expect("dir");
    for (config, each) in [("", 1), ("  http:\n    maxSockets: 1\n", 3)] {
        let a = start(Flavour::Plain).await;
        let b = start(Flavour::Plain).await;
        let yaml = format!(
            r#"config:
  target: "http://{a}"
  phases: [{{duration: 1, arrivalCount: 1}}]
{config}scenarios:
  - name: two-origins
    flow:
      - loop:
          - get: {{url: "/echo", name: a, expect: {{statusCode: 200}}}}
          - get: {{url: "http://{b}/echo", name: b, expect: {{statusCode: 200}}}}
        count: 3
"#,
            a = a.addr,
            b = b.addr
        );
        let out = run_plan(load_in(&yaml, dir.path()), &format!("http://{}", a.addr)).await;
        assert_eq!(out.metrics.aggregate.errors_total(), 0, "{:?}", out.errors);
        assert_eq!(counter(&out, "http.responses"), 6);
        let accepted = (
            a.state.connections.load(Ordering::SeqCst),
            b.state.connections.load(Ordering::SeqCst),
        );
        assert_eq!(accepted, (each, each), "{config:?}");
    }
}

/// A captured JSON value goes back into a body as JSON text: `true`, not minijinja's `True`,
/// objects and lists included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_json_values_render_as_json_text() {
    let api = start(Flavour::Plain).await;
    let dir = tempfile::tempdir().expect("dir");
    let target = format!("http://{}", api.addr);
    let yaml = format!(
        r#"config:
  target: "{target}"
  phases: [{{duration: 1, arrivalCount: 1}}]
  variables:
    flag: true
scenarios:
  - name: send-back
    flow:
      - get:
          url: /gzip
          gzip: true
          capture:
            - {{json: "$", as: doc}}
            - {{json: "$.zipped", as: zipped}}
      - post:
          url: /echo
          body: '{{"doc": {{{{ doc }}}}, "zipped": {{{{ zipped }}}}, "flag": {{{{ flag }}}}, "list": {{{{ [flag, 1] }}}}}}'
          expect: {{equals: ["{{{{ zipped }}}}", "true"]}}
"#
    );
    let out = run_plan(load_in(&yaml, dir.path()), &target).await;
    assert_eq!(out.metrics.aggregate.errors_total(), 0, "{:?}", out.errors);
    let seen = api.state.seen();
    let body = &seen.last().expect("the post").body;
    let sent: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(
        sent,
        serde_json::json!({
            "doc": {"zipped": true, "word": "compressed"},
            "zipped": true,
            "flag": true,
            "list": [true, 1],
        })
    );
}
