//! The validated HTTP side of a plan: `config.http` and the HTTP request steps, with every
//! template compiled, every regex built and every JSON path turned into a pointer.
//!
//! Pure data, like `resolved`: parsing and problems are `validate::http`'s, sending is the
//! engine's.

use std::collections::BTreeMap;
use std::time::Duration;

use super::resolved::{Scenario, SendSpec, Step, Text};

/// `config.http.maxSockets` when not written: a vuser keeps connections to this many origins.
pub const DEFAULT_MAX_SOCKETS: u32 = 8;

/// `config.http` (and Artillery's `config.defaults.headers`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Limit for one request, connect to last byte (`None`: `defaults.timeout`).
    pub timeout: Option<Duration>,
    /// Connections a vuser keeps open at once, over all origins (it needs one per origin,
    /// sending one request at a time); the least recently used is closed to make room.
    /// Not used with `pool`.
    pub max_sockets: u32,
    /// Connections per origin shared by every vuser (`None`: each vuser keeps its own).
    pub pool: Option<u32>,
    /// Record `http.dns`, `http.tcp`, `http.tls` and `http.total` too.
    pub extended_metrics: bool,
    /// Headers of every request; a step's own headers of the same name win.
    pub headers: Vec<(String, Text)>,
    /// One cookie jar per vuser.
    pub cookies: bool,
    /// HTTP/2 with prior knowledge on `http://` (h2c).
    pub http2: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: None,
            max_sockets: DEFAULT_MAX_SOCKETS,
            pool: None,
            extended_metrics: false,
            headers: Vec::new(),
            cookies: true,
            http2: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl HttpMethod {
    pub const ALL: [HttpMethod; 7] = [
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Patch,
        HttpMethod::Delete,
        HttpMethod::Head,
        HttpMethod::Options,
    ];

    /// The step key as written in a plan (`get`).
    pub fn key(self) -> &'static str {
        match self {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
            HttpMethod::Put => "put",
            HttpMethod::Patch => "patch",
            HttpMethod::Delete => "delete",
            HttpMethod::Head => "head",
            HttpMethod::Options => "options",
        }
    }

    /// The method as sent (`GET`).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
        }
    }
}

/// One HTTP request step.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: HttpMethod,
    /// Relative to the scenario's target, or absolute.
    pub url: Text,
    /// The endpoint's stats name (`http.response_time.<name>`).
    pub name: String,
    pub headers: Vec<(String, Text)>,
    /// Query string parameters, appended encoded.
    pub query: Vec<(String, Text)>,
    pub body: HttpBody,
    pub captures: Vec<HttpCapture>,
    pub expects: Vec<HttpExpect>,
    pub follow_redirect: bool,
    /// Send `Accept-Encoding: gzip` and decode a gzip body.
    pub gzip: bool,
    /// This step's limit (`None`: `config.http.timeout`).
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpBody {
    None,
    /// `body` (text) or `json`: an inline message, rendered like a socket send's.
    Message {
        spec: SendSpec,
        json: bool,
    },
    /// `form`: urlencoded.
    Form(Vec<(String, Text)>),
    /// `formData`: multipart text fields.
    Multipart(Vec<(String, Text)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpCapture {
    pub variable: String,
    pub from: HttpCaptureFrom,
    /// Finding nothing fails the request (`capture` error).
    pub strict: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpCaptureFrom {
    /// A JSON pointer into the body.
    Json(String),
    /// A header, by its lowercase name.
    Header(String),
    Regex {
        regex: HttpRegex,
        group: RegexGroup,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexGroup {
    Index(usize),
    Name(String),
}

/// A compiled regex, compared by its source.
#[derive(Debug, Clone)]
pub struct HttpRegex(pub regex::Regex);

impl PartialEq for HttpRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpExpect {
    StatusCode(Vec<u16>),
    /// A substring of the `Content-Type`, lowercase.
    ContentType(String),
    /// A header name, lowercase.
    HasHeader(String),
    /// A JSON pointer that must exist in the body.
    HasProperty(String),
    /// Templates that must all render alike.
    Equals(Vec<Text>),
    MatchesRegexp(HttpRegex),
}

/// Every HTTP endpoint of `scenarios`: name → method (`GET`, or `GET/POST` when steps of
/// several methods share the name), for reports.
pub fn http_endpoints(scenarios: &[Scenario]) -> BTreeMap<String, String> {
    fn walk(steps: &[Step], out: &mut BTreeMap<String, Vec<HttpMethod>>) {
        for step in steps {
            match step {
                Step::Http(r) => {
                    let methods = out.entry(r.name.clone()).or_default();
                    if !methods.contains(&r.method) {
                        methods.push(r.method);
                    }
                }
                Step::Loop { steps, .. } | Step::If { steps, .. } => walk(steps, out),
                Step::Pick(branches) => {
                    for b in branches {
                        walk(&b.steps, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut found = BTreeMap::new();
    for s in scenarios {
        walk(&s.flow, &mut found);
    }
    found
        .into_iter()
        .map(|(name, mut methods)| {
            methods.sort();
            let joined: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            (name, joined.join("/"))
        })
        .collect()
}
