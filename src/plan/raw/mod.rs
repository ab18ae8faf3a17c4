//! `RawPlan`: the plan exactly as written, for serde and schemars.
//!
//! Keys are Artillery's camelCase names where Artillery has the key, every struct denies unknown
//! keys, and values keep the spelling of the file (durations stay text) so that validation can
//! say precisely what is wrong. Nothing here checks meaning: see `validate`.

mod binary;
mod config;
mod flow;
mod http;
mod setup;
mod shapes;

use schemars::JsonSchema;
use serde::Deserialize;

pub use binary::*;
pub use config::*;
pub use flow::*;
pub use http::*;
pub use setup::*;
pub use shapes::{NullOr, OneOrMany, RawDuration, RawPercent, RawScalar, RawThink, present};

/// A chatload test plan (`.yml`, `.yaml` or `.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "chatload plan")]
pub struct RawPlan {
    /// Where to connect, how to frame messages, how much load, and what must hold.
    pub config: RawConfig,
    /// What each virtual user does; one is picked per vuser by weight.
    pub scenarios: Vec<RawScenario>,
    /// Steps one vuser runs once before the first phase; its variables (a login token) are
    /// seen by every vuser.
    pub before: Option<RawSetupFlow>,
    /// Steps one vuser runs once after the last vuser, however the run ended.
    pub after: Option<RawSetupFlow>,
}
