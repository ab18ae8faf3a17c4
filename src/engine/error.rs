//! The engine's errors: what stops a run from starting (`EngineError`) and what ends one
//! vuser (`Failure`, counted as `errors.<kind>`, never fatal to the run).

use std::fmt;
use std::net::IpAddr;

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

pub use crate::vocab::ErrorKind;

/// What to do when connecting failed because the *generator* ran out of something (descriptors,
/// ephemeral ports) rather than because of the target; `None` for any other error. `source`
/// is the local address the socket was bound to, if the plan chose one.
pub fn exhaustion_hint(err: &std::io::Error, source: Option<IpAddr>) -> Option<String> {
    match err.raw_os_error()? {
        libc::EMFILE => Some(format!(
            "the process reached its open-descriptor limit (RLIMIT_NOFILE{}): raise it with \
             `ulimit -n` (chatload already raised the soft limit to the hard one) or lower the \
             concurrency",
            nofile_limit()
                .map(|n| format!(" = {n}"))
                .unwrap_or_default()
        )),
        libc::ENFILE => Some(
            "the system-wide open-file limit is reached: raise it (sysctl fs.file-max) or lower \
             the concurrency"
                .to_owned(),
        ),
        libc::EADDRNOTAVAIL | libc::EADDRINUSE => Some(format!(
            "ephemeral ports exhausted for source address {}: add sourceAddresses (e.g. \
             127.0.0.0/24) to spread connections over more local addresses, or widen \
             net.ipv4.ip_local_port_range",
            source.map_or_else(|| "(chosen by the kernel)".to_owned(), |ip| ip.to_string())
        )),
        _ => None,
    }
}

/// The soft `RLIMIT_NOFILE` in force, for error messages.
fn nofile_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux but not on every target
    ok.then(|| u64::try_from(limit.rlim_cur).ok()).flatten()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn descriptor_exhaustion_names_the_limit_and_the_fix() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let hint = exhaustion_hint(&emfile, None).unwrap_or_default();
        assert!(hint.contains("RLIMIT_NOFILE"), "{hint}");
        assert!(hint.contains("ulimit -n"), "{hint}");
        let enfile = io::Error::from_raw_os_error(libc::ENFILE);
        let hint = exhaustion_hint(&enfile, None).unwrap_or_default();
        assert!(hint.contains("fs.file-max"), "{hint}");
    }

    #[test]
    fn port_exhaustion_names_the_source_address_and_sourceaddresses() {
        let source = Some(IpAddr::from([127, 0, 0, 3]));
        for errno in [libc::EADDRNOTAVAIL, libc::EADDRINUSE] {
            let err = io::Error::from_raw_os_error(errno);
            let hint = exhaustion_hint(&err, source).unwrap_or_default();
            assert!(
                hint.starts_with("ephemeral ports exhausted for source address 127.0.0.3:"),
                "{hint}"
            );
            assert!(
                hint.contains("sourceAddresses (e.g. 127.0.0.0/24)"),
                "{hint}"
            );
        }
        let unbound = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        let hint = exhaustion_hint(&unbound, None).unwrap_or_default();
        assert!(hint.contains("(chosen by the kernel)"), "{hint}");
    }

    #[test]
    fn other_errors_get_no_hint_and_keep_their_kind() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(exhaustion_hint(&refused, None), None);
        assert_eq!(ErrorKind::of_connect(&refused), ErrorKind::ConnectRefused);
        assert_eq!(exhaustion_hint(&io::Error::other("x"), None), None);
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(ErrorKind::of_connect(&emfile), ErrorKind::Io);
    }
}
