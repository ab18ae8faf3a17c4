//! `config:` as written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::flow::{RawFieldDef, RawHandler};
use super::shapes::{OneOrMany, RawDuration, RawPercent, RawScalar};

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    /// A URL whose scheme picks the transport: `host:port` or `tcp://host:port`,
    /// `tls://host:port`, `ws://host:port/path`, `wss://host:port/path`; or `embedded` to
    /// start the reference server in-process.
    pub target: String,
    /// Named partial configs, deep-merged over this one by `run -e NAME`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, PartialConfig>")]
    pub environments: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// Options of the in-process reference server (`target: embedded`).
    pub embedded: Option<RawEmbedded>,
    /// Framing, line ending, transform and frame size limit.
    pub protocol: Option<RawProtocol>,
    /// TLS settings for `tls://` and `wss://` targets (or to put TLS under a plain target).
    pub tls: Option<RawTls>,
    /// WebSocket settings for `ws://` and `wss://` targets.
    pub websocket: Option<RawWebSocket>,
    /// HTTP settings for `http://` and `https://` targets.
    pub http: Option<super::http::RawHttpConfig>,
    /// Named message definitions (packet types).
    #[serde(default)]
    pub messages: BTreeMap<String, RawMessage>,
    /// Load phases, in order. Either `phases` or `adaptive`.
    pub phases: Option<Vec<RawPhase>>,
    /// CSV files whose rows feed template variables: one file or a list.
    pub payload: Option<OneOrMany<RawPayload>>,
    /// Plan variables; an array means one random pick per vuser.
    #[serde(default)]
    pub variables: BTreeMap<String, serde_json::Value>,
    /// Variables whose values are secret: masked (`***`) wherever they appear in the plan
    /// copies kept in result.json and report.html. Names that look secret (`*password*`,
    /// `*token*`, `*_key`, ...) need not be listed.
    #[serde(default)]
    pub secrets: Vec<String>,
    pub defaults: Option<RawDefaults>,
    /// Local addresses to spread connections over: a list, or a CIDR such as `127.0.0.0/24`.
    pub source_addresses: Option<OneOrMany<String>>,
    /// Rules for frames the flow is not waiting for (server push), for every scenario.
    #[serde(default)]
    pub handlers: Vec<RawHandler>,
    /// Pass/fail criteria.
    pub ensure: Option<RawEnsure>,
    /// Local commands run before the load and after it.
    pub hooks: Option<super::RawHooks>,
    /// Sample the server process and host during the run.
    pub monitor: Option<RawMonitor>,
    /// Find the highest stable load instead of running fixed phases.
    pub adaptive: Option<RawAdaptive>,
    pub report: Option<RawReport>,
    /// Serve live Prometheus/OpenMetrics metrics while the run goes (off by default).
    pub metrics: Option<RawMetrics>,
}

/// Schema only: an environment is a `config` whose keys are all optional.
pub struct PartialConfig;

impl JsonSchema for PartialConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PartialConfig".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = RawConfig::json_schema(generator);
        schema.remove("required");
        schema.insert(
            "description".to_owned(),
            "Keys of `config` to deep-merge over it; all optional.".into(),
        );
        schema
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawServerFraming {
    Text,
    Binary,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEmbedded {
    /// `text` (one command per line, default) or `binary` (`[u16 LE length][u16 LE type][body]`).
    pub framing: Option<RawServerFraming>,
    /// XOR key for binary bodies.
    pub xor: Option<String>,
    pub delay: Option<RawDuration>,
    pub jitter: Option<RawDuration>,
    /// Commands per second over the whole server: `2000` or `"2000/s"`.
    pub capacity: Option<RawScalar>,
    /// Freeze the server for this long ...
    pub stall: Option<RawDuration>,
    /// ... this often.
    pub every: Option<RawDuration>,
    pub max_clients: Option<usize>,
    /// Serve TLS with a certificate generated in memory (trusted by this run only).
    #[serde(default)]
    pub tls: bool,
    /// Serve WebSocket: one message is one command.
    #[serde(default)]
    pub websocket: bool,
    /// Serve the HTTP demo JSON API (HTTP/1.1 and HTTP/2; https with `tls`) instead of chat.
    #[serde(default)]
    pub http: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawTlsVersion {
    #[serde(rename = "1.2")]
    V12,
    #[serde(rename = "1.3")]
    V13,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTls {
    /// The name sent as SNI and checked against the certificate (default: the target's host).
    pub server_name: Option<String>,
    /// PEM bundle of the CAs to trust (relative to the plan file); default: the system's roots.
    pub ca_file: Option<String>,
    /// Accept any certificate. Testing only: the run warns loudly and records it.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// PEM client certificate for mutual TLS (with `clientKey`).
    pub client_cert: Option<String>,
    /// PEM private key of `clientCert`.
    pub client_key: Option<String>,
    /// ALPN protocols to offer, in order of preference.
    #[serde(default)]
    pub alpn: Vec<String>,
    /// The lowest TLS version accepted: `1.2` (default) or `1.3`.
    pub min_version: Option<RawTlsVersion>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWebSocket {
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order of preference.
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// Extra upgrade request headers; values are templates rendered per vuser at connect time.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Largest message accepted or sent (default: `protocol.maxFrameBytes`, 1 MiB).
    pub max_message_bytes: Option<u64>,
    /// Send a ping this often while connected (default: never; server pings are always
    /// answered).
    pub ping_interval: Option<RawDuration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProtocol {
    pub framing: Option<RawFraming>,
    /// Line ending for sending with `framing: lines`.
    pub line_ending: Option<RawLineEnding>,
    pub transform: Option<RawTransform>,
    /// Largest accepted frame (default 1 MiB).
    pub max_frame_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RawFraming {
    /// Frames end at `\n`; a trailing `\r` is stripped.
    Lines,
    /// Frames end at this delimiter (escapes such as `\0` allowed).
    Delimiter(String),
    /// A binary header in front of each frame.
    LengthPrefixed(RawLengthPrefixed),
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawLineEnding {
    Lf,
    Crlf,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLengthPrefixed {
    /// Header fields in order, e.g. `[{length: 2}, {type: 2}]`.
    pub header: Vec<RawHeaderField>,
    pub endian: Option<RawEndian>,
    /// Whether the length counts the body only or the whole frame.
    pub length_counts: Option<RawLengthCounts>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderField {
    /// The length field, 1, 2, 4 or 8 bytes, or `varint`.
    pub length: Option<super::RawLengthWidth>,
    /// The packet type id, 1, 2 or 4 bytes.
    #[serde(rename = "type")]
    pub type_bytes: Option<u8>,
    /// Filler bytes as hex, written as given and skipped on read.
    pub fixed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawEndian {
    Little,
    Big,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawLengthCounts {
    Body,
    Frame,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTransform {
    /// XOR every body byte with the key, repeated.
    pub xor: Option<RawXor>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawXor {
    pub key: String,
}

/// A named message: an optional packet type and exactly one of `body`, `fields`, `json`, `hex`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMessage {
    #[serde(rename = "type")]
    pub type_id: Option<u32>,
    /// A text template.
    pub body: Option<String>,
    /// Typed binary fields.
    pub fields: Option<Vec<RawFieldDef>>,
    /// A JSON document; string leaves are templates.
    pub json: Option<serde_json::Value>,
    /// Raw bytes as hex.
    pub hex: Option<String>,
}

/// One load phase; exactly one shape: arrivals, arrival count, pause, vusers, or preset.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPhase {
    pub name: Option<String>,
    pub duration: Option<RawDuration>,
    /// Open model: new vusers per second.
    pub arrival_rate: Option<f64>,
    /// Ramp the rate (or the vusers) linearly to this value over the phase.
    pub ramp_to: Option<f64>,
    /// Open model: arrivals beyond this many active vusers are dropped.
    pub max_vusers: Option<u64>,
    pub arrivals: Option<RawArrivals>,
    /// Open model: exactly this many arrivals spread over `duration`.
    pub arrival_count: Option<u64>,
    /// Do nothing for this long.
    pub pause: Option<RawDuration>,
    /// Closed model: keep this many vusers connected.
    pub vusers: Option<u64>,
    pub curve: Option<RawCurve>,
    /// Change the closed-model target in this many equal steps.
    pub steps: Option<u32>,
    /// A built-in load shape (see `chatload presets`).
    pub preset: Option<String>,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub by: Option<u64>,
    pub every: Option<RawDuration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawArrivals {
    Uniform,
    Poisson,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawCurve {
    Linear,
    Exponential,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPayload {
    /// CSV file, relative to the plan file.
    pub path: String,
    /// Column names; when absent the first row is the header.
    pub fields: Option<Vec<String>>,
    pub order: Option<RawOrder>,
    pub skip_header: Option<bool>,
    /// Field delimiter (default `,`).
    pub delimiter: Option<String>,
    /// Turn numeric and boolean cells into numbers and booleans.
    pub cast: Option<bool>,
    pub skip_empty_lines: Option<bool>,
    /// Make every row available as the variable `name`.
    pub load_all: Option<bool>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawOrder {
    Random,
    Sequence,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDefaults {
    /// Timeout for connect and expect steps that set none (default 10s).
    pub timeout: Option<RawDuration>,
    pub think: Option<RawThinkDefaults>,
    pub reconnect: Option<RawReconnect>,
    /// Grace period after the last phase (default 30s).
    pub graceful_stop: Option<RawDuration>,
    /// Artillery's spelling of `config.http.defaults.headers`.
    pub headers: Option<BTreeMap<String, RawScalar>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawThinkDefaults {
    /// Random extra think time: a fraction (0.1) or a percentage ("10%").
    pub jitter: Option<RawScalar>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReconnect {
    pub attempts: Option<u32>,
    pub backoff: Option<RawDuration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEnsure {
    /// Artillery form: `- latency.chat.p95: 200` (milliseconds, strictly less).
    #[serde(default)]
    pub thresholds: Vec<BTreeMap<String, f64>>,
    #[serde(default)]
    pub conditions: Vec<RawCondition>,
    /// Largest accepted error rate, in percent.
    pub max_error_rate: Option<f64>,
    /// Every condition must hold in every window of this length.
    pub window: Option<RawDuration>,
    /// Stop the run at the first breach.
    pub abort_on_fail: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    /// e.g. `delivery.p99 < 500ms and errors.rate < 1%`.
    pub expression: String,
    /// `false`: a failure is only a warning.
    pub strict: Option<bool>,
    pub window: Option<RawDuration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMonitor {
    /// Process name to sample (or `pid`).
    pub process: Option<String>,
    pub pid: Option<u32>,
    /// Count established connections on this local port.
    pub port: Option<u16>,
    pub interval: Option<RawDuration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAdaptive {
    /// Concurrency to start from (default 10).
    pub start_vusers: Option<u64>,
    /// Never go above this many vusers.
    pub max_vusers: u64,
    /// How long each level is observed (default 10s).
    pub window: Option<RawDuration>,
    pub limits: RawAdaptiveLimits,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAdaptiveLimits {
    /// Server CPU, percent (needs `monitor`).
    pub cpu: Option<RawPercent>,
    /// Server memory, percent of the host (needs `monitor`).
    pub memory: Option<RawPercent>,
    /// 95th percentile of every `latency.*` metric.
    pub p95: Option<RawDuration>,
    pub success_rate: Option<RawPercent>,
    pub error_rate: Option<RawPercent>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    /// Parent folder of run folders (default `reports`).
    pub dir: Option<String>,
    /// Which files a run writes (default all three); at least one.
    #[schemars(length(min = 1))]
    pub formats: Option<Vec<RawReportFormat>>,
    /// Length of one interval of the time series (default 1s).
    pub interval: Option<RawDuration>,
}

/// `config.metrics`: the live `/metrics` endpoint (`run --metrics-listen` overrides it).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Where to serve `/metrics`: a port (`9464`, on 127.0.0.1) or `HOST:PORT`
    /// (`0.0.0.0:9464` for every interface).
    pub listen: Option<RawListen>,
}

/// A port number or an address text.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawListen {
    Port(u16),
    Address(String),
}

impl RawListen {
    pub fn text(&self) -> String {
        match self {
            RawListen::Port(port) => port.to_string(),
            RawListen::Address(text) => text.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawReportFormat {
    Json,
    Csv,
    Html,
}
