//! The pure parts of an HTTP step, kept apart from its I/O so they are unit-tested on values:
//! resolving a URL against the scenario's target, encoding `qs`, `form` and `formData`, the
//! vuser's cookie jar, and reading captures and checking expectations on a response.

use std::borrow::Cow;

use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::plan::{Endpoint, HttpCaptureFrom, RegexGroup};
use crate::transport::http::Origin;

/// Characters left as they are in query strings and form values (RFC 3986 unreserved).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Where a request goes: its origin and its path with query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub origin: Origin,
    pub path: String,
}

/// Why a URL cannot be requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UrlError {
    #[error("`{0}` is relative and the scenario has no http:// or https:// target")]
    NoBase(String),
    #[error("`{url}` is not a URL: {reason}")]
    Bad { url: String, reason: String },
}

/// Resolves `url` (absolute, or a path relative to `base`, whose own path is a prefix) and
/// appends `query` (name, value) pairs, encoded.
pub(crate) fn resolve(
    base: Option<&Endpoint>,
    url: &str,
    query: &[(&str, &str)],
) -> Result<Target, UrlError> {
    let url = url.trim();
    let (origin, mut path) = if url.starts_with("http://") || url.starts_with("https://") {
        let e = Endpoint::parse(url).map_err(|e| UrlError::Bad {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        (origin_of(&e), e.path)
    } else {
        let base = base.ok_or_else(|| UrlError::NoBase(url.to_owned()))?;
        let prefix = base.path.trim_end_matches('/');
        let path = if url.starts_with('/') {
            format!("{prefix}{url}")
        } else {
            format!("{prefix}/{url}")
        };
        (origin_of(base), path)
    };
    for (i, (name, value)) in query.iter().enumerate() {
        let sep = if i == 0 && !path.contains('?') {
            '?'
        } else {
            '&'
        };
        path.push(sep);
        path.extend(utf8_percent_encode(name, QUERY));
        path.push('=');
        path.extend(utf8_percent_encode(value, QUERY));
    }
    Ok(Target { origin, path })
}

pub(crate) fn origin_of(e: &Endpoint) -> Origin {
    Origin {
        https: e.scheme.is_tls(),
        host: e.host.clone(),
        port: e.port,
    }
}

/// Where a redirect's `Location` points, from the request it answered.
pub(crate) fn redirect(from: &Target, location: &str) -> Result<Target, UrlError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return resolve(None, location, &[]);
    }
    if location.starts_with('/') {
        return Ok(Target {
            origin: from.origin.clone(),
            path: location.to_owned(),
        });
    }
    // Relative to the request's directory.
    let dir = from
        .path
        .split('?')
        .next()
        .and_then(|p| p.rsplit_once('/'))
        .map_or("", |(dir, _)| dir);
    Ok(Target {
        origin: from.origin.clone(),
        path: format!("{dir}/{location}"),
    })
}

/// `a=1&b=x%20y`.
pub(crate) fn form_urlencoded(fields: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.extend(utf8_percent_encode(name, QUERY));
        out.push('=');
        out.extend(utf8_percent_encode(value, QUERY));
    }
    out
}

/// The boundary of `formData` bodies: long and unlikely in a text field.
pub(crate) const MULTIPART_BOUNDARY: &str = "chatload-form-boundary-7d8f1c2a9b3e";

/// A `multipart/form-data` body of text fields.
pub(crate) fn multipart(fields: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        let name = name.replace('"', "%22");
        out.push_str(&format!(
            "--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    out.push_str(&format!("--{MULTIPART_BOUNDARY}--\r\n"));
    out
}

/// One cookie a server set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cookie {
    name: String,
    value: String,
    /// The host it was set by, or the `Domain` it names (then subdomains match too).
    domain: String,
    host_only: bool,
    path: String,
}

/// A vuser's cookies: what `Set-Cookie` stored, sent back to matching requests. Expiry
/// by date is not tracked (a run is short); `Max-Age=0` and past removal work.
#[derive(Debug, Default)]
pub(crate) struct CookieJar {
    cookies: Vec<Cookie>,
}

/// A vuser keeps at most this many cookies (oldest dropped), so memory stays bounded.
const MAX_COOKIES: usize = 64;

impl CookieJar {
    /// Stores the `Set-Cookie` headers of a response to `target`.
    pub fn store(&mut self, target: &Target, headers: &HeaderMap) {
        for value in headers.get_all(http::header::SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let mut cookie = Cookie {
                name: name.trim().to_owned(),
                value: value.trim().trim_matches('"').to_owned(),
                domain: target.origin.host.to_ascii_lowercase(),
                host_only: true,
                path: "/".to_owned(),
            };
            let mut delete = false;
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "path" if v.trim().starts_with('/') => cookie.path = v.trim().to_owned(),
                    "domain" if !v.trim().is_empty() => {
                        cookie.domain = v.trim().trim_start_matches('.').to_ascii_lowercase();
                        cookie.host_only = false;
                    }
                    "max-age" => delete |= v.trim().parse::<i64>().is_ok_and(|n| n <= 0),
                    _ => {}
                }
            }
            if cookie.name.is_empty() {
                continue;
            }
            self.cookies.retain(|c| {
                !(c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path)
            });
            if !delete {
                if self.cookies.len() >= MAX_COOKIES {
                    self.cookies.remove(0);
                }
                self.cookies.push(cookie);
            }
        }
    }

    /// The `Cookie` header for a request to `target`, if any cookie matches.
    pub fn header_for(&self, target: &Target) -> Option<String> {
        if self.cookies.is_empty() {
            // The common case of an API run: nothing to lowercase or match per request.
            return None;
        }
        let host = target.origin.host.to_ascii_lowercase();
        let path = target.path.split('?').next().unwrap_or("/");
        let mut out = String::new();
        for c in &self.cookies {
            let domain_ok = if c.host_only {
                host == c.domain
            } else {
                host == c.domain || host.ends_with(&format!(".{}", c.domain))
            };
            let path_ok = path.starts_with(&c.path);
            if domain_ok && path_ok {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                out.push_str(&c.name);
                out.push('=');
                out.push_str(&c.value);
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// A response body as JSON, parsed at most once per response.
pub(crate) struct Parsed<'b> {
    body: &'b [u8],
    json: Option<Option<serde_json::Value>>,
}

impl<'b> Parsed<'b> {
    pub fn new(body: &'b [u8]) -> Self {
        Parsed { body, json: None }
    }

    pub fn json(&mut self) -> Option<&serde_json::Value> {
        let body = self.body;
        self.json
            .get_or_insert_with(|| serde_json::from_slice(body).ok())
            .as_ref()
    }

    pub fn text(&self) -> Cow<'b, str> {
        String::from_utf8_lossy(self.body)
    }
}

/// A captured value: JSON values keep their type (numbers stay numbers in templates).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Captured {
    Json(serde_json::Value),
    Text(String),
}

/// What `from` finds in a response, if anything.
pub(crate) fn capture(
    from: &HttpCaptureFrom,
    headers: &HeaderMap,
    body: &mut Parsed<'_>,
) -> Option<Captured> {
    match from {
        HttpCaptureFrom::Json(pointer) => {
            let found = body.json()?.pointer(pointer)?;
            (!found.is_null()).then(|| Captured::Json(found.clone()))
        }
        HttpCaptureFrom::Header(name) => headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(|v| Captured::Text(v.to_owned())),
        HttpCaptureFrom::Regex { regex, group } => {
            let text = body.text();
            let caps = regex.0.captures(&text)?;
            let m = match group {
                RegexGroup::Index(i) => caps.get(*i),
                RegexGroup::Name(n) => caps.name(n),
            }?;
            Some(Captured::Text(m.as_str().to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::parse(url).expect("endpoint")
    }

    #[test]
    fn urls_resolve_against_the_target_and_carry_the_query() {
        let base = endpoint("http://api:8080/v1/");
        let t = resolve(Some(&base), "/items", &[("q", "a b"), ("n", "1&2")]).expect("url");
        assert_eq!(t.origin.authority(), "api:8080");
        assert_eq!(t.path, "/v1/items?q=a%20b&n=1%262");
        let t = resolve(Some(&base), "/items?x=1", &[("y", "2")]).expect("url");
        assert_eq!(t.path, "/v1/items?x=1&y=2");
        let t = resolve(Some(&base), "https://other/x", &[]).expect("absolute");
        assert!(t.origin.https);
        assert_eq!((t.origin.port, t.path.as_str()), (443, "/x"));
        assert_eq!(
            resolve(None, "/x", &[]),
            Err(UrlError::NoBase("/x".to_owned()))
        );
        let r = redirect(&t, "y/z").expect("relative");
        assert_eq!(r.path, "/y/z");
        let r = redirect(&t, "http://a:81/b").expect("absolute");
        assert_eq!((r.origin.https, r.origin.port), (false, 81));
    }

    #[test]
    fn bodies_encode_fields() {
        let fields = [("name", "Zoë & co".to_owned()), ("n", "1".to_owned())];
        assert_eq!(form_urlencoded(&fields), "name=Zo%C3%AB%20%26%20co&n=1");
        let m = multipart(&fields);
        assert!(m.starts_with(&format!("--{MULTIPART_BOUNDARY}\r\n")));
        assert!(m.contains("name=\"name\"\r\n\r\nZoë & co\r\n"));
        assert!(m.ends_with(&format!("--{MULTIPART_BOUNDARY}--\r\n")));
    }

    #[test]
    fn the_jar_sends_back_what_matches_and_forgets_deleted_cookies() {
        let base = endpoint("http://api.example:80");
        let at = |path: &str| resolve(Some(&base), path, &[]).expect("url");
        let mut headers = HeaderMap::new();
        for c in [
            "sid=abc; Path=/; HttpOnly",
            "pref=dark; Path=/settings",
            "wide=1; Domain=example",
        ] {
            headers.append(http::header::SET_COOKIE, HeaderValue::from_static(c));
        }
        let mut jar = CookieJar::default();
        jar.store(&at("/login"), &headers);
        assert_eq!(
            jar.header_for(&at("/items")).as_deref(),
            Some("sid=abc; wide=1")
        );
        assert_eq!(
            jar.header_for(&at("/settings/x")).as_deref(),
            Some("sid=abc; pref=dark; wide=1")
        );
        let other = Target {
            origin: Origin {
                https: false,
                host: "other".into(),
                port: 80,
            },
            path: "/".into(),
        };
        assert_eq!(jar.header_for(&other), None);
        let mut delete = HeaderMap::new();
        delete.append(
            http::header::SET_COOKIE,
            HeaderValue::from_static("sid=; Path=/; Max-Age=0"),
        );
        jar.store(&at("/logout"), &delete);
        assert_eq!(jar.header_for(&at("/items")).as_deref(), Some("wide=1"));
    }
}
