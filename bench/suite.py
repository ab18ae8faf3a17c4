#!/usr/bin/env python3
"""chatload benchmark suite (issue 7): chatload against the practical limit and a peer.

One invocation runs everything side by side and prints one markdown table:

  a. closed-loop ping-pong (`PING x` -> `PONG x`) at 10, 100 and 1 000 connections for
     chatload, the minimal hand-written tokio client (examples/pingpong_minimal.rs) and
     Locust with a raw-TCP user (bench/locustfile.py): round trips/s, p50/p99 and round
     trips per generator CPU-second, with the kernel's floor beside them (bare io_uring:
     bench/pingpong_uring.rs, no runtime); then at 100 connections over TLS and over WebSocket
     (chatload and the minimal client's --tls / --ws modes);
  b. connection scale: 10 000, 25 000 and 50 000 chatload vusers, one message each per 5 s:
     generator RSS per vuser and CPU %;
  c. open-model accuracy at 500, 2 000 and 5 000 arrivals/s: achieved vs target and
     `schedule.lag` p99.

The generator is pinned to core 0 and `chatload serve` to core 1 (taskset); every process is
bounded in time and killed by this script if it overruns; only loopback addresses are used.
Not part of `cargo test` or CI. Usage (see docs/performance.md):

  python3 bench/suite.py            # everything, about 6-7 minutes (section a 3 times)
  python3 bench/suite.py --quick    # a subset, about 2 minutes
  python3 bench/suite.py --only a --repeat 1 --connections 1000   # one quick look
  python3 bench/suite.py --only a   # one section (a, b or c; repeatable)
"""

import argparse
import atexit
import json
import os
import platform
import resource
import shutil
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
    """utime + stime of every thread of pid, in seconds (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


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
        self.rows = []  # (t, gen_cpu, server_cpu, gen_rss)

    def sample(self):
        g, s = cpu_seconds(self.gen.pid), cpu_seconds(self.server.pid)
        if g is not None and s is not None:
            self.rows.append((time.monotonic() - self.t0, g, s, rss_bytes(self.gen.pid)))

    def run_until_exit(self, timeout):
        while self.gen.poll() is None:
            if time.monotonic() - self.t0 > timeout:
                self.gen.kill()
                self.gen.wait()
                return False
            self.sample()
            time.sleep(0.1)
        return True

    def cpu_between(self, t_from, t_to):
        """Generator CPU use (cores) between two times, from the nearest samples inside."""
        inside = [r for r in self.rows if t_from <= r[0] <= t_to]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] <= 0:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

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


# ---------------------------------------------------------------- plans


def pingpong_plan(addr, vusers, seconds, ca_file=None):
    tls = f"\n  tls: {{caFile: \"{ca_file}\"}}" if ca_file else ""
    return f"""# generated by bench/suite.py: closed-loop ping-pong
config:
  target: "{addr}"{tls}
  phases:
    - {{name: pingpong, duration: {seconds}s, vusers: {vusers}}}
  defaults: {{timeout: 10s, gracefulStop: 2s}}
scenarios:
  - name: pingpong
    flow:
      - connect
      - loop:
          - send: "PING x"
            expect: {{match: "^PONG", name: ping}}
"""


def scale_plan(addr, vusers, ramp_s, hold_s):
    sources = ", ".join(SOURCES)
    return f"""# generated by bench/suite.py: many connected vusers, one message each per 5 s
config:
  target: "{addr}"
  sourceAddresses: [{sources}]
  phases:
    - {{name: ramp, duration: {ramp_s}s, vusers: 1000, rampTo: {vusers}}}
    - {{name: hold, duration: {hold_s}s, vusers: {vusers}}}
  defaults: {{timeout: 30s, gracefulStop: 3s}}
scenarios:
  - name: idle
    flow:
      - connect: {{timeout: 30s}}
      - think: 0s..5s
      - loop:
          - send: "PING x"
            expect: {{match: "^PONG", name: ping}}
          - think: 5s
"""


def open_plan(addr, rate, seconds):
    return f"""# generated by bench/suite.py: open model, one short session per arrival
config:
  target: "{addr}"
  phases:
    - {{name: open, duration: {seconds}s, arrivalRate: {rate}}}
  defaults: {{timeout: 5s, gracefulStop: 3s}}
scenarios:
  - name: once
    flow:
      - connect
      - send: "PING x"
        expect: {{match: "^PONG", name: ping}}
      - disconnect
"""


def run_chatload(work, name, plan_text, server, timeout, tally=None):
    """`tally`: a file for each vuser's round-trip count (CHATLOAD_VUSER_TALLY, a diagnostic
    chatload writes only when asked)."""
    plan = work / f"{name}.yml"
    plan.write_text(plan_text)
    out = work / name
    gen = spawn(
        [CHATLOAD, "run", plan, "--out", out, "--format", "json", "--quiet"],
        GEN_CORE,
        work / f"{name}.log",
        env={"CHATLOAD_VUSER_TALLY": str(tally)} if tally else None,
    )
    sampler = Sampler(gen, server)
    finished = sampler.run_until_exit(timeout)
    result = None
    path = out / "result.json"
    if path.exists():
        result = json.loads(path.read_text())
    return sampler, finished, gen.returncode, result


def spread_of(counts):
    """Fairness: the most round trips (or round trips per second) one vuser (connection) made
    ÷ the fewest (None when a vuser made none, or nothing was counted)."""
    counts = list(counts)
    if not counts or min(counts) <= 0:
        return None
    return max(counts) / min(counts)


def tally_rates(path):
    """Round trips per second of each vuser from chatload's tally file: `count seconds` per
    line (chatload's vusers start as they connect, so their counts are not comparable; the
    minimal client starts all connections together and counts whole)."""
    rates = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and float(parts[1]) > 0:
                rates.append(int(parts[0]) / float(parts[1]))
            else:
                rates.append(0)
    return rates


# ---------------------------------------------------------------- a. ping-pong


def row(test, generator, load, **cells):
    return dict(test=test, generator=generator, load=load, **cells)


def pingpong_cells(sampler, rt_per_s, p50, p99, note="", spread=None):
    window = sampler.loaded_window()
    cores = sampler.cpu_between(*window) if window else None
    cells = dict(rt_per_s=rt_per_s, p50=p50, p99=p99, note=note, spread=spread)
    if cores:
        cells["cpu"] = 100 * cores
        cells["per_cpu"] = rt_per_s / cores
    return cells


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def bench_pingpong_repeated(work, conns, seconds, locust_ok, locust_why, flavours, repeat):
    """Section a `repeat` times over; each figure of a row is the median of its runs (a row
    is left out of a median when that run failed; its note says how many runs counted)."""
    runs = [
        bench_pingpong(work, conns, seconds, locust_ok, locust_why, flavours, f"-r{i}")
        for i in range(repeat)
    ]
    rows = []
    for i, first in enumerate(runs[0]):
        same = [run[i] for run in runs if i < len(run)]
        ok = [r for r in same if r.get("rt_per_s") is not None]
        if not ok:
            rows.append(first)
            continue
        merged = row(first["test"], first["generator"], first["load"])
        for key in ("rt_per_s", "p50", "p99", "cpu", "per_cpu", "spread"):
            merged[key] = median(r.get(key) for r in ok)
        notes = sorted({r["note"] for r in ok if r.get("note")})
        if repeat > 1:
            notes.insert(0, f"median of {len(ok)}")
        merged["note"] = "; ".join(notes)
        rows.append(merged)
    # chatload relative to the practical limit, the figure issue 7's target is about
    by_load = {}
    for r in rows:
        by_load.setdefault(r["load"], {})[r["generator"]] = r
    for gens in by_load.values():
        c, m, loc = gens.get("chatload"), gens.get("minimal tokio"), gens.get("Locust raw TCP")
        floor = gens.get("bare io_uring")
        if floor and floor.get("per_cpu") and m and m.get("per_cpu"):
            ratio = f"{floor['per_cpu'] / m['per_cpu']:.2f} x minimal per CPU-s"
            floor["note"] = "; ".join(x for x in (floor.get("note"), ratio) if x)
        if not (c and c.get("per_cpu")):
            continue
        shares = [c["note"]] if c.get("note") else []
        paired = paired_ratios(runs, c["load"], "per_cpu")
        if len(paired) > 1:
            # Each round's chatload run against the minimal run right after it: this host's
            # speed drifts by 10-20 % over minutes, and the two runs of a round share the drift.
            listed = " ".join(f"{x:.2f}" for x in paired)
            shares.append(f"{median(paired):.2f} x minimal per CPU-s (paired: {listed})")
        elif m and m.get("per_cpu"):
            shares.append(f"{c['per_cpu'] / m['per_cpu']:.2f} x minimal per CPU-s")
        if m and m.get("p99") and c.get("p99") is not None:
            shares.append(f"p99 {c['p99'] / m['p99']:.1f} x minimal's")
        if loc and loc.get("per_cpu"):
            shares.append(f"{c['per_cpu'] / loc['per_cpu']:.1f}x Locust per CPU-s")
        c["note"] = "; ".join(shares)
    return rows


def paired_ratios(runs, load, key, over="minimal tokio"):
    """chatload's `key` over `over`'s, one ratio per repeat of section a in which both ran
    (the two run back to back in each repeat)."""
    ratios = []
    for run in runs:
        gens = {r["generator"]: r for r in run if r["load"] == load}
        c, m = gens.get("chatload", {}).get(key), gens.get(over, {}).get(key)
        if c is not None and m:
            ratios.append(c / m)
    return ratios


def run_yardstick(work, binary, label, n, seconds, flavour, tag, budget):
    """One run of a hand-written client (pingpong_minimal, pingpong-uring): both take --addr,
    --connections and --seconds and print one JSON line with the same fields."""
    name = f"a-{binary.name}-{n}{tag}"
    server, addr = start_server(work, name, flavour)
    cmd = [binary, "--addr", addr.split("://")[-1].rstrip("/"), "--connections", n]
    cmd += ["--seconds", seconds]
    if FLAVOURS[flavour]["tls"]:
        cmd += ["--tls", cert_path(work, name)]
    if FLAVOURS[flavour]["ws"]:
        cmd += ["--ws"]
    load = f"{n} conn" if flavour == "tcp" else f"{n} conn {flavour.upper()}"
    gen = spawn(cmd, GEN_CORE, work / f"{name}.log")
    sampler = Sampler(gen, server)
    finished = sampler.run_until_exit(budget)
    stop(server)
    out = (work / f"{name}.log").read_text().strip().splitlines()
    try:
        m = json.loads(out[-1])
        return row(
            "a ping-pong",
            label,
            load,
            **pingpong_cells(
                sampler,
                m["rt_per_s"],
                m["p50_ms"],
                m["p99_ms"],
                spread=m["spread"] if m.get("spread", -1) > 0 else None,
            ),
        )
    except (IndexError, ValueError, KeyError):
        why = "timed out" if not finished else f"exit {gen.returncode}: {out[-1:]}"
        return row("a ping-pong", label, load, note=f"n/a: {why}")


def bench_pingpong(work, conns, seconds, locust_ok, locust_why, flavours=(), suffix=""):
    """`conns` over plain TCP (chatload, minimal, Locust), then each (connections, flavour) of
    `flavours` ("tls", "ws") for chatload and the minimal client only. `suffix` tells repeated
    runs' files apart."""
    rows = []
    budget = seconds + 30
    runs = [(n, "tcp") for n in conns] + list(flavours)
    for n, flavour in runs:
        tag = ("" if flavour == "tcp" else f"-{flavour}") + suffix
        load = f"{n} conn" if flavour == "tcp" else f"{n} conn {flavour.upper()}"
        tls = FLAVOURS[flavour]["tls"]
        # chatload
        name = f"a-chatload-{n}{tag}"
        server, addr = start_server(work, name, flavour)
        plan = pingpong_plan(addr, n, seconds, cert_path(work, name) if tls else None)
        tally = work / f"{name}.tally"
        sampler, finished, code, result = run_chatload(work, name, plan, server, budget, tally)
        stop(server)
        counts = tally_rates(tally)
        summary = (result or {}).get("aggregate", {}).get("summaries", {}).get("latency.ping")
        if finished and summary:
            errors = sum(
                v for k, v in result["aggregate"]["counters"].items() if k.startswith("errors.")
            )
            rows.append(
                row(
                    "a ping-pong",
                    "chatload",
                    load,
                    **pingpong_cells(
                        sampler,
                        summary["count"] / seconds,
                        summary["p50"],
                        summary["p99"],
                        f"{errors} errors" if errors else "",
                        spread_of(counts) if len(counts) == n else None,
                    ),
                )
            )
        else:
            why = "timed out" if not finished else f"exit {code}, no latency.ping in result.json"
            rows.append(row("a ping-pong", "chatload", load, note=f"n/a: {why}"))

        # the minimal client; over plain TCP also the io_uring floor (no runtime at all)
        rows.append(run_yardstick(work, MINIMAL, "minimal tokio", n, seconds, flavour, tag, budget))
        if flavour == "tcp" and URING_OK:
            rows.append(run_yardstick(work, URING, "bare io_uring", n, seconds, flavour, tag, budget))

        # Locust (plain TCP only: bench/locustfile.py's user speaks raw TCP)
        if flavour != "tcp":
            continue
        if not locust_ok:
            rows.append(row("a ping-pong", "Locust raw TCP", f"{n} conn", note=f"n/a: {locust_why}"))
            continue
        server, addr = start_server(work, f"a-locust-{n}{tag}")
        csv = work / f"a-locust-{n}{tag}"
        gen = spawn(
            [
                LOCUST, "-f", ROOT / "bench" / "locustfile.py", "--headless",
                "--users", n, "--spawn-rate", n, "--run-time", f"{seconds}s",
                "--host", f"tcp://{addr}", "--csv", csv, "--only-summary",
                "--loglevel", "WARNING",
            ],
            GEN_CORE,
            work / f"a-locust-{n}{tag}.log",
        )
        sampler = Sampler(gen, server)
        finished = sampler.run_until_exit(budget + 15)
        stop(server)
        stats = Path(f"{csv}_stats.csv")
        agg = None
        if stats.exists():
            import csv as csvmod

            with stats.open() as f:
                agg = next((r for r in csvmod.DictReader(f) if r["Name"] == "Aggregated"), None)
        if finished and agg and float(agg["Request Count"]) > 0:
            fails = int(agg["Failure Count"])
            rows.append(
                row(
                    "a ping-pong",
                    "Locust raw TCP",
                    f"{n} conn",
                    **pingpong_cells(
                        sampler,
                        float(agg["Requests/s"]),
                        float(agg["50%"]),
                        float(agg["99%"]),
                        f"{fails} failures" if fails else "",
                    ),
                )
            )
        else:
            why = "timed out" if not finished else f"exit {gen.returncode}, no statistics"
            rows.append(row("a ping-pong", "Locust raw TCP", f"{n} conn", note=f"n/a: {why}"))
    return rows


# ---------------------------------------------------------------- b. connection scale


def bench_scale(work, counts, ramp_s, hold_s, nofile):
    rows = []
    # Each connection is a descriptor in the generator and another in the server.
    fits = (nofile - 1000) // 1000 * 1000
    if any(n > fits for n in counts) and fits not in counts and fits > 0:
        counts = sorted(set(n for n in counts if n <= fits) | {fits}) + [n for n in counts if n > fits]
    for n in counts:
        if n > fits:
            rows.append(
                row(
                    "b scale",
                    "chatload",
                    f"{n:,} vusers",
                    note=f"n/a: RLIMIT_NOFILE is {nofile} here and cannot be raised "
                    f"(hard limit, no CAP_SYS_RESOURCE); {n:,} sockets do not fit in one process",
                )
            )
            continue
        name = f"b-scale-{n}"
        server, addr = start_server(work, name)
        idle_fds = open_fds(server.pid) or 0
        plan = scale_plan(addr, n, ramp_s, hold_s)
        (work / f"{name}.yml").write_text(plan)
        gen = spawn(
            [CHATLOAD, "run", work / f"{name}.yml", "--out", work / name, "--format", "json", "--quiet"],
            GEN_CORE,
            work / f"{name}.log",
        )
        sampler = Sampler(gen, server)
        # steady state: the second half of the hold phase
        t_from, t_to = ramp_s + hold_s / 2, ramp_s + hold_s - 0.5
        connected, rss = None, []
        budget = ramp_s + hold_s + 60
        while gen.poll() is None and time.monotonic() - sampler.t0 < budget:
            sampler.sample()
            t = time.monotonic() - sampler.t0
            if t_from <= t <= t_to:
                rss.append(rss_bytes(gen.pid) or 0)
                if connected is None and t >= (t_from + t_to) / 2:
                    # the server's descriptors beyond those it had idle are its clients
                    connected = max(0, (open_fds(server.pid) or 0) - idle_fds)
            time.sleep(0.2)
        finished = gen.poll() is not None
        if not finished:
            gen.kill()
            gen.wait()
        stop(server)
        result_path = work / name / "result.json"
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        cores = sampler.cpu_between(t_from, t_to)
        if not rss or cores is None:
            why = "timed out" if not finished else f"exit {gen.returncode} before steady state"
            rows.append(row("b scale", "chatload", f"{n:,} vusers", note=f"n/a: {why}"))
            continue
        rss_avg = sum(rss) / len(rss)
        cells = dict(
            achieved=f"{connected:,} connected" if connected is not None else "",
            cpu=f"{100 * cores:.0f}",
            rss=f"{rss_avg / n / 1024:.1f} KiB ({rss_avg / 2**20:.0f} MiB total)",
        )
        notes = []
        if result:
            agg = result["aggregate"]
            s = agg["summaries"].get("latency.ping")
            if s:
                cells.update(p50=s["p50"], p99=s["p99"])
            errors = {k: v for k, v in agg["counters"].items() if k.startswith("errors.") and v}
            if errors:
                notes.append("errors " + ", ".join(f"{k[7:]} {v}" for k, v in errors.items()))
        else:
            notes.append(f"no result.json (exit {gen.returncode})")
        cells["note"] = "; ".join(notes)
        rows.append(row("b scale", "chatload", f"{n:,} vusers", **cells))
    return rows


# ---------------------------------------------------------------- c. open model


def bench_open(work, rates, seconds):
    rows = []
    for rate in rates:
        name = f"c-open-{rate}"
        server, addr = start_server(work, name)
        sampler, finished, code, result = run_chatload(
            work, name, open_plan(addr, rate, seconds), server, seconds + 30
        )
        stop(server)
        if not result:
            why = "timed out" if not finished else f"exit {code}, no result.json"
            rows.append(row("c open model", "chatload", f"{rate:,}/s", note=f"n/a: {why}"))
            continue
        agg = result["aggregate"]
        created = agg["counters"].get("vusers.created", 0)
        achieved = created / seconds
        lag = agg["summaries"].get("schedule.lag", {})
        ping = agg["summaries"].get("latency.ping", {})
        errors = {k: v for k, v in agg["counters"].items() if k.startswith("errors.") and v}
        window = sampler.loaded_window()
        cores = sampler.cpu_between(*window) if window else None
        rows.append(
            row(
                "c open model",
                "chatload",
                f"{rate:,}/s",
                achieved=f"{achieved:,.0f}/s ({100 * achieved / rate:.1f} %)",
                p50=ping.get("p50"),
                p99=ping.get("p99"),
                cpu=f"{100 * cores:.0f}" if cores else "",
                lag=lag.get("p99"),
                note=", ".join(f"{k[7:]} {v}" for k, v in errors.items()),
            )
        )
    return rows


# ---------------------------------------------------------------- output


def fmt_ms(v):
    if v is None or v == "":
        return ""
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def table(rows):
    head = (
        "| test | generator | load | achieved | p50 ms | p99 ms | gen CPU % "
        "| RT per gen CPU-s | spread max/min | RSS per vuser | schedule.lag p99 ms | notes |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        per_cpu, cpu, spread = r.get("per_cpu"), r.get("cpu"), r.get("spread")
        achieved = r.get("achieved", "")
        if r.get("rt_per_s") is not None:
            achieved = f"{r['rt_per_s']:,.0f} RT/s"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["test"],
                    r["generator"],
                    r["load"],
                    achieved,
                    fmt_ms(r.get("p50")),
                    fmt_ms(r.get("p99")),
                    f"{cpu:.0f}" if isinstance(cpu, (int, float)) else (cpu or ""),
                    f"{per_cpu:,.0f}" if per_cpu else "",
                    f"{spread:.2f}" if spread else "",
                    r.get("rss", ""),
                    fmt_ms(r.get("lag")),
                    r.get("note", ""),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    mem = os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30
    return (
        f"nproc {os.cpu_count()}, CPU {model}, {mem:.0f} GiB RAM, "
        f"kernel {platform.release()}, {rustc}"
    )


def ensure_locust():
    """Installs Locust into bench/.venv (not committed) once; returns (ok, reason)."""
    if LOCUST.exists():
        return True, ""
    print("installing Locust into bench/.venv (pip) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, capture_output=True)
        r = subprocess.run(
            [VENV / "bin" / "pip", "install", "-q", "locust>=2.20,<3"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as e:
        return False, f"Locust could not be installed ({e})"
    if r.returncode != 0 or not LOCUST.exists():
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"pip install locust failed: {last}"
    return True, ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a ~2 minute subset")
    ap.add_argument("--only", action="append", choices=["a", "b", "c"], help="run only this section")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    ap.add_argument("--no-locust", action="store_true", help="skip Locust (rows show n/a)")
    ap.add_argument(
        "--no-tls-ws", action="store_true", help="skip section a's TLS and WebSocket rows"
    )
    ap.add_argument(
        "--connections", type=int, action="append", metavar="N",
        help="section a's plain-TCP connection counts instead of 10, 100, 1000 (repeatable)",
    )
    ap.add_argument(
        "--repeat", type=int, default=3, metavar="N",
        help="run section a N times and print each figure's median (default 3)",
    )
    args = ap.parse_args()
    sections = set(args.only or ["a", "b", "c"])

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not shutil.which("taskset"):
        sys.exit("taskset is required (util-linux) to pin the generator and the server")
    # 50 000 connections need 50 000 descriptors in the generator and as many in the server
    want = 200_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    if not args.no_build:
        print("building release binaries ...", flush=True)
        subprocess.run(
            ["cargo", "build", "--release", "--quiet", "--bin", "chatload", "--example", "pingpong_minimal"]
            + (["--example", "pingpong-uring"] if URING_OK else []),
            cwd=ROOT,
            check=True,
        )
    locust_ok, locust_why = (False, "skipped (--no-locust)")
    if "a" in sections and not args.no_locust:
        locust_ok, locust_why = ensure_locust()
        if not locust_ok:
            print(f"Locust rows will be n/a: {locust_why}", flush=True)

    work = ROOT / "target" / "bench" / time.strftime("%Y%m%dT%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    if args.quick:
        conns, pp_s = [10, 1000], 4
        scale, ramp_s, hold_s = [10_000], 3, 8
        rates, open_s = [2000], 4
    else:
        conns, pp_s = [10, 100, 1000], 8
        scale, ramp_s, hold_s = [10_000, 25_000, 50_000], 5, 12
        rates, open_s = [500, 2000, 5000], 5
    flavours = [] if args.no_tls_ws else [(100, "tls"), (100, "ws")]
    if args.connections:
        conns = args.connections
    print(f"machine: {machine()}; RLIMIT_NOFILE {nofile}; work dir {work}", flush=True)

    rows = []
    if "a" in sections:
        print(f"a. ping-pong {conns} connections, then {flavours}, {pp_s} s each ...", flush=True)
        repeat = max(1, args.repeat)
        rows += bench_pingpong_repeated(
            work, conns, pp_s, locust_ok, locust_why, flavours, repeat
        )
    if "b" in sections:
        print(f"b. connection scale {scale} vusers ...", flush=True)
        rows += bench_scale(work, scale, ramp_s, hold_s, nofile)
    if "c" in sections:
        print(f"c. open model {rates} arrivals/s, {open_s} s each ...", flush=True)
        rows += bench_open(work, rates, open_s)

    text = table(rows)
    (work / "table.md").write_text(text + "\n")
    print()
    print(text)
    print()
    print(f"suite took {time.monotonic() - began:.0f} s; logs, plans and results in {work}")


if __name__ == "__main__":
    main()
