//! The engine's errors: what stops a run from starting (`EngineError`) and what ends one
//! vuser (`Failure`, counted as `errors.<kind>`, never fatal to the run).

use std::fmt;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the plan has no scenarios with a positive weight; add one under `scenarios`")]
    NoScenarios,
    #[error("cannot resolve target `{target}`: {reason}; give HOST:PORT (e.g. 127.0.0.1:9200)")]
    Target { target: String, reason: String },
    #[error("invalid protocol settings: {0}")]
    Protocol(#[from] crate::protocol::ProtocolError),
    #[error("could not assemble the run's metrics: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("internal error: the interval timer outlived the run; please report this")]
    Internal,
}

/// The kind of a vuser error, reported as the counter `errors.<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    ConnectRefused,
    ConnectTimeout,
    /// An expect waited longer than its timeout.
    Timeout,
    /// The server closed the connection while the flow still needed it.
    Closed,
    Reset,
    /// A frame could not be decoded, or a strict expect saw an unexpected frame.
    Protocol,
    /// An expect matched but a capture found nothing.
    Capture,
    /// A template failed to render or a message failed to encode (a plan bug).
    Template,
    /// Any other I/O error (e.g. out of local ports).
    Io,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::Timeout,
        ErrorKind::Closed,
        ErrorKind::Reset,
        ErrorKind::Protocol,
        ErrorKind::Capture,
        ErrorKind::Template,
        ErrorKind::Io,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::Reset => "reset",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Capture => "capture",
            ErrorKind::Template => "template",
            ErrorKind::Io => "io",
        }
    }

    /// Position in `ALL`, for per-kind arrays.
    pub fn index(self) -> usize {
        ErrorKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// The connection is gone: the reconnect policy may start over.
    pub fn is_connection_lost(self) -> bool {
        matches!(self, ErrorKind::Closed | ErrorKind::Reset)
    }

    /// Classifies an I/O error on an established connection.
    pub fn of_io(err: &std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        match err.kind() {
            Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe => ErrorKind::Reset,
            Io::UnexpectedEof => ErrorKind::Closed,
            Io::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        }
    }

    /// Classifies an I/O error while connecting.
    pub fn of_connect(err: &std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        match err.kind() {
            Io::ConnectionRefused => ErrorKind::ConnectRefused,
            Io::TimedOut => ErrorKind::ConnectTimeout,
            _ => ErrorKind::of_io(err),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What ended a vuser's flow.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ErrorKind,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Failure {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}
