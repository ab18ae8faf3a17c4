//! The signals that stop `chatload run`: SIGINT (Ctrl-C), SIGTERM (what `timeout`, docker,
//! systemd and Kubernetes send) and SIGHUP (the terminal went away). Each stops the run the
//! same graceful way — vusers stop, the results so far are written — and the process exits
//! with 128 + the signal's number (130, 143, 129). A second signal quits at once, without
//! results.
//!
//! It only cancels the token the engine watches; how the engine stops is the engine's.

use std::sync::{Arc, OnceLock};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::Exit;

/// Which signal stopped the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Interrupt,
    Terminate,
    HangUp,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
            StopSignal::HangUp => "SIGHUP",
        }
    }

    /// 128 + the signal's number, as a shell reports a process the signal killed.
    pub fn exit(self) -> Exit {
        match self {
            StopSignal::Interrupt => Exit::Interrupted,
            StopSignal::Terminate => Exit::Terminated,
            StopSignal::HangUp => Exit::HungUp,
        }
    }
}

/// The first stop signal received, if any.
pub type Received = Arc<OnceLock<StopSignal>>;

/// Installs the handlers now (so a signal that arrives once this returns is never the
/// default, fatal one) and spawns the task that reacts to them. Needs the tokio runtime.
pub fn watch(
    shutdown: CancellationToken,
) -> std::io::Result<(tokio::task::JoinHandle<()>, Received)> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hang_up = signal(SignalKind::hangup())?;
    let received: Received = Arc::default();
    let record = Arc::clone(&received);
    let task = tokio::spawn(async move {
        let first = next(&mut interrupt, &mut terminate, &mut hang_up).await;
        let _ = record.set(first);
        eprintln!(
            "\n{}: stopping vusers and writing the results so far (Ctrl-C or another signal \
             quits at once, without results)",
            first.name()
        );
        shutdown.cancel();
        let second = next(&mut interrupt, &mut terminate, &mut hang_up).await;
        eprintln!("{}: quitting without writing results", second.name());
        std::process::exit(first.exit() as i32);
    });
    Ok((task, received))
}

async fn next(interrupt: &mut Signal, terminate: &mut Signal, hang_up: &mut Signal) -> StopSignal {
    tokio::select! {
        _ = interrupt.recv() => StopSignal::Interrupt,
        _ = terminate.recv() => StopSignal::Terminate,
        _ = hang_up.recv() => StopSignal::HangUp,
    }
}
