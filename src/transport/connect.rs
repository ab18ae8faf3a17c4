//! Opening the TCP connection under every transport: resolution, the source address
//! round-robin (`sourceAddresses`), the connect timeout, and the hints that tell a generator
//! out of descriptors or ports apart from a target that refused.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

use super::ConnectError;
use crate::vocab::ErrorKind;

/// Resolves `authority` (`host:port`) to its first address.
pub(super) async fn resolve(authority: &str) -> Result<SocketAddr, String> {
    let mut addrs = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| e.to_string())?;
    addrs
        .next()
        .ok_or_else(|| "it resolves to no address".to_owned())
}

/// Opens one TCP connection to `target`, from `source` when given, within `limit`.
pub(super) async fn tcp(
    target: SocketAddr,
    source: Option<IpAddr>,
    limit: Duration,
) -> Result<TcpStream, ConnectError> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| io_failure(format!("cannot create a socket: {e}"), &e, source))?;
    if let Some(ip) = source {
        defer_port_to_connect(&socket);
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| io_failure(format!("cannot bind source address {ip}: {e}"), &e, source))?;
    }
    let stream = match timeout(limit, socket.connect(target)).await {
        Err(_) => {
            return Err(ConnectError::new(
                ErrorKind::ConnectTimeout,
                format!("connecting to {target} took longer than {limit:?}"),
            ));
        }
        Ok(Err(e)) => {
            let detail = format!("cannot connect to {target}: {e}");
            return Err(match exhaustion_hint(&e, source) {
                Some(hint) => ConnectError::new(ErrorKind::Io, format!("{detail}; {hint}")),
                None => ConnectError::new(ErrorKind::of_connect(&e), detail),
            });
        }
        Ok(Ok(stream)) => stream,
    };
    // Chat messages are small and latency is the point: never wait to coalesce them.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A local failure to set up a socket, with the fix when the generator ran out of something.
fn io_failure(detail: String, err: &std::io::Error, source: Option<IpAddr>) -> ConnectError {
    match exhaustion_hint(err, source) {
        Some(hint) => ConnectError::new(ErrorKind::Io, format!("{detail}; {hint}")),
        None => ConnectError::new(ErrorKind::Io, detail),
    }
}

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

/// Leaves the choice of the source port to `connect` (Linux's `IP_BIND_ADDRESS_NO_PORT`)
/// rather than to the `bind` to a source address. `bind` must pick a port no other socket
/// on that address holds, TIME_WAIT ones included, and searches the port range for one:
/// with ~20 000 connections from a few addresses (and the previous run's in TIME_WAIT)
/// each search walked thousands of busy ports, the generator spent whole cores in the
/// kernel and the last connects of a ramp took seconds. `connect` picks by the whole
/// address pair, so the same port serves every target, and TIME_WAIT ports are reused on
/// loopback. Best effort: where the option is missing, `bind` picks as before.
fn defer_port_to_connect(socket: &TcpSocket) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor, and a pointer to an int that outlives the call
        // with its size, as setsockopt expects for this option.
        let _ = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// The soft `RLIMIT_NOFILE` in force, for error messages and the engine's live-vuser limit.
pub(crate) fn nofile_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux but not on every target
    ok.then(|| u64::try_from(limit.rlim_cur).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::ErrorKind;
    use std::io;
    use std::net::IpAddr;

    /// Bound to a source address, the socket has no port until it connects: the port is
    /// chosen by `connect` (by the whole address pair), not searched for by `bind`.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_source_bound_socket_gets_its_port_at_connect() {
        let socket = TcpSocket::new_v4().expect("socket");
        defer_port_to_connect(&socket);
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        assert_eq!(socket.local_addr().expect("address").port(), 0);
        // Without it, `bind` picks the port itself.
        let eager = TcpSocket::new_v4().expect("socket");
        eager
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        assert_ne!(eager.local_addr().expect("address").port(), 0);
    }
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
