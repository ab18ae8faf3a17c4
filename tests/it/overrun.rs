//! Integration tests: an open-model phase whose generator cannot keep up ends on time. An
//! arrival more than max(1 s, one gap between arrivals) late, within its phase or after its
//! end, is dropped and counted (`vusers.dropped`), never queued behind the phase.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chatload::engine::{RunOptions, RunOutcome};
use chatload::plan::Plan;
use tokio::time::Instant;

use crate::common::counter;

/// The YAML plan `text`, as if read from `overrun.yml`.
fn yaml_plan(text: &str) -> Plan {
    crate::common::yaml_plan(text, Path::new("overrun.yml"))
}

/// 1 000 arrivals a second for 5 s (5 000 in all), each vuser thinking for an hour, ended by
/// a 1 s graceful stop.
fn thousand_a_second() -> Plan {
    yaml_plan(
        "config:\n  target: \"127.0.0.1:9\"\n  phases: [{duration: 5s, arrivalRate: 1000}]\n  \
         defaults: {gracefulStop: 1s}\nscenarios:\n  - flow: [{think: 1h}]\n",
    )
}

/// Runs `plan` while the generator freezes for `stall` one second into the run (the paused
/// clock jumps ahead, as if the process had been starved of CPU); returns the outcome and
/// how long the run took on the run's clock.
async fn run_with_a_stall(plan: Plan, stall: Duration) -> (RunOutcome, Duration) {
    let options = RunOptions {
        max_live_vusers: Some(100_000),
        seed: Some(1),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let run = chatload::engine::run(Arc::new(plan), "127.0.0.1:9", options);
    let stall = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::time::advance(stall).await;
    };
    let (out, ()) = tokio::join!(run, stall);
    (out.expect("the run starts"), started.elapsed())
}

/// The phase's 5 000 arrivals, each either created or dropped (none lost, none twice).
fn every_arrival_created_or_dropped(out: &RunOutcome) -> (u64, u64) {
    let created = counter(out, "vusers.created");
    let dropped = counter(out, "vusers.dropped");
    assert_eq!(
        created + dropped,
        5_000,
        "{created} created, {dropped} dropped"
    );
    (created, dropped)
}

#[tokio::test(start_paused = true)]
async fn arrivals_more_than_a_second_late_are_dropped_the_rest_start_late() {
    // Frozen from 1 s to 4 s: the arrivals due before 3 s are more than 1 s late and are
    // dropped; those due from 3 s to 4 s start late; the phase then goes on as planned.
    let (out, took) = run_with_a_stall(thousand_a_second(), Duration::from_secs(3)).await;
    let (_, dropped) = every_arrival_created_or_dropped(&out);
    assert!(
        (1_995..=2_002).contains(&dropped),
        "{dropped} dropped, about 2 000 expected"
    );
    assert_eq!(counter(&out, "vusers.skipped"), 0);
    // 5 s of phase and 1 s of graceful stop: nothing was queued behind the phase.
    assert!(
        took <= Duration::from_millis(6_100),
        "the run took {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn arrivals_not_started_within_a_second_of_their_phase_end_are_dropped() {
    // Frozen from 1 s to 11 s, more than a second past the phase's end at 5 s: everything
    // still to start is dropped at once and the run ends with its graceful stop, not 4 s of
    // late arrivals later.
    let (out, took) = run_with_a_stall(thousand_a_second(), Duration::from_secs(10)).await;
    let (created, _) = every_arrival_created_or_dropped(&out);
    assert!(
        (1_000..=1_002).contains(&created),
        "{created} created: only the arrivals before the stall"
    );
    assert!(
        took <= Duration::from_millis(12_100),
        "the run took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_arrivals_a_second_end_on_time_and_count_what_was_dropped() {
    // Real clock: every vuser renders templates for about a millisecond without yielding,
    // so the runtime is saturated long before a million a second start. The phase used to go
    // on until every arrival had been started, each yield of the runner waiting behind
    // thousands of busy vusers; now it ends with its phase and graceful stop, and whatever
    // could not start is counted.
    let plan = yaml_plan(
        "config:\n  target: \"127.0.0.1:9\"\n  phases: [{duration: 2s, arrivalRate: 1000000}]\n  \
         defaults: {gracefulStop: 1s}\nscenarios:\n  - flow:\n      - loop:\n          \
         - set: {x: \"{{ range(200) | sum }}\"}\n        count: 20\n",
    );
    let options = RunOptions {
        max_live_vusers: Some(2_000),
        ..RunOptions::default()
    };
    let started = std::time::Instant::now();
    let out = chatload::engine::run(Arc::new(plan), "127.0.0.1:9", options)
        .await
        .expect("the run starts");
    let took = started.elapsed();
    let created = counter(&out, "vusers.created");
    let dropped = counter(&out, "vusers.dropped");
    assert!(dropped > 0, "nothing dropped ({created} created)");
    assert_eq!(
        created + dropped,
        2_000_000,
        "{created} created, {dropped} dropped"
    );
    // 2 s of phase and 1 s of graceful stop; about 4 s here on a loaded 2-core machine,
    // where starting every arrival took about 14 s before.
    assert!(took < Duration::from_secs(10), "the run took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn an_arrival_a_little_late_starts_even_when_its_short_phase_is_over() {
    // One arrival in a 10 ms phase after a 1 s pause, reached 60 ms late (the generator
    // frozen across the phase, as on a loaded machine): it is within the 1 s any arrival may
    // be late, so it starts, where the end of its phase used to drop it (an empty run).
    let plan = yaml_plan(
        "config:\n  target: \"127.0.0.1:9\"\n  phases: [{pause: 1s}, {duration: 10ms, arrivalCount: 1}]\n  \
         defaults: {gracefulStop: 1s}\nscenarios:\n  - flow: [{think: 100ms}]\n",
    );
    let options = RunOptions {
        seed: Some(1),
        ..RunOptions::default()
    };
    let run = chatload::engine::run(Arc::new(plan), "127.0.0.1:9", options);
    let stall = async {
        tokio::time::sleep(Duration::from_millis(999)).await;
        tokio::time::advance(Duration::from_millis(60)).await;
    };
    let (out, ()) = tokio::join!(run, stall);
    let out = out.expect("the run starts");
    assert_eq!(counter(&out, "vusers.dropped"), 0);
    assert_eq!(counter(&out, "vusers.created"), 1);
    assert_eq!(counter(&out, "vusers.completed"), 1);
}
