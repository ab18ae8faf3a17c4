//! Structural checks: turning the value tree into a `RawPlan` while collecting every shape
//! problem, not just the first one serde meets.
//!
//! serde stops at the first error, so deserialization is repeated: each error is recorded with
//! its path, the offending node is removed from a working copy, and the copy is deserialized
//! again until it fits. Removed list items shift later indices, so a [`Remap`] translates paths
//! of the pruned tree back to the file. Meaning (durations, references, templates) is checked
//! later, by `validate`.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::artillery;
use super::problem::{Collector, Seg, suggest};
use super::raw::RawPlan;

/// Upper bound on repairs; every round removes a node, so this is only a guard.
const MAX_ROUNDS: usize = 1000;

/// Translates paths in the pruned tree to paths in the file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Remap {
    /// Original path of a list → original indices removed from it, ascending.
    removed_items: HashMap<Vec<Seg>, Vec<usize>>,
    /// Original paths of nodes that lost a child: checks of their meaning would only echo the
    /// structural problem already reported.
    pub tainted: HashSet<Vec<Seg>>,
}

impl Remap {
    pub fn to_original(&self, path: &[Seg]) -> Vec<Seg> {
        let mut out: Vec<Seg> = Vec::with_capacity(path.len());
        for seg in path {
            match seg {
                Seg::Index(i) => {
                    let removed = self.removed_items.get(&out);
                    let mut original = *i;
                    if let Some(removed) = removed {
                        let mut kept = 0;
                        let mut j = 0;
                        loop {
                            if !removed.contains(&j) {
                                if kept == *i {
                                    original = j;
                                    break;
                                }
                                kept += 1;
                            }
                            j += 1;
                        }
                    }
                    out.push(Seg::Index(original));
                }
                Seg::Key(k) => out.push(Seg::Key(k.clone())),
            }
        }
        out
    }
}

/// Deserializes `value` into a `RawPlan`, reporting every structural problem; the plan returned
/// lacks the nodes that were wrong. `None` when nothing usable is left.
pub(crate) fn deserialize(value: &Value, out: &mut Collector<'_>) -> Option<(RawPlan, Remap)> {
    if !value.is_object() {
        let found = kind_of(value);
        out.error(
            &[],
            format!("a plan must be a map with `config` and `scenarios`, found {found}"),
            Some("start from plans/basic.yml".to_owned()),
        );
        return None;
    }
    let mut work = value.clone();
    let mut remap = Remap::default();
    let mut removed_keys: HashSet<Vec<Seg>> = HashSet::new();
    for _ in 0..MAX_ROUNDS {
        let err = match serde_path_to_error::deserialize::<_, RawPlan>(&work) {
            Ok(plan) => return Some((plan, remap)),
            Err(err) => err,
        };
        let pruned_path = segments(err.path());
        let message = err.inner().to_string();
        let original = remap.to_original(&pruned_path);
        let (report_path, remove) = if let Some(field) = between(&message, "unknown field `", "`") {
            // The path may or may not already end in the unknown key.
            let mut parent = pruned_path.clone();
            if parent.last() == Some(&Seg::Key(field.to_owned())) {
                parent.pop();
            }
            let mut target = parent;
            target.push(Seg::Key(field.to_owned()));
            let expected = expected_names(&message);
            let help = suggest(field, expected.iter().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"));
            let (text, allowed) = if let Some((text, instead)) = artillery::javascript_key(field) {
                (text, Some(format!("instead, {instead}")))
            } else {
                let text = match &help {
                    Some(h) => format!("unknown key `{field}`, {h}"),
                    None => format!("unknown key `{field}`"),
                };
                let allowed = if expected.is_empty() {
                    None
                } else {
                    Some(format!("allowed keys here: {}", expected.join(", ")))
                };
                (text, allowed)
            };
            let original_target = remap.to_original(&target);
            out.key_error(&original_target, text, allowed);
            (target, true)
        } else if let Some(field) = between(&message, "missing field `", "`") {
            let mut child = original.clone();
            child.push(Seg::Key(field.to_owned()));
            if !removed_keys.contains(&child) {
                out.error(
                    &original,
                    format!("missing key `{field}`"),
                    Some(format!("add `{field}:` here")),
                );
            }
            (pruned_path.clone(), true)
        } else if let Some(variant) = between(&message, "unknown variant `", "`") {
            let expected = expected_names(&message);
            let mut text = format!("unknown value `{variant}`");
            if let Some(s) = suggest(variant, expected.iter().map(String::as_str)) {
                text.push_str(&format!(", did you mean `{s}`?"));
            }
            out.error(
                &original,
                text,
                Some(format!("use one of: {}", expected.join(", "))),
            );
            (pruned_path.clone(), true)
        } else {
            let (text, help) = humanize(&message, &original);
            out.error(&original, text, help);
            (pruned_path.clone(), true)
        };
        if !remove || report_path.is_empty() {
            return None;
        }
        let original_removed = remap.to_original(&report_path);
        if !remove_node(&mut work, &report_path) {
            return None;
        }
        if let Some(Seg::Index(i)) = original_removed.last() {
            let list = original_removed[..original_removed.len() - 1].to_vec();
            let entry = remap.removed_items.entry(list).or_default();
            entry.push(*i);
            entry.sort_unstable();
        }
        if let Some((_, parent)) = original_removed.split_last() {
            remap.tainted.insert(parent.to_vec());
        }
        removed_keys.insert(original_removed);
    }
    None
}

fn segments(path: &serde_path_to_error::Path) -> Vec<Seg> {
    path.iter()
        .filter_map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            // Externally tagged enums are written as `{variant: ...}`: the variant is a key.
            serde_path_to_error::Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
}

fn remove_node(root: &mut Value, path: &[Seg]) -> bool {
    let Some((last, parent_path)) = path.split_last() else {
        return false;
    };
    let mut node = root;
    for seg in parent_path {
        node = match (seg, node) {
            (Seg::Key(k), Value::Object(map)) => match map.get_mut(k) {
                Some(n) => n,
                None => return false,
            },
            (Seg::Index(i), Value::Array(items)) => match items.get_mut(*i) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Seg::Key(k), Value::Object(map)) => map.remove(k).is_some(),
        (Seg::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

fn between<'m>(message: &'m str, start: &str, end: &str) -> Option<&'m str> {
    let from = message.find(start)? + start.len();
    let len = message.get(from..)?.find(end)?;
    message.get(from..from + len)
}

/// The names listed after "expected" in serde's unknown field/variant messages.
fn expected_names(message: &str) -> Vec<String> {
    let Some(at) = message.find("expected") else {
        return Vec::new();
    };
    message
        .get(at..)
        .unwrap_or_default()
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Rewrites serde's type errors in the plan's vocabulary.
fn humanize(message: &str, path: &[Seg]) -> (String, Option<String>) {
    let last_key = path.iter().rev().find_map(|s| match s {
        Seg::Key(k) => Some(k.as_str()),
        Seg::Index(_) => None,
    });
    let found = message
        .strip_prefix("invalid type: null")
        .map(|_| "nothing".to_owned())
        .unwrap_or_else(|| found_text(message));

    let expected_raw = message.rsplit(", expected ").next().unwrap_or_default();
    let whole = ["u8", "u16", "u32", "u64", "usize"];
    let negative = message.starts_with("invalid value: integer `-");
    if last_key == Some("weight") {
        return (
            format!("`weight` must be a positive whole number, found {found}"),
            Some("weights are relative shares: write 1 and 2 rather than 0.5 and 1".to_owned()),
        );
    }
    if negative && whole.contains(&expected_raw) {
        return (
            format!("must not be negative, found {found}"),
            Some("use a whole number of 0 or more".to_owned()),
        );
    }
    let expected = if whole.contains(&expected_raw) {
        "a whole number".to_owned()
    } else if expected_raw == "f64" || expected_raw == "f32" {
        "a number".to_owned()
    } else if expected_raw == "a boolean" {
        "true or false".to_owned()
    } else if expected_raw == "a sequence" {
        "a list".to_owned()
    } else if expected_raw.starts_with("struct ") || expected_raw == "a map" {
        "a map".to_owned()
    } else if expected_raw == "a string" {
        "a string".to_owned()
    } else if expected_raw.starts_with("enum ") {
        "one of the listed words".to_owned()
    } else {
        expected_raw.to_owned()
    };
    if found.is_empty() {
        (message.to_owned(), None)
    } else {
        (format!("expected {expected}, found {found}"), None)
    }
}

/// What serde found, in the plan's words: `the number \`0.5\``, `a list`.
fn found_text(message: &str) -> String {
    message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.split(", expected").next())
        .unwrap_or_default()
        .replace("floating point", "the number")
        .replace("integer", "the number")
        .replace("string", "the string")
        .replace("map", "a map")
        .replace("sequence", "a list")
        .replace("unit value", "nothing")
        .replace("boolean", "the boolean")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::problem::PositionIndex;

    fn problems(value: Value) -> (Vec<String>, Option<RawPlan>) {
        let index = PositionIndex::default();
        let mut out = Collector::new("t.yml".into(), "", &index);
        let raw = deserialize(&value, &mut out).map(|(raw, _)| raw);
        let list = out
            .finish()
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        (list, raw)
    }

    #[test]
    fn every_structural_problem_is_reported_and_the_rest_survives() {
        let value = serde_json::json!({
            "config": {
                "target": "embedded",
                "phases": [{"duration": 1, "arivalRate": 1}, 7, {"vusers": -1}],
            },
            "scenarios": [
                {"weight": 0.5, "flow": ["connect"]},
                {"name": "ok", "flow": ["connect", 5, {"think": "1s"}]},
            ],
        });
        let (list, raw) = problems(value);
        assert_eq!(
            list,
            vec![
                "config.phases[0].arivalRate: unknown key `arivalRate`, did you mean `arrivalRate`?",
                "config.phases[1]: expected a map, found the number `7`",
                "config.phases[2].vusers: must not be negative, found the number `-1`",
                "scenarios[0].weight: `weight` must be a positive whole number, found the number `0.5`",
                "scenarios[1].flow[1]: expected a step: `connect`, `disconnect`, or a map such as `send: \"...\"`, found the number `5`",
            ]
        );
        let raw = raw.expect("what is left deserializes");
        assert_eq!(raw.scenarios[1].flow.len(), 2, "the broken item is dropped");
    }

    #[test]
    fn remap_counts_removed_items_back_in() {
        let mut remap = Remap::default();
        let list = vec![Seg::Key("flow".into())];
        remap.removed_items.insert(list.clone(), vec![0, 2]);
        let pruned = vec![
            Seg::Key("flow".into()),
            Seg::Index(1),
            Seg::Key("send".into()),
        ];
        assert_eq!(
            remap.to_original(&pruned),
            vec![
                Seg::Key("flow".into()),
                Seg::Index(3),
                Seg::Key("send".into())
            ]
        );
    }

    #[test]
    fn a_missing_required_key_is_reported_once() {
        let value =
            serde_json::json!({"config": {"target": "embedded"}, "scenarios": [{"name": "x"}]});
        let (list, _) = problems(value);
        assert_eq!(list, vec!["scenarios[0]: missing key `flow`"]);
    }
}
