//! Validation of branches: `if`/`ifTrue` on any step, `pick` (weighted branches) and the
//! `while` bound of `loop`. Conditions are minijinja expressions over the vuser's variables,
//! compiled as templates so unknown names are reported like any template's.

use super::super::problem::{Seg, idx, key};
use super::super::raw::RawStep;
use super::super::resolved::{LoopBound, PickBranch, Step};
use super::Ctx;
use super::flow::{Scope, steps};

/// `steps` (the flow item's own steps) guarded by the item's `if`/`ifTrue`, if it has one.
pub(super) fn guard(
    ctx: &mut Ctx,
    path: &[Seg],
    s: &RawStep,
    scope: &Scope,
    inner: Vec<Step>,
) -> Vec<Step> {
    let (name, expression) = match (&s.if_, &s.if_true) {
        (None, None) => return inner,
        (Some(e), None) => ("if", e),
        (None, Some(e)) => ("ifTrue", e),
        (Some(_), Some(_)) => {
            ctx.out.key_error(
                &key(path, "ifTrue"),
                "a step has one condition, found `if` and `ifTrue`",
                Some("`ifTrue` is Artillery's spelling of `if`: keep one".to_owned()),
            );
            return Vec::new();
        }
    };
    let Some(condition) = condition(ctx, &key(path, name), expression, scope) else {
        return Vec::new();
    };
    vec![Step::If {
        condition,
        steps: inner,
    }]
}

/// A condition at `at`: not empty, and a valid expression over names that can exist.
fn condition(
    ctx: &mut Ctx,
    at: &[Seg],
    expression: &str,
    scope: &Scope,
) -> Option<super::super::resolved::Text> {
    if expression.trim().is_empty() {
        ctx.out.error(
            at,
            "the condition is empty",
            Some("write an expression, e.g. `status == 'held'` or `random() < 0.5`".to_owned()),
        );
        return None;
    }
    ctx.templates
        .condition(ctx.out, at, expression, &scope.locals)
}

/// `pick: [{weight, flow}, ...]`.
pub(super) fn pick(ctx: &mut Ctx, path: &[Seg], s: &RawStep, scope: &mut Scope) -> Option<Step> {
    let at = key(path, "pick");
    let raw = s.pick.as_deref().unwrap_or_default();
    if raw.is_empty() {
        ctx.out.error(
            &at,
            "`pick` has no branches",
            Some("e.g. `pick: [{weight: 5, flow: [...]}, {weight: 2, flow: [...]}]`".to_owned()),
        );
        return None;
    }
    let mut branches = Vec::new();
    let mut ok = true;
    for (i, branch) in raw.iter().enumerate() {
        let bp = idx(&at, i);
        let weight = branch.weight.unwrap_or(1);
        if weight == 0 {
            ctx.out.error(
                &key(&bp, "weight"),
                "`weight` must be a positive whole number, found 0",
                Some("remove the branch instead of giving it weight 0".to_owned()),
            );
            ok = false;
        }
        if branch.flow.is_empty() {
            ctx.out
                .error(&key(&bp, "flow"), "the branch's `flow` is empty", None);
            ok = false;
        }
        let body = steps(ctx, &key(&bp, "flow"), &branch.flow, scope);
        branches.push(PickBranch {
            weight,
            steps: body,
        });
    }
    ok.then_some(Step::Pick(branches))
}

/// `loop` with `while: expression`.
pub(super) fn while_bound(
    ctx: &mut Ctx,
    path: &[Seg],
    s: &RawStep,
    scope: &Scope,
) -> Option<LoopBound> {
    let expression = s.while_.as_deref()?;
    condition(ctx, &key(path, "while"), expression, scope).map(LoopBound::While)
}
