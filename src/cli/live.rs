//! The live outputs of `run`: `--metrics-listen` (Prometheus/OpenMetrics) and, later in the
//! run's life, what they show once it ends. Binds before the run starts, so a taken port is a
//! usage error (exit 2) and not a run without its metrics.
//!
//! What is served and how is `export`'s business; this file only wires flags to it.

use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::ProgressFn;
use crate::export::{self, MetricsExporter};
use crate::plan::{Load, Plan};

/// How long `/metrics` outlives the run: two scrapes at the shipped 2 s interval, and a
/// margin.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Flags of `run` for watching it live.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LiveArgs {
    /// Serve Prometheus/OpenMetrics metrics on http://ADDR/metrics while the run goes: a port
    /// (binds 127.0.0.1) or HOST:PORT (0.0.0.0:9464 for every interface). Overrides
    /// `config.metrics.listen`.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// The live outputs of one run.
pub(super) struct Live {
    exporter: Option<MetricsExporter>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    shutdown: CancellationToken,
}

impl Live {
    /// Binds what the flags and the plan ask for and starts serving.
    /// `shard`: the `shard` label of a split run (its index).
    pub async fn start(
        args: &LiveArgs,
        plan: &Plan,
        quiet: bool,
        shard: Option<String>,
    ) -> anyhow::Result<Live> {
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
                if !quiet {
                    eprintln!("metrics on http://{local}/metrics");
                }
                let exporter = MetricsExporter::start(shard, phase_names(plan));
                servers.push(tokio::spawn(export::http::serve(
                    listener,
                    Arc::new(exporter.endpoint()),
                    shutdown.clone(),
                )));
                Some(exporter)
            }
            None => None,
        };
        Ok(Live {
            exporter,
            servers,
            shutdown,
        })
    }

    /// The callbacks to run on every interval.
    pub fn progress_fns(&self) -> Vec<ProgressFn> {
        self.exporter
            .iter()
            .map(MetricsExporter::progress_fn)
            .collect()
    }

    /// Stops serving (after the results are written). `/metrics` first keeps serving the
    /// final totals for [`LINGER`], so a scraper polling every few seconds gets the end.
    pub async fn stop(self) {
        if self.exporter.is_some() {
            tokio::time::sleep(LINGER).await;
        }
        self.shutdown.cancel();
        for server in self.servers {
            let _ = server.await;
        }
    }
}

/// The plan's phase names in order (none for adaptive runs, whose steps are found on the way).
fn phase_names(plan: &Plan) -> Vec<String> {
    match &plan.load {
        Load::Phases(phases) => phases.iter().map(|p| p.name.clone()).collect(),
        Load::Adaptive(_) => Vec::new(),
    }
}
