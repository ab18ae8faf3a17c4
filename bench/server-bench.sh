#!/usr/bin/env bash
# Benchmark the reference chat server over loopback: `chatload serve` in its own process,
# the load generator (bench/server_bench.rs) in another, so each stays under its own
# file-descriptor limit. Bounded in time (connect + 1 s warm-up + --seconds).
#
#   bench/server-bench.sh [--clients N] [--rooms R] [--say-every-ms MS] [--seconds S]
#
# Raise `ulimit -n` above the client count first when going past a few thousand clients.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin chatload --example server-bench
out=$(mktemp)
target/release/chatload serve --listen 127.0.0.1:0 >"$out" &
server=$!
trap 'kill "$server" 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$out")
echo "server: $(cat "$out")"
target/release/examples/server-bench --addr "$addr" --server-pid "$server" "$@"
