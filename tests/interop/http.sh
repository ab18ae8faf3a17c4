#!/usr/bin/env bash
# HTTP interop against a server chatload's authors did not write: tests/interop/http_server.py,
# a JSON API on Python's standard-library http.server (HTTP/1.1 keep-alive), on a free
# loopback port. tests/interop/http-api.yml logs in, captures the token (JSON path), sends it
# as a Bearer header, captures a header and a regexp, and checks every response (status,
# content type, header, property, equality). Passes when the run exits 0, result.json counts
# no errors, and its http.requests equals the number of requests in the server's own log.
# Writes only under target/ci-interop-http. Bounded: every command runs under `timeout`.
#   tests/interop/http.sh          (CHATLOAD=/path/to/chatload to use a built binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/interop/lib.sh
. tests/interop/lib.sh

fresh_out target/ci-interop-http

command -v python3 >/dev/null 2>&1 || apt_install python3

echo "-- server: python3 http.server ($(python3 --version 2>&1))"
start_server server python3 tests/interop/http_server.py --log "$out/requests.log"
url="http://127.0.0.1:$port"

echo "-- chatload check tests/interop/http-api.yml"
chatload check tests/interop/http-api.yml

echo "-- chatload run tests/interop/http-api.yml --target $url"
rc=0
chatload run tests/interop/http-api.yml --target "$url" --out "$out/run" --quiet --format json || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "FAIL: chatload exited $rc" >&2
  cat "$out/server.log" >&2
  exit 1
fi

timeout 30 python3 - "$out/run/result.json" "$out/requests.log" <<'PY'
import json, sys
result_path, log_path = sys.argv[1], sys.argv[2]
counters = json.load(open(result_path))["aggregate"]["counters"]
errors = {k: v for k, v in counters.items() if k.startswith("errors.") and v}
requests = counters.get("http.requests", 0)
logged = sum(1 for line in open(log_path) if line.strip())
statuses = {k: v for k, v in counters.items() if k.startswith("http.codes.")}
print(f"   result.json: {requests} requests, {statuses}, errors {errors or 'none'}")
print(f"   server log:  {logged} requests")
if errors:
    sys.exit(f"expected no errors, got {errors}")
if requests == 0 or requests != logged:
    sys.exit(f"chatload counted {requests} requests, the server logged {logged}")
if counters.get("vusers.completed", 0) != 20:
    sys.exit(f"expected 20 completed vusers: {counters.get('vusers.completed')}")
PY
echo "http interop passed in $((SECONDS - start))s"
