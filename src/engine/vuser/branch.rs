//! Branches of the flat program: the conditions of `if` and `loop … while` (rendered in the
//! vuser's scope), whether a loop goes on (and its template `loop` value), and the weighted
//! draw of `pick`, made per execution from the vuser's seeded generator so `--seed` replays it.
//!
//! The jumps themselves are `program::Op`s, followed by the vuser's interpreter loop.

use minijinja::value::Value;
use rand::RngExt;

use super::template::{LoopVar, Renderer, Scope};
use super::{LoopFrame, data};
use crate::engine::error::{ErrorKind, Failure};
use crate::engine::seed::SeededRng;
use crate::plan::{LoopBound, Text};

/// Whether a condition holds: the plan compiles `if: "x"` to a template that renders `true`
/// exactly when `x` is true in minijinja's sense.
pub(crate) fn holds(renderer: &Renderer, scope: &Scope, condition: &Text) -> Result<bool, Failure> {
    renderer
        .render(condition, scope)
        .map(|out| out == "true")
        .map_err(|e| Failure::new(ErrorKind::Template, e.to_string()))
}

/// The start of the branch a weighted draw lands on; `branches` are (weight, start) pairs with
/// positive weights.
pub(crate) fn pick(rng: &mut SeededRng, branches: &[(u32, usize)]) -> Option<usize> {
    let total: u64 = branches.iter().map(|(w, _)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut ticket = rng.random_range(0..total);
    for (weight, start) in branches {
        let weight = u64::from(*weight);
        if ticket < weight {
            return Some(*start);
        }
        ticket -= weight;
    }
    None
}

/// Whether a loop goes on for the turn `frame` has counted to (from 0).
pub(super) fn loop_continues(
    renderer: &Renderer,
    scope: &Scope,
    bound: &LoopBound,
    frame: &LoopFrame,
) -> Result<bool, Failure> {
    Ok(match bound {
        LoopBound::Count(n) => frame.iteration < *n,
        LoopBound::Over(values) => (frame.iteration as usize) < values.len(),
        LoopBound::Duration(d) => frame.started.elapsed() < *d,
        LoopBound::While(condition) => holds(renderer, scope, condition)?,
        LoopBound::Forever => true,
    })
}

/// The template's `loop` at `iteration`; `value` only for `over` loops.
pub(super) fn loop_var(bound: &LoopBound, iteration: u64) -> LoopVar {
    let value = match bound {
        LoopBound::Over(values) => values
            .get(iteration as usize)
            .map(data::json_value)
            .unwrap_or_default(),
        _ => Value::UNDEFINED,
    };
    LoopVar { iteration, value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::seed::vuser_rng;

    #[test]
    fn picks_follow_the_weights_and_replay_from_the_seed() {
        let branches = [(5, 10), (2, 20), (3, 30)];
        let draws = |seed| {
            let rng = &mut vuser_rng(seed, 1);
            (0..10_000)
                .map(|_| pick(rng, &branches))
                .collect::<Vec<_>>()
        };
        let first = draws(9);
        assert_eq!(first, draws(9));
        let share = |start| first.iter().filter(|s| **s == Some(start)).count();
        // Expected 5000 / 2000 / 3000; six standard deviations (~300) of slack.
        assert!((4700..=5300).contains(&share(10)), "{}", share(10));
        assert!((1700..=2300).contains(&share(20)), "{}", share(20));
        assert!((2700..=3300).contains(&share(30)), "{}", share(30));
        assert_eq!(pick(&mut vuser_rng(1, 1), &[]), None);
    }
}
