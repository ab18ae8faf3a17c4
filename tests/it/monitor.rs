//! Integration tests: `chatload monitor` as the real binary, watching this test process while
//! it holds connections on a loopback listener.

use std::process::Output;
use std::time::Duration;

use chatload::monitor::MonitorSample;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

const CLIENTS: usize = 50;
/// Far above the ~1 s the command samples for; only a hang reaches it.
const TIME_LIMIT: Duration = Duration::from_secs(30);

/// Runs `chatload monitor ARGS`, killed if it outlives the time limit.
async fn chatload_monitor(args: &[&str]) -> anyhow::Result<Output> {
    let child = Command::new(env!("CARGO_BIN_EXE_chatload"))
        .arg("monitor")
        .args(args)
        .kill_on_drop(true)
        .output();
    Ok(tokio::time::timeout(TIME_LIMIT, child).await??)
}

/// A listener on a free port with `CLIENTS` connections accepted from 127.0.0.1. Keep all of it alive: while
/// the listener holds the port, no other test's client can get it as an ephemeral port.
struct Connected {
    port: u16,
    _listener: TcpListener,
    _clients: Vec<TcpStream>,
    _accepted: Vec<TcpStream>,
}

async fn listener_with_clients() -> anyhow::Result<Connected> {
    // Without SO_REUSEADDR (which tokio sets for listeners) the kernel only hands out a port
    // that no socket uses: not one whose old listener, closed by another test in this
    // process, still has accepted connections open (the monitor would rightly count those).
    // The dual-stack wildcard then holds the number on every address, v4 and v6.
    let listener = match exclusive_listener("[::]:0") {
        Ok(listener) => listener,
        Err(_) => exclusive_listener("127.0.0.1:0")?,
    };
    let port = listener.local_addr()?.port();
    let mut clients = Vec::with_capacity(CLIENTS);
    let mut accepted = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(TcpStream::connect(("127.0.0.1", port)).await?);
        accepted.push(listener.accept().await?.0);
    }
    Ok(Connected {
        port,
        _listener: listener,
        _clients: clients,
        _accepted: accepted,
    })
}

fn exclusive_listener(address: &str) -> std::io::Result<TcpListener> {
    let address: std::net::SocketAddr = address
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if address.is_ipv6() {
        tokio::net::TcpSocket::new_v6()?
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(false)?;
    socket.bind(address)?;
    socket.listen(1024)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A server in a process of its own (Python's standard library, no SO_REUSEADDR): it accepts
/// exactly `CLIENTS` connections and makes none, so every socket it owns on its port is one
/// of ours. (This test process also runs every other test, whose sockets come and go.)
const CHILD_SERVER: &str = "import socket,sys\n\
s=socket.socket()\n\
s.bind(('127.0.0.1',0))\n\
s.listen(128)\n\
print(s.getsockname()[1],flush=True)\n\
held=[s.accept()[0] for _ in range(int(sys.argv[1]))]\n\
print('accepted',flush=True)\n\
sys.stdin.read()\n";

#[tokio::test]
async fn reports_the_connections_on_the_port_by_pid() -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = Command::new("python3")
        .args(["-c", CHILD_SERVER, &CLIENTS.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let port: u16 = tokio::time::timeout(TIME_LIMIT, lines.next_line())
        .await??
        .ok_or_else(|| anyhow::anyhow!("the server printed no port"))?
        .trim()
        .parse()?;
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(TcpStream::connect(("127.0.0.1", port)).await?);
    }
    let accepted = tokio::time::timeout(TIME_LIMIT, lines.next_line()).await??;
    assert_eq!(accepted.as_deref(), Some("accepted"));
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("the server exited"))?
        .to_string();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("m.json");
    let port_arg = port.to_string();
    let output = chatload_monitor(&[
        "--pid",
        &pid,
        "--port",
        &port_arg,
        "--interval",
        "200ms",
        "--duration",
        "1s",
        "--output",
        &out.to_string_lossy(),
    ])
    .await?;
    assert!(output.status.success(), "{}", stderr(&output));

    let samples: Vec<MonitorSample> = serde_json::from_slice(&std::fs::read(&out)?)?;
    assert!(!samples.is_empty());
    for sample in &samples {
        // At least our 50 server-side sockets. Exact counting (server ends only, not the
        // client ends, not another address's sockets) is checked on fixed tables in
        // monitor::procfs's unit tests: on a shared machine a stray connection from another
        // process to a port it believes closed can still land on this one.
        let seen = sample.tcp_established.unwrap_or(0);
        assert!(seen >= CLIENTS as u64, "{sample:?}");
        assert!(
            seen < 2 * CLIENTS as u64,
            "client ends counted too? {sample:?}"
        );
        assert_eq!(sample.process_count, 1);
        assert!(sample.process_rss_bytes > 0);
        assert!(sample.process_threads >= Some(1), "{sample:?}");
        assert!(sample.host_memory_total_bytes > 0);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.lines().count(),
        samples.len(),
        "a live line per sample"
    );
    // The live line shows the same count as the sample it prints.
    for (line, sample) in stdout.lines().zip(&samples) {
        let conns = format!("conns {}", sample.tcp_established.unwrap_or(0));
        assert!(line.ends_with(&conns), "{line} / {conns}");
    }
    Ok(())
}

#[tokio::test]
async fn selects_by_process_name_and_writes_csv() -> anyhow::Result<()> {
    let connected = listener_with_clients().await?;
    let port = connected.port;
    let exe = std::env::current_exe()?;
    let name = exe
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| anyhow::anyhow!("test binary has no UTF-8 file name"))?;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("m.csv");
    let port_arg = port.to_string();
    let output = chatload_monitor(&[
        "--process",
        name,
        "--port",
        &port_arg,
        "--interval",
        "200ms",
        "--duration",
        "200ms",
        "--output",
        &out.to_string_lossy(),
    ])
    .await?;
    assert!(output.status.success(), "{}", stderr(&output));

    // Read by the documented column names (docs/monitor.md), not through chatload's types.
    let mut reader = csv::Reader::from_path(&out)?;
    let header = reader.headers()?.clone();
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(count_at), Some(conns_at)) = (column("process_count"), column("tcp_established"))
    else {
        anyhow::bail!("documented columns missing from the header: {header:?}");
    };
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 1);
    for row in &rows {
        // Another copy of this test binary may run at the same time; ours is among them.
        assert!(row[count_at].parse::<u32>()? >= 1, "{row:?}");
        // At least ours (see the by-pid test for why not exactly).
        let seen: u64 = row[conns_at].parse()?;
        assert!(seen >= CLIENTS as u64, "{row:?}");
        assert!(
            seen < 2 * CLIENTS as u64,
            "client ends counted too? {row:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn unknown_pid_exits_2_with_a_hint() -> anyhow::Result<()> {
    // Above Linux's largest possible pid (2^22).
    let output = chatload_monitor(&["--pid", "2000000000", "--duration", "1s"]).await?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("no process with pid 2000000000") && stderr.contains("ps -p"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_output_path_fails_before_sampling() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pid = std::process::id().to_string();
    for (out, expected) in [
        (dir.path().join("missing/m.json"), "cannot create"),
        (dir.path().join("m.txt"), ".json or .csv"),
    ] {
        // An hour-long run would hit the time limit if sampling started.
        let output = chatload_monitor(&[
            "--pid",
            &pid,
            "--duration",
            "1h",
            "--output",
            &out.to_string_lossy(),
        ])
        .await?;
        assert_eq!(output.status.code(), Some(2), "{}", out.display());
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    }
    Ok(())
}
