//! Setup and teardown as written: the top-level `before`/`after` flows and the local commands
//! of `config.hooks`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::flow::RawFlowItem;
use super::shapes::RawDuration;

/// `before: {flow: [...]}` / `after: {flow: [...]}`: one vuser runs it once, before the first
/// phase or after the last vuser.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSetupFlow {
    pub flow: Vec<RawFlowItem>,
}

/// `config.hooks`: local commands run before the load and after it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    /// Run in order before any load; one that fails stops the run (exit 2).
    #[serde(default)]
    pub before: Vec<RawHook>,
    /// Run in order after the run, however it ended (Ctrl-C, abort, error).
    #[serde(default)]
    pub after: Vec<RawHook>,
}

/// One command: the program and its arguments, run from the plan's directory (no shell).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    pub run: Vec<String>,
    /// Killed after this long (default 60s).
    pub timeout: Option<RawDuration>,
}
