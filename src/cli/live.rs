//! The live outputs of `run`: `--metrics-listen` (Prometheus/OpenMetrics) and `--dashboard`
//! (a page in the browser, `--dashboard-control` to steer the run from it). Binds before the
//! run starts, so a taken port is an error before any load and not a run without its outputs.
//!
//! What is served and how is `export`'s business; the page's charts are the HTML report's
//! (`report::render_html` on the results so far). This file wires flags, the run's control and
//! the report to them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::interactive::{self, ExportInfo};
use crate::engine::{Progress, ProgressFn, RunControl, thresholds::ThresholdEvaluator};
use crate::export::{self, Dashboard, LivePage, MetricsExporter, RunView};
use crate::plan::{Load, Plan};
use crate::report::{self, RunInfo, RunResult};

/// How long the live outputs outlive the run: two scrapes at the shipped 2 s interval, and
/// time for the page to receive the final report.
pub const LINGER: Duration = Duration::from_secs(5);

/// Flags of `run` for watching it live.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LiveArgs {
    /// Serve Prometheus/OpenMetrics metrics on http://ADDR/metrics while the run goes: a port
    /// (binds 127.0.0.1) or HOST:PORT (0.0.0.0:9464 for every interface). Overrides
    /// `config.metrics.listen`.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Serve a live page on http://ADDR/ (a port binds 127.0.0.1): the report's charts and
    /// tables updated every interval, the phase, elapsed time and thresholds so far; the final
    /// report at the end. Read-only unless --dashboard-control.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
    /// Let the dashboard page run `scale N`, `stop` and `stats` (anyone who can reach the
    /// page can then steer the run).
    #[arg(long, requires = "dashboard")]
    pub dashboard_control: bool,
}

/// What the live outputs need to know about the run besides the plan.
pub(super) struct RunContext {
    pub quiet: bool,
    /// The `shard` label of a split run (its index).
    pub shard: Option<String>,
    pub control: RunControl,
    pub info: ExportInfo,
}

/// The live outputs of one run.
pub(super) struct Live {
    exporter: Option<MetricsExporter>,
    dashboard: Option<DashboardFeed>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    shutdown: CancellationToken,
}

/// The dashboard's side of the run: intervals in, pages out.
struct DashboardFeed {
    intervals: mpsc::UnboundedSender<Progress>,
    publish: Arc<watch::Sender<Arc<LivePage>>>,
    view: RunView,
}

impl Live {
    /// Binds what the flags and the plan ask for and starts serving.
    pub async fn start(args: &LiveArgs, plan: &Arc<Plan>, run: RunContext) -> anyhow::Result<Live> {
        let shutdown = CancellationToken::new();
        let mut servers = Vec::new();
        let (listen, flag) = match (&args.metrics_listen, &plan.metrics.listen) {
            (Some(flag), _) => (Some(flag.clone()), "--metrics-listen"),
            (None, Some(config)) => (Some(config.clone()), "config.metrics.listen"),
            (None, None) => (None, ""),
        };
        let exporter = match listen {
            Some(address) => {
                let listener = export::bind(flag, &address).await?;
                let local = listener
                    .local_addr()
                    .context("cannot read the metrics address")?;
                if !run.quiet {
                    eprintln!("metrics on http://{local}/metrics");
                }
                let exporter = MetricsExporter::start(run.shard.clone(), phase_names(plan));
                servers.push(tokio::spawn(export::http::serve(
                    listener,
                    Arc::new(exporter.endpoint()),
                    shutdown.clone(),
                )));
                Some(exporter)
            }
            None => None,
        };
        let dashboard = match &args.dashboard {
            Some(address) => {
                let listener = export::bind("--dashboard", address).await?;
                let local = listener
                    .local_addr()
                    .context("cannot read the dashboard address")?;
                if !run.quiet {
                    let mode = if args.dashboard_control {
                        "scale, stop and stats allowed from the page"
                    } else {
                        "read-only"
                    };
                    eprintln!("dashboard on http://{local}/ ({mode})");
                }
                let view = RunView {
                    plan: plan.name.clone(),
                    control: args.dashboard_control,
                    ..RunView::default()
                };
                let (publish, page) = watch::channel(Arc::new(LivePage {
                    state: view.clone(),
                    ..LivePage::default()
                }));
                let publish = Arc::new(publish);
                let control_fn: Option<export::ControlFn> = args.dashboard_control.then(|| {
                    let (control, info) = (run.control.clone(), run.info.clone());
                    Arc::new(move |line: &str| interactive::execute(&control, &info, line))
                        as export::ControlFn
                });
                servers.push(tokio::spawn(export::http::serve(
                    listener,
                    Arc::new(Dashboard::new(page, control_fn, shutdown.clone())),
                    shutdown.clone(),
                )));
                let intervals = spawn_pages(
                    Arc::clone(plan),
                    run.control.clone(),
                    run.info.clone(),
                    view.clone(),
                    Arc::clone(&publish),
                );
                Some(DashboardFeed {
                    intervals,
                    publish,
                    view,
                })
            }
            None => None,
        };
        Ok(Live {
            exporter,
            dashboard,
            servers,
            shutdown,
        })
    }

    /// The callbacks to run on every interval (each only queues it).
    pub fn progress_fns(&self) -> Vec<ProgressFn> {
        let mut fns: Vec<ProgressFn> = self
            .exporter
            .iter()
            .map(MetricsExporter::progress_fn)
            .collect();
        if let Some(feed) = &self.dashboard {
            let intervals = feed.intervals.clone();
            fns.push(Arc::new(move |p: &Progress| {
                let _ = intervals.send(p.clone());
            }));
        }
        fns
    }

    /// Shows the final report on the dashboard.
    pub fn finish(&self, result: &RunResult) {
        let Some(feed) = &self.dashboard else {
            return;
        };
        let state = RunView {
            run_id: result.run.run_id.clone().unwrap_or_default(),
            elapsed_s: result.run.duration_ms as f64 / 1000.0,
            planned_s: result.run.duration_ms as f64 / 1000.0,
            finished: true,
            ..feed.view.clone()
        };
        let page = match report::render_html(result) {
            Ok(html) => LivePage::from_report(state, &html),
            Err(err) => LivePage {
                body: format!("<p>the report could not be rendered: {err}</p>"),
                state,
                ..LivePage::default()
            },
        };
        feed.publish.send_replace(Arc::new(page));
    }

    /// Stops serving (after the results are written), first keeping the final totals and
    /// report up for [`LINGER`] so a scraper and the page get the end of the run.
    pub async fn stop(self) {
        if self.exporter.is_some() || self.dashboard.is_some() {
            tokio::time::sleep(LINGER).await;
        }
        self.shutdown.cancel();
        for server in self.servers {
            let _ = server.await;
        }
    }
}

/// Renders a page per interval, off the engine's timer task (the report takes milliseconds).
fn spawn_pages(
    plan: Arc<Plan>,
    control: RunControl,
    info: ExportInfo,
    view: RunView,
    publish: Arc<watch::Sender<Arc<LivePage>>>,
) -> mpsc::UnboundedSender<Progress> {
    let (intervals, mut receive) = mpsc::unbounded_channel::<Progress>();
    tokio::spawn(async move {
        while let Some(mut progress) = receive.recv().await {
            // Behind by several intervals: render the latest only.
            while let Ok(later) = receive.try_recv() {
                progress = later;
            }
            let (plan, control, info, view) = (
                Arc::clone(&plan),
                control.clone(),
                info.clone(),
                view.clone(),
            );
            let page = tokio::task::spawn_blocking(move || {
                page_so_far(&plan, &control, &info, view, &progress)
            })
            .await;
            if let Ok(Some(page)) = page {
                // A final report published meanwhile stays.
                publish.send_if_modified(|current| {
                    if current.state.finished {
                        return false;
                    }
                    *current = Arc::new(page);
                    true
                });
            }
        }
    });
    intervals
}

/// The report of the results so far, with the thresholds judged on them, and the run state.
fn page_so_far(
    plan: &Plan,
    control: &RunControl,
    info: &ExportInfo,
    view: RunView,
    progress: &Progress,
) -> Option<LivePage> {
    let partial = control.partial().ok()?;
    let mut run = RunInfo::new(
        &info.plan_name,
        &info.target,
        partial.started_at,
        SystemTime::now(),
    );
    run.plan_path = Some(info.plan_path.clone());
    run.seed = Some(info.seed);
    run.run_id = Some(progress.run_id.to_string());
    run.warnings
        .push("live view: the run is still going; these are the results so far".to_owned());
    let evaluator = ThresholdEvaluator::new(&plan.ensure, partial.started_at);
    let thresholds = evaluator.finish(&partial.metrics.aggregate);
    let mut result = RunResult::new(run, partial.metrics, info.plan_json.clone());
    result.thresholds = super::report::threshold_results(thresholds);
    // Thresholds are judged at the end: the badge says how they stand so far, not a verdict.
    let html = report::render_html_so_far(&result).ok()?;
    let state = RunView {
        run_id: progress.run_id.to_string(),
        phase: progress.phase.clone(),
        elapsed_s: progress.elapsed.as_secs_f64(),
        generator_overloaded: progress.generator_overloaded,
        breach: progress.breach.as_ref().map(|b| b.expression.clone()),
        planned_s: progress.total.as_secs_f64(),
        ..view
    };
    Some(LivePage::from_report(state, &html))
}

/// The plan's phase names in order (none for adaptive runs, whose steps are found on the way).
fn phase_names(plan: &Plan) -> Vec<String> {
    match &plan.load {
        Load::Phases(phases) => phases.iter().map(|p| p.name.clone()).collect(),
        Load::Adaptive(_) => Vec::new(),
    }
}
