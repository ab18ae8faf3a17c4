//! Validation of `config.ensure`: Artillery thresholds, condition expressions, error rate.

use super::super::problem::{Seg, idx, key};
use super::super::raw::RawEnsure;
use super::super::resolved::*;
use super::super::threshold::parse_expression;
use super::Ctx;

pub(super) fn ensure(ctx: &mut Ctx, path: &[Seg], raw: Option<&RawEnsure>) -> Option<Ensure> {
    let Some(raw) = raw else {
        return Some(Ensure::default());
    };
    let p = key(path, "ensure");
    let window = raw
        .window
        .as_ref()
        .and_then(|w| ctx.duration(&key(&p, "window"), w));
    let mut ok = true;
    let mut conditions = Vec::new();
    for (i, t) in raw.thresholds.iter().enumerate() {
        let tp = idx(&key(&p, "thresholds"), i);
        let mut entries = t.iter();
        let (Some((name, value)), None) = (entries.next(), entries.next()) else {
            ok = false;
            ctx.out.error(
                &tp,
                format!(
                    "a threshold is one `metric.stat: value` pair, found {}",
                    t.len()
                ),
                Some("e.g. `- latency.chat.p95: 200`".to_owned()),
            );
            continue;
        };
        let source = format!("{name} < {value}");
        match parse_expression(&source, &ctx.metrics) {
            Ok(expr) => conditions.push(Condition {
                source,
                expr,
                strict: true,
                window,
            }),
            Err(e) => {
                ok = false;
                ctx.out.key_error(
                    &key(&tp, name),
                    format!("threshold `{name}`: {}", e.message),
                    None,
                );
            }
        }
    }
    for (i, c) in raw.conditions.iter().enumerate() {
        let cp = idx(&key(&p, "conditions"), i);
        let ep = key(&cp, "expression");
        match parse_expression(&c.expression, &ctx.metrics) {
            Ok(expr) => {
                let own = c
                    .window
                    .as_ref()
                    .and_then(|w| ctx.duration(&key(&cp, "window"), w));
                conditions.push(Condition {
                    source: c.expression.clone(),
                    expr,
                    strict: c.strict.unwrap_or(true),
                    window: own.or(window),
                });
            }
            Err(e) => {
                ok = false;
                ctx.out.error_inside(
                    &ep,
                    e.column.saturating_sub(1),
                    format!("in the expression: {}", e.message),
                    None,
                );
            }
        }
    }
    if let Some(rate) = raw.max_error_rate
        && !(0.0..=100.0).contains(&rate)
    {
        ok = false;
        ctx.out.error(
            &key(&p, "maxErrorRate"),
            "`maxErrorRate` is a percentage from 0 to 100",
            None,
        );
    }
    ok.then(|| Ensure {
        conditions,
        max_error_rate_percent: raw.max_error_rate,
        abort_on_fail: raw.abort_on_fail.unwrap_or(false),
    })
}
