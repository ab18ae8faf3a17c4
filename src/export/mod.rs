//! Live outputs while a run goes: the Prometheus/OpenMetrics endpoint (`/metrics`) and the
//! browser dashboard's page and event stream, over a small hyper server.
//!
//! Everything here is fed from the interval snapshots the engine already publishes
//! (`RunOptions::on_progress`) and renders ahead of time, so a request never reaches the hot
//! path or the engine's locks. `serve --metrics-listen` gets the reference server's own
//! counters the same way (`publish_server`). It does not measure anything (`metrics`), run anything
//! (`engine`) or decide what a report shows (`report`).

mod buckets;
mod dashboard;
pub mod http;
mod metrics;
mod series;
mod text;

#[cfg(test)]
mod tests;

pub use buckets::{Buckets, layout as bucket_layout};
pub use dashboard::{ControlFn, Dashboard, LivePage, RunView};
pub use metrics::{MetricsEndpoint, MetricsExporter, Rendered, publish_server};
pub use series::{Key, RunState, Totals};
pub use text::{Format, render};

use tokio::net::TcpListener;

/// Errors of the live outputs (only binding can fail; a broken client is its own problem).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{flag} {address:?}: {reason}")]
    Address {
        flag: &'static str,
        address: String,
        reason: String,
    },
    #[error("{flag} {address}: cannot listen there: {source}")]
    Bind {
        flag: &'static str,
        address: String,
        source: std::io::Error,
    },
}

/// Binds a live output's listener (see [`listen_address`]).
pub async fn bind(flag: &'static str, text: &str) -> Result<TcpListener, ExportError> {
    let address = crate::plan::listen_address(text).map_err(|reason| ExportError::Address {
        flag,
        address: text.to_owned(),
        reason,
    })?;
    TcpListener::bind(&address)
        .await
        .map_err(|source| ExportError::Bind {
            flag,
            address,
            source,
        })
}
