//! The hand-built plans behind the `run` tests: the `Builder` of validated plans, its step and
//! phase helpers, and the helpers that run such a plan (on the test's runtime or on one of
//! its own).

use std::time::Duration;

use chatload::engine::{RunOptions, RunOutcome};
use chatload::plan::*;
use chatload::protocol::Matcher;
use chatload::server::{ServerConfig, ServerHandle};
use chatload::vocab::Stat;

use crate::common::{expect_match as expect, hand_plan, run_with, serve};

pub(super) const SECOND: Duration = Duration::from_secs(1);

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Plans built by hand: the validated form the engine consumes.
pub(super) struct Builder {
    env: minijinja::Environment<'static>,
    next: usize,
    handlers: Vec<Handler>,
    pub(super) timeout: Duration,
    pub(super) reconnect_attempts: u32,
}

impl Builder {
    pub(super) fn new() -> Self {
        Builder {
            env: minijinja::Environment::new(),
            next: 0,
            handlers: Vec::new(),
            timeout: Duration::from_secs(5),
            reconnect_attempts: 0,
        }
    }

    /// A template text (compiled into the plan's environment).
    pub(super) fn t(&mut self, source: &str) -> Text {
        self.next += 1;
        let id = format!("t{}", self.next);
        self.env
            .add_template_owned(id.clone(), source.to_owned())
            .expect("template compiles");
        Text::Template(TemplateId(id))
    }

    pub(super) fn send(&mut self, source: &str) -> Step {
        Step::Send {
            message: SendSpec::Text(self.t(source)),
            expect: None,
        }
    }

    pub(super) fn send_expect(&mut self, source: &str, pattern: &str, metric: &str) -> Step {
        Step::Send {
            message: SendSpec::Text(self.t(source)),
            expect: Some(expect(pattern, metric)),
        }
    }

    /// A loop of `message` expecting a PONG (metric `ping`), each turn followed by a think.
    pub(super) fn ping_loop(&mut self, message: &str, pause_ms: u64, bound: LoopBound) -> Step {
        Step::Loop {
            steps: vec![
                self.send_expect(message, "^PONG", "ping"),
                think(pause_ms, pause_ms),
            ],
            bound,
        }
    }

    pub(super) fn handler(&mut self, pattern: &str, reply: &str, name: &str) {
        let reply = SendSpec::Text(self.t(reply));
        self.handlers.push(Handler {
            matcher: Matcher::regex(regex::Regex::new(pattern).expect("regex")),
            template: None,
            types: None,
            decode: Vec::new(),
            captures: Vec::new(),
            reply: Some(reply),
            name: Some(name.to_owned()),
        });
    }

    pub(super) fn plan(self, phases: Vec<PhaseShape>, flow: Vec<Step>) -> Plan {
        let load = Load::Phases(
            phases
                .into_iter()
                .enumerate()
                .map(|(i, shape)| Phase {
                    name: format!("phase {}", i + 1),
                    shape,
                })
                .collect(),
        );
        let plan = hand_plan(load, flow, self.env);
        Plan {
            defaults: Defaults {
                timeout: self.timeout,
                reconnect: Reconnect {
                    attempts: self.reconnect_attempts,
                    ..plan.defaults.reconnect
                },
                ..plan.defaults
            },
            handlers: self.handlers,
            report: ReportConfig {
                json: true,
                ..plan.report
            },
            ..plan
        }
    }
}

pub(super) fn think(min_ms: u64, max_ms: u64) -> Step {
    Step::Think(Think {
        min: ms(min_ms),
        max: ms(max_ms),
    })
}

pub(super) fn connect() -> Step {
    Step::Connect { timeout: None }
}

pub(super) fn rate(duration: Duration, per_sec: f64) -> PhaseShape {
    PhaseShape::Arrivals {
        duration,
        rate_per_sec: per_sec,
        ramp_to_per_sec: None,
        max_vusers: None,
        distribution: Arrivals::Uniform,
    }
}

pub(super) fn arrival_count(duration: Duration, n: u64) -> PhaseShape {
    PhaseShape::ArrivalCount { duration, count: n }
}

/// One vuser, due at the start of a one-second phase. The engine drops an arrival it reaches
/// only after the end of its phase: with a 10 ms phase a loaded machine that started the
/// generator 10 ms late lost the only vuser, and the test saw an empty run.
pub(super) fn one_arrival() -> PhaseShape {
    arrival_count(SECOND, 1)
}

pub(super) fn closed(duration: Duration, vusers: u64, ramp_to: Option<u64>) -> PhaseShape {
    PhaseShape::Concurrency {
        duration,
        vusers,
        ramp_to,
        curve: Curve::Linear,
        steps: None,
    }
}

/// Runs `plan` against `server` with the default options.
pub(super) async fn run(plan: Plan, server: &ServerHandle) -> RunOutcome {
    run_with(plan, server, RunOptions::default()).await
}

pub(super) fn always_failing(metric: &str, abort_on_fail: bool) -> Ensure {
    Ensure {
        conditions: vec![Condition {
            source: format!("{metric}.max < 0ms"),
            expr: Expr::Compare {
                metric: metric.into(),
                stat: Stat::Max,
                op: CompareOp::Lt,
                value: 0.0,
            },
            strict: true,
            window: None,
        }],
        max_error_rate_percent: Some(1.0),
        abort_on_fail,
    }
}

/// Runs `plan` against a reference server on a runtime of its own (two worker threads) and
/// waits for it from this thread: vusers that never give their threads up would starve a
/// timeout inside that runtime too, so the wait must be outside it. A run that does not end
/// fails the test after 60 s instead of hanging it (the stuck thread ends with the process).
pub(super) fn run_on_own_runtime(plan: Plan) -> RunOutcome {
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let outcome = runtime.block_on(async move {
            let server = serve(ServerConfig::default()).await;
            run(plan, &server).await
        });
        let _ = done.send(outcome);
    });
    outcome
        .recv_timeout(Duration::from_secs(60))
        .expect("the run ends: its vusers give their threads up")
}
