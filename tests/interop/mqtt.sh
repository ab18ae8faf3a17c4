#!/usr/bin/env bash
# Interop check against a real MQTT broker, Debian's `mosquitto`: plans/mqtt.yml (50 vusers
# CONNECT, SUBSCRIBE at QoS 1, PUBLISH stamped 300-byte messages and one of 17 000 bytes, and
# acknowledge deliveries with PUBACK from a handler) must exit 0 with no errors, and its
# `delivery.count` must equal the broker's own count of PUBLISH packets it sent
# (`$SYS/broker/publish/messages/sent`, read with `mosquitto_sub`) and the count the
# subscriptions imply (every publish reaches all 50 subscribers).
# The broker listens on 127.0.0.1 on a free port, with a config written under
# target/ci-mqtt (ignored by git), as are its log and the run's results.
#   tests/interop/mqtt.sh         (CHATLOAD=/path/to/chatload to use a built binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/interop/lib.sh
. tests/interop/lib.sh

fresh_out target/ci-mqtt

command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || apt_install mosquitto
command -v mosquitto_sub >/dev/null 2>&1 && command -v mosquitto_pub >/dev/null 2>&1 ||
  apt_install mosquitto-clients
command -v python3 >/dev/null 2>&1 || apt_install python3
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

vusers=50
publishes_per_vuser=6

# A free loopback port is released before the broker binds it: should another process take it
# in between, the broker fails to start and we try another.
echo "-- mosquitto on 127.0.0.1 ($("$mosquitto" -h 2>/dev/null | head -1 || true))"
port=""
for attempt in 1 2 3; do
  candidate=$(free_ports 1)
  cat >"$out/mosquitto.conf" <<CONF
listener $candidate 127.0.0.1
allow_anonymous true
persistence false
sys_interval 1
max_queued_messages 10000
log_dest file $PWD/$out/mosquitto.log
CONF
  timeout 300 "$mosquitto" -c "$out/mosquitto.conf" </dev/null >>"$out/mosquitto.out" 2>&1 &
  pid=$!
  for _ in $(seq 50); do
    if ! kill -0 "$pid" 2>/dev/null; then
      break
    fi
    # A PUBLISH to a topic nobody subscribes to: the broker sends nothing for it, so its
    # count of sent messages stays the run's alone.
    if timeout 5 mosquitto_pub -h 127.0.0.1 -p "$candidate" -t chatload/probe -n 2>/dev/null; then
      port=$candidate
      break
    fi
    sleep 0.1
  done
  if [ -n "$port" ]; then
    pids+=("$pid")
    break
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "mosquitto did not start on port $candidate (attempt $attempt)" >&2
done
[ -n "$port" ] || { cat "$out/mosquitto.out" "$out/mosquitto.log" >&2 2>/dev/null || true; exit 1; }
echo "mosquitto: 127.0.0.1:$port"

echo "-- chatload check plans/mqtt.yml"
chatload check plans/mqtt.yml

echo "-- chatload run plans/mqtt.yml --target 127.0.0.1:$port"
rc=0
chatload run plans/mqtt.yml --target "127.0.0.1:$port" --out "$out/run" --quiet || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "FAIL: chatload exited $rc" >&2
  cat "$out/mosquitto.log" >&2 || true
  exit 1
fi

# $SYS topics are republished every sys_interval (1 s): wait for one after the last delivery.
sleep 2
sent=$(timeout 15 mosquitto_sub -h 127.0.0.1 -p "$port" -t '$SYS/broker/publish/messages/sent' -C 1 -W 10)
echo "   broker: \$SYS/broker/publish/messages/sent = $sent"

timeout 30 python3 - "$out/run/result.json" "$sent" "$vusers" "$publishes_per_vuser" <<'PY'
import json, sys
path, broker_sent, vusers, per_vuser = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
agg = json.load(open(path))["aggregate"]
counters, summaries = agg["counters"], agg["summaries"]
errors = {k: v for k, v in counters.items() if k.startswith("errors.")}
deliveries = summaries.get("delivery", {}).get("count", 0)
acks = counters.get("handled.puback", 0)
pubacks = summaries.get("latency.puback", {}).get("count", 0)
computed = vusers * per_vuser * vusers
print(f"   result.json: {sum(errors.values())} errors, {counters.get('vusers.completed', 0)} vusers "
      f"completed, {pubacks} PUBACKs from the broker, {deliveries} deliveries, {acks} acked "
      f"(subscriptions imply {computed}, the broker sent {broker_sent})")
problems = []
if not errors:
    problems.append("no errors.* counters at all")
if sum(errors.values()) != 0:
    problems.append(f"expected no errors: { {k: v for k, v in errors.items() if v} }")
if counters.get("vusers.completed", 0) != vusers:
    problems.append(f"expected {vusers} vusers to complete")
if pubacks != vusers * per_vuser:
    problems.append(f"expected {vusers * per_vuser} PUBACKs for the publishes, got {pubacks}")
if deliveries != broker_sent:
    problems.append(f"delivery.count {deliveries} != the broker's publish/messages/sent {broker_sent}")
if deliveries != computed:
    problems.append(f"delivery.count {deliveries} != {computed} implied by the subscriptions")
if acks != deliveries:
    problems.append(f"{acks} deliveries acked by the handler, {deliveries} received")
if problems:
    sys.exit(f"{path}: " + "; ".join(problems))
PY
echo "mqtt interop passed in $((SECONDS - start))s"
