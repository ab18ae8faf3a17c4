//! chatload: a load-testing tool for TCP chat servers.
//!
//! Dependencies between modules point one way (see `DESIGN.md` §6):
//! `cli → {plan, engine, report, server, monitor}`, `engine → {plan, protocol, metrics}`,
//! `report → metrics`, `server → {protocol, certs}`. `plan`, `protocol`, `metrics` and
//! `certs` import nothing else from the crate.

pub mod certs;
pub mod cli;
pub mod engine;
pub mod metrics;
pub mod monitor;
pub mod plan;
pub mod protocol;
pub mod report;
pub mod server;
