//! Validation of a scenario's allocation: `count` (a fixed number of vusers, Locust's
//! `fixed_count`) and `startAfter` (a delay before its first vuser).

use super::super::problem::{Seg, idx, key};
use super::super::raw::RawScenario;
use super::super::resolved::{Allocation, Load, Scenario};
use super::Ctx;

pub(super) fn allocation(ctx: &mut Ctx, path: &[Seg], s: &RawScenario) -> Allocation {
    let count = match s.count {
        Some(0) => {
            ctx.out.error(
                &key(path, "count"),
                "`count` must be above 0",
                Some("remove the scenario instead of giving it count 0".to_owned()),
            );
            None
        }
        other => other,
    };
    if count.is_some() && s.weight.is_some() {
        ctx.out.key_error(
            &key(path, "weight"),
            "a scenario with a fixed `count` takes no `weight`",
            Some(
                "`count` vusers run it whatever the weights; `weight` splits the other vusers \
                 among the scenarios without `count`"
                    .to_owned(),
            ),
        );
    }
    let start_after = s
        .start_after
        .as_ref()
        .and_then(|d| ctx.duration(&key(path, "startAfter"), d))
        .unwrap_or_default();
    Allocation { count, start_after }
}

/// A `startAfter` at or past the end of the last phase means the scenario never gets a vuser:
/// almost certainly a unit slip (`30` seconds meant as minutes, or the other way round).
/// Only phase lists have a known end; an adaptive run has none.
pub(super) fn start_after_within_load(ctx: &mut Ctx, scenarios: &[Scenario], load: &Load) {
    let Load::Phases(phases) = load else {
        return;
    };
    let load_end: std::time::Duration = phases.iter().map(|p| p.shape.duration()).sum();
    for (i, s) in scenarios.iter().enumerate() {
        let start_after = s.allocation.start_after;
        if start_after > std::time::Duration::ZERO && start_after >= load_end {
            let at = key(&idx(&[Seg::Key("scenarios".to_owned())], i), "startAfter");
            ctx.out.error(
                &at,
                format!(
                    "`startAfter: {start_after:?}` is not before the end of the last phase \
                     ({load_end:?}): scenario `{}` would never start a vuser",
                    s.name
                ),
                Some("shorten `startAfter` or lengthen the phases".to_owned()),
            );
        }
    }
}
