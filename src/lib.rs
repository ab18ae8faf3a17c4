//! chatload: a load-testing tool for chat servers (TCP, TLS, WebSocket).
//!
//! Dependencies between modules point one way (see `docs/architecture.md`):
//! `cli → {plan, engine, report, server, monitor}`, `engine → {transport, plan, protocol,
//! metrics}`, `transport → {plan, protocol, certs, vocab}`, `report → {metrics, vocab, monitor}`, `server → {protocol,
//! certs}`, `plan → {protocol, vocab}`, `metrics → vocab`. `vocab`, `protocol`, `certs`
//! and `monitor` are leaves: they import nothing else from the crate.

pub mod certs;
pub mod cli;
pub mod engine;
pub mod export;
pub mod fuzzing;
pub mod metrics;
pub mod monitor;
pub mod plan;
pub mod protocol;
pub mod report;
pub mod server;
pub mod transport;
pub mod vocab;
