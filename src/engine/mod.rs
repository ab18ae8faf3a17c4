//! The load engine: the pure schedule (phases → arrival times and target concurrency), the
//! runner that starts and retires virtual users, one virtual user, one function per step kind.
//!
//! It does not parse plans (`plan`), frame bytes (`protocol`) or aggregate numbers (`metrics`).

pub mod thresholds;
