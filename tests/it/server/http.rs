//! The HTTP flavour (the demo JSON API and the routes for testing clients), driven by a
//! small client built directly on hyper's connection API: HTTP/1.1, h2c by prior knowledge,
//! and HTTP/2 negotiated by ALPN over TLS.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use chatload::certs::TestCa;
use chatload::server::{MAX_BODY_BYTES, ServerConfig, ServerHandle, ServerTls};
use http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, COOKIE, HeaderMap, LOCATION,
    SET_COOKIE,
};
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use super::tls::{client_config, tls_connect};
use super::{STEP, start};

fn http_server() -> ServerConfig {
    ServerConfig {
        http: true,
        ..ServerConfig::default()
    }
}

/// One connection's request sender, whichever protocol it speaks.
enum Client {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

struct Answer {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

impl Client {
    async fn h1(server: &ServerHandle) -> Client {
        let tcp = TcpStream::connect(server.addr()).await.expect("connects");
        Client::h1_over(tcp).await
    }

    async fn h1_over<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S) -> Client {
        let (sender, connection) = timeout(STEP, http1::handshake(TokioIo::new(io)))
            .await
            .expect("handshake in time")
            .expect("handshake");
        tokio::spawn(connection);
        Client::H1(sender)
    }

    async fn h2_over<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S) -> Client {
        let handshake = http2::handshake(TokioExecutor::new(), TokioIo::new(io));
        let (sender, connection) = timeout(STEP, handshake)
            .await
            .expect("handshake in time")
            .expect("handshake");
        tokio::spawn(connection);
        Client::H2(sender)
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Answer {
        let response = match self {
            Client::H1(sender) => timeout(STEP, sender.send_request(request)).await,
            Client::H2(sender) => timeout(STEP, sender.send_request(request)).await,
        }
        .expect("answered in time")
        .expect("a response");
        let (parts, body) = response.into_parts();
        let body = timeout(STEP, body.collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        Answer {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.send(
            request(Method::GET, uri)
                .body(Full::default())
                .expect("request"),
        )
        .await
    }

    async fn post_json(&mut self, uri: &str, token: Option<&str>, body: Value) -> Answer {
        let mut builder = request(Method::POST, uri).header(CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(
            builder
                .body(Full::new(body.to_string().into()))
                .expect("request"),
        )
        .await
    }

    async fn get_auth(&mut self, uri: &str, token: &str) -> Answer {
        let request = request(Method::GET, uri)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .expect("request");
        self.send(request).await
    }

    async fn login(&mut self, username: &str) -> String {
        let answer = self
            .post_json(
                "/api/login",
                None,
                json!({"username": username, "password": "pw"}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.json()["access_token"]
            .as_str()
            .expect("token")
            .to_string()
    }
}

/// HTTP/2 wants an absolute URI (its `:authority`); HTTP/1.1 takes it too.
fn request(method: Method, uri: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(format!("http://localhost{uri}"))
        .header(http::header::HOST, "localhost")
}

#[tokio::test]
async fn demo_api_login_list_hold_confirm_cancel_with_conflicts() {
    let server = start(http_server()).await;
    let mut client = Client::h1(&server).await;

    let login = client
        .post_json(
            "/api/login",
            None,
            json!({"username": "ann", "password": "pw"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let ann = login.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let cookie = login.headers[SET_COOKIE].to_str().expect("cookie");
    assert!(cookie.starts_with(&format!("session={ann};")), "{cookie}");
    let refused = client
        .post_json(
            "/api/login",
            None,
            json!({"username": "ann", "password": ""}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let malformed = client.post_json("/api/login", None, json!([1])).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    // The same login as a urlencoded form.
    let form = request(Method::POST, "/api/login")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"username=bob&password=x")))
        .expect("request");
    let bob_login = client.send(form).await;
    assert_eq!(bob_login.status, StatusCode::OK);
    let bob = bob_login.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();

    let anonymous = client.get("/api/items").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
    assert_eq!(
        client.get_auth("/api/items", "forged.0000").await.status,
        StatusCode::UNAUTHORIZED
    );
    let list = client.get_auth("/api/items?limit=2&offset=4", &ann).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.json()["items"],
        json!([
            {"id": 5, "status": "free", "mine": false},
            {"id": 6, "status": "free", "mine": false}
        ])
    );

    let held = client
        .post_json("/api/items/5/hold", Some(&ann), json!({}))
        .await;
    assert_eq!(held.status, StatusCode::OK);
    assert_eq!(held.json()["status"], "held");
    let conflict = client
        .post_json("/api/items/5/hold", Some(&bob), json!({}))
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["status"], "held");
    let not_bobs = client
        .post_json("/api/items/5/confirm", Some(&bob), json!({}))
        .await;
    assert_eq!(not_bobs.status, StatusCode::CONFLICT);
    let booked = client
        .post_json("/api/items/5/confirm", Some(&ann), json!({}))
        .await;
    assert_eq!(booked.json()["status"], "booked");
    let mine = client.get_auth("/api/mine", &ann).await.json();
    assert_eq!(mine["username"], "ann");
    assert_eq!(mine["items"][0]["id"], 5);
    assert_eq!(
        client.get_auth("/api/mine", &bob).await.json()["items"],
        json!([])
    );
    let cancelled = client
        .post_json("/api/items/5/cancel", Some(&ann), json!({}))
        .await;
    assert_eq!(cancelled.json()["status"], "free");
    let bobs = client
        .post_json("/api/items/5/hold", Some(&bob), json!({}))
        .await;
    assert_eq!(bobs.status, StatusCode::OK);

    let missing = client
        .post_json("/api/items/0/hold", Some(&ann), json!({}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let wrong_method = client.get("/api/login").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers["allow"], "POST");
    assert_eq!(client.get("/nowhere").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn echo_describes_every_method_and_body_kind() {
    let server = start(http_server()).await;
    let mut client = Client::h1(&server).await;
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let request = request(method.clone(), "/echo/things?q=1&q=2&one=a%20b")
            .header("x-trace", "t-1")
            .body(Full::default())
            .expect("request");
        let echoed = client.send(request).await.json();
        assert_eq!(echoed["method"], method.as_str());
        assert_eq!(echoed["path"], "/echo/things");
        assert_eq!(echoed["args"], json!({"q": ["1", "2"], "one": "a b"}));
        assert_eq!(echoed["headers"]["x-trace"], "t-1");
    }
    let head = request(Method::HEAD, "/echo")
        .body(Full::default())
        .expect("request");
    let head = client.send(head).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());

    let json_body = client
        .post_json("/echo", None, json!({"n": [1, 2]}))
        .await
        .json();
    assert_eq!(json_body["json"], json!({"n": [1, 2]}));
    let form = request(Method::PUT, "/echo")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"a=1&b=x+y")))
        .expect("request");
    assert_eq!(
        client.send(form).await.json()["form"],
        json!({"a": "1", "b": "x y"})
    );
    let multipart_body = "--B1\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n\
        --B1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.csv\"\r\n\
        Content-Type: text/csv\r\n\r\na,b\n1,2\n\r\n--B1--\r\n";
    let multipart = request(Method::POST, "/echo")
        .header(CONTENT_TYPE, "multipart/form-data; boundary=B1")
        .body(Full::new(Bytes::from(multipart_body)))
        .expect("request");
    let echoed = client.send(multipart).await.json();
    assert_eq!(echoed["form"], json!({"note": "hi"}));
    assert_eq!(echoed["files"]["file"]["filename"], "f.csv");
    assert_eq!(echoed["files"]["file"]["content"], "a,b\n1,2\n");

    // Bodies are capped: one byte over gets 413, and the connection stays usable.
    let huge = request(Method::POST, "/echo")
        .body(Full::new(Bytes::from(vec![b'a'; MAX_BODY_BYTES + 1])))
        .expect("request");
    assert_eq!(
        client.send(huge).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(client.get("/health").await.body, "ok\n");
}

#[tokio::test]
async fn redirects_gzip_cookies_statuses_and_sizes() {
    let server = start(http_server()).await;
    let mut client = Client::h1(&server).await;

    let first = client.get("/redirect/3").await;
    assert_eq!(first.status, StatusCode::FOUND);
    assert_eq!(first.headers[LOCATION], "/redirect/2");
    assert_eq!(client.get("/redirect/1").await.headers[LOCATION], "/echo");
    let to = client.get("/redirect-to?url=/status/201&status=307").await;
    assert_eq!(to.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(to.headers[LOCATION], "/status/201");
    let elsewhere = client.get("/redirect-to?url=http://example.com/").await;
    assert_eq!(elsewhere.status, StatusCode::BAD_REQUEST);

    let plain = client.get("/gzip").await;
    assert!(plain.headers.get(CONTENT_ENCODING).is_none());
    assert_eq!(plain.json()["gzipped"], false);
    let zipped = client
        .send(
            request(Method::GET, "/gzip")
                .header(ACCEPT_ENCODING, "gzip, br")
                .body(Full::default())
                .expect("request"),
        )
        .await;
    assert_eq!(zipped.headers[CONTENT_ENCODING], "gzip");
    assert!(zipped.body.len() < plain.body.len());
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut text)
        .expect("gzip");
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["gzipped"],
        true
    );

    let set = client.get("/cookies/set?flavour=oat&n=1").await;
    let cookies: Vec<&str> = set
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| value.to_str().expect("ascii"))
        .collect();
    assert_eq!(cookies, ["flavour=oat; Path=/", "n=1; Path=/"]);
    let with_cookie = |uri: &str, cookie: &str| {
        request(Method::GET, uri)
            .header(COOKIE, cookie)
            .body(Full::default())
            .expect("request")
    };
    let checked = client
        .send(with_cookie(
            "/cookies/check?flavour=oat&n",
            "flavour=oat; n=1",
        ))
        .await;
    assert_eq!(checked.status, StatusCode::OK);
    let wrong = client
        .send(with_cookie("/cookies/check?flavour=oat", "flavour=rye"))
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.json()["missing"], json!(["flavour"]));
    assert_eq!(
        client.get("/cookies/set?bad=a;b").await.status,
        StatusCode::BAD_REQUEST
    );
    let echoed = client.send(with_cookie("/cookies", "a=1; b=2")).await;
    assert_eq!(echoed.json()["cookies"], json!({"a": "1", "b": "2"}));

    for code in [200u16, 201, 204, 404, 418, 500, 503] {
        let answer = client.get(&format!("/status/{code}")).await;
        assert_eq!(answer.status.as_u16(), code);
    }
    assert_eq!(
        client.get("/status/99").await.status,
        StatusCode::BAD_REQUEST
    );

    let sized = client.get("/bytes/1234").await;
    assert_eq!(sized.body.len(), 1234);
    let headers = client
        .get("/response-headers?X-Custom=yes&Content-Type=text/html")
        .await;
    assert_eq!(headers.headers["x-custom"], "yes");
    assert_eq!(headers.headers[CONTENT_TYPE], "text/html");
    let framing = client.get("/response-headers?Content-Length=1").await;
    assert_eq!(framing.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn http2_by_alpn_over_tls_and_by_prior_knowledge() {
    let ca = TestCa::new("http").expect("ca");
    let issued = ca.issue_server(&["localhost"]).expect("server cert");
    let tls = ServerTls::new(vec![issued.cert_der.clone()], issued.key_der.clone_key());
    let https = ServerConfig {
        tls: Some(tls),
        ..http_server()
    };
    let server = start(https.clone()).await;
    assert_eq!(
        https.client_address(server.addr()),
        format!("https://{}", server.addr())
    );

    let config = client_config(&ca.cert_der(), None, &[b"h2", b"http/1.1"]);
    let stream = tls_connect(&server, config, "localhost")
        .await
        .expect("tls");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = Client::h2_over(stream).await;
    let token = h2.login("ann").await;
    let list = h2.get_auth("/api/items?status=free&limit=1", &token).await;
    assert_eq!(list.version, Version::HTTP_2);
    assert_eq!(list.json()["items"][0]["id"], 1);
    assert_eq!(h2.get("/echo").await.json()["version"], "HTTP/2.0");

    let config = client_config(&ca.cert_der(), None, &[b"http/1.1"]);
    let stream = tls_connect(&server, config, "localhost")
        .await
        .expect("tls");
    let mut h1 = Client::h1_over(stream).await;
    let answer = h1.get("/echo").await;
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(answer.json()["version"], "HTTP/1.1");

    // Without TLS, HTTP/2 by prior knowledge (h2c) is recognised from its preface.
    let plain = start(http_server()).await;
    assert_eq!(
        http_server().client_address(plain.addr()),
        format!("http://{}", plain.addr())
    );
    let tcp = TcpStream::connect(plain.addr()).await.expect("connects");
    let mut h2c = Client::h2_over(tcp).await;
    assert_eq!(h2c.get("/health").await.version, Version::HTTP_2);
}

#[tokio::test]
async fn knobs_and_slow_routes_hold_responses_back() {
    let server = start(ServerConfig {
        delay: Duration::from_millis(150),
        ..http_server()
    })
    .await;
    let mut client = Client::h1(&server).await;
    let started = Instant::now();
    assert_eq!(client.get("/health").await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let plain = start(http_server()).await;
    let mut client = Client::h1(&plain).await;
    let started = Instant::now();
    let delayed = client.get("/delay/200").await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(delayed.json()["delayed_ms"], 200);
    assert_eq!(
        client.get("/delay/600001").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn clients_over_the_limit_get_503() {
    let server = start(ServerConfig {
        max_clients: Some(1),
        ..http_server()
    })
    .await;
    let mut first = Client::h1(&server).await;
    assert_eq!(first.get("/health").await.status, StatusCode::OK);
    let mut second = Client::h1(&server).await;
    let full = second.get("/health").await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        full.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("server full"))
    );
    assert_eq!(first.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_http_flavour_speaks_http_only() {
    let websocket = ServerConfig {
        websocket: true,
        ..http_server()
    };
    let error = websocket.validate().expect_err("websocket and http");
    assert!(error.to_string().contains("HTTP only"), "{error}");
}
