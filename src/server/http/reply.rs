//! Building responses (JSON bodies, errors, gzip) and reading request bodies under the cap.
//! Owns the wire details every route shares; the routes decide what to say.

use std::io::Write;

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, VARY};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

/// Largest request body read (1 MiB): a larger one gets 413 and is not kept in memory.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub type Response = http::Response<Full<Bytes>>;

const JSON: &str = "application/json";

/// A response with `status`, a JSON body and `Content-Type: application/json`.
pub fn json(status: StatusCode, body: &Value) -> Response {
    // Serialising a `Value` cannot fail (its map keys are strings).
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    with_body(status, JSON, Bytes::from(bytes))
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: &str) -> Response {
    json(status, &json!({ "error": message }))
}

/// A response with `status`, `body` and its `Content-Type`.
pub fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut response = http::Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Whether the request's `Accept-Encoding` lists gzip with a non-zero quality.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// A JSON response, gzip-compressed (with `Content-Encoding: gzip`) when `compress`.
/// `Vary: Accept-Encoding` either way, as a cache would need.
pub fn json_maybe_gzip(body: &Value, compress: bool) -> Response {
    let mut response = json(StatusCode::OK, body);
    response
        .headers_mut()
        .insert(VARY, HeaderValue::from_static("accept-encoding"));
    if compress {
        let plain = serde_json::to_vec(body).unwrap_or_default();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        // Writing into a Vec cannot fail.
        if encoder.write_all(&plain).is_ok()
            && let Ok(zipped) = encoder.finish()
        {
            *response.body_mut() = Full::new(Bytes::from(zipped));
            response
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
    }
    response
}

/// Why a request body could not be read.
pub enum BodyError {
    /// Over [`MAX_BODY_BYTES`].
    TooLarge,
    /// The client stopped sending or the stream broke.
    Broken,
}

impl BodyError {
    pub fn response(&self) -> Response {
        match self {
            BodyError::TooLarge => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over {MAX_BODY_BYTES} bytes"),
            ),
            BodyError::Broken => error(StatusCode::BAD_REQUEST, "request body broken off"),
        }
    }
}

/// Splits `request` into its head and its whole body, read under the cap.
pub async fn read(request: Request<Incoming>) -> Result<(http::request::Parts, Bytes), BodyError> {
    let (parts, body) = request.into_parts();
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge)
        }
        Err(_) => Err(BodyError::Broken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_str(accept).expect("value"),
        );
        headers
    }

    #[test]
    fn gzip_is_accepted_only_when_listed_and_not_refused() {
        assert!(accepts_gzip(&headers("gzip, deflate, br")));
        assert!(accepts_gzip(&headers("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn gzip_body_decodes_to_the_json() {
        use std::io::Read;
        let body = json!({"compressed": true, "text": "a".repeat(200)});
        let response = json_maybe_gzip(&body, true);
        assert_eq!(response.headers()[CONTENT_ENCODING], "gzip");
        let zipped = response.into_body();
        let bytes = futures_util::FutureExt::now_or_never(zipped.collect())
            .expect("ready")
            .expect("full body")
            .to_bytes();
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut plain)
            .expect("gzip");
        assert_eq!(serde_json::from_str::<Value>(&plain).expect("json"), body);
        let identity = json_maybe_gzip(&body, false);
        assert!(identity.headers().get(CONTENT_ENCODING).is_none());
        assert_eq!(identity.headers()[VARY], "accept-encoding");
    }
}
