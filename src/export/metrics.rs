//! The `/metrics` endpoint of `run --metrics-listen`: a task folds each interval the engine
//! publishes into the running totals and renders both text formats once; a scrape only
//! copies the last rendering (an `Arc` clone), so scraping never reaches the engine.
//!
//! It does not own the totals' shape (`series.rs`) or the text (`text.rs`).

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, watch};

use super::http::{self, Body, Handler};
use super::series::Totals;
use super::text::{Format, render, render_server};
use crate::engine::{Progress, ProgressFn};
use crate::metrics::IntervalSnapshot;
use crate::server::ServerStats;

/// The last rendering, in both formats.
#[derive(Debug, Default)]
pub struct Rendered {
    pub prometheus: Bytes,
    pub openmetrics: Bytes,
}

impl Rendered {
    pub fn of(totals: &Totals) -> Rendered {
        Rendered {
            prometheus: Bytes::from(render(totals, Format::Prometheus)),
            openmetrics: Bytes::from(render(totals, Format::OpenMetrics)),
        }
    }

    /// The reference server's counters as they are now.
    pub fn of_server(stats: &ServerStats) -> Rendered {
        let counters = stats.read();
        Rendered {
            prometheus: Bytes::from(render_server(&counters, Format::Prometheus)),
            openmetrics: Bytes::from(render_server(&counters, Format::OpenMetrics)),
        }
    }

    fn body(&self, format: Format) -> Bytes {
        match format {
            Format::Prometheus => self.prometheus.clone(),
            Format::OpenMetrics => self.openmetrics.clone(),
        }
    }
}

/// What the engine's progress callback hands to the folding task: one message per interval.
struct Update {
    snapshot: Arc<IntervalSnapshot>,
    run_id: Arc<str>,
    elapsed: std::time::Duration,
    planned: std::time::Duration,
    overloaded: bool,
}

/// Keeps the running totals of one run and publishes their rendering.
pub struct MetricsExporter {
    updates: mpsc::UnboundedSender<Update>,
    published: watch::Receiver<Arc<Rendered>>,
}

impl MetricsExporter {
    /// Starts the folding task (inside a tokio runtime). `phases`: the plan's phase names, so
    /// every phase's counters exist from the first scrape; `shard`: the `shard` label.
    pub fn start(shard: Option<String>, phases: Vec<String>) -> MetricsExporter {
        let mut totals = Totals::new("", shard, phases);
        let (publish, published) = watch::channel(Arc::new(Rendered::of(&totals)));
        let (updates, mut receive) = mpsc::unbounded_channel::<Update>();
        tokio::spawn(async move {
            while let Some(update) = receive.recv().await {
                totals.run.run_id = update.run_id.to_string();
                totals.run.elapsed = update.elapsed;
                totals.run.planned = update.planned;
                totals.run.generator_overloaded = update.overloaded;
                totals.fold(&update.snapshot);
                // Several intervals queued (a slow machine): render once for all of them.
                while let Ok(more) = receive.try_recv() {
                    totals.run.elapsed = more.elapsed;
                    totals.run.generator_overloaded = more.overloaded;
                    totals.fold(&more.snapshot);
                }
                let rendered = Arc::new(Rendered::of(&totals));
                if publish.send(rendered).is_err() {
                    return;
                }
            }
        });
        MetricsExporter { updates, published }
    }

    /// The callback to chain into `RunOptions::on_progress`: it only queues the interval.
    pub fn progress_fn(&self) -> ProgressFn {
        let updates = self.updates.clone();
        Arc::new(move |p: &Progress| {
            let _ = updates.send(Update {
                snapshot: Arc::clone(&p.snapshot),
                run_id: Arc::clone(&p.run_id),
                elapsed: p.elapsed,
                planned: p.total,
                overloaded: p.generator_overloaded,
            });
        })
    }

    /// The endpoint serving the latest rendering.
    pub fn endpoint(&self) -> MetricsEndpoint {
        MetricsEndpoint {
            published: self.published.clone(),
        }
    }

    /// The latest rendering, and a way to wait for the next.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Rendered>> {
        self.published.clone()
    }
}

/// Renders the reference server's counters every `every` until `stop`, for a
/// [`MetricsEndpoint`]: requests read the last rendering, not the counters.
pub fn publish_server(
    stats: std::sync::Arc<ServerStats>,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) -> watch::Receiver<Arc<Rendered>> {
    let (publish, published) = watch::channel(Arc::new(Rendered::of_server(&stats)));
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = timer.tick() => {
                    if publish.send(Arc::new(Rendered::of_server(&stats))).is_err() {
                        return;
                    }
                }
            }
        }
    });
    published
}

/// Serves `GET /metrics` from a published rendering (the run's, or the reference server's).
#[derive(Clone)]
pub struct MetricsEndpoint {
    published: watch::Receiver<Arc<Rendered>>,
}

impl MetricsEndpoint {
    pub fn new(published: watch::Receiver<Arc<Rendered>>) -> MetricsEndpoint {
        MetricsEndpoint { published }
    }

    /// The response for `request`, or `None` when the path is not `/metrics`.
    pub fn answer<B>(&self, request: &Request<B>) -> Option<Response<Body>> {
        if request.uri().path() != "/metrics" {
            return None;
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Some(http::full(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "GET /metrics\n",
            ));
        }
        let accept = request
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let format = Format::from_accept(accept);
        let body = self.published.borrow().body(format);
        Some(http::full(StatusCode::OK, format.content_type(), body))
    }
}

impl Handler for MetricsEndpoint {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        self.answer(&request).unwrap_or_else(http::not_found)
    }
}
