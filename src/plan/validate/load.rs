//! Validation of the load: `config.phases` (every phase shape, presets expanded) or
//! `config.adaptive`.

use std::time::Duration;

use super::super::presets::{PresetParams, expand};
use super::super::problem::{Seg, idx, key};
use super::super::raw::{RawAdaptive, RawArrivals, RawConfig, RawCurve, RawPhase};
use super::super::resolved::*;
use super::Ctx;

const SHAPES: &[&str] = &["arrivalRate", "arrivalCount", "vusers", "pause", "preset"];

pub(super) fn load(ctx: &mut Ctx, path: &[Seg], config: &RawConfig) -> Option<Load> {
    match (&config.phases, &config.adaptive) {
        (Some(_), Some(_)) => {
            ctx.out.key_error(
                &key(path, "adaptive"),
                "a plan has either `phases` or `adaptive`, not both",
                Some("remove `phases` to let the controller pick the load".to_owned()),
            );
            None
        }
        (None, None) => {
            ctx.out.error(
                path,
                "the plan has no load: add `phases` (or `adaptive`)",
                Some("e.g. `phases: [{duration: 10s, arrivalRate: 2}]`".to_owned()),
            );
            None
        }
        (None, Some(a)) => adaptive(ctx, &key(path, "adaptive"), a).map(Load::Adaptive),
        (Some(phases), None) => {
            let at = key(path, "phases");
            if phases.is_empty() {
                ctx.out.error(&at, "`phases` is empty", None);
                return None;
            }
            let mut out = Vec::new();
            let mut ok = true;
            for (i, raw) in phases.iter().enumerate() {
                match phase(ctx, &idx(&at, i), i, raw) {
                    Some(p) => out.extend(p),
                    None => ok = false,
                }
            }
            ok.then_some(Load::Phases(out))
        }
    }
}

/// The keys of a phase that are present, in the file's spelling.
fn present(p: &RawPhase) -> Vec<&'static str> {
    let keys: [(&'static str, bool); 15] = [
        ("duration", p.duration.is_some()),
        ("arrivalRate", p.arrival_rate.is_some()),
        ("rampTo", p.ramp_to.is_some()),
        ("maxVusers", p.max_vusers.is_some()),
        ("arrivals", p.arrivals.is_some()),
        ("arrivalCount", p.arrival_count.is_some()),
        ("pause", p.pause.is_some()),
        ("vusers", p.vusers.is_some()),
        ("curve", p.curve.is_some()),
        ("steps", p.steps.is_some()),
        ("preset", p.preset.is_some()),
        ("from", p.from.is_some()),
        ("to", p.to.is_some()),
        ("by", p.by.is_some()),
        ("every", p.every.is_some()),
    ];
    keys.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect()
}

/// One entry of `config.phases`: its shape, then what every shape shares (which keys apply,
/// the duration), then the shape's own checks. A preset expands to several phases.
fn phase(ctx: &mut Ctx, path: &[Seg], i: usize, p: &RawPhase) -> Option<Vec<Phase>> {
    let keys = present(p);
    // Parsed first: a bad duration is worth reporting even when the shape is wrong too.
    let parsed_duration = p
        .duration
        .as_ref()
        .map(|d| ctx.duration(&key(path, "duration"), d));
    let shape = shape_of(ctx, path, p, &keys)?;
    let mut ok = keys_apply(ctx, path, shape, &keys);
    let duration = phase_duration(ctx, path, shape, parsed_duration, &mut ok)?;
    let shape = match shape {
        "pause" => pause(ctx, path, p),
        "arrivalCount" => arrival_count(ctx, path, p, duration),
        "arrivalRate" => arrival_rate(ctx, path, p, duration),
        "vusers" => vusers(ctx, path, p, duration),
        _ => return preset(ctx, path, p, duration).filter(|_| ok),
    };
    let name = p.name.clone().unwrap_or_else(|| format!("phase {}", i + 1));
    let shape = shape?;
    ok.then_some(vec![Phase { name, shape }])
}

/// The one key of [`SHAPES`] the phase has. None is reported at the phase, two or more at the
/// second one.
fn shape_of(
    ctx: &mut Ctx,
    path: &[Seg],
    p: &RawPhase,
    keys: &[&'static str],
) -> Option<&'static str> {
    let shapes: Vec<&'static str> = keys
        .iter()
        .copied()
        .filter(|k| SHAPES.contains(k))
        .collect();
    match shapes.as_slice() {
        [one] => Some(*one),
        [] => {
            let message = if p.ramp_to.is_some() {
                "`rampTo` needs a starting point: add `arrivalRate` (open model) or `vusers` (closed model)"
            } else {
                "a phase needs one of `arrivalRate`, `arrivalCount`, `vusers`, `pause`, `preset`"
            };
            ctx.out.error(
                path,
                message,
                Some("e.g. `{duration: 30s, arrivalRate: 2, rampTo: 10}`".to_owned()),
            );
            None
        }
        [first, second, ..] => {
            ctx.out.key_error(
                &key(path, second),
                format!("a phase has one shape, but `{first}` and `{second}` are both set"),
                Some("split it into two phases".to_owned()),
            );
            None
        }
    }
}

/// Reports each present key that the shape does not take; false if there was one.
fn keys_apply(ctx: &mut Ctx, path: &[Seg], shape: &str, keys: &[&str]) -> bool {
    let allowed: &[&str] = match shape {
        "arrivalRate" => &["duration", "arrivalRate", "rampTo", "maxVusers", "arrivals"],
        "arrivalCount" => &["duration", "arrivalCount"],
        "vusers" => &["duration", "vusers", "rampTo", "curve", "steps"],
        "pause" => &["pause"],
        _ => &["preset", "from", "to", "by", "every", "duration"],
    };
    let mut ok = true;
    for k in keys {
        if !allowed.contains(k) {
            ok = false;
            ctx.out.key_error(
                &key(path, k),
                format!("`{k}` does not apply to a phase with `{shape}`"),
                Some(format!(
                    "a phase with `{shape}` takes: {}",
                    allowed.join(", ")
                )),
            );
        }
    }
    ok
}

/// The phase's duration, `parsed` beforehand (a bad one is already reported). The shapes that
/// run for a while need one above 0; a pause or a preset without one gets zero. A zero
/// duration still lets the shape's own checks run, so it only clears `ok`.
fn phase_duration(
    ctx: &mut Ctx,
    path: &[Seg],
    shape: &str,
    parsed: Option<Option<Duration>>,
    ok: &mut bool,
) -> Option<Duration> {
    let needs_duration = matches!(shape, "arrivalRate" | "arrivalCount" | "vusers");
    let duration = match parsed {
        Some(d) => d,
        None if needs_duration => {
            ctx.out.error(
                path,
                format!("a phase with `{shape}` needs `duration`"),
                Some("e.g. `duration: 30s`".to_owned()),
            );
            None
        }
        None => Some(Duration::ZERO),
    };
    if needs_duration && duration.is_some_and(|d| d.is_zero()) {
        ctx.out.error(
            &key(path, "duration"),
            "`duration` must be longer than 0",
            None,
        );
        *ok = false;
    }
    duration
}

/// `{pause: 10s}`: an idle phase.
fn pause(ctx: &mut Ctx, path: &[Seg], p: &RawPhase) -> Option<PhaseShape> {
    let d = ctx.duration(&key(path, "pause"), p.pause.as_ref()?)?;
    Some(PhaseShape::Pause(d))
}

/// `{duration, arrivalCount}`: a fixed number of arrivals spread over the duration.
fn arrival_count(
    ctx: &mut Ctx,
    path: &[Seg],
    p: &RawPhase,
    duration: Duration,
) -> Option<PhaseShape> {
    let count = p.arrival_count?;
    if count == 0 {
        ctx.out.error(
            &key(path, "arrivalCount"),
            "`arrivalCount` must be above 0",
            None,
        );
        return None;
    }
    Some(PhaseShape::ArrivalCount { duration, count })
}

/// The open model, `{duration, arrivalRate, rampTo, maxVusers, arrivals}`: new vusers per
/// second, whatever the ones already running do. Every bad number is reported.
fn arrival_rate(
    ctx: &mut Ctx,
    path: &[Seg],
    p: &RawPhase,
    duration: Duration,
) -> Option<PhaseShape> {
    let rate = p.arrival_rate?;
    let ramp = p.ramp_to;
    let mut ok = true;
    if !(rate >= 0.0 && rate.is_finite()) {
        ctx.out.error(
            &key(path, "arrivalRate"),
            format!("`arrivalRate` must be 0 or more, found {rate}"),
            None,
        );
        ok = false;
    }
    if let Some(r) = ramp
        && !(r >= 0.0 && r.is_finite())
    {
        ctx.out.error(
            &key(path, "rampTo"),
            format!("`rampTo` must be 0 or more, found {r}"),
            None,
        );
        ok = false;
    }
    if rate == 0.0 && ramp.is_none_or(|r| r == 0.0) {
        ctx.out.error(
            &key(path, "arrivalRate"),
            "an arrival rate of 0 starts no vusers",
            Some("use `pause` for an idle phase, or ramp with `rampTo`".to_owned()),
        );
        ok = false;
    }
    if p.max_vusers == Some(0) {
        ctx.out
            .error(&key(path, "maxVusers"), "`maxVusers` must be above 0", None);
        ok = false;
    }
    ok.then_some(PhaseShape::Arrivals {
        duration,
        rate_per_sec: rate,
        ramp_to_per_sec: ramp,
        max_vusers: p.max_vusers,
        distribution: match p.arrivals {
            Some(RawArrivals::Poisson) => Arrivals::Poisson,
            _ => Arrivals::Uniform,
        },
    })
}

/// The closed model, `{duration, vusers, rampTo, curve, steps}`: a number of vusers kept
/// running. Every bad number is reported.
fn vusers(ctx: &mut Ctx, path: &[Seg], p: &RawPhase, duration: Duration) -> Option<PhaseShape> {
    let vusers = p.vusers?;
    let mut ok = true;
    let ramp_to = match p.ramp_to {
        None => None,
        Some(r) if r >= 0.0 && r.fract() == 0.0 && r <= u64::MAX as f64 => Some(r as u64),
        Some(r) => {
            ctx.out.error(
                &key(path, "rampTo"),
                format!("with `vusers`, `rampTo` is a whole number of vusers, found {r}"),
                None,
            );
            ok = false;
            None
        }
    };
    if vusers == 0 && ramp_to.is_none_or(|r| r == 0) {
        ctx.out.error(
            &key(path, "vusers"),
            "0 vusers do nothing",
            Some("use `pause` for an idle phase".to_owned()),
        );
        ok = false;
    }
    if p.steps == Some(0) {
        ctx.out
            .error(&key(path, "steps"), "`steps` must be above 0", None);
        ok = false;
    }
    if p.steps.is_some() && ramp_to.is_none() {
        ctx.out.key_error(
            &key(path, "steps"),
            "`steps` only applies with `rampTo`",
            None,
        );
        ok = false;
    }
    ok.then_some(PhaseShape::Concurrency {
        duration,
        vusers,
        ramp_to,
        curve: match p.curve {
            Some(RawCurve::Exponential) => Curve::Exponential,
            _ => Curve::Linear,
        },
        steps: p.steps,
    })
}

/// `{preset, from, to, by, every, duration}`: expanded here into the phases it stands for.
/// Only the parameters the phase sets are passed on, so the others keep the preset's defaults.
fn preset(ctx: &mut Ctx, path: &[Seg], p: &RawPhase, duration: Duration) -> Option<Vec<Phase>> {
    let preset = p.preset.as_deref().unwrap_or_default();
    let every = p
        .every
        .as_ref()
        .and_then(|e| ctx.duration(&key(path, "every"), e));
    let params = PresetParams {
        from: p.from,
        to: p.to,
        by: p.by,
        every,
        duration: p.duration.as_ref().map(|_| duration),
    };
    match expand(preset, &params) {
        Ok(phases) => Some(phases),
        Err(e) => {
            ctx.out.error(&key(path, "preset"), e.to_string(), None);
            None
        }
    }
}

fn adaptive(ctx: &mut Ctx, path: &[Seg], raw: &RawAdaptive) -> Option<Adaptive> {
    let mut ok = true;
    let start = raw.start_vusers.unwrap_or(10.min(raw.max_vusers));
    if start == 0 {
        ctx.out.error(
            &key(path, "startVusers"),
            "`startVusers` must be above 0",
            None,
        );
        ok = false;
    }
    if raw.max_vusers == 0 || start > raw.max_vusers {
        ctx.out.error(
            &key(path, "maxVusers"),
            format!(
                "`maxVusers` ({}) must be at least `startVusers` ({start}) and above 0",
                raw.max_vusers
            ),
            None,
        );
        ok = false;
    }
    let window = ctx.opt_duration(path, "window", raw.window.as_ref(), Duration::from_secs(10));
    if window.is_zero() {
        ctx.out
            .error(&key(path, "window"), "`window` must be longer than 0", None);
        ok = false;
    }
    let lp = key(path, "limits");
    let l = &raw.limits;
    let mut percent = |name: &str, v: Option<f64>| -> Option<f64> {
        let v = v?;
        if !(0.0..=100.0).contains(&v) {
            ctx.out.error(
                &key(&lp, name),
                format!("`{name}` is a percentage from 0 to 100, found {v}"),
                None,
            );
            ok = false;
        }
        Some(v)
    };
    let limits = AdaptiveLimits {
        cpu_percent: percent("cpu", l.cpu.map(|p| p.0)),
        memory_percent: percent("memory", l.memory.map(|p| p.0)),
        success_rate_percent: percent("successRate", l.success_rate.map(|p| p.0)),
        error_rate_percent: percent("errorRate", l.error_rate.map(|p| p.0)),
        p95: None,
    };
    let p95 = l
        .p95
        .as_ref()
        .and_then(|d| ctx.duration(&key(&lp, "p95"), d));
    let limits = AdaptiveLimits { p95, ..limits };
    if limits == AdaptiveLimits::default() {
        ctx.out.error(
            &lp,
            "`limits` sets no limit",
            Some("set at least one of cpu, memory, p95, successRate, errorRate".to_owned()),
        );
        ok = false;
    }
    ok.then_some(Adaptive {
        start_vusers: start,
        max_vusers: raw.max_vusers,
        window,
        limits,
    })
}
