//! The HTTP engine in-process: plans with HTTP steps run against a small hyper API on port 0
//! (`http/server.rs`), checking what reached the server and what the run measured.

pub(crate) mod server;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chatload::engine::RunOutcome;
use chatload::plan::{self, Plan};

use server::{Flavour, TestApi, start};

use crate::common::{assert_no_errors, counter, load_in, run_plan};

fn url(api: &TestApi) -> String {
    format!("http://{}", api.addr)
}

/// A plan of one vuser running `flow` once against `target`.
fn once(target: &str, extra_config: &str, flow: &str) -> String {
    format!(
        "config:\n  target: \"{target}\"\n  phases:\n    - {{duration: 1, arrivalCount: 1}}\n{extra_config}scenarios:\n  - name: api\n    flow:\n{flow}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_and_body_kind_reaches_the_server() {
    let api = start(Flavour::Plain).await;
    let dir = tempfile::tempdir().expect("dir");
    let flow = r#"
      - get: {url: "/echo", qs: {q: "a b", n: 1}, headers: {x-test: "{{ vu.id }}"}, expect: {statusCode: 200}}
      - post: {url: "/echo", json: {name: "ann", n: 2, tags: ["{{ vu.scenario }}"]}}
      - put: {url: "/echo", body: "plain {{ vu.scenario }}"}
      - patch: {url: "/echo", form: {a: "x y", b: "&"}}
      - delete: {url: "/echo", formData: {field: "v1"}}
      - head: {url: "/echo", expect: [{statusCode: 200}, {hasHeader: x-request-id}]}
      - options: {url: "/echo"}
"#;
    let plan = load_in(&once(&url(&api), "", flow), dir.path());
    let out = run_plan(plan, &url(&api)).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    assert_eq!(counter(agg, "http.requests"), 7);
    assert_eq!(counter(agg, "http.responses"), 7);
    assert_eq!(counter(agg, "http.codes.200"), 7);
    assert!(counter(agg, "http.downloaded_bytes") > 0);
    let seen = api.state.seen();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(
        methods,
        ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    );
    assert_eq!(seen[0].path, "/echo?n=1&q=a%20b");
    assert_eq!(seen[1].content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&seen[1].body).expect("json body");
    assert_eq!(
        json,
        serde_json::json!({"name": "ann", "n": 2, "tags": ["api"]})
    );
    assert_eq!(seen[2].body, "plain api");
    assert_eq!(seen[3].content_type, "application/x-www-form-urlencoded");
    assert_eq!(seen[3].body, "a=x%20y&b=%26");
    assert!(
        seen[4]
            .content_type
            .starts_with("multipart/form-data; boundary=")
    );
    assert!(
        seen[4].body.contains("name=\"field\"\r\n\r\nv1\r\n"),
        "{}",
        seen[4].body
    );
    // One keep-alive connection served them all, and each endpoint has its own row.
    assert!(agg.summaries.contains_key("http.response_time./echo"));
    assert_eq!(agg.summaries["http.response_time"].count, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_and_expectations_of_every_kind_pass_and_feed_later_requests() {
    let api = start(Flavour::Plain).await;
    let dir = tempfile::tempdir().expect("dir");
    let flow = r#"
      - post:
          url: "/login"
          name: login
          json: {username: "ann"}
          capture:
            - {json: "$.access_token", as: token}
            - {json: "$.user.name", as: who}
          expect:
            - statusCode: [200, 201]
            - contentType: json
            - hasProperty: user.name
            - hasHeader: set-cookie
      - get:
          url: "/me"
          headers: {Authorization: "Bearer {{ token }}"}
          capture: {json: "$.user", as: me}
          expect: [{statusCode: 200}, {equals: ["{{ me }}", "{{ who }}", "ann"]}]
      - get:
          url: "/echo"
          capture:
            - {header: X-Request-Id, as: rid}
            - {regexp: "\"id\":(\\d+)", as: num}
            - {json: "$.items[1].id", as: second}
            - {regexp: "(?P<m>GET|POST)", group: m, as: method}
            - {json: "$.absent", as: nothing, strict: false}
          expect:
            - matchesRegexp: "\"method\":\"GET\""
      - get: {url: "/items/{{ second }}-{{ rid }}-{{ num }}-{{ method }}", name: item, expect: {statusCode: 200}}
"#;
    let plan = load_in(&once(&url(&api), "", flow), dir.path());
    let out = run_plan(plan, &url(&api)).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    let seen = api.state.seen();
    assert_eq!(
        seen.last().map(|s| s.path.as_str()),
        Some("/items/8-req-42-7-GET")
    );
    assert_eq!(agg.summaries["http.response_time.login"].count, 1);
    assert_eq!(agg.summaries["http.response_time.item"].count, 1);
    assert_eq!(agg.summaries["http.response_time./me"].count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_count_against_their_endpoint_by_kind() {
    let api = start(Flavour::Plain).await;
    let (_hold, refused) = super::refusing_port();
    let dir = tempfile::tempdir().expect("dir");
    let target = url(&api);
    let yaml = format!(
        r#"config:
  target: "{target}"
  phases:
    - {{duration: 1, arrivalCount: 8}}
  ensure:
    conditions:
      - expression: "http.codes.500.count == 0"
      - expression: "http.response_time.fine.p99 < 5s"
scenarios:
  - name: broken
    flow:
      - get: {{url: "/status/500", name: broken, expect: {{statusCode: 200}}}}
  - name: nocapture
    flow:
      - get: {{url: "/echo", name: fine}}
      - get: {{url: "/echo", name: capture-miss, capture: {{json: "$.nope", as: x}}}}
  - name: refused
    target: "http://{refused}"
    flow:
      - get: {{url: "/", name: down}}
  - name: slow
    flow:
      - get: {{url: "/hang", name: hang, timeout: 300ms}}
"#
    );
    let out = run_plan(load_in(&yaml, dir.path()), &target).await;
    let agg = &out.metrics.aggregate;
    let broken = counter(agg, "failures.http.response_time.broken");
    let missed = counter(agg, "failures.http.response_time.capture-miss");
    let down = counter(agg, "failures.http.response_time.down");
    let hang = counter(agg, "failures.http.response_time.hang");
    assert_eq!(broken + missed + down + hang, 8, "{:?}", agg.counters);
    assert_eq!(counter(agg, "errors.timeout"), hang);
    assert_eq!(counter(agg, "errors.http_status"), broken);
    assert_eq!(counter(agg, "errors.capture"), missed);
    assert_eq!(counter(agg, "errors.connect_refused"), down);
    assert_eq!(counter(agg, "http.codes.500"), broken);
    assert_eq!(counter(agg, "failures.http.response_time.fine"), 0);
    let fine_count = agg
        .summaries
        .get("http.response_time.fine")
        .map_or(0, |s| s.count);
    assert_eq!(fine_count, missed);
    for e in &out.errors {
        let expected = match e.kind.as_str() {
            "http_status" => "http.response_time.broken",
            "capture" => "http.response_time.capture-miss",
            "timeout" => "http.response_time.hang",
            _ => "http.response_time.down",
        };
        assert_eq!(e.step, expected, "{e:?}");
        assert_eq!(e.method, "GET");
    }
    // Scenario picks are random: the codes condition fails exactly when a broken request
    // happened, and an unseen status counts as zero.
    let codes = out
        .thresholds
        .iter()
        .find(|t| t.expression.contains("http.codes.500"))
        .expect("codes condition");
    assert_eq!(codes.passed, broken == 0);
    let fine = out
        .thresholds
        .iter()
        .find(|t| t.expression.contains("fine.p99"))
        .expect("latency condition");
    assert_eq!(fine.passed, missed > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_redirects_and_gzip() {
    let api = start(Flavour::Plain).await;
    let dir = tempfile::tempdir().expect("dir");
    let flow = r#"
      - post: {url: "/login", json: {username: "bo"}, capture: {json: "$.access_token", as: token}}
      - get:
          url: "/me"
          headers: {Authorization: "Bearer {{ token }}"}
          capture: {json: "$.cookie", as: cookie}
      - get: {url: "/redirect", capture: {json: "$.query", as: via}}
      - get: {url: "/redirect", name: stay, followRedirect: false, expect: {statusCode: 302}}
      - post: {url: "/redirect", name: seeother, json: {a: 1}, capture: {json: "$.method", as: after303}}
      - get: {url: "/gzip", gzip: true, capture: {json: "$.word", as: word}}
      - get: {url: "/items/{{ cookie }}|{{ via }}|{{ after303 }}|{{ word }}", name: report}
"#;
    let out = run_plan(load_in(&once(&url(&api), "", flow), dir.path()), &url(&api)).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    let seen = api.state.seen();
    let last = seen.last().expect("requests").path.clone();
    let decoded = percent_decode(&last);
    assert_eq!(decoded, "/items/sid=s-bo|via=redirect|GET|compressed");
    // Two followed redirects and one kept: three 3xx, counted by status.
    assert_eq!(counter(agg, "http.codes.302"), 2);
    assert_eq!(counter(agg, "http.codes.303"), 1);
    assert_eq!(counter(agg, "http.requests"), 9);

    // `cookies: false`: no jar, nothing sent back.
    let api2 = start(Flavour::Plain).await;
    let flow = r#"
      - post: {url: "/login", json: {username: "cy"}, capture: {json: "$.access_token", as: token}}
      - get: {url: "/echo", capture: {json: "$.cookie", as: cookie, strict: false}}
"#;
    let config = "  http:\n    cookies: false\n";
    let out = run_plan(
        load_in(&once(&url(&api2), config, flow), dir.path()),
        &url(&api2),
    )
    .await;
    assert_no_errors(&out);
    let seen = api2.state.seen();
    assert_eq!(seen.len(), 2);
    assert!(!seen[1].body.contains("sid"));
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_and_with_prior_knowledge() {
    let ca = chatload::certs::TestCa::new("test CA").expect("CA");
    let api = start(Flavour::Tls(server::tls_config(&ca))).await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).expect("CA file");
    let target = format!("https://localhost:{}", api.addr.port());
    let flow = r#"
      - get: {url: "/echo", expect: {statusCode: 200}}
      - post: {url: "/login", json: {username: "h2"}, capture: {json: "$.access_token", as: t}}
"#;
    let config = "  tls:\n    caFile: ca.pem\n  http:\n    extendedMetrics: true\n";
    let out = run_plan(load_in(&once(&target, config, flow), dir.path()), &target).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    let seen = api.state.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|s| s.version == http::Version::HTTP_2),
        "{seen:?}"
    );
    // One connection: one TLS handshake, one TCP connect; totals for both requests.
    assert_eq!(agg.summaries["http.tls"].count, 1);
    assert_eq!(agg.summaries["http.tcp"].count, 1);
    assert_eq!(agg.summaries["http.total"].count, 2);

    let plain = start(Flavour::Plain).await;
    let config = "  http:\n    http2: true\n";
    let out = run_plan(
        load_in(&once(&url(&plain), config, flow), dir.path()),
        &url(&plain),
    )
    .await;
    assert_no_errors(&out);
    let seen = plain.state.seen();
    assert!(
        seen.iter().all(|s| s.version == http::Version::HTTP_2),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_response_shows_in_p99_despite_coordinated_omission() {
    let api = start(Flavour::Plain).await;
    // The 20th request waits a second; requests are paced every 10 ms.
    api.state.stall_at.store(20, Ordering::SeqCst);
    *api.state.stall.lock().expect("lock") = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("dir");
    let flow = r#"
      - loop:
          - get: {url: "/tick", name: tick}
          - think: 10ms
        duration: 2s
"#;
    let out = run_plan(load_in(&once(&url(&api), "", flow), dir.path()), &url(&api)).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    let tick = &agg.summaries["http.response_time.tick"];
    // Only one response was slow, but the ~100 requests scheduled during the stall are
    // measured from their schedule: far more than 1 % of the samples are late.
    assert!(
        tick.p99 >= 900.0,
        "p99 {} ms of {} samples",
        tick.p99,
        tick.count
    );
    assert!(tick.max >= 1000.0, "max {} ms", tick.max);
}

/// An Artillery plan as its users write it (login capturing the token, a Bearer header,
/// weighted scenarios, a CSV payload, think in seconds): it runs as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artillery_plan_runs_unchanged() {
    let api = start(Flavour::Plain).await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("users.csv"),
        "username,password\nann,a1\nbo,b2\n",
    )
    .expect("csv");
    let target = url(&api);
    let yaml = format!(
        r#"config:
  target: "{target}"
  phases:
    - duration: 2
      arrivalRate: 3
      name: "Warm up"
  payload:
    path: "users.csv"
    fields:
      - "username"
      - "password"
    skipHeader: true
  defaults:
    headers:
      x-test: "artillery"
  ensure:
    thresholds:
      - http.response_time.p95: 2000
    maxErrorRate: 1
scenarios:
  - name: "Browse"
    weight: 3
    flow:
      - post:
          url: "/login"
          json:
            username: "{{{{ username }}}}"
            password: "{{{{ password }}}}"
          capture:
            - json: "$.access_token"
              as: "token"
      - get:
          url: "/me"
          headers:
            Authorization: "Bearer {{{{ token }}}}"
          expect:
            - statusCode: 200
      - think: 0.1
      - get:
          url: "/echo"
          headers:
            Authorization: "Bearer {{{{ token }}}}"
  - name: "Just login"
    weight: 1
    flow:
      - post:
          url: "/login"
          json:
            username: "{{{{ username }}}}"
"#
    );
    let out = run_plan(load_in(&yaml, dir.path()), &target).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    assert_eq!(counter(agg, "vusers.created"), 6);
    assert_eq!(counter(agg, "vusers.completed"), 6);
    assert!(
        out.thresholds.iter().all(|t| t.passed),
        "{:?}",
        out.thresholds
    );
    let seen = api.state.seen();
    assert_eq!(seen.len() as u64, counter(agg, "http.requests"));
    let echoes: Vec<_> = seen.iter().filter(|s| s.path == "/echo").collect();
    assert!(echoes.iter().all(|s| s.method == "GET"));
    assert_eq!(
        api.state.requests.load(Ordering::SeqCst),
        counter(agg, "http.responses")
    );
}

/// The result the CLI writes, from a run of `plan` (what `chatload run` does).
fn result_of(plan: &Plan, out: &RunOutcome) -> chatload::report::RunResult {
    let info = chatload::report::RunInfo::new(
        &plan.name,
        &out.target,
        out.started_at,
        out.started_at + out.duration,
    );
    let mut result =
        chatload::report::RunResult::new(info, out.metrics.clone(), plan.as_written.clone());
    result.errors = out
        .errors
        .iter()
        .map(|e| chatload::report::ErrorEntry {
            step: e.step.clone(),
            method: e.method.clone(),
            scenario: e.scenario.clone(),
            kind: e.kind.to_string(),
            message: e.message.clone(),
            count: e.count,
        })
        .collect();
    result.endpoints = plan::http_endpoints(&plan.scenarios);
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_failures_csv_have_locust_rows_per_endpoint() {
    let api = start(Flavour::Plain).await;
    let dir = tempfile::tempdir().expect("dir");
    let flow = r#"
      - post: {url: "/login", name: login, json: {username: "ann"}}
      - get: {url: "/items/{{ vu.id }}"}
      - get: {url: "/status/503", name: flaky, expect: {statusCode: 200}}
"#;
    let yaml = once(&url(&api), "", flow).replace("arrivalCount: 1", "arrivalCount: 3");
    let plan = load_in(&yaml, dir.path());
    let out = run_plan(plan.clone(), &url(&api)).await;
    let result = result_of(&plan, &out);
    let stats =
        String::from_utf8(chatload::report::stats_csv(&result).expect("stats")).expect("utf-8");
    let rows: Vec<Vec<&str>> = stats
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r[1] == name)
            .unwrap_or_else(|| panic!("no row {name} in\n{stats}"))
    };
    assert_eq!(&row("login")[..4], ["POST", "login", "3", "0"]);
    assert_eq!(
        &row("/items/{{ vu.id }}")[..4],
        ["GET", "/items/{{ vu.id }}", "3", "0"]
    );
    assert_eq!(&row("flaky")[..4], ["GET", "flaky", "3", "3"]);
    assert_eq!(&row("Aggregated")[2..4], ["9", "3"]);
    assert!(
        !rows.iter().any(|r| r[1] == "http.response_time"),
        "all requests are the Aggregated row:\n{stats}"
    );
    let failures = String::from_utf8(chatload::report::failures_csv(&result).expect("failures"))
        .expect("utf-8");
    let lines: Vec<&str> = failures.lines().collect();
    assert_eq!(lines[0], "Method,Name,Error,Occurrences");
    assert_eq!(lines.len(), 2, "{failures}");
    assert!(
        lines[1].starts_with("GET,flaky,http_status: GET /status/503 (503): expected status 200,"),
        "{failures}"
    );
    assert!(lines[1].ends_with(",3"), "{failures}");
    let html = chatload::report::render_html(&result).expect("html");
    assert!(html.contains("HTTP endpoints"));
    assert!(html.contains("HTTP responses per second, by status"));
}

/// One plan, two engines: a chat scenario on the plan's socket target and an HTTP scenario
/// on its own target, in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_mixes_a_socket_scenario_and_an_http_scenario() {
    let chat = chatload::server::spawn(chatload::server::ServerConfig::default())
        .await
        .expect("chat server");
    let api = start(Flavour::Plain).await;
    let dir = tempfile::tempdir().expect("dir");
    let chat_target = chat.addr().to_string();
    let yaml = format!(
        r#"config:
  target: "{chat_target}"
  phases:
    - {{duration: 1, arrivalCount: 4}}
scenarios:
  - name: chat
    flow:
      - connect
      - send: "PING 1"
      - expect: {{match: "^PONG", name: pong}}
  - name: api
    target: "{api}"
    engine: http
    flow:
      - post: {{url: "/login", name: login, json: {{username: "mix"}}}}
"#,
        api = url(&api)
    );
    let out = run_plan(load_in(&yaml, dir.path()), &chat_target).await;
    let agg = &out.metrics.aggregate;
    assert_no_errors(&out);
    let pongs = agg.summaries.get("latency.pong").map_or(0, |s| s.count);
    let logins = agg
        .summaries
        .get("http.response_time.login")
        .map_or(0, |s| s.count);
    assert_eq!(pongs + logins, 4);
    assert_eq!(api.state.seen().len() as u64, logins);
    assert_eq!(counter(agg, "http.requests"), logins);
}

/// Without `pool` every vuser keeps its own connection; with `pool: 2` all share two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_pool_bounds_the_connections_of_all_vusers() {
    let dir = tempfile::tempdir().expect("dir");
    let flow = r#"
      - loop:
          - get: {url: "/echo", expect: {statusCode: 200}}
        count: 5
"#;
    for (config, most) in [("", 6), ("  http:\n    pool: 2\n", 2)] {
        let api = start(Flavour::Plain).await;
        let yaml = once(&url(&api), config, flow).replace("arrivalCount: 1", "arrivalCount: 6");
        let out = run_plan(load_in(&yaml, dir.path()), &url(&api)).await;
        let agg = &out.metrics.aggregate;
        assert_no_errors(&out);
        assert_eq!(counter(agg, "http.responses"), 30);
        let connections = api.state.connections.load(Ordering::SeqCst);
        assert!(
            (1..=most).contains(&connections),
            "{connections} connections with {config:?}"
        );
        if most == 6 {
            assert_eq!(connections, 6, "one keep-alive connection per vuser");
        }
    }
}
