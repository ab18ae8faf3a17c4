//! Scenarios, flow steps, sends, expects and handlers as written.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::http::{RawEngine, RawHttpRequest};
use super::shapes::{NullOr, RawDuration, RawScalar, RawThink, present, string_or_map};

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawScenario {
    /// Names the scenario in reports and is the default `expect` metric name.
    pub name: Option<String>,
    /// Relative share of vusers: a positive whole number (default 1).
    #[schemars(range(min = 1))]
    pub weight: Option<u32>,
    /// This scenario's own target (e.g. `http://api:8080` beside a chat socket plan).
    pub target: Option<String>,
    /// `http`, `tcp` or `ws`; by default it follows the target's scheme.
    pub engine: Option<RawEngine>,
    /// A fixed number of vusers run this scenario (Locust's `fixed_count`); the other vusers
    /// are split among the scenarios without `count`, by `weight`.
    #[schemars(range(min = 1))]
    pub count: Option<u64>,
    /// Delay from the start of the run before this scenario's first vuser starts.
    pub start_after: Option<RawDuration>,
    /// Steps, in order.
    pub flow: Vec<RawFlowItem>,
    /// Server-push rules for this scenario, tried before the plan-wide ones.
    #[serde(default)]
    pub handlers: Vec<RawHandler>,
}

/// A flow item: `connect`/`disconnect` as a bare word, or a map with exactly one step key.
#[derive(Debug, Clone, PartialEq)]
pub enum RawFlowItem {
    Bare(String),
    Step(Box<RawStep>),
}

impl<'de> Deserialize<'de> for RawFlowItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawFlowItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a step: `connect`, `disconnect`, or a map such as `send: \"...\"`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "connect" | "disconnect" => Ok(RawFlowItem::Bare(v.to_owned())),
                    _ => Err(E::unknown_variant(v, BARE_STEPS)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawStep::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|step| RawFlowItem::Step(Box::new(step)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Steps that can be written as a bare word.
pub const BARE_STEPS: &[&str] = &["connect", "disconnect"];

/// The keys that make a step; every other key of a flow item modifies one of these.
pub const STEP_KEYS: &[&str] = &[
    "connect",
    "send",
    "expect",
    "think",
    "loop",
    "pick",
    "set",
    "record",
    "log",
    "disconnect",
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "head",
    "options",
];

impl JsonSchema for RawFlowItem {
    fn schema_name() -> Cow<'static, str> {
        "FlowItem".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let step = generator.subschema_for::<RawStep>();
        json_schema!({"anyOf": [{"type": "string", "enum": BARE_STEPS}, step]})
    }
}

/// One step. Exactly one step key; `count`/`over`/`duration`/`while` go with `loop`, `expect`
/// may accompany `send` (send, then wait for the reply), and `if` may go with any step.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Open the connection: `connect`, or `connect: {timeout: 3s}`.
    #[serde(default, deserialize_with = "present")]
    pub connect: Option<NullOr<RawConnect>>,
    #[serde(default, deserialize_with = "present")]
    pub send: Option<RawSend>,
    #[serde(default, deserialize_with = "present")]
    pub expect: Option<RawExpectArg>,
    /// `3s`, or a uniform range `3s..8s`.
    #[serde(default, deserialize_with = "present")]
    pub think: Option<RawThink>,
    /// Steps repeated `count` times, once per `over` value, for `duration`, or forever.
    #[serde(default, deserialize_with = "present")]
    #[serde(rename = "loop")]
    pub loop_steps: Option<Vec<RawFlowItem>>,
    pub count: Option<u64>,
    /// An array of values, or the name of a variable holding one.
    pub over: Option<serde_json::Value>,
    pub duration: Option<RawDuration>,
    /// With `loop`: repeat while this expression holds (checked before each iteration).
    #[serde(rename = "while")]
    pub while_: Option<String>,
    /// Run the step only when this expression holds (minijinja condition over the vuser's
    /// variables: `status == 'held'`, `random() < 0.5`).
    #[serde(rename = "if")]
    pub if_: Option<String>,
    /// Artillery's spelling of `if`.
    #[serde(rename = "ifTrue")]
    pub if_true: Option<String>,
    /// Run one of these flows, drawn by weight each time the step runs.
    #[serde(default, deserialize_with = "present")]
    pub pick: Option<Vec<RawPickBranch>>,
    /// Set variables from templates.
    #[serde(default, deserialize_with = "present")]
    pub set: Option<BTreeMap<String, RawScalar>>,
    /// Record a number (milliseconds) into a custom histogram: `{name: server_time, value:
    /// "{{ t }}"}`.
    #[serde(default, deserialize_with = "present")]
    pub record: Option<RawRecord>,
    /// Print a rendered template (debugging).
    #[serde(default, deserialize_with = "present")]
    pub log: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub disconnect: Option<NullOr<RawEmpty>>,
    /// HTTP steps (Artillery's), one key per method.
    pub get: Option<RawHttpRequest>,
    pub post: Option<RawHttpRequest>,
    pub put: Option<RawHttpRequest>,
    pub patch: Option<RawHttpRequest>,
    pub delete: Option<RawHttpRequest>,
    pub head: Option<RawHttpRequest>,
    pub options: Option<RawHttpRequest>,
}

/// `record`: a value rendered per execution into the histogram `name`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    /// The histogram's name, as thresholds and reports spell it.
    pub name: String,
    /// A template rendering a number of milliseconds (a captured server-side time).
    pub value: RawScalar,
}

/// One branch of `pick`: its relative weight and its steps.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPickBranch {
    /// Relative weight: a positive whole number (default 1).
    #[schemars(range(min = 1))]
    pub weight: Option<u32>,
    pub flow: Vec<RawFlowItem>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConnect {
    pub timeout: Option<RawDuration>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEmpty {}

string_or_map!(
    /// `send: "template"`, or `send: {message, with}` / `send: {type, body|fields|json|hex}`.
    RawSend,
    Text,
    RawSendSpec,
    "a text template, or a map such as {message: chat} or {type: 1, body: \"...\"}"
);

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSendSpec {
    /// A message of `config.messages`.
    pub message: Option<String>,
    /// Extra template variables for the message.
    #[serde(rename = "with")]
    pub with_vars: Option<BTreeMap<String, RawScalar>>,
    #[serde(rename = "type")]
    pub type_id: Option<u32>,
    pub body: Option<String>,
    pub fields: Option<Vec<RawFieldDef>>,
    pub json: Option<serde_json::Value>,
    pub hex: Option<String>,
    /// Wait for the reply to this send.
    pub expect: Option<RawExpectArg>,
}

/// One typed binary field: exactly one type key holding the value (a template or a number).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFieldDef {
    pub u8: Option<RawScalar>,
    pub u16: Option<RawScalar>,
    pub u32: Option<RawScalar>,
    pub u64: Option<RawScalar>,
    pub i8: Option<RawScalar>,
    pub i16: Option<RawScalar>,
    pub i32: Option<RawScalar>,
    pub i64: Option<RawScalar>,
    pub f32: Option<RawScalar>,
    pub f64: Option<RawScalar>,
    pub str: Option<RawScalar>,
    /// `str`: padded with zeros or cut to exactly this many bytes.
    pub bytes: Option<usize>,
    /// `str`: preceded by its byte length in 1, 2 or 4 bytes (default when `bytes` is absent:
    /// 2); 0 = no length, the rest of the frame (the last field only).
    pub length_prefix: Option<u8>,
    pub encoding: Option<RawEncoding>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawEncoding {
    Utf8,
    Utf16le,
}

string_or_map!(
    /// `expect: "^OK"` (a regex), or the full map.
    RawExpectArg,
    Regex,
    RawExpect,
    "a regex, or a map such as {match: \"^OK\", timeout: 5s}"
);

/// Wait for the next frame that matches: one of `match`, `contains`, `equals`, `json`, and/or
/// a packet `type`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    /// A regex; named groups can be captured.
    #[serde(rename = "match")]
    pub regex: Option<String>,
    pub contains: Option<String>,
    pub equals: Option<String>,
    /// JSON pointer (or `$.a.b`) → expected value.
    pub json: Option<BTreeMap<String, serde_json::Value>>,
    /// Packet type id, or `{value, mask}`; may go with one body matcher.
    #[serde(rename = "type")]
    pub type_id: Option<super::RawTypeMatch>,
    pub timeout: Option<RawDuration>,
    /// variable → regex group name, or JSON pointer for `json` matches.
    pub capture: Option<BTreeMap<String, String>>,
    /// Typed binary fields read from the start of the body into variables, e.g.
    /// `[{str: topic, lengthPrefix: 2}, {u16: pid}]`.
    pub decode: Option<Vec<RawFieldDef>>,
    /// Latency metric name: `latency.<name>` (default: the scenario name).
    pub name: Option<String>,
    /// Fail the vuser on a non-matching frame instead of passing it to handlers.
    pub strict: Option<bool>,
}

/// A rule for frames the flow is not waiting for: one of `on` (regex), `contains`, `equals`,
/// `json`, and/or a packet `type`, and an optional `reply`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHandler {
    /// A regex; its named groups are template variables of `reply`.
    pub on: Option<String>,
    pub contains: Option<String>,
    pub equals: Option<String>,
    pub json: Option<BTreeMap<String, serde_json::Value>>,
    /// Packet type id, or `{value, mask}`; may go with one body matcher.
    #[serde(rename = "type")]
    pub type_id: Option<super::RawTypeMatch>,
    /// variable → regex group name or JSON pointer, stored in the vuser's variables.
    pub capture: Option<BTreeMap<String, String>>,
    /// Typed binary fields read from the start of the body into variables (seen by `reply`).
    pub decode: Option<Vec<RawFieldDef>>,
    pub reply: Option<RawSend>,
    /// Count frames taken by this handler as `handled.<name>`.
    pub name: Option<String>,
}
