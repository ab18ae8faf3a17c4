//! Test plans: the serde+schemars model as written (`RawPlan`), loading YAML/TOML (the only
//! place that names serde_yaml or toml), and validation into a [`Plan`] that can only hold valid
//! states, reporting every problem with its file, line:column and path inside the plan.
//!
//! It does not execute anything: the engine maps a `Plan` onto codecs, schedules and vusers.

mod resolved;

pub use resolved::*;
