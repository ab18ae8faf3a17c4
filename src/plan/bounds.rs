//! The bounds every plan document must fit in, whatever its syntax: nesting depth, and the
//! number of nodes and bytes of its value tree *after* YAML aliases are expanded. A 20 KB file
//! of aliases can otherwise describe gigabytes; these limits do not depend on the file's size.
//!
//! [`BoundedValue`] builds the `serde_json::Value` tree from any serde deserializer (YAML or
//! TOML) and stops with an error as soon as a bound is crossed, so memory stays bounded even
//! while expanding. The syntax-specific pre-pass that rejects deep nesting before the YAML
//! parser spends quadratic time on it lives in `source`, which owns the parsers.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Deepest nesting of mappings and sequences a plan may use (a real plan needs under 15).
pub const MAX_DEPTH: usize = 64;

/// Most nodes (scalars, mappings, sequences) a plan may expand to.
pub const MAX_NODES: u64 = 1_000_000;

/// Most bytes of scalar and key text a plan may expand to.
pub const MAX_BYTES: u64 = 64 << 20;

/// Why a document is out of bounds; the text of the error the parser reports.
pub fn depth_message() -> String {
    format!("the plan nests deeper than {MAX_DEPTH} levels of mappings and sequences; flatten it")
}

fn size_message() -> String {
    format!(
        "the plan expands to more than {MAX_NODES} nodes or {} MiB of text (aliases are \
         counted at every place they are used); a plan this large is a mistake or an attack",
        MAX_BYTES >> 20
    )
}

/// What the document has used so far.
#[derive(Debug, Default)]
pub struct Budget {
    nodes: u64,
    bytes: u64,
}

impl Budget {
    fn spend<E: de::Error>(&mut self, nodes: u64, bytes: usize) -> Result<(), E> {
        self.nodes = self.nodes.saturating_add(nodes);
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
        if self.nodes > MAX_NODES || self.bytes > MAX_BYTES {
            return Err(E::custom(size_message()));
        }
        Ok(())
    }
}

/// Deserializes one value into a `serde_json::Value` exactly as `Value::deserialize` would,
/// spending `budget` and refusing to go deeper than [`MAX_DEPTH`].
pub struct BoundedValue<'b> {
    pub budget: &'b mut Budget,
    pub depth: usize,
}

impl<'de> DeserializeSeed<'de> for BoundedValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(depth_message()));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BoundedValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.spend(1, 0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.spend(1, 0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.spend(1, 0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.spend(1, 0)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.spend(1, v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.spend(1, v.len())?;
        Ok(Value::String(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.budget.spend(1, 0)?;
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.visit_none()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        BoundedValue {
            budget: self.budget,
            depth: self.depth,
        }
        .deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.spend(1, 0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(BoundedValue {
            budget: &mut *self.budget,
            depth: self.depth + 1,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.budget.spend(1, 0)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.budget.spend(0, key.len())?;
            let value = map.next_value_seed(BoundedValue {
                budget: &mut *self.budget,
                depth: self.depth + 1,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded_json(text: &str) -> Result<Value, String> {
        let mut budget = Budget::default();
        let mut de = serde_json::Deserializer::from_str(text);
        BoundedValue {
            budget: &mut budget,
            depth: 0,
        }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn builds_the_same_tree_as_value_deserialize() {
        let text = r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": {}}, "d": []}"#;
        let plain: Value = serde_json::from_str(text).unwrap_or_default();
        assert_eq!(bounded_json(text).ok(), Some(plain));
    }

    #[test]
    fn depth_beyond_the_bound_is_refused() {
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(bounded_json(&ok).is_ok());
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        let err = bounded_json(&deep).err().unwrap_or_default();
        assert!(err.contains("deeper than 64"), "{err}");
    }

    #[test]
    fn nodes_beyond_the_bound_are_refused() {
        // The array itself is a node too.
        let at_bound = format!("[{}0]", "0,".repeat(MAX_NODES as usize - 2));
        assert!(bounded_json(&at_bound).is_ok());
        let over = format!("[{}0]", "0,".repeat(MAX_NODES as usize - 1));
        let err = bounded_json(&over).err().unwrap_or_default();
        assert!(err.contains("expands to more than"), "{err}");
    }
}
