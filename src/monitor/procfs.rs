//! Linux `/proc` readers the sysinfo crate does not cover: the TCP socket tables
//! (`/proc/<pid>/net/tcp`, `tcp6`) for counting established connections on a port, and the
//! `Threads:` line of `/proc/<pid>/status`.
//!
//! The parsers are pure functions over text so they are tested on fixed tables; the readers
//! only add file access and error mapping. Nothing here samples CPU or memory.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use super::MonitorError;

/// Socket state code of `TCP_ESTABLISHED` in the `st` column of `/proc/net/tcp`.
const STATE_ESTABLISHED: u8 = 0x01;
/// Socket state code of `TCP_LISTEN`.
const STATE_LISTEN: u8 = 0x0A;

/// One socket row of `/proc/net/tcp` or `/proc/net/tcp6`, reduced to what is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpSocket<'a> {
    /// The local address as the table writes it (hex).
    pub local_address: &'a str,
    pub local_port: u16,
    pub state: u8,
    /// The socket's inode, which `/proc/<pid>/fd` links to (`socket:[inode]`).
    pub inode: u64,
}

/// Parses one row such as
/// `0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 ...`; the header row and anything
/// malformed give `None` (a torn read of a busy table must not stop the monitor).
pub(crate) fn parse_tcp_line(line: &str) -> Option<TcpSocket<'_>> {
    let mut fields = line.split_whitespace();
    let slot = fields.next()?;
    // Data rows start with "N:"; the header starts with "sl".
    slot.strip_suffix(':')?.parse::<u64>().ok()?;
    let local = fields.next()?;
    let _remote = fields.next()?;
    let state = fields.next()?;
    // tx_queue:rx_queue, tr:when, retransmits, uid, timeout, then the inode.
    let inode = fields.nth(5)?.parse::<u64>().ok()?;
    let (local_address, port_hex) = local.rsplit_once(':')?;
    Some(TcpSocket {
        local_address,
        local_port: u16::from_str_radix(port_hex, 16).ok()?,
        state: u8::from_str_radix(state, 16).ok()?,
        inode,
    })
}

/// Counts ESTABLISHED sockets whose *local* port is `port` in one table's text.
///
/// On loopback both ends of a connection are in the table: the server side has the listening
/// port as its local port, the client side has it as its remote port. Matching only the local
/// port counts each connection once, from the server's point of view. A client socket on
/// another local address may happen to get the same port number as its ephemeral port, so when
/// the table shows who listens on `port`, only sockets on a listening address count.
///
/// `owned`: the socket inodes of the watched process, when readable. The table lists every
/// socket of the network namespace, so without them another process's server on the same port
/// of another address (`::1` next to `127.0.0.1`) would be counted too.
#[cfg(test)]
pub(crate) fn count_established(table: &str, port: u16, owned: Option<&HashSet<u64>>) -> u64 {
    count_on_port(table, port, owned, false)
}

/// True when `table` has a socket listening on `port`.
fn listens_on(table: &str, port: u16) -> bool {
    table
        .lines()
        .filter_map(parse_tcp_line)
        .any(|s| s.local_port == port && s.state == STATE_LISTEN)
}

/// [`count_established`]; `listener_elsewhere`: the other table (IPv4 / IPv6) has the
/// listener, so a socket of this table with that port number is some client's ephemeral port
/// (e.g. a `::1` client whose port number a later `127.0.0.1` listener was given).
fn count_on_port(
    table: &str,
    port: u16,
    owned: Option<&HashSet<u64>>,
    listener_elsewhere: bool,
) -> u64 {
    let sockets: Vec<TcpSocket<'_>> = table
        .lines()
        .filter_map(parse_tcp_line)
        .filter(|socket| socket.local_port == port)
        .collect();
    let listening: Vec<&str> = sockets
        .iter()
        .filter(|s| s.state == STATE_LISTEN)
        .map(|s| s.local_address)
        .collect();
    let wildcard = listening
        .iter()
        .any(|address| address.bytes().all(|b| b == b'0'));
    let on_listener = |socket: &TcpSocket<'_>| {
        (listening.is_empty() && !listener_elsewhere)
            || wildcard
            || listening.contains(&socket.local_address)
    };
    let matching = sockets
        .iter()
        .filter(|socket| socket.state == STATE_ESTABLISHED && on_listener(socket))
        .filter(|socket| owned.is_none_or(|inodes| inodes.contains(&socket.inode)))
        .count();
    u64::try_from(matching).unwrap_or(u64::MAX)
}

/// Established connections on local `port`, over IPv4 and IPv6, in the network namespace of
/// process `pid` (so a server in a container is counted in its own namespace).
///
/// A dual-stack listener's IPv4 clients appear only in `tcp6` (as `::ffff:a.b.c.d`), so the two
/// tables never hold the same socket and are simply added.
///
/// Only the sockets of `owners` count (every process `--process` matched), when their
/// descriptors are readable.
pub(crate) fn established_on_port(
    pid: u32,
    owners: &[u32],
    port: u16,
) -> Result<u64, MonitorError> {
    if !cfg!(target_os = "linux") {
        return Err(MonitorError::ProcUnreadable {
            path: PathBuf::from("/proc/net/tcp"),
            source: io::Error::new(io::ErrorKind::Unsupported, "this is not Linux"),
        });
    }
    let v4 = read_table(pid, "tcp")?.unwrap_or_default();
    // A kernel without IPv6 has no tcp6 table: that is zero sockets, not an error.
    let v6 = read_table(pid, "tcp6")?.unwrap_or_default();
    let owned = owners.iter().map(|&owner| socket_inodes(owner)).try_fold(
        HashSet::new(),
        |mut all, inodes| {
            all.extend(inodes?);
            Some(all)
        },
    );
    let owned = owned.as_ref();
    Ok(count_on_port(&v4, port, owned, listens_on(&v6, port))
        + count_on_port(&v6, port, owned, listens_on(&v4, port)))
}

/// The inodes of the sockets process `pid` holds open; `None` when its descriptors are not
/// readable to us (another user's process), and the count falls back to the whole table.
fn socket_inodes(pid: u32) -> Option<HashSet<u64>> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let inodes = entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            let text = target.to_str()?;
            text.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    Some(inodes)
}

/// Reads `/proc/<pid>/net/<name>`, falling back to `/proc/net/<name>` (our own namespace) when
/// the process's view is not readable to us. `Ok(None)` when the table does not exist.
fn read_table(pid: u32, name: &str) -> Result<Option<String>, MonitorError> {
    let own = PathBuf::from(format!("/proc/{pid}/net/{name}"));
    match std::fs::read_to_string(&own) {
        Ok(text) => return Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound && !process_dir_exists(pid) => {
            return Err(MonitorError::ProcessExited { pid });
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MonitorError::ProcUnreadable { path: own, source }),
    }
    let host = PathBuf::from(format!("/proc/net/{name}"));
    match std::fs::read_to_string(&host) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound && name == "tcp6" => Ok(None),
        Err(source) => Err(MonitorError::ProcUnreadable { path: host, source }),
    }
}

fn process_dir_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The `Threads:` count of a `/proc/<pid>/status` text.
pub(crate) fn parse_threads(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Thread count of a process; `Ok(None)` off Linux, where there is no `/proc/<pid>/status`.
pub(crate) fn threads_of(pid: u32) -> Result<Option<u64>, MonitorError> {
    if !cfg!(target_os = "linux") {
        return Ok(None);
    }
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse_threads(&text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Err(MonitorError::ProcessExited { pid })
        }
        Err(source) => Err(MonitorError::ProcUnreadable { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // In the kernel's format: a listener on 8080 (0x1F90) with two loopback clients (both ends
    // listed), one connection in TIME_WAIT (06), one to another port, one torn row.
    const TCP4: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4301 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4302 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 4303 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:D432 01 00000000:00000000 00:00000000 00000000  1000        0 4304 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:D432 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 4305 1 0000000000000000 20 4 30 10 -1
   5: 0100007F:1F90 0100007F:D433 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   6: 0A00020F:C001 5DB8D822:01BB 01 00000000:00000000 02:0000A2E4 00000000  1000        0 4306 2 0000000000000000 20 4 1 10 -1
   7: 0100007F:1F
";

    // IPv6: a dual-stack listener on 8080 with an IPv4-mapped client and a native ::1 client,
    // a CLOSE_WAIT (08) socket and a SYN_RECV (03) one.
    const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5301 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:E000 01 00000000:00000000 00:00000000 00000000  1000        0 5302 1 0000000000000000 20 4 30 10 -1
   2: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:E001 01 00000000:00000000 00:00000000 00000000  1000        0 5303 1 0000000000000000 20 4 30 10 -1
   3: 00000000000000000000000001000000:E001 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 5304 1 0000000000000000 20 4 30 10 -1
   4: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:E002 08 00000000:00000000 00:00000000 00000000  1000        0 5305 1 0000000000000000 20 4 30 10 -1
   5: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:E003 03 00000000:00000000 00:00000000 00000000  1000        0 5306 1 0000000000000000 20 4 30 10 -1
";

    #[test]
    fn parses_ipv4_and_ipv6_rows_and_skips_the_header() {
        let mut v4 = TCP4.lines();
        assert_eq!(v4.next().and_then(parse_tcp_line), None, "header");
        assert_eq!(
            v4.next().and_then(parse_tcp_line),
            Some(TcpSocket {
                local_address: "0100007F",
                local_port: 8080,
                state: 0x0A,
                inode: 4301,
            })
        );
        let v6: Vec<_> = TCP6.lines().filter_map(parse_tcp_line).collect();
        assert_eq!(v6.len(), 6);
        assert_eq!(
            v6.get(1),
            Some(&TcpSocket {
                local_address: "0000000000000000FFFF00000100007F",
                local_port: 8080,
                state: 0x01,
                inode: 5302,
            })
        );
        assert_eq!(
            v6.get(3),
            Some(&TcpSocket {
                local_address: "00000000000000000000000001000000",
                local_port: 0xE001,
                state: 0x01,
                inode: 5304,
            })
        );
    }

    #[test]
    fn malformed_rows_are_skipped() {
        for line in [
            "",
            "   7: 0100007F:1F",
            "x: 0100007F:1F90 0:0 01",
            "0: 0100007F:ZZZZ 0:0 01",
        ] {
            assert_eq!(parse_tcp_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn counts_only_established_server_side_sockets() {
        // Two clients: the two server-side sockets count, their client ends do not, and neither
        // do the listener, TIME_WAIT or the unrelated connection.
        assert_eq!(count_established(TCP4, 8080, None), 2);
        // Mapped IPv4 client and ::1 client; not the listener, CLOSE_WAIT or SYN_RECV.
        assert_eq!(count_established(TCP6, 8080, None), 2);
        // The client ends are counted when asked about their own (ephemeral) port.
        assert_eq!(count_established(TCP4, 0xD431, None), 1);
        assert_eq!(count_established(TCP4, 9999, None), 0);
        assert_eq!(count_established("", 8080, None), 0);
    }

    #[test]
    fn a_client_on_another_address_with_the_same_port_number_is_not_counted() {
        // 127.0.0.2:8080 is an outgoing connection's ephemeral port, not the server's.
        let table = format!(
            "{TCP4}   8: 0200007F:1F90 0100007F:2328 01 00000000:00000000 00:00000000 00000000  1000        0 4307 1 0000000000000000 20 4 30 10 -1\n"
        );
        assert_eq!(count_established(&table, 8080, None), 2);
    }

    #[test]
    fn an_ipv6_client_with_the_port_number_of_an_ipv4_listener_is_not_counted() {
        // A [::1] connection made before the listener on 127.0.0.1 was given the same number.
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:2328 01 00000000:00000000 00:00000000 00000000  1000        0 4401 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(count_established(v6, 8080, None), 1, "alone, it is counted");
        assert!(listens_on(TCP4, 8080) && !listens_on(v6, 8080));
        assert_eq!(count_on_port(v6, 8080, None, true), 0);
        assert_eq!(count_on_port(TCP4, 8080, None, false), 2);
    }

    #[test]
    fn only_the_watched_process_sockets_count_when_its_descriptors_are_known() {
        // Another process's server on the same port (the namespace-wide table lists both).
        let owned: HashSet<u64> = [4302].into_iter().collect();
        assert_eq!(count_established(TCP4, 8080, Some(&owned)), 1);
        assert_eq!(count_established(TCP4, 8080, Some(&HashSet::new())), 0);
    }

    #[test]
    fn reads_thread_count_from_status() {
        let status = "Name:\tchatload\nState:\tS (sleeping)\nThreads:\t7\nVmRSS:\t 1234 kB\n";
        assert_eq!(parse_threads(status), Some(7));
        assert_eq!(parse_threads("Name:\tx\n"), None);
        assert_eq!(parse_threads("Threads:\tlots\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(matches!(threads_of(pid), Ok(Some(n)) if n >= 1));
        assert!(established_on_port(pid, &[pid], 1).is_ok());
    }
}
