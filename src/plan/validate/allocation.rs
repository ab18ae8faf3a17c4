//! Validation of a scenario's allocation: `count` (a fixed number of vusers, Locust's
//! `fixed_count`) and `startAfter` (a delay before its first vuser).

use super::super::problem::{Seg, key};
use super::super::raw::RawScenario;
use super::super::resolved::Allocation;
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
