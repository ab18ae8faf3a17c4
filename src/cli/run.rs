//! `chatload run`: load the plan (with `-e`, `-v`, `--target`, `--preset`), start the
//! embedded server when the plan says `target: embedded`, drive the engine, show progress on
//! stderr, write `result.json` and print the summary table.
//!
//! How load is generated is `engine`'s business; what the result holds is `report`'s.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use super::run_output::Written;
use super::signals::{self, StopSignal};
use super::{Exit, ReportFormat, RunArgs, display, interactive, live, search, shard_flags};
use crate::engine::{self, Progress, RunOptions, RunOutcome};
use crate::plan::{self, Load, Plan, Target};
use crate::report::{self, RunInfo, RunResult};
use crate::{monitor, server};
pub fn execute(args: RunArgs) -> anyhow::Result<Exit> {
    let plan = match load(&args)? {
        Some(plan) => Arc::new(plan),
        None => return Ok(Exit::Error),
    };
    // Before any output is prepared: a run that cannot be split is a usage error.
    let job_index = std::env::var(shard_flags::JOB_COMPLETION_INDEX).ok();
    let sharding = shard_flags::resolve(
        &args.shards,
        args.seed,
        &plan,
        job_index.as_deref(),
        SystemTime::now(),
    )?;
    let stress = search::is_stress(args.preset.as_deref(), &plan);
    if sharding.shard.is_split() && (stress || matches!(plan.load, Load::Adaptive(_))) {
        let what = if stress {
            "the breaking-point search (the `stress` preset)"
        } else {
            "an adaptive run (`adaptive`)"
        };
        bail!(
            "--shard: {what} needs one controller judging every interval, so it cannot be \
             split; run it as one process, or give the shards fixed phases"
        );
    }
    let formats = formats(&args, &plan);
    let started = SystemTime::now();
    let out_dir =
        super::run_output::prepare(&args, &plan, formats, crate::metrics::epoch_ms(started))?;
    // A shard holds its share of the plan's connections, and is judged on it.
    let limit_warnings = super::limits::share_warnings(
        &plan,
        sharding.shard,
        super::limits::raise_nofile(),
        super::limits::ephemeral_ports(),
    );
    for warning in &limit_warnings {
        eprintln!("warning: {warning}"); // now too: the user may rather stop and fix it
    }
    let runtime = crate::engine::runtime().context("cannot start the async runtime")?;
    let breaking_point = search::is_stress(args.preset.as_deref(), &plan);
    let Driven {
        outcome,
        monitor,
        warnings,
        live,
        stopped_by,
    } = runtime.block_on(drive(Arc::clone(&plan), &args, breaking_point, &sharding))?;

    let mut result = build_result(&plan, &args.plan, &outcome);
    result.run.plan_hash = Some(sharding.plan_hash.clone());
    if let Some(wanted) = sharding.start_at {
        result.run.start_at = Some(report::format_rfc3339_ms(crate::metrics::epoch_ms(wanted)));
        result.run.start_skew_ms = Some(shard_flags::skew_ms(wanted, outcome.phases_started_at));
    }
    result.monitor = monitor;
    result.run.warnings.extend(limit_warnings);
    result.run.warnings.extend(warnings);
    search::apply(&outcome, &mut result);
    // Without `ensure`, any error fails the run (report::Verdict).
    let mut exit = match result.verdict().exit_code() {
        0 => Exit::Success,
        130 => stopped_by.map_or(Exit::Interrupted, StopSignal::exit),
        _ => Exit::ThresholdFailed,
    };
    if let Some(signal) = stopped_by {
        result.run.warnings.push(format!(
            "stopped by {}: the results cover the run up to the signal",
            signal.name()
        ));
    }
    result.run.exit_code = exit as i32;
    // Written before the summary is printed, so the summary's exit code is the real one.
    let written = out_dir.map(|dir| {
        let fallback = std::env::temp_dir();
        super::run_output::write(&mut result, &dir, formats, &fallback, Exit::Error as i32)
    });
    if let Some(Written::Fallback { .. } | Written::Lost { .. }) = &written {
        exit = Exit::Error;
    }
    for warning in &result.run.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(unreachable) = &outcome.unreachable {
        eprintln!("error: {unreachable}");
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", report::summary_table(&result))?;
    if let Some(adaptive) = &outcome.adaptive {
        writeln!(stdout, "{}", search::adaptive_text(adaptive))?;
    }
    if let Some(breaking) = &outcome.breaking_point {
        writeln!(stdout, "{}", search::breaking_text(breaking))?;
    }
    match written {
        None => {}
        Some(Written::Asked(paths)) => {
            for path in &paths {
                writeln!(stdout, "wrote {}", path.display())?;
            }
        }
        Some(Written::Fallback {
            error,
            fallback,
            paths,
        }) => {
            eprintln!("error: {error}");
            eprintln!(
                "error: the reports were written to {} instead; move them where they belong",
                fallback.display()
            );
            for path in &paths {
                writeln!(stdout, "wrote {}", path.display())?;
            }
        }
        Some(Written::Lost { error, fallback }) => {
            eprintln!("error: {error}");
            eprintln!(
                "error: the fallback failed too ({fallback}): no report file was written; the \
                 summary above is all that is left of this run"
            );
        }
    }
    live.finish(&result);
    runtime.block_on(live.stop());
    Ok(exit)
}

/// Which report files to write: `--format` when given, else `config.report.formats`.
fn formats(args: &RunArgs, plan: &Plan) -> report::Formats {
    if args.no_report {
        return report::Formats {
            json: false,
            csv: false,
            html: false,
        };
    }
    if args.format.is_empty() {
        return report::Formats {
            json: plan.report.json,
            csv: plan.report.csv,
            html: plan.report.html,
        };
    }
    report::Formats {
        json: args.format.contains(&ReportFormat::Json),
        csv: args.format.contains(&ReportFormat::Csv),
        html: args.format.contains(&ReportFormat::Html),
    }
}

/// Loads the plan with the command-line overrides; `None` after printing its problems.
fn load(args: &RunArgs) -> anyhow::Result<Option<Plan>> {
    // Flags first: a usage error is reported before the plan is read.
    let shape = super::run_flags::phases(args)?;
    if let Some(target) = &args.target {
        super::run_flags::check_target(target)?;
    }
    let mut variables = Vec::new();
    for pair in &args.variables {
        match plan::LoadOptions::parse_variable(pair) {
            Ok(variable) => variables.push(variable),
            Err(reason) => bail!("-v: {reason}; write it as -v NAME=VALUE, e.g. -v room=lobby"),
        }
    }
    let options = plan::LoadOptions {
        environment: args.environment.clone(),
        variables,
        target: args.target.clone(),
    };
    let mut plan = match plan::load_with(&args.plan, &options) {
        Ok(plan) => plan,
        Err(problems) => {
            super::check::report_problems(&problems);
            return Ok(None);
        }
    };
    if let Some(phases) = shape {
        plan.load = Load::Phases(phases);
    }
    Ok(Some(plan))
}

/// Said loudly at the start and kept in result.json's warnings.
const INSECURE_TLS: &str = "config.tls.insecureSkipVerify is on: the server's TLS certificate \
     was NOT verified (testing only; set config.tls.caFile to verify against your CA)";

/// What a run produced besides the engine's outcome.
struct Driven {
    outcome: RunOutcome,
    monitor: Vec<monitor::MonitorSample>,
    warnings: Vec<String>,
    live: live::Live,
    /// The signal that stopped the run early, if one did.
    stopped_by: Option<StopSignal>,
}

/// Starts the embedded server and the monitor if the plan asks, wires the stop signals, the progress
/// display and the interactive console, runs.
async fn drive(
    plan: Arc<Plan>,
    args: &RunArgs,
    breaking_point: bool,
    sharding: &shard_flags::Sharding,
) -> anyhow::Result<Driven> {
    let quiet = args.quiet;
    let (embedded, target, plan) = match &plan.target {
        Target::Embedded(options) => {
            let mut config = super::serve::embedded_config(options);
            let mut plan = plan.clone();
            if options.tls {
                // A certificate made for this run only, trusted by this run only.
                let (tls, cert_pem) = server::self_signed_tls()
                    .context("cannot make the embedded server's certificate")?;
                config.tls = Some(tls);
                let mut settings = plan.tls.clone().unwrap_or_default();
                settings.roots = plan::TlsRoots::Pem(cert_pem);
                settings.server_name = None;
                Arc::make_mut(&mut plan).tls = Some(settings);
            }
            let handle = server::spawn(config.clone())
                .await
                .context("cannot start the embedded server")?;
            // With a scheme, so a plan's own `config.tls` never puts TLS under a plain server.
            let url = match config.client_address(handle.addr()) {
                url if url.contains("://") => url,
                plain => format!("tcp://{plain}"),
            };
            if !quiet {
                eprintln!("embedded server listening on {url}");
            }
            (Some(handle), url, plan)
        }
        Target::Address(address) => (None, address.clone(), plan),
    };
    if plan.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
        // Shown even with --quiet: results measured this way may hide a broken certificate.
        eprintln!("WARNING: {INSECURE_TLS}");
    }
    let shutdown = CancellationToken::new();
    let (signals, received) =
        signals::watch(shutdown.clone()).context("cannot install the signal handlers")?;
    // Chosen here rather than in the engine so it can be shown before the run starts.
    let seed = sharding.seed.unwrap_or_else(engine::seed::random_seed);
    let display = Arc::new(Mutex::new(display::Display::new(quiet)));
    let control = engine::RunControl::new();
    let info = interactive::ExportInfo {
        plan_name: plan.name.clone(),
        plan_path: args.plan.display().to_string(),
        target: target.clone(),
        seed,
        plan_json: plan.as_written.clone(),
    };
    let console = args.interactive.then(|| {
        let say = Arc::clone(&display);
        let info = info.clone();
        interactive::start(
            control.clone(),
            info,
            Arc::new(move |line: &str| {
                say.lock().unwrap_or_else(PoisonError::into_inner).say(line);
            }),
        )
    });
    let shard_label = sharding
        .shard
        .is_split()
        .then(|| sharding.shard.index().to_string());
    let live = live::Live::start(
        &args.live,
        &plan,
        live::RunContext {
            quiet,
            shard: shard_label,
            control: control.clone(),
            info,
        },
    )
    .await?;
    let live_progress = live.progress_fns();
    let progress = Arc::clone(&display);
    let logs = Arc::clone(&display);
    let options = RunOptions {
        interval: None,
        shutdown,
        on_log: Some(Arc::new(move |line: &str| {
            logs.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .log(line);
        })),
        on_progress: Some(Arc::new(move |p: &Progress| {
            progress
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .show(p);
            for live in &live_progress {
                live(p);
            }
        })),
        control: Some(control.clone()),
        breaking_point,
        broadcasts: args.interactive,
        seed: Some(seed),
        shard: sharding.shard,
        run_id: sharding.run_id.clone(),
        max_live_vusers: None,
        skip_hooks: args.no_hooks,
        // The engine holds the phases after its setup, so every shard's setup time is
        // absorbed by the wait rather than added after it.
        phases_start_at: sharding.start_at,
    };
    if let (Some(at), false) = (sharding.start_at, quiet) {
        let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
        eprintln!(
            "the phases start at {} (in {:.1} s, after the setup)",
            report::format_rfc3339_ms(crate::metrics::epoch_ms(at)),
            wait.as_secs_f64()
        );
    }
    if !quiet {
        let shard = match (sharding.shard.is_split(), &options.run_id) {
            (true, Some(id)) => format!(", shard {} of run {id}", sharding.shard),
            _ => String::new(),
        };
        eprintln!("running {} against {target}, seed {seed}{shard}", plan.name);
    }
    let monitoring = plan.monitor.as_ref().map(|m| start_monitor(m, &control));
    let outcome = engine::run(Arc::clone(&plan), &target, options).await;
    if let Err(engine::EngineError::HookFailed { outcomes, .. }) = &outcome {
        show_hook_output(outcomes);
    }
    let (monitor, warnings) = match monitoring {
        Some((stop, task)) => finish_monitor(stop, task).await,
        None => (Vec::new(), Vec::new()),
    };
    signals.abort();
    if let Some(console) = console {
        console.abort();
    }
    display
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .finish();
    if let Some(handle) = embedded {
        handle.shutdown().await;
    }
    Ok(Driven {
        outcome: outcome?,
        monitor,
        warnings,
        live,
        stopped_by: received.get().copied(),
    })
}

/// The output of the hooks that ran before a failed one stopped the run (and the after hooks).
fn show_hook_output(outcomes: &[engine::hooks::HookOutcome]) {
    for hook in outcomes {
        let status = match (hook.exit_code, &hook.error) {
            (_, Some(error)) => error.clone(),
            (Some(code), None) => format!("exit code {code}"),
            (None, None) => "killed by a signal".to_owned(),
        };
        eprintln!(
            "hook ({}) `{}`: {status}",
            hook.stage.as_str(),
            hook.command.join(" ")
        );
        for text in [&hook.stdout, &hook.stderr] {
            for line in text.lines() {
                eprintln!("  | {line}");
            }
        }
    }
}

type MonitorTask = tokio::task::JoinHandle<Result<monitor::MonitorRun, monitor::MonitorError>>;

/// Samples `config.monitor`'s process alongside the run, handing each reading to the engine
/// too (adaptive CPU/memory limits).
fn start_monitor(
    config: &plan::Monitor,
    control: &engine::RunControl,
) -> (CancellationToken, MonitorTask) {
    let selector = match &config.process {
        plan::ProcessSelector::Pid(pid) => monitor::ProcessSelector::Pid(*pid),
        plan::ProcessSelector::Name(name) => monitor::ProcessSelector::Name(name.clone()),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(monitor::run_monitor(
        monitor::MonitorConfig {
            selector,
            port: config.port,
            interval: config.interval,
            duration: None,
        },
        stop.clone(),
        {
            let control = control.clone();
            move |sample: &monitor::MonitorSample| {
                control.server_load(engine::ServerLoad {
                    at: std::time::UNIX_EPOCH + Duration::from_millis(sample.unix_time_ms),
                    cpu_percent: sample.process_cpu_percent,
                    memory_percent: sample.process_memory_percent(),
                });
            }
        },
    ));
    (stop, task)
}

/// Stops the monitor; a monitor that could not run is a warning, not a failed run.
async fn finish_monitor(
    stop: CancellationToken,
    task: MonitorTask,
) -> (Vec<monitor::MonitorSample>, Vec<String>) {
    stop.cancel();
    match task.await {
        Ok(Ok(run)) => (run.samples, Vec::new()),
        Ok(Err(err)) => (Vec::new(), vec![format!("monitor: {err}")]),
        Err(err) => (
            Vec::new(),
            vec![format!("monitor stopped unexpectedly: {err}")],
        ),
    }
}

fn build_result(plan: &Plan, path: &Path, outcome: &RunOutcome) -> RunResult {
    let ended = outcome.started_at + outcome.duration;
    let mut info = RunInfo::new(
        &plan.name,
        &outcome.target.to_string(),
        outcome.started_at,
        ended,
    );
    info.plan_path = Some(path.display().to_string());
    info.seed = Some(outcome.seed);
    info.run_id = Some(outcome.run_id.clone());
    info.interval_ms = u64::try_from(outcome.interval.as_millis()).ok();
    info.shard = Some(report::ShardInfo {
        index: outcome.shard.index(),
        count: outcome.shard.count(),
    });
    info.interrupted = outcome.interrupted;
    if let Some(breach) = &outcome.aborted {
        info.aborted = true;
        info.abort_reason = Some(format!(
            "abortOnFail: {} broke {:.1} s into the run",
            breach.describe(),
            breach.offset.as_secs_f64()
        ));
    }
    if outcome.overloaded_intervals > 0 {
        info.warnings.push(format!(
            "the load generator could not keep up in {} interval(s): schedule.lag p99 exceeded \
             {} ms, so the load was lighter than planned and latencies may be understated; \
             lower the load or spread it over more machines",
            outcome.overloaded_intervals,
            engine::LAG_WARNING.as_millis()
        ));
    }
    let dropped = outcome
        .metrics
        .aggregate
        .counters
        .get(crate::vocab::names::VUSERS_DROPPED)
        .copied()
        .unwrap_or(0);
    if dropped > 0 {
        info.warnings.push(format!(
            "generator overload: {dropped} vuser(s) could not start (this process held all it \
             can at once, its open-descriptor limit, or was too busy to start them within 1 s of \
             their time) and were dropped (vusers.dropped): the load was lighter than planned; \
             raise `ulimit -n`, lower the load or split it over processes (`run --shard`)"
        ));
    }
    if outcome.insecure_tls {
        info.warnings.push(INSECURE_TLS.to_owned());
    }
    if outcome.vusers_cancelled > 0 {
        let cut_short = if outcome.interrupted {
            Some("the run was stopped by a signal")
        } else if outcome.aborted.is_some() {
            Some("abortOnFail ended the run")
        } else {
            None
        };
        info.warnings.push(match cut_short {
            // The plan's graceful stop did not run out: the stop cut it short.
            Some(why) => format!(
                "{} vuser(s) were cancelled: {why}, which gives running vusers at most {:?} \
                 (or defaults.gracefulStop, if shorter) to finish",
                outcome.vusers_cancelled,
                engine::INTERRUPT_GRACE
            ),
            None => format!(
                "{} vuser(s) were still running when the graceful stop ({:?}) ran out and were \
                 cancelled (raise defaults.gracefulStop to let them finish)",
                outcome.vusers_cancelled, plan.defaults.graceful_stop
            ),
        });
    }
    if let Some(unreachable) = &outcome.unreachable {
        info.aborted = true;
        info.abort_reason = Some(unreachable.to_string());
    }
    let mut result = RunResult::new(info, outcome.metrics.clone(), plan.as_written.clone());
    result.thresholds = super::report::threshold_results(outcome.thresholds.clone());
    result.hooks = outcome
        .hooks
        .iter()
        .map(|h| report::HookResult {
            stage: h.stage.as_str().to_owned(),
            command: h.command.clone(),
            exit_code: h.exit_code,
            timed_out: h.timed_out,
            error: h.error.clone(),
            stdout: h.stdout.clone(),
            stderr: h.stderr.clone(),
            duration_ms: h.duration.as_secs_f64() * 1000.0,
        })
        .collect();
    result.errors = outcome
        .errors
        .iter()
        .map(|e| report::ErrorEntry {
            step: e.step.clone(),
            method: e.method.clone(),
            scenario: e.scenario.clone(),
            kind: e.kind.to_string(),
            message: e.message.clone(),
            count: e.count,
        })
        .collect();
    result.endpoints = crate::plan::http_endpoints(&plan.scenarios);
    result.plan_source = plan_source(plan);
    result
}

/// The plan file's redacted text, for the result and the HTML report.
fn plan_source(plan: &Plan) -> Option<report::PlanSource> {
    let source = plan.source_text.as_ref()?;
    Some(report::PlanSource {
        format: match source.format {
            plan::Format::Yaml => report::PlanFormat::Yaml,
            plan::Format::Toml => report::PlanFormat::Toml,
        },
        text: source.text.clone(),
    })
}
