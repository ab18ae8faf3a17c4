//! Validation of `record: {name, value}`: a custom histogram fed from the flow (a server-reported
//! time captured from a reply). Its name joins the plan's known metrics, so `ensure` can use it.

use super::super::problem::{Seg, key};
use super::super::raw::RawStep;
use super::super::resolved::Step;
use super::Ctx;
use super::flow::Scope;

pub(super) fn record(ctx: &mut Ctx, at: &[Seg], s: &RawStep, scope: &Scope) -> Option<Step> {
    let raw = s.record.as_ref()?;
    let name = raw.name.trim();
    let well_formed = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !name.ends_with('.');
    let taken = !ctx.metrics.recorded_names.iter().any(|n| n == name)
        && ctx.metrics.all().iter().any(|n| n == name);
    if !well_formed || taken {
        let message = if taken {
            format!("`{name}` is a metric chatload records itself")
        } else {
            format!("`{name}` cannot be a metric name")
        };
        ctx.out.error(
            &key(at, "name"),
            message,
            Some("name it with letters, digits, `_`, `-` and `.`, e.g. `server_time`".to_owned()),
        );
    }
    let value = ctx
        .templates
        .text(ctx.out, &key(at, "value"), &raw.value.0, &scope.locals);
    if !well_formed || taken {
        return None;
    }
    if !ctx.metrics.recorded_names.iter().any(|n| n == name) {
        ctx.metrics.recorded_names.push(name.to_owned());
    }
    Some(Step::Record {
        metric: name.to_owned(),
        value: value?,
    })
}
