//! Breaking point (DESIGN §4, the `stress` preset): every phase is a step, and the plan's
//! `ensure` is judged on each step on its own — a fresh [`ThresholdEvaluator`] per step, fed
//! that step's intervals. A breach inside a step (a failed window, or the step's totals so far
//! breaking a whole-run condition, as with `abortOnFail`) or a failure on the step's totals at
//! its end stops the run; the answer is the last step that held.
//!
//! It only watches the snapshot stream and cancels the run's stop token; the phases are run by
//! the runner as usual.

use std::time::SystemTime;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::engine::thresholds::ThresholdEvaluator;
use crate::metrics::IntervalSnapshot;
use crate::plan::{Ensure, Phase, PhaseShape};

/// Where the steps broke.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakingOutcome {
    /// Level of the last step that held (`None` if the first one already failed).
    pub max_stable_vusers: Option<u64>,
    /// Level of the step that failed (`None` if none did).
    pub failed_at: Option<u64>,
    /// What broke (the condition and its observed values), or why nothing did.
    pub reason: String,
}

/// The step being judged.
struct Step {
    index: usize,
    evaluator: ThresholdEvaluator,
    total: Option<IntervalSnapshot>,
}

/// Watches the run's snapshots until the stream ends or a step breaks (then cancels `stop`).
pub(crate) async fn watch(
    phases: Vec<Phase>,
    ensure: Ensure,
    mut snapshots: UnboundedReceiver<IntervalSnapshot>,
    stop: CancellationToken,
) -> BreakingOutcome {
    // Breaches inside a step are judged on the step's totals so far, like abortOnFail.
    let ensure = Ensure {
        abort_on_fail: true,
        ..ensure
    };
    let level = |index: usize| phases.get(index).and_then(|p| level_of(&p.shape));
    if ThresholdEvaluator::new(&ensure, SystemTime::now()).is_empty() {
        return BreakingOutcome {
            max_stable_vusers: None,
            failed_at: None,
            reason: "the plan has no thresholds (`ensure`), so no step could break; add e.g. \
                     `thresholds: [latency.NAME.p95: 200]`"
                .to_owned(),
        };
    }
    let mut step: Option<Step> = None;
    let mut last_held: Option<usize> = None;
    let broken = loop {
        let snapshot = snapshots.recv().await;
        let index = snapshot
            .as_ref()
            .and_then(|s| s.phase.as_ref())
            .map(|p| p.index);
        // A step ends when the stream moves on to another phase (or ends).
        if let Some(current) = step.take_if(|s| Some(s.index) != index) {
            match judge_end(current) {
                Ok(index) => last_held = Some(index),
                Err(broke) => break Some(broke),
            }
        }
        let Some(snapshot) = snapshot else {
            break None;
        };
        let Some(index) = index else { continue };
        let current = step.get_or_insert_with(|| Step {
            index,
            evaluator: ThresholdEvaluator::new(&ensure, snapshot.start),
            total: None,
        });
        match &mut current.total {
            Some(total) => total.merge(&snapshot),
            None => current.total = Some(snapshot.clone()),
        }
        if let Some(breach) = current.evaluator.push_interval(&snapshot) {
            break Some((index, breach.describe()));
        }
    };
    let max_stable_vusers = last_held.and_then(level);
    match broken {
        Some((index, reason)) => {
            stop.cancel();
            BreakingOutcome {
                max_stable_vusers,
                failed_at: level(index),
                reason,
            }
        }
        None => BreakingOutcome {
            max_stable_vusers,
            failed_at: None,
            reason: match max_stable_vusers {
                Some(n) => format!("no step broke a threshold, up to the last one ({n} vusers)"),
                None => "the run ended before a step was judged".to_owned(),
            },
        },
    }
}

/// Judges a finished step on its totals: `Ok(index)` when every strict condition held.
fn judge_end(step: Step) -> Result<usize, (usize, String)> {
    let Some(total) = step.total else {
        return Ok(step.index);
    };
    let failed: Vec<String> = step
        .evaluator
        .finish(&total.summary())
        .into_iter()
        .filter(|o| o.strict && !o.passed)
        .map(|o| {
            format!(
                "{} (observed {})",
                o.expression,
                crate::engine::thresholds::describe_observed(&o.observed)
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(step.index)
    } else {
        Err((step.index, failed.join("; ")))
    }
}

/// The concurrency a step holds (its end level for a ramp).
fn level_of(shape: &PhaseShape) -> Option<u64> {
    match shape {
        PhaseShape::Concurrency {
            vusers, ramp_to, ..
        } => Some(ramp_to.unwrap_or(*vusers)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::metrics::{PhaseTag, new_histogram};
    use crate::plan::{CompareOp, Condition, Curve, Expr};
    use crate::vocab::Stat;

    fn step(vusers: u64) -> Phase {
        Phase {
            name: format!("stress {vusers}"),
            shape: PhaseShape::Concurrency {
                duration: Duration::from_secs(2),
                vusers,
                ramp_to: None,
                curve: Curve::Linear,
                steps: None,
            },
        }
    }

    fn p95_below(ms: f64) -> Ensure {
        Ensure {
            conditions: vec![Condition {
                source: format!("latency.ping.p95 < {ms}ms"),
                expr: Expr::Compare {
                    metric: "latency.ping".into(),
                    stat: Stat::P95,
                    op: CompareOp::Lt,
                    value: ms,
                },
                strict: true,
                window: None,
            }],
            ..Ensure::default()
        }
    }

    /// One second of phase `index` whose pings all took `latency_ms`.
    fn second(index: usize, at: u64, latency_ms: u64) -> IntervalSnapshot {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + at);
        let mut s = IntervalSnapshot::empty(start, start + Duration::from_secs(1));
        s.phase = Some(PhaseTag {
            index,
            name: format!("phase {index}"),
        });
        let mut h = new_histogram();
        for _ in 0..100 {
            let _ = h.record(latency_ms * 1000);
        }
        s.histograms = BTreeMap::from([("latency.ping".to_owned(), h)]);
        s
    }

    async fn judge(ensure: Ensure, stream: Vec<IntervalSnapshot>) -> (BreakingOutcome, bool) {
        let phases = vec![step(10), step(20), step(30)];
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for s in stream {
            let _ = tx.send(s);
        }
        drop(tx);
        let stop = CancellationToken::new();
        let outcome = watch(phases, ensure, rx, stop.clone()).await;
        (outcome, stop.is_cancelled())
    }

    #[tokio::test]
    async fn the_first_failing_step_stops_the_run_and_the_one_before_is_the_answer() {
        let stream = vec![
            second(0, 0, 50),
            second(0, 1, 50),
            second(1, 2, 80),
            second(1, 3, 90),
            second(2, 4, 400),
            second(2, 5, 400),
        ];
        let (outcome, stopped) = judge(p95_below(200.0), stream).await;
        assert!(stopped);
        assert_eq!(outcome.max_stable_vusers, Some(20));
        assert_eq!(outcome.failed_at, Some(30));
        assert!(
            outcome.reason.contains("latency.ping.p95"),
            "{}",
            outcome.reason
        );
    }

    #[tokio::test]
    async fn when_nothing_breaks_the_last_step_is_the_answer() {
        let stream = vec![second(0, 0, 50), second(1, 1, 60), second(2, 2, 70)];
        let (outcome, stopped) = judge(p95_below(200.0), stream).await;
        assert!(!stopped);
        assert_eq!(outcome.max_stable_vusers, Some(30));
        assert_eq!(outcome.failed_at, None);
    }

    #[tokio::test]
    async fn a_failing_first_step_has_no_stable_level() {
        let (outcome, stopped) = judge(p95_below(200.0), vec![second(0, 0, 900)]).await;
        assert!(stopped);
        assert_eq!(outcome.max_stable_vusers, None);
        assert_eq!(outcome.failed_at, Some(10));
    }

    #[tokio::test]
    async fn without_thresholds_nothing_can_break() {
        let (outcome, stopped) = judge(Ensure::default(), vec![second(0, 0, 900)]).await;
        assert!(!stopped);
        assert_eq!(outcome.failed_at, None);
        assert!(outcome.reason.contains("no thresholds"));
    }
}
