//! Binary-protocol values as written: a header length as a byte width or `varint`, a packet
//! type as a number or a `{value, mask}` pair.
//!
//! Like `shapes`, these deserialize with `deserialize_any` so every spelling is accepted and
//! validation reports what is wrong with the value, with its position; nothing is checked here.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// `length:` of a header field: a width in bytes, or a word (`varint`).
#[derive(Debug, Clone, PartialEq)]
pub enum RawLengthWidth {
    Bytes(u64),
    Word(String),
}

impl<'de> Deserialize<'de> for RawLengthWidth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawLengthWidth;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a width in bytes (1, 2, 4 or 8) or `varint`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawLengthWidth::Bytes(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawLengthWidth::Word(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawLengthWidth {
    fn schema_name() -> Cow<'static, str> {
        "LengthWidth".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The length field: 1, 2, 4 or 8 bytes, or `varint` (MQTT's remaining length: 7 bits per byte, least significant first, 1 to 4 bytes).",
            "anyOf": [
                {"type": "integer", "enum": [1, 2, 4, 8]},
                {"type": "string", "const": "varint"}
            ]
        })
    }
}

/// `type:` of an expect or handler: a packet type id, or the ids whose masked bits equal
/// `value` (`{value: 48, mask: 240}` is 0x30 to 0x3F).
#[derive(Debug, Clone, PartialEq)]
pub enum RawTypeMatch {
    Id(u32),
    Masked(RawTypeMask),
}

#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTypeMask {
    /// The bits the type must have where `mask` is set.
    pub value: u32,
    /// The bits of the type that are compared.
    pub mask: u32,
}

impl<'de> Deserialize<'de> for RawTypeMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTypeMatch;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a packet type id, or {value: N, mask: M}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u32::try_from(v)
                    .map(RawTypeMatch::Id)
                    .map_err(|_| E::custom(format!("type {v} is over 4294967295")))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawTypeMask::deserialize(MapAccessDeserializer::new(map)).map(RawTypeMatch::Masked)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawTypeMatch {
    fn schema_name() -> Cow<'static, str> {
        "TypeMatch".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mask = generator.subschema_for::<RawTypeMask>();
        json_schema!({
            "description": "The packet type id, or `{value, mask}`: the ids whose bits under `mask` equal `value`.",
            "anyOf": [{"type": "integer", "minimum": 0, "maximum": 4294967295u64}, mask]
        })
    }
}
