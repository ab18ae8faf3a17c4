//! Routing: which handler answers which method and path, the demo API's HTTP side (bodies,
//! Bearer tokens, statuses) and the routes for testing clients (echo, redirects, gzip,
//! cookies, statuses, delays, sized bodies, chosen response headers). The table is in
//! docs/server.md; the API's rules are in `api`.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, LOCATION, SET_COOKIE,
    WWW_AUTHENTICATE,
};
use http::request::Parts;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::api::{Answer, Api, Filter, Refusal};
use super::echo;
use super::reply::{self, MAX_BODY_BYTES, Response};

/// Most redirects `/redirect/{n}` chains.
const MAX_REDIRECTS: u32 = 20;
/// Longest `/delay/{ms}`.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Default and largest page of `GET /api/items`.
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

pub async fn handle(request: Request<Incoming>, api: &Api) -> Response {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    let get = [Method::GET, Method::HEAD];
    let post = [Method::POST];
    let allowed: &[Method] = match segments.as_slice() {
        ["echo", ..] | ["status", _] | ["delay", _] | ["redirect-to"] | ["response-headers"] => {
            return any_method(&segments, request).await;
        }
        ["api", "login"] => &post,
        ["api", "items", _, "hold" | "confirm" | "cancel"] => &post,
        ["health"]
        | ["api", "items"]
        | ["api", "items", _]
        | ["api", "mine"]
        | ["redirect", _]
        | ["gzip"]
        | ["cookies"]
        | ["cookies", "set" | "check"]
        | ["bytes", _] => &get,
        _ => return reply::error(StatusCode::NOT_FOUND, &format!("no route {path}")),
    };
    if !allowed.contains(&method) {
        return method_not_allowed(&method, &path, allowed);
    }
    let (parts, body) = match reply::read(request).await {
        Ok(read) => read,
        Err(error) => return error.response(),
    };
    match segments.as_slice() {
        ["health"] => reply::with_body(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        ["api", "login"] => login(api, &parts, &body),
        ["api", rest @ ..] => match bearer(api, &parts) {
            Ok(user) => api_call(api, &user, rest, &parts),
            Err(refusal) => refused(refusal),
        },
        ["redirect", n] => redirect_chain(n),
        ["gzip"] => gzip(&parts),
        ["cookies"] => reply::json(StatusCode::OK, &json!({"cookies": cookies(&parts)})),
        ["cookies", "set"] => set_cookies(&parts),
        ["cookies", "check"] => check_cookies(&parts),
        ["bytes", n] => sized(n),
        _ => reply::error(StatusCode::NOT_FOUND, &format!("no route {path}")),
    }
}

/// The routes that answer every method.
async fn any_method(segments: &[&str], request: Request<Incoming>) -> Response {
    let (parts, body) = match reply::read(request).await {
        Ok(read) => read,
        Err(error) => return error.response(),
    };
    match segments {
        ["status", code] => status(code),
        ["delay", ms] => delay(ms, &parts, body).await,
        ["redirect-to"] => redirect_to(&parts),
        ["response-headers"] => response_headers(&parts),
        _ => reply::json(StatusCode::OK, &echo::describe(&parts, body).await),
    }
}

fn method_not_allowed(method: &Method, path: &str, allowed: &[Method]) -> Response {
    let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut response = reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{method} {path}: use {}", names.join(" or ")),
    );
    if let Ok(allow) = HeaderValue::from_str(&names.join(", ")) {
        response.headers_mut().insert(http::header::ALLOW, allow);
    }
    response
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::BadRequest(message) => reply::error(StatusCode::BAD_REQUEST, &message),
        Refusal::Unauthorized(message) => {
            let mut response = reply::error(StatusCode::UNAUTHORIZED, &message);
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Refusal::NotFound(message) => reply::error(StatusCode::NOT_FOUND, &message),
        Refusal::Conflict { id, status } => reply::json(
            StatusCode::CONFLICT,
            &json!({"error": format!("locker {id} is {status}"), "id": id, "status": status}),
        ),
    }
}

fn answer(answer: Answer) -> Response {
    match answer {
        Ok(value) => reply::json(StatusCode::OK, &value),
        Err(refusal) => refused(refusal),
    }
}

/// `POST /api/login` with `{"username", "password"}` as JSON or a urlencoded form: the token
/// in the body, and as the `session` cookie.
fn login(api: &Api, parts: &Parts, body: &Bytes) -> Response {
    let fields: Map<String, Value> =
        if echo::media_type(parts) == "application/x-www-form-urlencoded" {
            echo::pairs(body)
        } else {
            match serde_json::from_slice(body) {
                Ok(Value::Object(fields)) => fields,
                _ => {
                    return reply::error(
                        StatusCode::BAD_REQUEST,
                        "send {\"username\": ..., \"password\": ...} as JSON or a urlencoded form",
                    );
                }
            }
        };
    let field = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or("");
    let answered = api.login(field("username"), field("password"));
    let cookie = answered
        .as_ref()
        .ok()
        .and_then(|body| body["access_token"].as_str())
        .and_then(|token| {
            HeaderValue::from_str(&format!("session={token}; Path=/; HttpOnly; SameSite=Lax")).ok()
        });
    let mut response = answer(answered);
    if let Some(cookie) = cookie {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

/// The user of the request's `Authorization: Bearer TOKEN`.
fn bearer(api: &Api, parts: &Parts) -> Result<String, Refusal> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| Refusal::Unauthorized("send Authorization: Bearer TOKEN".to_string()))?;
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| Refusal::Unauthorized("the Authorization scheme must be Bearer".into()))?;
    api.user_of(token)
        .ok_or_else(|| Refusal::Unauthorized("invalid bearer token".to_string()))
}

/// The authenticated `/api/...` routes.
fn api_call(api: &Api, user: &str, rest: &[&str], parts: &Parts) -> Response {
    let id = |text: &str| {
        text.parse::<usize>()
            .map_err(|_| Refusal::NotFound(format!("no locker {text:?}")))
    };
    match rest {
        ["items"] => match page(parts) {
            Ok((filter, offset, limit)) => {
                reply::json(StatusCode::OK, &api.list(user, filter, offset, limit))
            }
            Err(refusal) => refused(refusal),
        },
        ["items", text] => answer(id(text).and_then(|id| api.item(user, id))),
        ["items", text, "hold"] => answer(id(text).and_then(|id| api.hold(user, id))),
        ["items", text, "confirm"] => answer(id(text).and_then(|id| api.confirm(user, id))),
        ["items", text, "cancel"] => answer(id(text).and_then(|id| api.cancel(user, id))),
        _ => reply::json(StatusCode::OK, &api.mine(user)),
    }
}

/// `?status=free|held|booked&offset=N&limit=N` of the list.
fn page(parts: &Parts) -> Result<(Option<Filter>, usize, usize), Refusal> {
    let number = |name: &str, default: usize| match echo::query_value(parts, name) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().map_err(|_| {
            Refusal::BadRequest(format!("{name} must be a whole number, not {text:?}"))
        }),
    };
    let filter = match echo::query_value(parts, "status") {
        None => None,
        Some(text) => Some(Filter::parse(&text).ok_or_else(|| {
            Refusal::BadRequest(format!("status must be free, held or booked, not {text:?}"))
        })?),
    };
    let limit = number("limit", DEFAULT_PAGE)?.clamp(1, MAX_PAGE);
    Ok((filter, number("offset", 0)?, limit))
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = reply::json(status, &json!({"location": location}));
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// `/redirect/{n}`: 302 to `/redirect/{n-1}`, and `/redirect/1` to `/echo`.
fn redirect_chain(n: &str) -> Response {
    match n.parse::<u32>() {
        Ok(1) => redirect(StatusCode::FOUND, "/echo"),
        Ok(n @ 2..=MAX_REDIRECTS) => redirect(StatusCode::FOUND, &format!("/redirect/{}", n - 1)),
        _ => reply::error(
            StatusCode::BAD_REQUEST,
            &format!("/redirect/N takes N from 1 to {MAX_REDIRECTS}, not {n:?}"),
        ),
    }
}

/// `/redirect-to?url=/path&status=307`: one redirect, to a path of this server only.
fn redirect_to(parts: &Parts) -> Response {
    let url = echo::query_value(parts, "url").unwrap_or_default();
    if !url.starts_with('/') || url.starts_with("//") {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "url must be a path on this server, e.g. ?url=/echo",
        );
    }
    let requested = echo::query_value(parts, "status");
    let status = match requested.as_deref() {
        None => Ok(StatusCode::FOUND),
        Some(text) => text
            .parse::<u16>()
            .ok()
            .filter(|code| matches!(code, 301 | 302 | 303 | 307 | 308))
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or(text),
    };
    match status {
        Ok(status) => redirect(status, &url),
        Err(text) => reply::error(
            StatusCode::BAD_REQUEST,
            &format!("status must be 301, 302, 303, 307 or 308, not {text:?}"),
        ),
    }
}

/// `/gzip`: JSON, gzip-compressed when the request accepts gzip.
fn gzip(parts: &Parts) -> Response {
    let compress = reply::accepts_gzip(&parts.headers);
    let body = json!({
        "gzipped": compress,
        "text": "chatload ".repeat(64),
    });
    reply::json_maybe_gzip(&body, compress)
}

/// The request's cookies (every `Cookie` header; HTTP/2 may split them).
fn cookies(parts: &Parts) -> Map<String, Value> {
    let mut map = Map::new();
    for header in parts.headers.get_all(COOKIE) {
        let Ok(header) = header.to_str() else {
            continue;
        };
        for pair in header.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                map.insert(name.to_string(), Value::String(value.to_string()));
            }
        }
    }
    map
}

/// `/cookies/set?name=value&...`: one `Set-Cookie` (path `/`) per pair.
fn set_cookies(parts: &Parts) -> Response {
    let mut set = Map::new();
    let mut headers = Vec::new();
    for (name, value) in echo::query(parts) {
        let Value::String(value) = value else {
            return reply::error(StatusCode::BAD_REQUEST, &format!("cookie {name} set twice"));
        };
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        let valid_value = value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'));
        let header = format!("{name}={value}; Path=/");
        match HeaderValue::from_str(&header) {
            Ok(header) if valid_name && valid_value => headers.push(header),
            _ => {
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("{name}={value} is not a valid cookie"),
                );
            }
        }
        set.insert(name, Value::String(value));
    }
    let mut response = reply::json(StatusCode::OK, &json!({"set": set}));
    for header in headers {
        response.headers_mut().append(SET_COOKIE, header);
    }
    response
}

/// `/cookies/check?name=value&other`: 200 when every named cookie was sent (with that value,
/// when one is given), 403 otherwise.
fn check_cookies(parts: &Parts) -> Response {
    let sent = cookies(parts);
    let query = parts.uri.query().unwrap_or("");
    let missing: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(name, value)| match sent.get(name.as_ref()) {
            Some(Value::String(sent)) => !value.is_empty() && sent != value,
            _ => true,
        })
        .map(|(name, _)| name.into_owned())
        .collect();
    if missing.is_empty() {
        reply::json(StatusCode::OK, &json!({"cookies": sent}))
    } else {
        reply::json(
            StatusCode::FORBIDDEN,
            &json!({"error": "cookies missing or different", "missing": missing, "cookies": sent}),
        )
    }
}

/// `/status/{code}`: that status, `{"status": code}` (no body for 204 and 304).
fn status(code: &str) -> Response {
    let Some(status) = code
        .parse::<u16>()
        .ok()
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
    else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            &format!("/status/N takes N from 200 to 599, not {code:?}"),
        );
    };
    if matches!(status.as_u16(), 204 | 304) {
        return reply::with_body(status, "application/json", Bytes::new());
    }
    reply::json(status, &json!({"status": status.as_u16()}))
}

/// `/delay/{ms}`: answers the echo after `ms` milliseconds (at most a minute).
async fn delay(ms: &str, parts: &Parts, body: Bytes) -> Response {
    let max_ms = MAX_DELAY.as_millis() as u64;
    match ms.parse::<u64>() {
        Ok(ms) if ms <= max_ms => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let mut described = echo::describe(parts, body).await;
            described["delayed_ms"] = json!(ms);
            reply::json(StatusCode::OK, &described)
        }
        _ => reply::error(
            StatusCode::BAD_REQUEST,
            &format!("/delay/MS takes 0 to {max_ms} milliseconds, not {ms:?}"),
        ),
    }
}

/// `/bytes/{n}`: `n` bytes of `x` (at most [`MAX_BODY_BYTES`]), from one shared buffer.
fn sized(n: &str) -> Response {
    static FILLER: OnceLock<Bytes> = OnceLock::new();
    match n.parse::<usize>() {
        Ok(n) if n <= MAX_BODY_BYTES => {
            let filler = FILLER.get_or_init(|| Bytes::from(vec![b'x'; MAX_BODY_BYTES]));
            reply::with_body(
                StatusCode::OK,
                "application/octet-stream",
                filler.slice(..n),
            )
        }
        _ => reply::error(
            StatusCode::BAD_REQUEST,
            &format!("/bytes/N takes N from 0 to {MAX_BODY_BYTES}, not {n:?}"),
        ),
    }
}

/// `/response-headers?Name=value&...`: those headers on a JSON response listing them
/// (`Content-Type` included, so clients can test content-type checks).
fn response_headers(parts: &Parts) -> Response {
    let query = echo::query(parts);
    let mut response = reply::json(StatusCode::OK, &Value::Object(query));
    let pairs = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes());
    for (name, value) in pairs {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            // Framing is hyper's: a client must not be able to desynchronise the connection.
            (Ok(name), _)
                if name == http::header::CONTENT_LENGTH
                    || name == http::header::TRANSFER_ENCODING
                    || name == http::header::CONNECTION =>
            {
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("{name} is set by the server, not by /response-headers"),
                );
            }
            (Ok(name), Ok(value)) if name == CONTENT_TYPE => {
                response.headers_mut().insert(name, value);
            }
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => {
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("{name}: {value} is not a valid header"),
                );
            }
        }
    }
    response
}
