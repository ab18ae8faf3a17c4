//! How the report reads while the run still goes (the live dashboard): thresholds are judged
//! at the end of a run, so mid-run the badge says the run is going and how the thresholds
//! stand so far ("thresholds so far: 2/2 holding"), never the final Passed/Failed, and the
//! exit code is not shown.
//!
//! The final verdict is `model::Verdict`; the rest of the page is `html`.

use super::model::RunResult;

/// The badge mid-run: its text and its class (`live`, or `warn` when a threshold does not
/// hold at the moment — it may still recover, so it is not `bad`).
pub(super) fn badge(result: &RunResult) -> (String, &'static str) {
    let total = result.thresholds.len();
    if total == 0 {
        let errors = result.errors_counted();
        return match errors {
            0 => ("Running".to_owned(), "live"),
            1 => ("Running · 1 error so far".to_owned(), "warn"),
            n => (format!("Running · {n} errors so far"), "warn"),
        };
    }
    let holding = result.thresholds.iter().filter(|t| t.passed).count();
    let class = if holding == total { "live" } else { "warn" };
    (
        format!("Running · thresholds so far: {holding}/{total} holding"),
        class,
    )
}

/// The thresholds card's line mid-run.
pub(super) fn thresholds_sub(failed: usize) -> String {
    match failed {
        0 => "all holding so far".to_owned(),
        n => format!("{n} not holding so far"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ThresholdResult;
    use crate::report::model::empty_result;

    fn result(passed: &[bool]) -> RunResult {
        let mut result = empty_result();
        result.thresholds = passed
            .iter()
            .map(|&passed| ThresholdResult {
                expression: "latency.chat.p99 < 100".to_owned(),
                window_ms: None,
                observed: Vec::new(),
                passed,
                strict: true,
                windows_evaluated: None,
                windows_failed: None,
                first_failure_offset_ms: None,
            })
            .collect();
        result
    }

    #[test]
    fn the_badge_says_running_and_how_the_thresholds_stand() {
        assert_eq!(
            badge(&result(&[true, true])),
            (
                "Running · thresholds so far: 2/2 holding".to_owned(),
                "live"
            )
        );
        assert_eq!(
            badge(&result(&[true, false])),
            (
                "Running · thresholds so far: 1/2 holding".to_owned(),
                "warn"
            )
        );
        assert_eq!(badge(&result(&[])), ("Running".to_owned(), "live"));
    }
}
