#!/usr/bin/env bash
# Does scraping /metrics cost the generator anything? A/B runs of the same closed-loop
# ping-pong load:
#   A: `chatload run` alone;
#   B: `chatload run --metrics-listen` with a scraper fetching /metrics every 100 ms (20 times
#      Prometheus' shipped 2 s interval); with --dashboard also the live page's renderer.
# The figure is the generator's CPU time per round trip over a measured window: utime+stime of
# the generator process (/proc/PID/stat) read at two interval boundaries, divided by the round
# trips the run's result.json counts in the intervals between them. CPU time per round trip
# does not move when the machine's other work slows the run down (wall-clock rates do), and
# it includes everything the generator does for the scrape: the per-interval rendering, the
# HTTP answers, the wake-ups.
# The generator runs pinned to core 0; the server (`chatload serve`) and the scraper to core
# 1, so the scraper's own CPU is never the generator's. Pairs alternate A B, B A, ... so drift
# of the machine hits both alike; the script prints every run, both medians and the difference.
#
#   bench/scrape-ab.sh [--pairs N] [--seconds S] [--vusers V] [--think T] [--dashboard] [--out DIR]
#
# --think T (e.g. 1s) puts a think time in the loop: the generator is then nearly idle, and the
# generator CPU milliseconds per second it also prints are, B minus A, the absolute cost of
# being scraped (the per-interval rendering and the answers) without a load to hide it.
#
# Defaults: 5 pairs, 10 s runs (the window: from the 2nd to the (S-1)th second), 100 vusers,
# output in target/bench-scrape/<time>/. CHATLOAD=/path/to/chatload uses that binary instead of
# building a release one. Needs Linux (/proc, sched_setaffinity) and 2 cores. Loopback only;
# every process is bounded in time. Not part of CI: its figures are the machine's.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=5
seconds=10
vusers=100
dashboard=no
think=none
out="target/bench-scrape/$(date -u +%Y%m%dT%H%M%SZ)"
while [ $# -gt 0 ]; do
    case "$1" in
        --pairs) pairs=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --vusers) vusers=$2; shift 2 ;;
        --think) think=$2; shift 2 ;;
        --dashboard) dashboard=yes; shift ;;
        --out) out=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [ "$seconds" -lt 5 ]; then echo "--seconds must be at least 5" >&2; exit 2; fi
mkdir -p "$out"

if [ -n "${CHATLOAD:-}" ]; then
    chatload=$CHATLOAD
else
    timeout 1800 cargo build --release --quiet
    chatload="${CARGO_TARGET_DIR:-target}/release/chatload"
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/load.txt"

timeout $((pairs * (seconds + 30) * 2 + 120)) python3 - "$chatload" "$out" "$pairs" "$seconds" \
    "$vusers" "$dashboard" "$think" <<'PY' | tee "$out/summary.txt"
import json, os, socket, statistics, subprocess, sys, time

chatload, out, pairs, seconds, vusers, dashboard, think = sys.argv[1:8]
pairs, seconds, vusers, dashboard = int(pairs), int(seconds), int(vusers), dashboard == "yes"
GENERATOR_CORE, SERVER_CORE = 0, 1
TICK = os.sysconf("SC_CLK_TCK")
children = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, core, **kw):
    proc = subprocess.Popen(args, preexec_fn=lambda: os.sched_setaffinity(0, {core}), **kw)
    children.append(proc)
    return proc


def cpu_seconds(pid):
    # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def sleep_until(t):
    while (now := time.time()) < t:
        time.sleep(min(t - now, 0.2))


server_port = free_port()
server = start([chatload, "serve", "--listen", f"127.0.0.1:{server_port}"], SERVER_CORE,
               stdout=open(f"{out}/server.log", "w"), stderr=subprocess.STDOUT)
time.sleep(1)
with open(f"{out}/plan.yml", "w") as f:
    f.write(f"""config:
  target: "127.0.0.1:{server_port}"
  phases:
    - {{name: hold, duration: {seconds}s, vusers: {vusers}}}
  report: {{formats: [json], interval: 1s}}
scenarios:
  - name: pingpong
    flow:
      - connect
      - loop:
          - send: "PING x"
            expect: {{match: "^PONG", name: ping}}
""" + ("" if think == "none" else f"          - think: {think}\n"))

SCRAPER = """
import sys, time, urllib.request
url, n = f"http://127.0.0.1:{sys.argv[1]}/metrics", 0
while True:
    try:
        size = len(urllib.request.urlopen(url, timeout=2).read())
        n += 1
        print(n, size, flush=True)
    except OSError:
        pass
    time.sleep(0.1)
"""


def run(name, scrape):
    """One run; returns (µs of generator CPU per round trip, round trips/s, scrapes, generator
    CPU ms per second)."""
    args = [chatload, "run", f"{out}/plan.yml", "--quiet", "--out", f"{out}/{name}"]
    scraper = None
    if scrape:
        mport = free_port()
        args += ["--metrics-listen", f"127.0.0.1:{mport}"]
        if dashboard:
            args += ["--dashboard", f"127.0.0.1:{free_port()}"]
        scraper = start([sys.executable, "-c", SCRAPER, str(mport)], SERVER_CORE,
                        stdout=open(f"{out}/{name}.scrapes", "w"), stderr=subprocess.DEVNULL)
    gen = start(args, GENERATOR_CORE, stdin=subprocess.DEVNULL,
                stdout=open(f"{out}/{name}.log", "w"), stderr=subprocess.STDOUT)
    # The window: whole 1 s intervals (cut on the wall-clock grid, like the result's) from
    # the second full interval of the run to one before its last, read at their boundaries.
    first = int(time.time()) + 2
    last = first + seconds - 3
    sleep_until(first)
    cpu0 = cpu_seconds(gen.pid)
    sleep_until(last)
    cpu1 = cpu_seconds(gen.pid)
    try:
        gen.wait(timeout=seconds + 60)
    finally:
        gen.kill()
        if scraper:
            scraper.kill()
            scraper.wait()
    result = json.load(open(f"{out}/{name}/result.json"))
    trips = sum(
        i["summaries"].get("latency.ping", {}).get("count", 0)
        for i in result["intermediate"]
        if i["startMs"] >= first * 1000 and i["endMs"] <= last * 1000
    )
    if trips == 0:
        sys.exit(f"{name}: no round trips in the window; see {out}/{name}.log")
    scrapes = 0
    if scraper:
        lines = open(f"{out}/{name}.scrapes").read().split()
        scrapes = int(lines[-2]) if len(lines) >= 2 else 0
    window = last - first
    return (cpu1 - cpu0) / trips * 1e6, trips / window, scrapes, (cpu1 - cpu0) / window * 1e3


try:
    a, b = [], []
    for i in range(1, pairs + 1):
        for side in ("ab" if i % 2 else "ba"):
            us, rate, scrapes, ms_per_s = run(f"{side}{i}", side == "b")
            (a if side == "a" else b).append((us, rate, ms_per_s))
            label = "A (no scraping)         " if side == "a" else "B (scraped every 100 ms)"
            extra = f", {scrapes} scrapes" if side == "b" else ""
            print(f"pair {i} {label}: {us:6.2f} µs generator CPU per round trip "
                  f"({rate:,.0f} round trips/s, generator CPU {ms_per_s:.1f} ms/s{extra})",
                  flush=True)
    med = lambda runs, k: statistics.median(r[k] for r in runs)
    ma, mb = med(a, 0), med(b, 0)
    spread = (max(r[0] for r in a) - min(r[0] for r in a)) / ma * 100
    print(f"median A {ma:.2f} µs, median B {mb:.2f} µs per round trip: B - A = "
          f"{(mb - ma) / ma * 100:+.1f} % (spread of A: {spread:.1f} %); "
          f"median rates A {med(a, 1):,.0f}/s, B {med(b, 1):,.0f}/s; "
          f"median generator CPU A {med(a, 2):.1f} ms/s, B {med(b, 2):.1f} ms/s")
finally:
    for proc in children:
        proc.kill()
        proc.wait()
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
