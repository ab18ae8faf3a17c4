//! The one integration-test binary: drives `chatload::...` in-process against the reference
//! server on port 0, plus a few runs of the real binary for exit codes and output.

mod adaptive;
mod check;
mod cli;
mod limits;
mod monitor;
mod probe;
mod report;
mod result;
mod run;
mod server;
mod transport;
mod verdicts;
