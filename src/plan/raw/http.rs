//! HTTP steps (`get`, `post`, `put`, `patch`, `delete`, `head`, `options`), `config.http`
//! and the scenario's `engine` as written: Artillery's keys, so existing plans port unchanged.
//!
//! Shapes only; what the values mean is checked in `validate::http`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::shapes::{OneOrMany, RawDuration, RawScalar};

/// One HTTP request (Artillery's request keys).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpRequest {
    /// A path relative to the scenario's target (`/items/{{ id }}`), or an absolute URL.
    pub url: String,
    /// The endpoint's name in stats (`http.response_time.<name>`); default: the URL as
    /// written, so `/items/{{ id }}` is one row however many ids are requested.
    pub name: Option<String>,
    /// Request headers; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, RawScalar>,
    /// Query string parameters, appended to the URL (encoded); values are templates.
    #[serde(default)]
    pub qs: BTreeMap<String, RawScalar>,
    /// A JSON body (string leaves are templates); sets `Content-Type: application/json`.
    pub json: Option<serde_json::Value>,
    /// A raw body template.
    pub body: Option<String>,
    /// An `application/x-www-form-urlencoded` body; values are templates.
    pub form: Option<BTreeMap<String, RawScalar>>,
    /// A `multipart/form-data` body of text fields; values are templates.
    pub form_data: Option<BTreeMap<String, RawScalar>>,
    /// Values to keep from the response: one capture or a list.
    pub capture: Option<OneOrMany<RawHttpCapture>>,
    /// Checks on the response: one or a list of `{statusCode}`, `{contentType}`, ...
    pub expect: Option<OneOrMany<RawHttpExpect>>,
    /// Follow 3xx redirects (default true).
    pub follow_redirect: Option<bool>,
    /// Ask for and decode a gzip body (`Accept-Encoding: gzip`); `compressed` is the same.
    pub gzip: Option<bool>,
    pub compressed: Option<bool>,
    /// Overrides `config.http.timeout` for this request.
    pub timeout: Option<RawDuration>,
}

/// A capture: exactly one of `json`, `header`, `regexp`, and the variable `as`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttpCapture {
    /// `$.a.b` (JSONPath, dots and `[n]`) or a JSON pointer `/a/b` into the JSON body.
    pub json: Option<String>,
    /// A response header name.
    pub header: Option<String>,
    /// A regex over the body.
    pub regexp: Option<String>,
    /// The regex group to take: a number or a group name (default: the first group, or the
    /// whole match when the regex has no group).
    pub group: Option<RawScalar>,
    /// The variable to set.
    #[serde(rename = "as")]
    pub as_var: String,
    /// A capture that finds nothing fails the request (default true, as in Artillery).
    pub strict: Option<bool>,
}

/// Expectations on a response; each written key is one check.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpExpect {
    /// The status, or a list of accepted statuses.
    pub status_code: Option<OneOrMany<u16>>,
    /// A substring of `Content-Type` (`json` matches `application/json; charset=utf-8`).
    pub content_type: Option<String>,
    /// A header that must be present.
    pub has_header: Option<String>,
    /// A property of the JSON body (`id`, `data.items`, `$.a.b`).
    pub has_property: Option<String>,
    /// Two or more templates that must render to the same text.
    pub equals: Option<Vec<RawScalar>>,
    /// A regex the body must match.
    pub matches_regexp: Option<String>,
}

/// `config.http` (Artillery's keys, plus `cookies` and `http2`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHttpConfig {
    /// Time allowed for a request, connect to last byte (default: `defaults.timeout`).
    pub timeout: Option<RawDuration>,
    /// Connections a vuser keeps open at once, over all origins (default 8). A vuser sends
    /// one request at a time, so it needs one per origin; past this many origins the least
    /// recently used connection is closed. Not used with `pool`.
    pub max_sockets: Option<u32>,
    /// Share this many connections per origin across all vusers instead of one set per
    /// vuser.
    pub pool: Option<u32>,
    /// Also record `http.dns`, `http.tcp`, `http.tls` and `http.total`.
    pub extended_metrics: Option<bool>,
    pub defaults: Option<RawHttpDefaults>,
    /// A cookie jar per vuser (default true).
    pub cookies: Option<bool>,
    /// HTTP/2 with prior knowledge over plain `http://` (h2c). Over `https://`, HTTP/2 is
    /// negotiated with ALPN anyway.
    pub http2: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttpDefaults {
    /// Headers sent with every request (a step's own headers win); values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, RawScalar>,
}

/// The scenario's engine; by default it follows the target's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawEngine {
    Http,
    Tcp,
    Ws,
}
