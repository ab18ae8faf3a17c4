#!/usr/bin/env bash
# N machines simulated on one host: each shard of a run (`chatload run --shard I/N`) in its own
# network namespace with its own address on a bridge, the reference server in another, then
# `chatload merge` of the pieces; prints the merged figures and checks they add up.
#
#   sudo CHATLOAD=target/debug/chatload scripts/shards-netns.sh [N]    (default N=3)
#
# Needs root and iproute2. Uses only namespaces, links and addresses it creates (10.213.0.0/24
# exists only inside them) and removes them on exit, whatever happens. Bounded: every command
# runs under `timeout`. Writes under target/shards-netns/.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-3}"
CHATLOAD="${CHATLOAD:-target/debug/chatload}"
CHATLOAD="$(cd "$(dirname "$CHATLOAD")" && pwd)/$(basename "$CHATLOAD")"
out="$PWD/target/shards-netns"
tag="cl$$"                       # namespace and link names unique to this invocation
hub="$tag-hub"
srv="$tag-srv"
server_ip=10.213.0.1
port=9200

[ "$(id -u)" = 0 ] || { echo "shards-netns.sh needs root (network namespaces)" >&2; exit 1; }
command -v ip >/dev/null || { echo "shards-netns.sh needs iproute2 (ip)" >&2; exit 1; }
[ -x "$CHATLOAD" ] || { echo "no chatload binary at $CHATLOAD (set CHATLOAD=...)" >&2; exit 1; }

server_pid=""
cleanup() {
  set +e
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  for ns in "$srv" "$hub" $(seq -f "$tag-s%g" 0 $((N - 1))); do
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT

# One namespace per node, each joined to the hub's bridge by a veth pair.
ip netns add "$hub"
ip -n "$hub" link add br0 type bridge
ip -n "$hub" link set br0 up
node() { # node NAMESPACE ADDRESS
  local ns="$1" addr="$2" short="${1##*-}"
  ip netns add "$ns"
  ip link add "$tag$short" netns "$hub" type veth peer name eth0 netns "$ns"
  ip -n "$hub" link set "$tag$short" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}
node "$srv" "$server_ip"
for i in $(seq 0 $((N - 1))); do
  node "$tag-s$i" "10.213.0.$((10 + i))"
done

rm -rf "$out"
mkdir -p "$out"
ip netns exec "$srv" timeout 120 "$CHATLOAD" serve --listen "$server_ip:$port" >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do grep -q listening "$out/server.log" && break; sleep 0.1; done
grep -q listening "$out/server.log" || { cat "$out/server.log" >&2; exit 1; }

# Open model (evenly spread, then a Poisson ramp) and a closed-model hold: every key that
# shards split. Everyone joins one room, so lines cross shards (delivery).
cat >"$out/plan.yml" <<EOF
config:
  target: "$server_ip:$port"
  phases:
    - {name: meet, duration: 2s, arrivalCount: 12}
    - {name: ramp, duration: 3s, arrivalRate: 5, rampTo: 20, arrivals: poisson, maxVusers: 60}
    - {name: hold, duration: 3s, vusers: 9}
  handlers:
    - {on: "^MSG ", name: msg}
  ensure:
    thresholds:
      - latency.echo.p99: 2000
    maxErrorRate: 1
scenarios:
  - name: chatter
    flow:
      - connect
      - send: "LOGIN u{{ vu.id }}"
        expect: {match: "^OK", name: login}
      - send: "JOIN lobby"
        expect: {match: "^JOINED"}
      - think: 500ms
      - send: "SAY {{ stamp() }} hello from {{ vu.id }}"
      - think: 1s
      - send: "ECHO bye {{ vu.id }}"
        expect: {match: "^bye", name: echo}
      - disconnect
EOF

# Every shard starts at one wall-clock instant, a few seconds from now.
start_at="$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%S.%3NZ)"
pids=()
for i in $(seq 0 $((N - 1))); do
  ip netns exec "$tag-s$i" timeout 120 "$CHATLOAD" run "$out/plan.yml" --shard "$i/$N" \
    --seed 13 --start-at "$start_at" --out "$out/shard-$i" --quiet >"$out/shard-$i.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "shard $i failed:" >&2
    cat "$out/shard-$i.log" >&2
    status=1
  fi
done
[ "$status" = 0 ] || exit 1

results=()
for i in $(seq 0 $((N - 1))); do results+=("$out/shard-$i/result.json"); done
timeout 60 "$CHATLOAD" merge "${results[@]}" --out "$out/merged" --quiet

python3 - "$out" "$N" <<'EOF'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
pieces = [json.load(open(f"{out}/shard-{i}/result.json")) for i in range(n)]
merged = json.load(open(f"{out}/merged/result.json"))
agg = merged["aggregate"]
def c(r, name): return r["aggregate"]["counters"].get(name, 0)
for p in pieces:
    run = p["run"]
    print(f"shard {run['shard']['index']}/{run['shard']['count']}: "
          f"vusers.created {c(p, 'vusers.created')}, delivery {p['aggregate']['summaries'].get('delivery', {}).get('count', 0)}, "
          f"start skew {run.get('startSkewMs')} ms")
print(f"merged run {merged['run']['runId']}: shards {merged['run']['mergedShards']}, "
      f"vusers.created {c(merged, 'vusers.created')}, messages.sent {c(merged, 'messages.sent')}, "
      f"delivery count {agg['summaries']['delivery']['count']} p99 {agg['summaries']['delivery']['p99']} ms, "
      f"latency.echo p99 {agg['summaries']['latency.echo']['p99']} ms, "
      f"thresholds passed {all(t['passed'] for t in merged['thresholds'])}")
for name in ["vusers.created", "messages.sent", "handled.msg"]:
    total = sum(c(p, name) for p in pieces)
    assert c(merged, name) == total, f"{name}: merged {c(merged, name)} != {total}"
assert merged["run"]["mergedShards"] == list(range(n))
assert agg["summaries"]["delivery"]["count"] == c(merged, "handled.msg"), "a stamp was not counted"
EOF
echo "shards-netns: $N shards in their own namespaces merged into one result ($out/merged)"
