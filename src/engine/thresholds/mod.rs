//! Threshold evaluation: the plan's `ensure` (conditions, Artillery thresholds already
//! rewritten as conditions, `maxErrorRate`) checked against the run's metrics.
//!
//! - A condition without `window` is checked once, on the whole-run totals.
//! - A condition with `window: D` must hold in every **tumbling** window: consecutive
//!   intervals are merged (exact histogram merge, [`metrics::Window`]) until they span at
//!   least `D`, then the window is checked and a new one starts. Windows end on interval
//!   boundaries, so one can be slightly longer than `D`. The last, partial window counts only
//!   when it spans at least half of `D` (a 1 s tail must not decide a 30 s condition).
//! - `maxErrorRate: X` is the condition `errors.rate <= X%` (Artillery fails when the rate
//!   *exceeds* X).
//! - A term whose metric has no data fails over the whole run (what the threshold guards
//!   never happened) but passes inside a window (nothing happened there to break it).
//!
//! For `abortOnFail` the runner feeds every interval to [`ThresholdEvaluator::push_interval`],
//! which returns the first breach: of a completed window, or of a whole-run condition on the
//! totals so far. Before the run ends, a lower bound on a `count` or `rate` (`>`, `>=`, `==`)
//! is taken as still reachable, so a throughput floor does not abort a run while it ramps up.
//!
//! It does not parse expressions (`plan`) nor render results (the CLI maps
//! [`ThresholdOutcome`] onto `report::ThresholdResult`).

use std::time::{Duration, SystemTime};

use crate::metrics::{IntervalSnapshot, PeriodSummary, Window};
use crate::plan::{CompareOp, Condition, Ensure, Expr};
use crate::vocab::Stat;

/// One `METRIC.STAT` term of an expression and the value it had.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// `METRIC.STAT`, e.g. `latency.chat.p95`.
    pub metric: String,
    /// `None` when the metric had no data in the period.
    pub value: Option<f64>,
    /// `ms` (latency stats), `%` (`errors.rate`), `/s` (other rates) or empty (counts, gauges).
    pub unit: &'static str,
}

/// How one `ensure` entry went over the whole run.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdOutcome {
    /// The expression as written (`maxErrorRate` rendered as `errors.rate <= X%`).
    pub expression: String,
    pub window: Option<Duration>,
    /// Whole-run values, or for a windowed condition the values in the first failing window
    /// (the last window when none failed).
    pub observed: Vec<Observed>,
    pub passed: bool,
    pub strict: bool,
    pub windows_evaluated: Option<u64>,
    pub windows_failed: Option<u64>,
    /// From the run start to the start of the first failing window.
    pub first_failure_offset: Option<Duration>,
}

/// The first breach seen while the run goes (for `abortOnFail`).
#[derive(Clone, Debug, PartialEq)]
pub struct Breach {
    /// Index of the failing entry in [`ThresholdEvaluator::finish`]'s output.
    pub index: usize,
    pub expression: String,
    pub observed: Vec<Observed>,
    /// From the run start to the end of the interval that revealed the breach.
    pub offset: Duration,
}

impl Breach {
    /// `latency.chat.p95 < 200ms (observed latency.chat.p95 = 312.5ms)`, for abort messages.
    pub fn describe(&self) -> String {
        format!(
            "{} (observed {})",
            self.expression,
            describe_observed(&self.observed)
        )
    }
}

/// `a = 1ms, b = no data`.
pub fn describe_observed(observed: &[Observed]) -> String {
    observed
        .iter()
        .map(|o| match o.value {
            Some(v) => format!("{} = {}{}", o.metric, trim_number(v), o.unit),
            None => format!("{} = no data", o.metric),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn trim_number(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Result of evaluating one expression on one period.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub passed: bool,
    pub observed: Vec<Observed>,
}

/// When a missing value decides a term, and whether lower bounds on growing totals count yet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Mode {
    /// Whole run, final: no data fails.
    Final,
    /// Whole run so far: no data and lower bounds on `count`/`rate` are not breaches yet.
    Provisional,
    /// One window: no data passes.
    Window,
}

/// Evaluates `expr` on the whole-run totals `period` (no data fails the term).
pub fn evaluate(expr: &Expr, period: &PeriodSummary) -> Evaluation {
    evaluate_in(expr, period, Mode::Final)
}

fn evaluate_in(expr: &Expr, period: &PeriodSummary, mode: Mode) -> Evaluation {
    let mut observed = Vec::new();
    let passed = eval_node(expr, period, mode, &mut observed);
    Evaluation { passed, observed }
}

fn eval_node(expr: &Expr, period: &PeriodSummary, mode: Mode, out: &mut Vec<Observed>) -> bool {
    match expr {
        // Both sides are always evaluated so every term's value is reported.
        Expr::And(a, b) => {
            let left = eval_node(a, period, mode, out);
            let right = eval_node(b, period, mode, out);
            left && right
        }
        Expr::Or(a, b) => {
            let left = eval_node(a, period, mode, out);
            let right = eval_node(b, period, mode, out);
            left || right
        }
        Expr::Compare {
            metric,
            stat,
            op,
            value,
        } => {
            let mstat = *stat;
            let observed = period.stat(metric, mstat);
            let name = format!("{metric}.{}", mstat.as_str());
            if !out.iter().any(|o| o.metric == name) {
                out.push(Observed {
                    metric: name,
                    value: observed,
                    unit: unit_of(period, metric, *stat),
                });
            }
            let lower_bound_on_total = matches!(stat, Stat::Count | Stat::Rate)
                && matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Eq);
            match (observed, mode) {
                (_, Mode::Provisional) if lower_bound_on_total => true,
                (None, Mode::Final) => false,
                (None, Mode::Provisional | Mode::Window) => true,
                (Some(v), _) => compare(v, *op, *value),
            }
        }
    }
}

fn compare(observed: f64, op: CompareOp, limit: f64) -> bool {
    // Values are rounded to the µs / 0.001 the summaries carry; equality allows that much.
    const EPSILON: f64 = 1e-9;
    match op {
        CompareOp::Lt => observed < limit,
        CompareOp::Le => observed <= limit + EPSILON,
        CompareOp::Gt => observed > limit,
        CompareOp::Ge => observed >= limit - EPSILON,
        CompareOp::Eq => (observed - limit).abs() <= EPSILON,
        CompareOp::Ne => (observed - limit).abs() > EPSILON,
    }
}

fn unit_of(period: &PeriodSummary, metric: &str, stat: Stat) -> &'static str {
    match stat {
        Stat::Rate if metric == crate::vocab::names::ERRORS => "%",
        Stat::Rate => "/s",
        Stat::Count => "",
        _ if period.gauges.contains_key(metric) => "",
        _ => "ms",
    }
}

/// One `ensure` entry with its window state.
#[derive(Debug)]
struct Check {
    expression: String,
    expr: Expr,
    strict: bool,
    windowed: Option<WindowState>,
}

#[derive(Debug)]
struct WindowState {
    length: Duration,
    window: Window,
    evaluated: u64,
    failed: u64,
    first_failure: Option<(Duration, Vec<Observed>)>,
    last_observed: Vec<Observed>,
}

/// Judges `ensure` after the fact, on stored intervals and totals (a merged result): the same
/// verdicts a run would have reached on these numbers (`abortOnFail` aside: nothing can be
/// stopped any more).
pub fn judge(
    ensure: &Ensure,
    run_start: SystemTime,
    intervals: &[IntervalSnapshot],
    aggregate: &PeriodSummary,
) -> Vec<ThresholdOutcome> {
    let mut evaluator = ThresholdEvaluator::new(ensure, run_start);
    for interval in intervals {
        let _ = evaluator.push_interval(interval);
    }
    evaluator.finish(aggregate)
}

/// Checks a plan's `ensure` as the run goes and at its end.
#[derive(Debug)]
pub struct ThresholdEvaluator {
    checks: Vec<Check>,
    run_start: SystemTime,
    abort_on_fail: bool,
    /// Whole-run totals so far, kept only when abortOnFail needs them.
    total: Option<IntervalSnapshot>,
    breached: bool,
}

impl ThresholdEvaluator {
    /// Prepares the checks of `ensure` for a run that started at `run_start`.
    pub fn new(ensure: &Ensure, run_start: SystemTime) -> Self {
        let mut checks: Vec<Check> = ensure.conditions.iter().map(Check::from).collect();
        if let Some(max) = ensure.max_error_rate_percent {
            checks.push(Check {
                expression: format!("errors.rate <= {}%", trim_number(max)),
                expr: Expr::Compare {
                    metric: crate::vocab::names::ERRORS.to_owned(),
                    stat: Stat::Rate,
                    op: CompareOp::Le,
                    value: max,
                },
                strict: true,
                windowed: None,
            });
        }
        Self {
            checks,
            run_start,
            abort_on_fail: ensure.abort_on_fail,
            total: None,
            breached: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// True when the plan asked to stop the run at the first breach.
    pub fn abort_on_fail(&self) -> bool {
        self.abort_on_fail
    }

    /// Adds one interval: completes windows and, with `abortOnFail`, checks the totals so
    /// far. Returns the first breach of a strict condition, once (later calls return `None`).
    pub fn push_interval(&mut self, interval: &IntervalSnapshot) -> Option<Breach> {
        let offset = interval
            .end
            .duration_since(self.run_start)
            .unwrap_or(Duration::ZERO);
        let mut breach = None;
        for (index, check) in self.checks.iter_mut().enumerate() {
            let Some(state) = &mut check.windowed else {
                continue;
            };
            if let Some(summary) = state.window.push(interval) {
                let failed = state.record(&check.expr, &summary, self.run_start);
                if failed && check.strict && breach.is_none() {
                    breach = Some(Breach {
                        index,
                        expression: check.expression.clone(),
                        observed: state.last_observed.clone(),
                        offset,
                    });
                }
            }
        }
        if self.abort_on_fail && breach.is_none() {
            breach = self.check_totals_so_far(interval, offset);
        }
        if self.breached || !self.abort_on_fail {
            return None;
        }
        if breach.is_some() {
            self.breached = true;
        }
        breach
    }

    fn check_totals_so_far(
        &mut self,
        interval: &IntervalSnapshot,
        offset: Duration,
    ) -> Option<Breach> {
        let whole_run: Vec<usize> = (0..self.checks.len())
            .filter(|&i| {
                self.checks
                    .get(i)
                    .is_some_and(|c| c.windowed.is_none() && c.strict)
            })
            .collect();
        if whole_run.is_empty() {
            return None;
        }
        let total = match &mut self.total {
            Some(t) => {
                t.merge(interval);
                t
            }
            None => self.total.insert(interval.clone()),
        };
        let summary = total.summary();
        whole_run.into_iter().find_map(|index| {
            let check = self.checks.get(index)?;
            let eval = evaluate_in(&check.expr, &summary, Mode::Provisional);
            (!eval.passed).then(|| Breach {
                index,
                expression: check.expression.clone(),
                observed: eval.observed,
                offset,
            })
        })
    }

    /// Final outcomes, in plan order (`maxErrorRate` last), given the whole-run totals.
    pub fn finish(mut self, aggregate: &PeriodSummary) -> Vec<ThresholdOutcome> {
        let run_start = self.run_start;
        self.checks
            .iter_mut()
            .map(|check| match &mut check.windowed {
                None => {
                    let eval = evaluate(&check.expr, aggregate);
                    ThresholdOutcome {
                        expression: check.expression.clone(),
                        window: None,
                        observed: eval.observed,
                        passed: eval.passed,
                        strict: check.strict,
                        windows_evaluated: None,
                        windows_failed: None,
                        first_failure_offset: None,
                    }
                }
                Some(state) => {
                    if let Some(tail) = state.window.finish()
                        && tail.duration_seconds() * 2.0 >= state.length.as_secs_f64()
                    {
                        state.record(&check.expr, &tail, run_start);
                    }
                    if state.evaluated == 0 {
                        // The run was shorter than one window: judge the whole run instead.
                        state.record(&check.expr, aggregate, run_start);
                    }
                    let (first_failure_offset, observed) = match state.first_failure.take() {
                        Some((at, observed)) => (Some(at), observed),
                        None => (None, std::mem::take(&mut state.last_observed)),
                    };
                    ThresholdOutcome {
                        expression: check.expression.clone(),
                        window: Some(state.length),
                        observed,
                        passed: state.failed == 0,
                        strict: check.strict,
                        windows_evaluated: Some(state.evaluated),
                        windows_failed: Some(state.failed),
                        first_failure_offset,
                    }
                }
            })
            .collect()
    }
}

impl WindowState {
    /// Checks one window; returns true when it failed.
    fn record(&mut self, expr: &Expr, window: &PeriodSummary, run_start: SystemTime) -> bool {
        let eval = evaluate_in(expr, window, Mode::Window);
        self.evaluated += 1;
        let failed = !eval.passed;
        if failed {
            self.failed += 1;
            if self.first_failure.is_none() {
                let start_ms = crate::metrics::epoch_ms(run_start);
                let offset = Duration::from_millis(window.start_ms.saturating_sub(start_ms));
                self.first_failure = Some((offset, eval.observed.clone()));
            }
        }
        self.last_observed = eval.observed;
        failed
    }
}

impl From<&Condition> for Check {
    fn from(c: &Condition) -> Self {
        Self {
            expression: c.source.clone(),
            expr: c.expr.clone(),
            strict: c.strict,
            windowed: c.window.map(|length| WindowState {
                length,
                window: Window::new(length),
                evaluated: 0,
                failed: 0,
                first_failure: None,
                last_observed: Vec::new(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
