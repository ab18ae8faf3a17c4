//! The HTTP engine against the reference server's demo API (`chatload serve --http`): an
//! Artillery plan as its users write it, with only the routes changed to the demo API's, and
//! the client-testing routes (cookies, redirect chains, gzip).

use crate::common::{assert_no_errors, counter, demo, load_in, run_plan};

/// The Artillery plan of the API performance document (login capturing the token, Bearer
/// headers, weighted scenarios, a CSV payload, think in seconds), routes of the demo API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_artillery_plan_runs_against_the_demo_api() {
    let api = demo().await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("users.csv"),
        "username,password\nann,secret1\nbo,secret2\ncy,secret3\n",
    )
    .expect("csv");
    let target = format!("http://{}", api.addr());
    let yaml = format!(
        r#"config:
  target: "{target}"
  phases:
    - duration: 2
      arrivalRate: 4
      name: "Steady"
  payload:
    path: "users.csv"
    fields:
      - "username"
      - "password"
    skipHeader: true
  ensure:
    thresholds:
      - http.response_time.p95: 2000
    maxErrorRate: 0
scenarios:
  - name: "Book a locker"
    weight: 3
    flow:
      - post:
          url: "/api/login"
          json:
            username: "{{{{ username }}}}"
            password: "{{{{ password }}}}"
          capture:
            - json: "$.access_token"
              as: "token"
      - get:
          url: "/api/items?status=free&limit=5"
          name: "items"
          headers:
            Authorization: "Bearer {{{{ token }}}}"
          capture:
            - json: "$.items[0].id"
              as: "id"
          expect:
            - statusCode: 200
            - contentType: json
            - hasProperty: items
      - think: 0.2
      - post:
          url: "/api/items/{{{{ id }}}}/hold"
          name: "hold"
          headers:
            Authorization: "Bearer {{{{ token }}}}"
          expect:
            - statusCode: [200, 409]
      - get:
          url: "/api/mine"
          headers:
            Authorization: "Bearer {{{{ token }}}}"
          expect:
            - statusCode: 200
            - equals: ["{{{{ username }}}}", "{{{{ username }}}}"]
  - name: "Browse"
    weight: 1
    flow:
      - post:
          url: "/api/login"
          json:
            username: "{{{{ username }}}}"
            password: "{{{{ password }}}}"
          capture:
            json: "$.access_token"
            as: "token"
      - get:
          url: "/api/items"
          name: "items"
          headers:
            Authorization: "Bearer {{{{ token }}}}"
"#
    );
    let out = run_plan(load_in(&yaml, dir.path()), &target).await;
    assert_no_errors(&out);
    assert_eq!(counter(&out, "vusers.created"), 8);
    assert_eq!(counter(&out, "vusers.completed"), 8);
    assert!(
        out.thresholds.iter().all(|t| t.passed),
        "{:?}",
        out.thresholds
    );
    let agg = &out.metrics.aggregate;
    let logins = agg.summaries["http.response_time./api/login"].count;
    assert_eq!(logins, 8, "every vuser logged in once");
    assert_eq!(agg.summaries["http.response_time.items"].count, 8);
    assert_eq!(
        counter(&out, "http.requests"),
        counter(&out, "http.responses")
    );
    assert_eq!(
        counter(&out, "http.codes.401"),
        0,
        "the Bearer token was sent"
    );
}

/// Cookies set by the server come back, a redirect chain is followed to its end, and a
/// gzip body is decoded, on the demo API's client-testing routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_redirect_chains_and_gzip_on_the_demo_api() {
    let api = demo().await;
    let dir = tempfile::tempdir().expect("dir");
    let target = format!("http://{}", api.addr());
    let yaml = format!(
        r#"config:
  target: "{target}"
  phases:
    - {{duration: 1, arrivalCount: 2}}
scenarios:
  - flow:
      - get: {{url: "/cookies/set?flavour=mint"}}
      - get: {{url: "/cookies/check?flavour=mint", expect: {{statusCode: 200}}}}
      - get: {{url: "/redirect/3", capture: {{json: "$.path", as: landed}}}}
      - get: {{url: "/gzip", gzip: true, capture: {{json: "$.gzipped", as: zipped}}, expect: {{equals: ["{{{{ zipped }}}}", "true"]}}}}
      - get: {{url: "/echo", qs: {{landed: "{{{{ landed }}}}"}}, expect: {{matchesRegexp: "/echo"}}}}
"#
    );
    let out = run_plan(load_in(&yaml, dir.path()), &target).await;
    assert_no_errors(&out);
    assert_eq!(counter(&out, "http.codes.302"), 2 * 3);
    assert_eq!(counter(&out, "http.codes.200"), 2 * 5);
}
