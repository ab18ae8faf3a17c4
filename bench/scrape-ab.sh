#!/usr/bin/env bash
# Does scraping /metrics cost throughput? A/B runs of the same closed-loop ping-pong load:
#   A: `chatload run` alone;
#   B: `chatload run --metrics-listen` with a scraper fetching /metrics every 100 ms (20 times
#      Prometheus' shipped 2 s interval); with --dashboard also the live page's renderer.
# Runs alternate A B B A ... so drift of the machine hits both alike; the script prints the
# round trips per second of every run, the medians and the difference of the medians.
#
#   bench/scrape-ab.sh [--pairs N] [--seconds S] [--vusers V] [--dashboard] [--out DIR]
#
# Defaults: 5 pairs, 8 s runs, 100 vusers, output in target/bench-scrape/<time>/.
# CHATLOAD=/path/to/chatload uses that binary instead of building a release one. The server
# (`chatload serve`) runs pinned to core 1 and the generator to core 0 when `taskset` exists.
# Loopback only; every process is bounded in time. Not part of CI: it needs the machine to
# itself and its figures are the machine's.
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=5
seconds=8
vusers=100
dashboard=no
out="target/bench-scrape/$(date -u +%Y%m%dT%H%M%SZ)"
while [ $# -gt 0 ]; do
    case "$1" in
        --pairs) pairs=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --vusers) vusers=$2; shift 2 ;;
        --dashboard) dashboard=yes; shift ;;
        --out) out=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"

if [ -n "${CHATLOAD:-}" ]; then
    chatload=$CHATLOAD
else
    timeout 1800 cargo build --release --quiet
    chatload="${CARGO_TARGET_DIR:-target}/release/chatload"
fi
pin() { if command -v taskset >/dev/null 2>&1; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
server_port=$(free_port)
pin 1 timeout $((pairs * (seconds + 20) * 2 + 60)) "$chatload" serve \
    --listen "127.0.0.1:$server_port" >"$out/server.log" 2>&1 &
pids+=($!)
sleep 1

cat >"$out/plan.yml" <<YAML
config:
  target: "127.0.0.1:$server_port"
  phases:
    - {name: hold, duration: ${seconds}s, vusers: $vusers}
  report: {formats: [json]}
scenarios:
  - name: pingpong
    flow:
      - connect
      - loop:
          - send: "PING x"
            expect: {match: "^PONG", name: ping}
YAML

# run NAME WITH_SCRAPER: one run; prints its round trips per second.
run() {
    local name=$1 scrape=$2 args=() scraper=""
    if [ "$scrape" = yes ]; then
        local mport dport
        mport=$(free_port)
        dport=$(free_port)
        args=(--metrics-listen "127.0.0.1:$mport")
        if [ "$dashboard" = yes ]; then args+=(--dashboard "127.0.0.1:$dport"); fi
        timeout $((seconds + 15)) python3 - "$mport" <<'PY' >"$out/$name.scrapes" 2>&1 &
import sys, time, urllib.request
url, n, size = f"http://127.0.0.1:{sys.argv[1]}/metrics", 0, 0
end = time.time() + 600
while time.time() < end:
    try:
        size = len(urllib.request.urlopen(url, timeout=2).read())
        n += 1
        print(n, size, flush=True)
    except OSError:
        pass
    time.sleep(0.1)
PY
        scraper=$!
    fi
    pin 0 timeout $((seconds + 30)) "$chatload" run "$out/plan.yml" --quiet --out "$out/$name" \
        "${args[@]}" </dev/null >"$out/$name.log" 2>&1 || true
    if [ -n "$scraper" ]; then kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; fi
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(round(r["aggregate"]["summaries"]["latency.ping"]["count"] / (r["run"]["durationMs"] / 1000)))
' "$out/$name/result.json"
}

a=()
b=()
for i in $(seq 1 "$pairs"); do
    if [ $((i % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
    for side in $order; do
        if [ "$side" = a ]; then
            v=$(run "a$i" no); a+=("$v"); echo "run $i A (no scraping):          $v round trips/s"
        else
            v=$(run "b$i" yes); b+=("$v")
            scrapes=$(tail -n1 "$out/b$i.scrapes" 2>/dev/null | cut -d' ' -f1)
            echo "run $i B (scraped every 100 ms): $v round trips/s (${scrapes:-0} scrapes)"
        fi
    done
done
python3 - "${a[*]}" "${b[*]}" <<'PY' | tee "$out/summary.txt"
import statistics, sys
a = [int(x) for x in sys.argv[1].split()]
b = [int(x) for x in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
spread = (max(a) - min(a)) / ma * 100
print(f"median A {ma:.0f} round trips/s, median B {mb:.0f}: B - A = {(mb - ma) / ma * 100:+.1f} % "
      f"(run-to-run spread of A: {spread:.1f} %)")
PY
