#!/usr/bin/env bash
# Interop checks against servers chatload's authors did not write:
#   - ws_server.py: a WebSocket echo server on Python's `websockets` package (ws and wss);
#   - tls_echo.py: a line echo server on Python's `ssl` module, i.e. OpenSSL (tls).
# A throwaway CA and a server certificate for localhost and 127.0.0.1 are made with `openssl`;
# chatload verifies the server against that CA (`config.tls.caFile`). Each plan under
# tests/interop/ must exit 0 and its result.json must show no errors.
# Everything written goes under target/ (ignored by git): target/ci-venv (the Python venv) and
# target/ci-interop (certificates, logs, results).
#   tests/interop/run.sh          (CHATLOAD=/path/to/chatload to use a built binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/interop/lib.sh
. tests/interop/lib.sh

fresh_out target/ci-interop
venv=target/ci-venv

command -v openssl >/dev/null 2>&1 || apt_install openssl
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv

echo "-- python venv with websockets ($venv)"
if ! timeout 30 "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
  rm -rf "$venv"
  if ! timeout 120 python3 -m venv "$venv"; then
    # Debian's python3 leaves ensurepip (hence venv) to the python3-venv package.
    rm -rf "$venv"
    apt_install python3-venv
    timeout 120 python3 -m venv "$venv"
  fi
  timeout 300 "$venv/bin/pip" install --quiet --disable-pip-version-check websockets </dev/null
fi
py="$venv/bin/python"
timeout 30 "$py" -c 'import websockets, ssl; print("websockets", websockets.__version__, "/", ssl.OPENSSL_VERSION)'

echo "-- certificates (openssl): a CA, and a server certificate for localhost and 127.0.0.1"
cat >"$out/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = chatload interop
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
ossl() { timeout 30 openssl "$@" 2>>"$out/openssl.log"; }
ossl req -x509 -config "$out/openssl.cnf" -extensions ca -newkey ec \
  -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=chatload interop CA" \
  -keyout "$out/ca.key" -out "$out/ca.pem"
ossl req -new -config "$out/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -nodes -subj "/CN=localhost" -keyout "$out/server.key" -out "$out/server.csr"
ossl x509 -req -in "$out/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
  -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 2 \
  -extfile "$out/openssl.cnf" -extensions server -out "$out/server.pem"
ossl verify -CAfile "$out/ca.pem" "$out/server.pem" >/dev/null

echo "-- servers"
start_server ws "$py" tests/interop/ws_server.py
ws_port=$port
start_server wss "$py" tests/interop/ws_server.py --cert "$out/server.pem" --key "$out/server.key"
wss_port=$port
start_server tls python3 tests/interop/tls_echo.py --cert "$out/server.pem" --key "$out/server.key"
tls_port=$port

echo "-- chatload check tests/interop/*.yml"
chatload check tests/interop/*.yml

# run PLAN TARGET: the run must exit 0 and its result.json must count no errors.
failed=0
run() {
  local name=$1 target=$2 rc=0
  echo "-- chatload run tests/interop/$name.yml --target $target"
  chatload run "tests/interop/$name.yml" --target "$target" --out "$out/$name" --quiet || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $name: chatload exited $rc" >&2
    failed=1
    return
  fi
  if ! timeout 30 python3 - "$out/$name/result.json" <<'PY'; then
import json, sys
path = sys.argv[1]
agg = json.load(open(path))["aggregate"]
counters = agg["counters"]
errors = {k: v for k, v in counters.items() if k.startswith("errors.")}
sent, received = counters.get("messages.sent", 0), counters.get("messages.received", 0)
pings = agg["summaries"].get("latency.ping", {}).get("count", 0)
print(f"   result.json: {sum(errors.values())} errors, {sent} sent, {received} received, "
      f"{pings} PING/PONG round trips")
if not errors:
    sys.exit(f"{path}: no errors.* counters at all")
if sum(errors.values()) != 0:
    sys.exit(f"{path}: expected no errors: { {k: v for k, v in errors.items() if v} }")
if sent == 0 or pings == 0 or received < sent:
    sys.exit(f"{path}: expected PING/PONG traffic with every message answered")
PY
    echo "FAIL $name: result.json" >&2
    failed=1
  fi
}
run ws-echo "ws://127.0.0.1:$ws_port/chat"
run wss-echo "wss://127.0.0.1:$wss_port/chat"
run tls-echo "tls://127.0.0.1:$tls_port"

if [ "$failed" -ne 0 ]; then
  for f in "$out"/*.log; do echo "== $f" >&2; cat "$f" >&2; done
  exit 1
fi
echo "interop passed in $((SECONDS - start))s"
