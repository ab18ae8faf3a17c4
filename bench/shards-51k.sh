#!/usr/bin/env bash
# 51 000 concurrent connections on one machine: 3 shards of one run (`run --shard I/3`),
# 17 000 connected vusers each, against 3 reference servers sharing one port
# (`serve --reuse-port`), so no process goes past the 20 000-descriptor limit. Prints RSS per
# vuser and CPU per shard, then merges the shards and prints the merged figures.
#
#   bench/shards-51k.sh [--per-shard 17000] [--ramp 60] [--hold 30]     (CHATLOAD=bin to skip the build)
#
# Loopback only; connections come from 127.0.0.2-127.0.0.4 (`sourceAddresses`) because one
# source address has ~28 000 ephemeral ports towards one server port. Bounded: every process
# runs under `timeout`. Writes under target/bench-shards/.
set -euo pipefail
cd "$(dirname "$0")/.."

per_shard=17000
ramp=60
hold=30
while [ $# -gt 0 ]; do
  case "$1" in
    --per-shard) per_shard="$2"; shift 2 ;;
    --ramp) ramp="$2"; shift 2 ;;
    --hold) hold="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
total=$((per_shard * 3))
# CHATLOAD=path uses that binary as is; otherwise the release build.
bin="${CHATLOAD:-${CARGO_TARGET_DIR:-target}/release/chatload}"
[ -n "${CHATLOAD:-}" ] || cargo build --release --quiet --bin chatload
out=target/bench-shards
rm -rf "$out"
mkdir -p "$out"
ulimit -n 20000

pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT

# A free port: the first server takes port 0, the others join it with SO_REUSEPORT.
timeout $((ramp + hold + 120)) "$bin" serve --reuse-port --listen 127.0.0.1:0 >"$out/server-0.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$out/server-0.log" && break; sleep 0.1; done
addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$out/server-0.log")
for i in 1 2; do
  timeout $((ramp + hold + 120)) "$bin" serve --reuse-port --listen "$addr" >"$out/server-$i.log" 2>&1 &
  pids+=($!)
done
servers=("${pids[@]}")

cat >"$out/plan.yml" <<EOF
config:
  target: "$addr"
  sourceAddresses: [127.0.0.2, 127.0.0.3, 127.0.0.4]
  phases:
    - {name: ramp, duration: ${ramp}s, vusers: 0, rampTo: $total}
    - {name: hold, duration: ${hold}s, vusers: $total}
  defaults: {gracefulStop: 10s}
  ensure:
    maxErrorRate: 1
scenarios:
  - name: idle chatter
    flow:
      - connect
      - send: "LOGIN u{{ vu.id }}"
        expect: {match: "^OK", name: login}
      - send: "JOIN r{{ vu.id % 1000 }}"
        expect: {match: "^JOINED"}
      - loop:
          - think: 20s..40s
          - send: "PING {{ vu.id }}"
            expect: {match: "^PONG", name: ping}
EOF

start_at="$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%S.%3NZ)"
shards=()
for i in 0 1 2; do
  timeout $((ramp + hold + 90)) "$bin" run "$out/plan.yml" --shard "$i/3" --seed 51 \
    --start-at "$start_at" --out "$out/shard-$i" --quiet >"$out/shard-$i.log" 2>&1 &
  shards+=($!)
  pids+=($!)
done

# Sample each shard in the hold phase: peak RSS and CPU time so far (/proc).
cpu_s() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }
sleep $((3 + ramp + hold / 2))
echo "at mid-hold ($(date -u +%T)):"
for i in 0 1 2; do
  pid=${shards[$i]}
  # `timeout` is the parent: the shard is its child.
  child=$(pgrep -P "$pid" | head -1)
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$child/status")
  fds=$(ls "/proc/$child/fd" | wc -l)
  # Per connected vuser: one descriptor each, beyond the process's own dozen or so.
  echo "  shard $i: RSS $((rss_kb / 1024)) MiB = $((rss_kb * 1024 / (fds > 20 ? fds - 12 : 1))) bytes per connected vuser," \
    "CPU $(cpu_s "$child") s over $((ramp + hold / 2)) s," \
    "descriptors $fds"
done
for i in 0 1 2; do
  child=$(pgrep -P "${servers[$i]}" | head -1 || true)
  [ -n "$child" ] || child=${servers[$i]}
  echo "  server $i: $(ls "/proc/$child/fd" | wc -l) descriptors," \
    "RSS $(( $(awk '/VmRSS/ {print $2}' "/proc/$child/status") / 1024 )) MiB"
done
echo "  established connections to $addr: $(ss -Htn state established "( dport = :${addr##*:} )" | wc -l)"

for i in 0 1 2; do wait "${shards[$i]}" || true; done
for i in 0 1 2; do tail -n 3 "$out/shard-$i.log" | sed "s/^/  shard $i: /"; done
"$bin" merge "$out"/shard-{0,1,2}/result.json --out "$out/merged" --quiet | tail -n 25
python3 - "$out" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/merged/result.json"))
a = r["aggregate"]
peak = max((i["gauges"].get("connections.open", {}).get("last", 0) for i in r["intermediate"]), default=0)
print(f"merged: vusers.created {a['counters'].get('vusers.created', 0)}, "
      f"connections.open peak (sum of shards at one grid instant) {peak}, "
      f"errors {sum(v for k, v in a['counters'].items() if k.startswith('errors.'))}, "
      f"connect p99 {a['summaries'].get('connect', {}).get('p99')} ms, "
      f"ping p99 {a['summaries'].get('latency.ping', {}).get('p99')} ms, "
      f"start skew {r['run'].get('startSkewMs')} ms")
PY
