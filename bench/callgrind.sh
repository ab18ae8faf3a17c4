#!/bin/sh
# Instruction counts per ping-pong round trip (user space only) for chatload and the minimal
# client, under callgrind: repeatable on a busy host where CPU-time figures are not.
#
#   bench/callgrind.sh [CONNECTIONS] [SECONDS] [CHATLOAD_BINARY]   (WARM=8 WINDOW=10 seconds)
#
# The server (release `chatload serve`) runs natively on core 1; the generator runs under
# valgrind on core 0. Output: target/bench/callgrind/{chatload,minimal}.out plus a summary line
# each: total Ir, round trips (calls of the function that runs once per round trip) and Ir per
# round trip. Needs valgrind; bounded in time; loopback only.
#
# L2=1: also simulate the caches, the last level sized as this machine's L2 (1 MiB per core,
# 16-way), and print its misses per round trip: what a round trip fetches from beyond the L2
# when many connections take turns (docs/performance.md, eighth pass). About 2x slower.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNS=${1:-1000}
SECS=${2:-24}
# cargo's target directory (CARGO_TARGET_DIR when set, as cargo does)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CHATLOAD=${3:-$TARGET/release/chatload}
MINIMAL=$TARGET/release/examples/pingpong_minimal
OUT=$ROOT/target/bench/callgrind
mkdir -p "$OUT"
# Port 0: the kernel picks a free port (a fixed one can collide with other runs' sockets).
taskset -c 1 "$TARGET/release/chatload" serve --listen 127.0.0.1:0 >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT INT TERM
sleep 0.5
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$OUT/server.log" | head -1)
[ -n "$PORT" ] || { echo "the server did not start: $(cat "$OUT/server.log")" >&2; exit 1; }
cat >"$OUT/plan.yml" <<PLAN
config:
  target: "127.0.0.1:$PORT"
  phases:
    - {name: pingpong, duration: ${SECS}s, vusers: $CONNS}
  defaults: {timeout: 60s, gracefulStop: 5s}
  # No interval snapshot inside the measured window: that work costs per second, not per
  # message, and valgrind's slowdown would spread it over too few messages.
  report: {interval: 60s}
scenarios:
  - name: pingpong
    flow:
      - connect
      - loop:
          - send: "PING x"
            expect: {match: "^PONG", name: ping}
PLAN
# Ir between a zero and a dump taken while every connection is busy (start-up, connecting and
# shutdown left out), divided by the round trips in that window: each round trip makes exactly
# one send() call in libc, in chatload and in the minimal client alike.
profile() { # name, command...
  name=$1; shift
  rm -f "$OUT/$name.out"*
  timeout 300 taskset -c 0 valgrind --tool=callgrind --compress-strings=no --compress-pos=no \
    --separate-threads=yes $CACHE_FLAGS \
    --callgrind-out-file="$OUT/$name.out" "$@" >"$OUT/$name.log" 2>&1 &
  runner=$!
  sleep 1
  pid=$(pgrep -P $runner | head -1) # valgrind itself, the child of `timeout`
  sleep "$WARM"
  callgrind_control -z $pid >/dev/null
  sleep "$WINDOW"
  callgrind_control -d $pid >/dev/null
  wait $runner || true
  # One dump file per thread: the total, and the busiest thread alone (the runtime worker
  # that runs every connection; chatload's per-interval metrics work runs on another thread
  # and costs per second, not per message, so under valgrind's slowdown it would inflate the
  # per-message figure).
  total=0; busiest=0; calls=0; misses=0
  for dump in "$OUT/$name.out".*; do
    ir=$(awk '/^summary:/ {print $2}' "$dump")
    # With the cache simulation the events are Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
    dl=$(awk '/^summary:/ {print ($9 + $10) + 0}' "$dump")
    n=$(awk '
      /^cfn=/ { target = ($0 == "cfn=send") }
      /^calls=/ { if (target) { split($0, a, "[= ]"); n += a[2] } target = 0 }
      END { print n + 0 }' "$dump")
    total=$((total + ir)); calls=$((calls + n)); misses=$((misses + dl))
    [ "$ir" -gt "$busiest" ] && busiest=$ir
  done
  [ "$calls" -gt 0 ] || calls=1
  line="$name: round trips $calls in the window; Ir per round trip $((total / calls)) (all threads), $((busiest / calls)) (busiest thread)"
  if [ -n "$CACHE_FLAGS" ]; then
    line="$line; L2 misses per round trip $(awk -v m="$misses" -v c="$calls" 'BEGIN { printf "%.1f", m / c }')"
  fi
  echo "$line" | tee "$OUT/$name.summary"
}
CACHE_FLAGS=""
if [ "${L2:-0}" = 1 ]; then CACHE_FLAGS="--cache-sim=yes --D1=49152,12,64 --LL=1048576,16,64"; fi
WARM=${WARM:-8}
WINDOW=${WINDOW:-10}
profile chatload "$CHATLOAD" run --quiet --no-report "$OUT/plan.yml"
[ -n "${SKIP_MINIMAL:-}" ] || profile minimal "$MINIMAL" --addr 127.0.0.1:$PORT --connections "$CONNS" --seconds "$SECS"
