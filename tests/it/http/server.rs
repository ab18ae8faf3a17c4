//! A small HTTP API for the HTTP engine's tests, on hyper, port 0: login with a token and a
//! cookie, an echo of what was sent, redirects, gzip, statuses, and one stalled request. It
//! records every request it answers, so tests assert what went over the wire.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub version: http::Version,
    pub content_type: String,
    pub body: String,
}

#[derive(Default)]
pub struct State {
    pub requests: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    pub seen: Mutex<Vec<Seen>>,
    /// The request with this number (1-based) to `/tick` waits `stall` before answering.
    pub stall_at: AtomicU64,
    pub stall: Mutex<Duration>,
    ticks: AtomicU64,
}

impl State {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

pub struct TestApi {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How connections are served.
#[derive(Clone)]
pub enum Flavour {
    /// HTTP/1.1 (or HTTP/2 with prior knowledge): hyper's auto builder.
    Plain,
    /// TLS offering `h2` and `http/1.1` by ALPN.
    Tls(Arc<rustls::ServerConfig>),
}

pub async fn start(flavour: Flavour) -> TestApi {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let state = Arc::new(State::default());
    let task = tokio::spawn({
        let state = Arc::clone(&state);
        async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&state);
                let flavour = flavour.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, Arc::clone(&state)));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match flavour {
                        Flavour::Plain => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Flavour::Tls(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                    }
                });
            }
        }
    });
    TestApi { addr, state, task }
}

/// A TLS configuration with a certificate for `localhost` from `ca`, offering h2 first.
pub fn tls_config(ca: &chatload::certs::TestCa) -> Arc<rustls::ServerConfig> {
    let issued = ca.issue_server(&["localhost"]).expect("certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![issued.cert_der], issued.key_der)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json; charset=utf-8".parse().expect("value"),
    );
    r
}

fn header_text(req: &http::request::Parts, name: &str) -> String {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let path = parts.uri.path().to_owned();
    state.seen.lock().expect("lock").push(Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        version: parts.version,
        content_type: header_text(&parts, "content-type"),
        body: body_text.clone(),
    });
    let response = match (parts.method.as_str(), path.as_str()) {
        ("POST", "/login") => {
            let user = serde_json::from_str::<Value>(&body_text)
                .ok()
                .and_then(|v| v.get("username").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            if user.is_empty() {
                json_response(StatusCode::BAD_REQUEST, &json!({"error": "no username"}))
            } else {
                let mut r = json_response(
                    StatusCode::OK,
                    &json!({"access_token": format!("tok-{user}"), "user": {"name": user}}),
                );
                r.headers_mut().insert(
                    header::SET_COOKIE,
                    format!("sid=s-{user}; Path=/; HttpOnly")
                        .parse()
                        .expect("cookie"),
                );
                r
            }
        }
        ("GET", "/me") => {
            let auth = header_text(&parts, "authorization");
            match auth.strip_prefix("Bearer tok-") {
                Some(user) => json_response(
                    StatusCode::OK,
                    &json!({"user": user, "cookie": header_text(&parts, "cookie")}),
                ),
                None => json_response(StatusCode::UNAUTHORIZED, &json!({"error": "no token"})),
            }
        }
        (_, "/echo") => {
            let mut r = json_response(
                StatusCode::OK,
                &json!({
                    "method": parts.method.as_str(),
                    "query": parts.uri.query().unwrap_or(""),
                    "contentType": header_text(&parts, "content-type"),
                    "body": body_text,
                    "cookie": header_text(&parts, "cookie"),
                    "test": header_text(&parts, "x-test"),
                    "items": [{"id": 7}, {"id": 8}],
                }),
            );
            r.headers_mut()
                .insert("x-request-id", "req-42".parse().expect("value"));
            r
        }
        ("GET", "/redirect") | ("POST", "/redirect") => {
            let code = if parts.method == http::Method::POST {
                StatusCode::SEE_OTHER
            } else {
                StatusCode::FOUND
            };
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = code;
            r.headers_mut().insert(
                header::LOCATION,
                "/echo?via=redirect".parse().expect("location"),
            );
            r
        }
        ("GET", "/gzip") => {
            let doc = json!({"zipped": true, "word": "compressed"}).to_string();
            let gzip = header_text(&parts, "accept-encoding").contains("gzip");
            let mut r = if gzip {
                use std::io::Write;
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(doc.as_bytes()).expect("gzip");
                let mut r = Response::new(Full::new(Bytes::from(enc.finish().expect("gzip"))));
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, "gzip".parse().expect("value"));
                r
            } else {
                Response::new(Full::new(Bytes::from(doc)))
            };
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                "application/json".parse().expect("value"),
            );
            r
        }
        ("GET", "/tick") => {
            let n = state.ticks.fetch_add(1, Ordering::SeqCst) + 1;
            if n == state.stall_at.load(Ordering::SeqCst) {
                let stall = *state.stall.lock().expect("lock");
                tokio::time::sleep(stall).await;
            }
            json_response(StatusCode::OK, &json!({"tick": n}))
        }
        ("GET", "/hang") => {
            // Longer than any test's request timeout; bounded so no task outlives the test
            // binary by much.
            tokio::time::sleep(Duration::from_secs(5)).await;
            json_response(StatusCode::OK, &json!({"late": true}))
        }
        ("GET", p) if p.starts_with("/status/") => {
            let code = p
                .trim_start_matches("/status/")
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            json_response(code, &json!({"status": code.as_u16()}))
        }
        ("GET", p) if p.starts_with("/items/") => {
            let id = p.trim_start_matches("/items/");
            json_response(StatusCode::OK, &json!({"id": id}))
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "no route"})),
    };
    Ok(response)
}
