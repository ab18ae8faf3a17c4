//! The validated plan: what the engine, the CLI and the reports consume.
//!
//! Every value here has been checked: durations are `Duration`s, references are resolved to
//! indices, templates and regexes are compiled. Nothing in this file parses or reports errors.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{CaptureSource, CodecConfig, FieldKind, Matcher, TypeMask};
use crate::vocab::Stat;

/// A validated plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The file the plan was loaded from (relative paths inside it are resolved against it).
    pub source: PathBuf,
    /// The plan's name: its file stem, used for the run folder.
    pub name: String,
    pub target: Target,
    /// `config.protocol`: the codec configuration as the protocol module takes it.
    pub protocol: CodecConfig,
    /// `config.tls` (`None`: not written; TLS targets then use the defaults).
    pub tls: Option<TlsSettings>,
    pub websocket: WebSocketSettings,
    /// `config.http`.
    pub http: super::http::HttpSettings,
    /// Named messages; `SendSpec::Message` refers to them by index.
    pub messages: Vec<Message>,
    pub load: Load,
    pub payloads: Vec<Payload>,
    pub variables: Vec<Variable>,
    pub defaults: Defaults,
    /// Local addresses connections are spread over (empty: let the OS choose).
    pub source_addresses: Vec<IpAddr>,
    /// Plan-wide handlers for frames the flow is not waiting for.
    pub handlers: Vec<Handler>,
    pub ensure: Ensure,
    pub monitor: Option<Monitor>,
    pub report: ReportConfig,
    /// The live metrics endpoint (`config.metrics`).
    pub metrics: MetricsConfig,
    pub scenarios: Vec<Scenario>,
    /// `before`/`after` flows and `config.hooks`.
    pub setup: Setup,
    /// Every template of the plan, compiled once.
    pub templates: Templates,
    /// The plan as written, secrets redacted, for the result file and the HTML report.
    pub as_written: serde_json::Value,
    /// The plan file's text with the values of secret-looking keys replaced by `***`
    /// (`None` for plans built in code).
    pub source_text: Option<SourceText>,
}

/// Setup and teardown: flows one vuser runs once before the first phase and after the last
/// vuser, and local commands run around the whole run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Setup {
    /// Its captures and `set`s are visible to every vuser.
    pub before: Option<Scenario>,
    pub after: Option<Scenario>,
    pub hooks: Hooks,
}

/// `config.hooks`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hooks {
    pub before: Vec<Hook>,
    pub after: Vec<Hook>,
}

/// A local command: `run[0]` with the other items as arguments (no shell), from the plan's
/// directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub run: Vec<String>,
    pub timeout: Duration,
}

/// A plan file's text, secrets redacted.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceText {
    pub format: super::Format,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Start the reference server in-process on a free loopback port.
    Embedded(EmbeddedServer),
    /// A URL as written (`host:port`, `tls://…`, `ws://…`, `wss://…`), checked by
    /// [`Endpoint::parse`](super::Endpoint::parse).
    Address(String),
}

/// `config.tls`: how TLS connections are verified and what they offer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsSettings {
    /// SNI and the name checked (`None`: the target's host).
    pub server_name: Option<String>,
    pub roots: TlsRoots,
    /// Accept any certificate (testing only; the run warns).
    pub insecure_skip_verify: bool,
    /// Client certificate and key files for mutual TLS.
    pub client_identity: Option<ClientIdentity>,
    pub alpn: Vec<String>,
    /// Refuse TLS 1.2 (`minVersion: 1.3`).
    pub tls13_only: bool,
}

/// Which certificate authorities a TLS connection trusts.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TlsRoots {
    /// The operating system's trust store.
    #[default]
    System,
    /// A PEM bundle on disk (`caFile`).
    File(PathBuf),
    /// PEM text held in memory: the embedded server's generated certificate.
    Pem(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientIdentity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `config.websocket`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebSocketSettings {
    pub subprotocols: Vec<String>,
    /// Upgrade request headers, rendered per vuser.
    pub headers: Vec<(String, Text)>,
    /// Cap on one message (`None`: the framing's `maxFrameBytes`).
    pub max_message_bytes: Option<usize>,
    pub ping_interval: Option<Duration>,
}

/// `config.embedded`: the same knobs as `chatload serve`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EmbeddedServer {
    pub binary: bool,
    pub xor_key: Option<Vec<u8>>,
    pub delay: Duration,
    pub jitter: Duration,
    pub capacity_per_sec: Option<f64>,
    pub stall: Option<Stall>,
    pub max_clients: Option<usize>,
    /// Serve TLS with a certificate generated for the run.
    pub tls: bool,
    pub websocket: bool,
    /// Serve the HTTP demo API instead of chat.
    pub http: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub duration: Duration,
    pub every: Duration,
}

/// Index into `Plan::messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId(pub usize);

/// Key of a compiled template in `Plan::templates`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateId(pub String);

/// Text that is either fixed (rendered once, at load) or a compiled template.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Literal(String),
    Template(TemplateId),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub name: String,
    pub body: MessageBody,
}

/// A message to encode: an optional packet type id and a body.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageBody {
    pub type_id: Option<u32>,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(Text),
    Hex(Vec<u8>),
    Fields(Vec<Field>),
    /// A JSON document whose string leaves are listed in `templates` (JSON pointer → text).
    Json {
        document: serde_json::Value,
        templates: Vec<(String, Text)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub kind: FieldKind,
    pub value: Text,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    Phases(Vec<Phase>),
    Adaptive(Adaptive),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// The name as written, or `phase N` (1-based).
    pub name: String,
    pub shape: PhaseShape,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PhaseShape {
    /// Open model: arrivals at a rate, optionally ramped linearly to `ramp_to_per_sec`.
    Arrivals {
        duration: Duration,
        rate_per_sec: f64,
        ramp_to_per_sec: Option<f64>,
        max_vusers: Option<u64>,
        distribution: Arrivals,
    },
    /// Open model: exactly `count` arrivals spread evenly over `duration`.
    ArrivalCount {
        duration: Duration,
        count: u64,
    },
    Pause(Duration),
    /// Closed model: keep `vusers` connected, optionally ramping the target to `ramp_to`.
    Concurrency {
        duration: Duration,
        vusers: u64,
        ramp_to: Option<u64>,
        curve: Curve,
        /// Change the target in this many equal steps instead of continuously.
        steps: Option<u32>,
    },
}

impl PhaseShape {
    /// How long the phase lasts.
    pub fn duration(&self) -> Duration {
        match self {
            PhaseShape::Arrivals { duration, .. }
            | PhaseShape::ArrivalCount { duration, .. }
            | PhaseShape::Concurrency { duration, .. }
            | PhaseShape::Pause(duration) => *duration,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    Uniform,
    Poisson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    Linear,
    Exponential,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub path: PathBuf,
    pub fields: Vec<String>,
    pub order: PayloadOrder,
    /// `loadAll` + `name`: every row available as the variable `name` instead of one row each.
    pub load_all_as: Option<String>,
    /// Rows as read (header skipped, empty lines skipped when asked, cast applied).
    pub rows: Arc<super::rows::Rows>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadOrder {
    Random,
    Sequence,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    /// One value, or several: one random pick per vuser.
    pub values: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// Timeout for connect and expect when the step sets none.
    pub timeout: Duration,
    /// Extra random think time, as a fraction of the think (0.1 = ±10 %).
    pub think_jitter: f64,
    pub reconnect: Reconnect,
    /// How long vusers may take to finish after the last phase before they are cancelled.
    pub graceful_stop: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reconnect {
    /// 0 = never reconnect.
    pub attempts: u32,
    pub backoff: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Handler {
    pub matcher: Matcher,
    /// Set when the matcher's text is a template: `matcher` is then only its load-time
    /// stand-in (its regex groups and its display), rendered per vuser when it runs.
    pub template: Option<MatcherTemplate>,
    /// A packet type the frame must also have, when `type` goes with a body matcher.
    pub types: Option<TypeMask>,
    /// Fields read from the body into the vuser's variables before the reply is built.
    pub decode: Vec<DecodeField>,
    /// Captured into the vuser's variables (a pushed token replacing the old one).
    pub captures: Vec<Capture>,
    pub reply: Option<SendSpec>,
    /// Counter name for frames this handler took (`handled.<name>`).
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub weight: u32,
    /// The scenario's own target URL (`None`: the plan's).
    pub target: Option<String>,
    pub flow: Vec<Step>,
    pub handlers: Vec<Handler>,
    pub allocation: Allocation,
}

/// How many vusers run a scenario and from when.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Allocation {
    /// A fixed number of vusers (open model: over the run; closed model: at a time), taken
    /// before the weighted split; `None`: a share of the rest by `weight`.
    pub count: Option<u64>,
    /// No vuser of the scenario starts before this much of the run has passed.
    pub start_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Connect {
        timeout: Option<Duration>,
    },
    Send {
        message: SendSpec,
        expect: Option<Expect>,
    },
    Expect(Expect),
    Think(Think),
    Loop {
        steps: Vec<Step>,
        bound: LoopBound,
    },
    Set {
        variable: String,
        value: Text,
    },
    Log(Text),
    Disconnect,
    /// `if:` on a step: the step (several for a `set` of several variables) runs only when
    /// `condition` renders `true`.
    If {
        condition: Text,
        steps: Vec<Step>,
    },
    /// One branch, drawn by weight each time the step runs.
    Pick(Vec<PickBranch>),
    /// An HTTP request (`get`, `post`, ...).
    Http(Box<super::http::HttpRequest>),
    /// Record the rendered number (milliseconds) into the custom histogram `metric`.
    Record {
        metric: String,
        value: Text,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PickBranch {
    pub weight: u32,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendSpec {
    /// A text frame rendered from a template.
    Text(Text),
    /// A named message, with extra template variables bound for this send.
    Message {
        id: MessageId,
        with: Vec<(String, Text)>,
    },
    /// An inline message (`send: {type, body|fields|json|hex}`).
    Inline(MessageBody),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    pub matcher: Matcher,
    /// Set when the matcher's text is a template (see [`Handler::template`]).
    pub template: Option<MatcherTemplate>,
    /// A packet type the frame must also have, when `type` goes with a body matcher.
    pub types: Option<TypeMask>,
    /// Fields read from the matched frame's body into the vuser's variables.
    pub decode: Vec<DecodeField>,
    pub timeout: Option<Duration>,
    pub captures: Vec<Capture>,
    /// Latency is recorded as `latency.<metric>`.
    pub metric: String,
    /// When true, a non-matching frame fails the vuser instead of going to handlers.
    pub strict: bool,
}

/// The templated text of a matcher, rendered when its step runs. A regex template inserts
/// values escaped (`| raw` opts out); `json` templates are string values of the pairs.
#[derive(Debug, Clone, PartialEq)]
pub enum MatcherTemplate {
    Regex(TemplateId),
    Contains(TemplateId),
    Equals(TemplateId),
    /// (index into the `Matcher::Json` pairs, the template of that pair's string value).
    Json(Vec<(usize, TemplateId)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub variable: String,
    pub source: CaptureSource,
}

/// One typed field of `decode:`, read in order from the start of a binary body.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeField {
    pub variable: String,
    pub kind: FieldKind,
}

/// Uniform think time in `[min, max]` (equal for a fixed think).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Think {
    pub min: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoopBound {
    Count(u64),
    /// One iteration per value; the value is bound to `$loopElement` and `loop.value`.
    Over(Vec<serde_json::Value>),
    Duration(Duration),
    /// While the condition renders `true` (checked before each iteration), or until the
    /// vuser is retired.
    While(Text),
    /// Until the vuser is retired.
    Forever,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ensure {
    pub conditions: Vec<Condition>,
    /// Artillery's `maxErrorRate`, in percent.
    pub max_error_rate_percent: Option<f64>,
    pub abort_on_fail: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The expression as written (Artillery thresholds are rewritten to `metric.stat < v`).
    pub source: String,
    pub expr: Expr,
    /// Artillery's `strict: false` makes a failure a warning only.
    pub strict: bool,
    /// Hold in every window of this length, not only over the whole run.
    pub window: Option<Duration>,
}

/// A threshold expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare {
        metric: String,
        stat: Stat,
        op: CompareOp,
        value: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub process: ProcessSelector,
    pub port: Option<u16>,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProcessSelector {
    Pid(u32),
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Adaptive {
    pub start_vusers: u64,
    pub max_vusers: u64,
    pub window: Duration,
    pub limits: AdaptiveLimits,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdaptiveLimits {
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    pub p95: Option<Duration>,
    pub success_rate_percent: Option<f64>,
    pub error_rate_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportConfig {
    pub dir: PathBuf,
    pub json: bool,
    pub csv: bool,
    pub html: bool,
    pub interval: Duration,
}

/// `config.metrics`: where to serve `/metrics` during the run, if anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// A listen address as [`crate::plan::listen_address`] resolves it (`127.0.0.1:9464`).
    pub listen: Option<String>,
}

/// Every template of the plan, compiled once into one environment.
///
/// The environment carries the pure template functions; the engine adds `stamp()`, which
/// needs the run's clock and identity.
#[derive(Debug, Clone)]
pub struct Templates {
    pub env: minijinja::Environment<'static>,
}

impl PartialEq for Templates {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
