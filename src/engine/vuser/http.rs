//! The HTTP request step (`get`, `post`, ...): render the request, send it on the vuser's
//! HTTP session (following redirects, keeping cookies), measure it from its scheduled time,
//! then check expectations and store captures. Metrics use Artillery's names
//! (`http.response_time[.<endpoint>]`, `http.requests`, `http.codes.<status>`, ...).
//!
//! What is pure (URLs, bodies, cookies, captures) is in `http_parts`; connections are
//! `transport::http`'s.

use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use minijinja::value::Value;
use tokio::time::Instant;

use super::context::RunContext;
use super::http_parts::{self, Captured, CookieJar, Parsed, Target, UrlError};
use super::{Control, Vuser, after, message};
use crate::engine::error::{ErrorKind, Failure};
use crate::metrics::{CounterId, HistogramId, Registry};
use crate::plan::{
    Endpoint, HttpBody, HttpExpect, HttpMethod, HttpRequest, HttpSettings, Plan, Step, Text,
};
use crate::transport::http::{Exchange, HttpClient, HttpSession, Outgoing};
use crate::vocab::names;

use super::program::StepId;

/// Redirects followed per request before it fails (browsers allow about 20; 10 is plenty
/// for an API).
const MAX_REDIRECTS: usize = 10;

/// One compiled HTTP step.
#[derive(Debug)]
pub(crate) struct HttpOp {
    pub request: HttpRequest,
    /// `http.response_time.<name>` of the step's scenario.
    pub latency: HistogramId,
    pub step: StepId,
    /// Index of the scenario, for its target.
    pub scenario: usize,
    /// The target of a step whose `url` is a literal without `qs`: resolved at the step's
    /// first request and shared by every vuser from then on (no render, parse or copy per
    /// request).
    pub fixed_target: OnceLock<Result<Target, UrlError>>,
}

/// The run-wide HTTP metrics.
#[derive(Debug, Clone)]
pub(crate) struct HttpIds {
    pub response_time: HistogramId,
    pub requests: CounterId,
    pub responses: CounterId,
    pub downloaded_bytes: CounterId,
    /// `extendedMetrics`: dns, tcp, tls, total.
    pub extended: Option<[HistogramId; 4]>,
}

impl HttpIds {
    pub fn register(registry: &mut Registry, settings: &HttpSettings) -> Self {
        HttpIds {
            response_time: registry.histogram(names::HTTP_RESPONSE_TIME),
            requests: registry.counter(names::HTTP_REQUESTS),
            responses: registry.counter(names::HTTP_RESPONSES),
            downloaded_bytes: registry.counter(names::HTTP_DOWNLOADED_BYTES),
            extended: settings.extended_metrics.then(|| {
                [
                    registry.histogram(names::HTTP_DNS),
                    registry.histogram(names::HTTP_TCP),
                    registry.histogram(names::HTTP_TLS),
                    registry.histogram(names::HTTP_TOTAL),
                ]
            }),
        }
    }
}

/// What the HTTP steps of a run share.
pub(crate) struct HttpRun {
    pub client: HttpClient,
    /// Each scenario's base URL: its own `target`, else the run's, when it is http(s).
    pub bases: Vec<Option<Endpoint>>,
    pub ids: HttpIds,
}

/// Whether any scenario of `plan` sends HTTP requests.
pub(crate) fn plan_uses_http(plan: &Plan) -> bool {
    fn any(steps: &[Step]) -> bool {
        steps.iter().any(|s| match s {
            Step::Http(_) => true,
            Step::Loop { steps, .. } | Step::If { steps, .. } => any(steps),
            Step::Pick(branches) => branches.iter().any(|b| any(&b.steps)),
            _ => false,
        })
    }
    plan.scenarios.iter().any(|s| any(&s.flow))
}

impl HttpRun {
    /// `run_target` is the run's target URL (after `embedded` was replaced by an address).
    pub fn new(plan: &Plan, run_target: &str, registry: &mut Registry) -> Self {
        let http_base = |t: &str| Endpoint::parse(t).ok().filter(|e| e.scheme.is_http());
        let run_base = http_base(run_target);
        HttpRun {
            client: HttpClient::new(
                plan.tls.as_ref(),
                plan.http.http2,
                plan.source_addresses.clone(),
                plan.http.pool,
                plan.http.max_sockets,
            ),
            // A scenario's own target was rendered and checked at load; one that is not
            // http(s) (a socket scenario) has no base rather than the run's.
            bases: plan
                .scenarios
                .iter()
                .map(|s| match &s.target {
                    Some(t) => http_base(t),
                    None => run_base.clone(),
                })
                .collect(),
            ids: HttpIds::register(registry, &plan.http),
        }
    }
}

/// A vuser's HTTP state: its connections, cookies and the status counters it has used.
#[derive(Default)]
pub(crate) struct VuserHttp {
    session: HttpSession,
    jar: CookieJar,
    /// `http.codes.<status>` ids seen by this vuser: looked up by name once per status.
    codes: Vec<(u16, CounterId)>,
}

/// Sends one request (and its redirects), records it, checks it, captures from it.
pub(crate) async fn request(
    vu: &mut Vuser,
    ctx: &RunContext,
    op: &HttpOp,
) -> Result<Control, Failure> {
    let Some(run) = ctx.http.as_ref() else {
        return Err(Failure::new(
            ErrorKind::Io,
            "the run has no HTTP client (no HTTP steps were expected)",
        ));
    };
    let req = &op.request;
    let scheduled = vu.clock.next_send;
    let render = |text: &Text, vu: &Vuser| {
        ctx.renderer
            .render(text, &vu.scope)
            .map_err(|e| Failure::new(ErrorKind::Template, e.to_string()))
    };
    let base = run.bases.get(op.scenario).and_then(Option::as_ref);
    let bad_url = |e: &UrlError| Failure::new(ErrorKind::Template, e.to_string());
    let mut target: Cow<'_, Target> = match &req.url {
        Text::Literal(url) if req.query.is_empty() => Cow::Borrowed(
            op.fixed_target
                .get_or_init(|| http_parts::resolve(base, url, &[]))
                .as_ref()
                .map_err(bad_url)?,
        ),
        _ => {
            let url = render(&req.url, vu)?;
            let mut query = Vec::with_capacity(req.query.len());
            for (name, value) in &req.query {
                query.push((name.as_str(), render(value, vu)?));
            }
            let query_refs: Vec<(&str, &str)> =
                query.iter().map(|(n, v)| (*n, v.as_str())).collect();
            Cow::Owned(http_parts::resolve(base, &url, &query_refs).map_err(|e| bad_url(&e))?)
        }
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len() + ctx.plan.http.headers.len());
    for (name, value) in req.headers.iter().chain(&ctx.plan.http.headers) {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        if headers.contains_key(&name) {
            // The step's own header wins over the default of the same name.
            continue;
        }
        let value = render(value, vu)?;
        let value = HeaderValue::from_str(&value).map_err(|_| {
            Failure::new(
                ErrorKind::Template,
                format!("header `{name}` renders to a value HTTP cannot carry: {value:?}"),
            )
        })?;
        headers.insert(name, value);
    }
    let body = body(vu, ctx, &req.body, &mut headers)?;
    let mut method = method_of(req.method);
    let mut body = body;
    let timeout = req
        .timeout
        .or(ctx.plan.http.timeout)
        .unwrap_or(ctx.plan.defaults.timeout);
    let deadline = after(Instant::now(), timeout);
    let state = vu.http.get_or_insert_with(Default::default);
    let mut redirects = 0;
    let exchange = loop {
        // The request takes the headers; a copy is kept only while a redirect may still be
        // followed (the next hop sends the same ones).
        let mut sent_headers = if req.follow_redirect && redirects < MAX_REDIRECTS {
            headers.clone()
        } else {
            std::mem::take(&mut headers)
        };
        if ctx.plan.http.cookies
            && let Some(cookie) = state.jar.header_for(&target)
            && let Ok(value) = HeaderValue::from_str(&cookie)
        {
            sent_headers.insert(header::COOKIE, value);
        }
        let outgoing = Outgoing {
            method: method.clone(),
            origin: &target.origin,
            path: &target.path,
            headers: sent_headers,
            body: body.clone(),
        };
        ctx.connect_watch.attempt();
        let exchange = match state
            .session
            .send(&run.client, outgoing, req.gzip, vu.id, deadline)
            .await
        {
            Ok(exchange) => {
                ctx.connect_watch.connected();
                exchange
            }
            Err(e) => {
                // Counted here; a request answered is counted with its response, under
                // the same lock.
                ctx.recorder.incr(run.ids.requests);
                let failure =
                    Failure::new(e.kind, format!("{} {}: {}", method, target.path, e.detail));
                // A target that refuses every connection stops the run early, as for sockets.
                if e.kind.is_connect_failure() {
                    ctx.connect_watch.failed(&failure);
                }
                return Err(failure);
            }
        };
        record(ctx, run, state, op, scheduled, &exchange);
        if ctx.plan.http.cookies {
            state.jar.store(&target, &exchange.headers);
        }
        let location = exchange
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok());
        match location {
            Some(location) if req.follow_redirect && (300..400).contains(&exchange.status) => {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(Failure::new(
                        ErrorKind::Protocol,
                        format!("{} redirected more than {MAX_REDIRECTS} times", target.path),
                    ));
                }
                target = Cow::Owned(
                    http_parts::redirect(&target, location)
                        .map_err(|e| Failure::new(ErrorKind::Protocol, e.to_string()))?,
                );
                // 303, and 301/302 after a POST, turn into a GET without body (as browsers
                // and Artillery's client do); 307 and 308 repeat the request.
                if exchange.status == 303
                    || (matches!(exchange.status, 301 | 302) && method == Method::POST)
                {
                    method = Method::GET;
                    body = Bytes::new();
                    headers.remove(header::CONTENT_TYPE);
                }
            }
            _ => break exchange,
        }
    };
    vu.clock.next_send = vu.clock.next_send.max(exchange.done);
    check(vu, ctx, req, &target, &exchange)?;
    Ok(Control::Next)
}

/// Records one response under one metrics lock: the request and response counts, the
/// status, the bytes, the run-wide and the endpoint's response time (to the first byte, from
/// the scheduled time) and, with `extendedMetrics`, the stages.
fn record(
    ctx: &RunContext,
    run: &HttpRun,
    state: &mut VuserHttp,
    op: &HttpOp,
    scheduled: Instant,
    exchange: &Exchange,
) {
    let recorder = &ctx.recorder;
    let code = match state.codes.iter().find(|(s, _)| *s == exchange.status) {
        Some((_, id)) => *id,
        None => {
            // Once per status and vuser: the name table's slow path.
            let id = recorder.counter(&names::http_code(exchange.status));
            state.codes.push((exchange.status, id));
            id
        }
    };
    let ttfb = exchange.first_byte.saturating_duration_since(scheduled);
    let counts = [
        (run.ids.requests, 1),
        (run.ids.responses, 1),
        (code, 1),
        (run.ids.downloaded_bytes, exchange.downloaded_bytes),
    ];
    let Some([dns, tcp, tls, total]) = run.ids.extended else {
        recorder.record_many_and_add(
            &[(op.latency, ttfb), (run.ids.response_time, ttfb)],
            &counts,
        );
        return;
    };
    let mut samples = Vec::with_capacity(6);
    samples.extend([
        (op.latency, ttfb),
        (run.ids.response_time, ttfb),
        (total, exchange.done.saturating_duration_since(scheduled)),
    ]);
    if let Some(opened) = exchange.opened {
        samples.extend([(dns, opened.dns), (tcp, opened.tcp)]);
        if let Some(t) = opened.tls {
            samples.push((tls, t));
        }
    }
    recorder.record_many_and_add(&samples, &counts);
}

/// Renders the body and sets its `Content-Type` unless the step set one.
fn body(
    vu: &mut Vuser,
    ctx: &RunContext,
    spec: &HttpBody,
    headers: &mut HeaderMap,
) -> Result<Bytes, Failure> {
    let template = |e: &dyn std::fmt::Display| Failure::new(ErrorKind::Template, e.to_string());
    fn render_fields<'f>(
        ctx: &RunContext,
        fields: &'f [(String, Text)],
        vu: &Vuser,
    ) -> Result<Vec<(&'f str, String)>, Failure> {
        fields
            .iter()
            .map(|(n, t)| {
                ctx.renderer
                    .render(t, &vu.scope)
                    .map(|v| (n.as_str(), v))
                    .map_err(|e| Failure::new(ErrorKind::Template, e.to_string()))
            })
            .collect()
    }
    let (bytes, content_type) = match spec {
        HttpBody::None => return Ok(Bytes::new()),
        HttpBody::Message { spec, json } => {
            let frame = message::build(&ctx.plan, &ctx.renderer, ctx.endian, spec, &mut vu.scope)
                .map_err(|e| template(&e))?;
            let ct = if *json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            (frame.body, HeaderValue::from_static(ct))
        }
        HttpBody::Form(fields) => (
            Bytes::from(http_parts::form_urlencoded(&render_fields(
                ctx, fields, vu,
            )?)),
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        ),
        HttpBody::Multipart(fields) => (
            Bytes::from(http_parts::multipart(&render_fields(ctx, fields, vu)?)),
            HeaderValue::from_str(&format!(
                "multipart/form-data; boundary={}",
                http_parts::MULTIPART_BOUNDARY
            ))
            .map_err(|e| template(&e))?,
        ),
    };
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    Ok(bytes)
}

fn method_of(m: HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Options => Method::OPTIONS,
    }
}

/// The status first (a failed expectation is an `http_status` error, also when a capture
/// would have failed on the error page), then captures (a strict one that finds nothing is
/// a `capture` error), then the other expectations, which may compare captured values as
/// in Artillery.
fn check(
    vu: &mut Vuser,
    ctx: &RunContext,
    req: &HttpRequest,
    target: &Target,
    exchange: &Exchange,
) -> Result<(), Failure> {
    let mut body = Parsed::new(&exchange.body);
    let statuses = req
        .expects
        .iter()
        .filter(|e| matches!(e, HttpExpect::StatusCode(_)));
    for expect in statuses {
        expect_one(vu, ctx, req, target, exchange, &mut body, expect)?;
    }
    for capture in &req.captures {
        match http_parts::capture(&capture.from, &exchange.headers, &mut body) {
            // A boolean renders `true`/`false` as in the response (and as `if` compares),
            // not as the template engine spells booleans; numbers stay numbers.
            Some(Captured::Json(serde_json::Value::Bool(b))) => {
                vu.scope.set(&capture.variable, Value::from(b.to_string()))
            }
            Some(Captured::Json(value)) => vu
                .scope
                .set(&capture.variable, super::data::json_value(&value)),
            Some(Captured::Text(text)) => vu.scope.set(&capture.variable, Value::from(text)),
            None if capture.strict => {
                return Err(Failure::new(
                    ErrorKind::Capture,
                    format!(
                        "{} {} ({}): capture `{}` found nothing",
                        req.method.as_str(),
                        target.path,
                        exchange.status,
                        capture.variable
                    ),
                ));
            }
            None => {}
        }
    }
    let others = req
        .expects
        .iter()
        .filter(|e| !matches!(e, HttpExpect::StatusCode(_)));
    for expect in others {
        expect_one(vu, ctx, req, target, exchange, &mut body, expect)?;
    }
    Ok(())
}

fn expect_one(
    vu: &Vuser,
    ctx: &RunContext,
    req: &HttpRequest,
    target: &Target,
    exchange: &Exchange,
    body: &mut Parsed<'_>,
    expect: &HttpExpect,
) -> Result<(), Failure> {
    let what = |detail: String| {
        Failure::new(
            ErrorKind::HttpStatus,
            format!(
                "{} {} ({}): {detail}",
                req.method.as_str(),
                target.path,
                exchange.status
            ),
        )
    };
    {
        match expect {
            HttpExpect::StatusCode(codes) => {
                if !codes.contains(&exchange.status) {
                    let want: Vec<String> = codes.iter().map(u16::to_string).collect();
                    return Err(what(format!("expected status {}", want.join(" or "))));
                }
            }
            HttpExpect::ContentType(wanted) => {
                let got = exchange
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if !got.contains(wanted.as_str()) {
                    return Err(what(format!(
                        "expected a content type with `{wanted}`, got `{got}`"
                    )));
                }
            }
            HttpExpect::HasHeader(name) => {
                if !exchange.headers.contains_key(name.as_str()) {
                    return Err(what(format!("expected a `{name}` header")));
                }
            }
            HttpExpect::HasProperty(pointer) => {
                if body.json().and_then(|j| j.pointer(pointer)).is_none() {
                    return Err(what(format!(
                        "expected the JSON body to have `{}`",
                        pointer.trim_start_matches('/').replace('/', ".")
                    )));
                }
            }
            HttpExpect::Equals(texts) => {
                let mut first: Option<String> = None;
                for t in texts {
                    let v = ctx
                        .renderer
                        .render(t, &vu.scope)
                        .map_err(|e| Failure::new(ErrorKind::Template, e.to_string()))?;
                    match &first {
                        None => first = Some(v),
                        Some(f) if *f == v => {}
                        Some(f) => {
                            return Err(what(format!("expected `{f}` to equal `{v}`")));
                        }
                    }
                }
            }
            HttpExpect::MatchesRegexp(re) => {
                if !re.0.is_match(&body.text()) {
                    return Err(what(format!(
                        "expected the body to match `{}`",
                        re.0.as_str()
                    )));
                }
            }
        }
    }
    Ok(())
}
