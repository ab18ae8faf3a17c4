//! Per-vuser data handed out at vuser start: payload rows (`sequence` without duplicates
//! across vusers until the file is exhausted, then from the top again, interleaved over
//! shards so no two shards hand out one row; or `random`),
//! `loadAll` tables and plan variables (an array yields one random pick per vuser).
//!
//! Reading the CSV files is `plan`'s job; this only distributes the rows it read.

use std::sync::atomic::{AtomicUsize, Ordering};

use minijinja::value::Value;
use rand::RngExt;

use super::template::Vars;
use crate::engine::load::Shard;
use crate::engine::seed::SeededRng;
use crate::plan::{Payload, PayloadOrder, Variable};

/// Shared by every vuser of a run.
#[derive(Debug)]
pub struct DataSource {
    payloads: Vec<PayloadSource>,
    /// `sequence` rows interleave over shards: this shard's k-th vuser takes row k·N + I.
    shard: Shard,
    variables: Vec<(String, Vec<Value>)>,
}

#[derive(Debug)]
struct PayloadSource {
    payload: Payload,
    /// `loadAll`: the whole table as one list of objects, built once.
    table: Option<Value>,
    next_row: AtomicUsize,
}

impl DataSource {
    pub fn new(payloads: &[Payload], variables: &[Variable], shard: Shard) -> Self {
        let payloads = payloads
            .iter()
            .map(|p| PayloadSource {
                table: p.load_all_as.as_ref().map(|_| {
                    Value::from(
                        p.rows
                            .iter()
                            .map(|row| row_value(p, &row))
                            .collect::<Vec<_>>(),
                    )
                }),
                payload: p.clone(),
                next_row: AtomicUsize::new(0),
            })
            .collect();
        let variables = variables
            .iter()
            .map(|v| {
                let values = v.values.iter().map(json_value).collect();
                (v.name.clone(), values)
            })
            .collect();
        DataSource {
            payloads,
            variables,
            shard,
        }
    }

    /// The starting variables of a new vuser; its random picks come from `rng`, the vuser's
    /// own stream, so they depend on the seed and the vuser id only.
    pub fn vars_for_vuser(&self, rng: &mut SeededRng) -> Vars {
        let mut vars = Vars::new();
        for (name, values) in &self.variables {
            let pick = match values.len() {
                0 => continue,
                1 => values.first(),
                n => values.get(rng.random_range(0..n)),
            };
            if let Some(value) = pick {
                vars.insert(name.clone(), value.clone());
            }
        }
        for source in &self.payloads {
            let p = &source.payload;
            if let (Some(name), Some(table)) = (&p.load_all_as, &source.table) {
                vars.insert(name.clone(), table.clone());
                continue;
            }
            if p.rows.is_empty() {
                continue;
            }
            let index = match p.order {
                PayloadOrder::Sequence => {
                    let local = source.next_row.fetch_add(1, Ordering::Relaxed) as u64;
                    let row = self.shard.vuser_id(local) % p.rows.len() as u64;
                    usize::try_from(row).unwrap_or(0)
                }
                PayloadOrder::Random => rng.random_range(0..p.rows.len()),
            };
            if let Some(row) = p.rows.row(index) {
                for (field, value) in p.fields.iter().zip(&row) {
                    vars.insert(field.clone(), json_value(value));
                }
            }
        }
        vars
    }
}

/// A JSON value as a template value (minijinja is built without its serde feature).
pub fn json_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::from(n.to_string()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(json_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
    }
}

fn row_value(p: &Payload, row: &[serde_json::Value]) -> Value {
    Value::from(
        p.fields
            .iter()
            .zip(row)
            .map(|(f, v)| (f.clone(), json_value(v)))
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::engine::seed::vuser_rng;

    fn payload(order: PayloadOrder, rows: usize, load_all_as: Option<&str>) -> Payload {
        Payload {
            path: PathBuf::from("users.csv"),
            fields: vec!["name".into(), "password".into()],
            order,
            load_all_as: load_all_as.map(str::to_owned),
            rows: Arc::new(
                (0..rows)
                    .map(|i| vec![format!("user{i}"), format!("pw{i}")])
                    .collect(),
            ),
        }
    }

    fn name(vars: &Vars) -> String {
        vars.get("name").map(|v| v.to_string()).unwrap_or_default()
    }

    #[test]
    fn sequence_hands_out_each_row_once_across_threads() {
        let source = Arc::new(DataSource::new(
            &[payload(PayloadOrder::Sequence, 400, None)],
            &[],
            Shard::WHOLE,
        ));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let source = Arc::clone(&source);
                std::thread::spawn(move || {
                    let mut rng = vuser_rng(1, t);
                    (0..100)
                        .map(|_| name(&source.vars_for_vuser(&mut rng)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for h in handles {
            for n in h.join().unwrap_or_default() {
                assert!(seen.insert(n.clone()), "{n} handed out twice");
            }
        }
        assert_eq!(seen.len(), 400);
        // Exhausted: wraps around to the first row.
        assert_eq!(name(&source.vars_for_vuser(&mut vuser_rng(1, 9))), "user0");
    }

    #[test]
    fn sequence_rows_interleave_over_shards() {
        let shards: Vec<DataSource> = (0..3)
            .map(|i| {
                DataSource::new(
                    &[payload(PayloadOrder::Sequence, 9, None)],
                    &[],
                    Shard::new(i, 3).unwrap(),
                )
            })
            .collect();
        let mut rng = vuser_rng(1, 0);
        let mut seen: Vec<String> = shards
            .iter()
            .flat_map(|s| {
                (0..3)
                    .map(|_| name(&s.vars_for_vuser(&mut rng)))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(seen[..3], ["user0", "user3", "user6"]);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9, "no row handed out by two shards");
    }

    #[test]
    fn row_fields_and_load_all() {
        let source = DataSource::new(
            &[
                payload(PayloadOrder::Random, 3, None),
                payload(PayloadOrder::Sequence, 2, Some("users")),
            ],
            &[],
            Shard::WHOLE,
        );
        let vars = source.vars_for_vuser(&mut vuser_rng(1, 0));
        let n = name(&vars);
        let pw = vars
            .get("password")
            .map(|v| v.to_string())
            .unwrap_or_default();
        assert_eq!(n.trim_start_matches("user"), pw.trim_start_matches("pw"));
        let users = vars.get("users").cloned().unwrap_or_default();
        assert_eq!(users.len(), Some(2));
    }

    #[test]
    fn variable_arrays_pick_one_value_per_vuser() {
        let rooms = Variable {
            name: "room".into(),
            values: vec!["lobby".into(), "games".into(), "music".into()],
        };
        let fixed = Variable {
            name: "greeting".into(),
            values: vec!["hi".into()],
        };
        let source = DataSource::new(&[], &[rooms, fixed], Shard::WHOLE);
        let mut picked = HashSet::new();
        for id in 0..200 {
            let vars = source.vars_for_vuser(&mut vuser_rng(1, id));
            picked.insert(vars.get("room").map(|v| v.to_string()).unwrap_or_default());
            assert_eq!(
                vars.get("greeting").map(|v| v.to_string()).as_deref(),
                Some("hi")
            );
        }
        let all: HashSet<String> = ["lobby", "games", "music"].map(String::from).into();
        assert_eq!(picked, all);
    }

    #[test]
    fn random_picks_depend_on_the_seed_and_vuser_only() {
        let rooms = Variable {
            name: "room".into(),
            values: (0..50).map(|i| format!("room{i}").into()).collect(),
        };
        let source = DataSource::new(
            &[payload(PayloadOrder::Random, 50, None)],
            &[rooms],
            Shard::WHOLE,
        );
        let pick = |seed, id| {
            let vars = source.vars_for_vuser(&mut vuser_rng(seed, id));
            let room = vars.get("room").map(|v| v.to_string()).unwrap_or_default();
            format!("{room}/{}", name(&vars))
        };
        let forward: Vec<String> = (0..40).map(|id| pick(3, id)).collect();
        // Vusers starting in another order pick the same.
        let mut backward: Vec<String> = (0..40).rev().map(|id| pick(3, id)).collect();
        backward.reverse();
        assert_eq!(forward, backward);
        let other: Vec<String> = (0..40).map(|id| pick(4, id)).collect();
        assert_ne!(forward, other);
    }
}
