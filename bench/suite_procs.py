"""Processes for bench/suite.py: where the binaries are, the cores and loopback addresses used,
starting and stopping every process (STARTED, the one list of the processes the suite started,
which cleanup() kills at exit), /proc sampling of CPU, RSS and descriptors (Sampler), and the
reference server (`chatload serve`) in its TCP, TLS and WebSocket flavours."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# cargo's target directory (CARGO_TARGET_DIR when set, as cargo does)
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
CHATLOAD = TARGET / "release" / "chatload"
MINIMAL = TARGET / "release" / "examples" / "pingpong_minimal"
# The kernel's floor: ping-pong over io_uring with no runtime (Linux only).
URING = TARGET / "release" / "examples" / "pingpong-uring"
URING_OK = sys.platform.startswith("linux")
VENV = ROOT / "bench" / ".venv"
LOCUST = VENV / "bin" / "locust"
GEN_CORE = "0"
SERVER_CORE = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# Connections beyond one source address's ephemeral ports are spread over these.
SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]

STARTED = []  # every process this script started, killed on exit if still running


def cleanup():
    for p in STARTED:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 3
    for p in STARTED:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def on_signal(signum, _frame):
    sys.exit(128 + signum)  # runs atexit -> cleanup


def spawn(cmd, core, out_path, env=None):
    out = open(out_path, "w")
    p = subprocess.Popen(
        ["taskset", "-c", core] + [str(c) for c in cmd],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env=None if env is None else {**os.environ, **env},
    )
    out.close()
    STARTED.append(p)
    return p


def stop(p, grace=3.0):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---------------------------------------------------------------- /proc sampling


def cpu_seconds(pid):
    """(utime + stime, utime) of every thread of pid, in seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    user = int(fields[11]) / CLK_TCK
    return user + int(fields[12]) / CLK_TCK, user


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return None


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Sampler:
    """Samples the generator's and the server's CPU (and the generator's RSS) every 100 ms."""

    def __init__(self, gen, server):
        self.gen, self.server, self.t0 = gen, server, time.monotonic()
        self.rows = []  # (t, gen_cpu, server_cpu, gen_rss, gen_user_cpu)

    def sample(self):
        g, s = cpu_seconds(self.gen.pid), cpu_seconds(self.server.pid)
        if g is not None and s is not None:
            now = time.monotonic() - self.t0
            self.rows.append((now, g[0], s[0], rss_bytes(self.gen.pid), g[1]))

    def run_until_exit(self, timeout):
        while self.gen.poll() is None:
            if time.monotonic() - self.t0 > timeout:
                self.gen.kill()
                self.gen.wait()
                return False
            self.sample()
            time.sleep(0.1)
        return True

    def cpu_between(self, t_from, t_to, column=1):
        """Generator CPU use (cores) between two times, from the nearest samples inside;
        `column=4` counts user time only."""
        inside = [r for r in self.rows if t_from <= r[0] <= t_to]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] <= 0:
            return None
        return (inside[-1][column] - inside[0][column]) / (inside[-1][0] - inside[0][0])

    def user_between(self, t_from, t_to):
        """Generator user-space CPU use (cores) between two times."""
        return self.cpu_between(t_from, t_to, column=4)

    def loaded_window(self):
        """The span where the server was busy, i.e. round trips were flowing, trimmed at the
        edges: generators differ in start-up (Locust imports for a second), so the load phase
        is found from the server's CPU rather than from the process's start."""
        rates = []
        for a, b in zip(self.rows, self.rows[1:]):
            dt = b[0] - a[0]
            if dt > 0:
                rates.append((a[0], b[0], (b[2] - a[2]) / dt))
        if not rates:
            return None
        ordered = sorted(r[2] for r in rates)
        busy = 0.3 * ordered[int(0.9 * (len(ordered) - 1))]
        loaded = [r for r in rates if r[2] > busy]
        if not loaded:
            return None
        start, end = loaded[0][0], loaded[-1][1]
        if end - start > 2.5:
            start, end = start + 0.7, end - 0.4
        return start, end


# ---------------------------------------------------------------- the reference server


# Transports of section a beyond plain TCP: `chatload serve` flags, and whether the minimal
# client speaks TLS (verifying the server's self-signed certificate) and/or WebSocket.
FLAVOURS = {
    "tcp": dict(serve=[], tls=False, ws=False),
    "tls": dict(serve=["--tls-self-signed"], tls=True, ws=False),
    "ws": dict(serve=["--websocket"], tls=False, ws=True),
}


def cert_path(work, name):
    return work / f"{name}.cert.pem"


def start_server(work, name, flavour="tcp"):
    log = work / f"{name}.server.log"
    extra = list(FLAVOURS[flavour]["serve"])
    if FLAVOURS[flavour]["tls"]:
        extra += ["--tls-cert-out", cert_path(work, name)]
    p = spawn([CHATLOAD, "serve", "--listen", "127.0.0.1:0"] + extra, SERVER_CORE, log)
    for _ in range(100):
        text = log.read_text()
        if "listening on " in text:
            addr = text.split("listening on ", 1)[1].split()[0]
            return p, addr
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"chatload serve did not start; its output: {log.read_text()!r}")
