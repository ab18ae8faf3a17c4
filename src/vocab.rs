//! The shared words of chatload, defined once: metric names, the statistics a threshold can
//! ask for, and the error kinds a vuser can end with.
//!
//! A leaf: it imports nothing from the crate, so `plan` (which validates threshold names),
//! `metrics` (which records and reads them), `transport` and `engine` (which classify errors)
//! and `report` all spell every name alike. It holds no behaviour beyond naming and parsing
//! those words.

use std::fmt;

/// The statistics a threshold can ask for (DESIGN §3).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Stat {
    Min,
    Max,
    Mean,
    P50,
    P75,
    P90,
    P95,
    P99,
    P999,
    Count,
    Rate,
}

impl Stat {
    pub const ALL: [Stat; 11] = [
        Stat::Min,
        Stat::Max,
        Stat::Mean,
        Stat::P50,
        Stat::P75,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::P999,
        Stat::Count,
        Stat::Rate,
    ];

    /// Parses a stat name; `median` is accepted for `p50`.
    pub fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "median" => Stat::P50,
            other => *Stat::ALL.iter().find(|stat| stat.as_str() == other)?,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P75 => "p75",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Count => "count",
            Stat::Rate => "rate",
        }
    }

    /// Splits `latency.chat.p95` into (`latency.chat`, `P95`) at the last dot.
    pub fn split(metric_stat: &str) -> Option<(&str, Stat)> {
        let (metric, stat) = metric_stat.rsplit_once('.')?;
        Some((metric, Stat::parse(stat)?)).filter(|(m, _)| !m.is_empty())
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a vuser error, reported as the counter `errors.<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// The TLS handshake failed: a peer alert, no common protocol version or cipher, or a
    /// server that does not speak TLS on that port.
    TlsHandshake,
    /// The server's certificate was refused: unknown issuer, name mismatch, expired.
    TlsVerify,
    /// The WebSocket upgrade was refused (an HTTP status other than 101) or malformed.
    WsUpgrade,
    /// An HTTP response failed an `expect` (status, content type, header, property, ...).
    HttpStatus,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::Timeout,
        ErrorKind::Closed,
        ErrorKind::Reset,
        ErrorKind::Protocol,
        ErrorKind::Capture,
        ErrorKind::Template,
        ErrorKind::Io,
        ErrorKind::TlsHandshake,
        ErrorKind::TlsVerify,
        ErrorKind::WsUpgrade,
        ErrorKind::HttpStatus,
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
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::TlsVerify => "tls_verify",
            ErrorKind::WsUpgrade => "ws_upgrade",
            ErrorKind::HttpStatus => "http_status",
        }
    }

    /// The kind named `name` (`closed`, `tls_verify`...).
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Position in `ALL`, for per-kind arrays.
    pub fn index(self) -> usize {
        ErrorKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    /// The connection is gone: the reconnect policy may start over.
    pub fn is_connection_lost(self) -> bool {
        matches!(self, ErrorKind::Closed | ErrorKind::Reset)
    }

    /// The connection could not be set up (refused, timed out, TLS failed).
    pub fn is_connect_failure(self) -> bool {
        matches!(
            self,
            ErrorKind::ConnectRefused
                | ErrorKind::ConnectTimeout
                | ErrorKind::TlsHandshake
                | ErrorKind::TlsVerify
        )
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

/// The metric names of DESIGN §3, so the engine, thresholds and reports spell them alike.
pub mod names {
    /// TCP connect time.
    pub const CONNECT: &str = "connect";
    /// TLS handshake time, after the TCP connect.
    pub const TLS: &str = "tls";
    /// WebSocket upgrade time: request sent → `101 Switching Protocols`.
    pub const HANDSHAKE: &str = "handshake";
    pub const DELIVERY: &str = "delivery";
    /// Stamps received that are not a first delivery of this run: another run's, sent after
    /// they arrived, or already counted (a server reflecting or replaying frames).
    pub const DELIVERY_INVALID: &str = "delivery.invalid";
    pub const SCHEDULE_LAG: &str = "schedule.lag";
    /// Prefix of the per-expect latency histograms: `latency.<expect name>`.
    pub const LATENCY_PREFIX: &str = "latency.";
    pub const MESSAGES_SENT: &str = "messages.sent";
    pub const MESSAGES_RECEIVED: &str = "messages.received";
    pub const BYTES_SENT: &str = "bytes.sent";
    pub const BYTES_RECEIVED: &str = "bytes.received";
    pub const VUSERS_CREATED: &str = "vusers.created";
    pub const VUSERS_COMPLETED: &str = "vusers.completed";
    pub const VUSERS_FAILED: &str = "vusers.failed";
    pub const VUSERS_SKIPPED: &str = "vusers.skipped";
    /// Arrivals (or closed-model vusers) that could not start because the generator already
    /// held as many vusers as it can (generator overload): dropped, not queued.
    pub const VUSERS_DROPPED: &str = "vusers.dropped";
    /// Vusers that started and were still running when the graceful stop ran out or a stop
    /// signal cut it short.
    pub const VUSERS_CANCELLED: &str = "vusers.cancelled";
    pub const VUSERS_ACTIVE: &str = "vusers.active";
    pub const CONNECTIONS_OPEN: &str = "connections.open";
    /// WebSocket pings the server sent (each answered with a pong).
    pub const WS_PINGS: &str = "ws.pings";
    /// Prefix of the WebSocket close-code counters: `ws.close.<code>`.
    pub const WS_CLOSE_PREFIX: &str = "ws.close.";
    /// Prefix of the error counters: `errors.<kind>`.
    pub const ERRORS_PREFIX: &str = "errors.";
    /// The derived metric `errors` (sum of every `errors.<kind>`), see `Stat::Rate`.
    pub const ERRORS: &str = "errors";
    /// Prefix of the per-step failure counters: `failures.<step>` (`failures.connect`,
    /// `failures.latency.<name>`, `failures.send`), per scenario and run-wide.
    pub const FAILURES_PREFIX: &str = "failures.";
    /// Frames a handler took: `handled` (unnamed handlers) or `handled.<name>`.
    pub const HANDLED: &str = "handled";
    /// Samples above the histogram ceiling (one hour), recorded as the ceiling.
    pub const CLAMPED: &str = "metrics.clamped";

    /// HTTP (Artillery's names): time to the first byte of the response, from when the
    /// request was scheduled; all requests, and per endpoint with the prefix.
    pub const HTTP_RESPONSE_TIME: &str = "http.response_time";
    /// Prefix of the per-endpoint response times: `http.response_time.<endpoint name>`.
    pub const HTTP_RESPONSE_TIME_PREFIX: &str = "http.response_time.";
    pub const HTTP_REQUESTS: &str = "http.requests";
    pub const HTTP_RESPONSES: &str = "http.responses";
    pub const HTTP_DOWNLOADED_BYTES: &str = "http.downloaded_bytes";
    /// Prefix of the status counters: `http.codes.<status>`.
    pub const HTTP_CODES_PREFIX: &str = "http.codes.";
    /// `extendedMetrics`: name resolution, TCP connect, TLS handshake, and the whole
    /// request (scheduled time to the last byte).
    pub const HTTP_DNS: &str = "http.dns";
    pub const HTTP_TCP: &str = "http.tcp";
    pub const HTTP_TLS: &str = "http.tls";
    pub const HTTP_TOTAL: &str = "http.total";
    /// Histograms of a plan with HTTP steps (the extended ones may stay empty).
    pub const HTTP_HISTOGRAMS: [&str; 5] =
        [HTTP_RESPONSE_TIME, HTTP_DNS, HTTP_TCP, HTTP_TLS, HTTP_TOTAL];
    /// Counters of a plan with HTTP steps.
    pub const HTTP_COUNTERS: [&str; 3] = [HTTP_REQUESTS, HTTP_RESPONSES, HTTP_DOWNLOADED_BYTES];

    /// Counters every run registers, so they appear (as zeros) even when nothing happened.
    pub const STANDARD_COUNTERS: [&str; 10] = [
        MESSAGES_SENT,
        MESSAGES_RECEIVED,
        BYTES_SENT,
        BYTES_RECEIVED,
        VUSERS_CREATED,
        VUSERS_COMPLETED,
        VUSERS_FAILED,
        VUSERS_SKIPPED,
        VUSERS_DROPPED,
        VUSERS_CANCELLED,
    ];
    /// Counters a run may record (thresholds accept them) without registering them up front.
    pub const OPTIONAL_COUNTERS: [&str; 3] = [CLAMPED, WS_PINGS, DELIVERY_INVALID];
    pub const STANDARD_HISTOGRAMS: [&str; 5] = [CONNECT, TLS, HANDSHAKE, DELIVERY, SCHEDULE_LAG];
    pub const STANDARD_GAUGES: [&str; 2] = [VUSERS_ACTIVE, CONNECTIONS_OPEN];

    /// `errors.<kind>`.
    pub fn error(kind: super::ErrorKind) -> String {
        format!("{ERRORS_PREFIX}{kind}")
    }

    /// `failures.<step>`.
    pub fn failures(step: &str) -> String {
        format!("{FAILURES_PREFIX}{step}")
    }

    /// `latency.<name>`.
    pub fn latency(name: &str) -> String {
        format!("{LATENCY_PREFIX}{name}")
    }

    /// `ws.close.<code>`.
    pub fn ws_close(code: u16) -> String {
        format!("{WS_CLOSE_PREFIX}{code}")
    }

    /// `http.response_time.<endpoint>`.
    pub fn http_response_time(endpoint: &str) -> String {
        format!("{HTTP_RESPONSE_TIME_PREFIX}{endpoint}")
    }

    /// `http.codes.<status>`.
    pub fn http_code(status: u16) -> String {
        format!("{HTTP_CODES_PREFIX}{status}")
    }

    /// `handled.<name>`.
    pub fn handled(name: &str) -> String {
        format!("{HANDLED}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_error_kinds_round_trip_through_their_names() {
        for stat in Stat::ALL {
            assert_eq!(Stat::parse(stat.as_str()), Some(stat));
        }
        assert_eq!(Stat::parse("median"), Some(Stat::P50));
        assert_eq!(Stat::parse("p98"), None);
        assert_eq!(
            Stat::split("latency.chat.p95"),
            Some(("latency.chat", Stat::P95))
        );
        assert_eq!(Stat::split(".p95"), None);
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
            assert_eq!(ErrorKind::ALL[kind.index()], kind);
        }
        assert_eq!(names::error(ErrorKind::TlsVerify), "errors.tls_verify");
        assert_eq!(names::ws_close(1000), "ws.close.1000");
    }
}
