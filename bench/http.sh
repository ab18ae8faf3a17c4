#!/usr/bin/env bash
# HTTP load-generator efficiency: requests per generator CPU-second (user + sys), keep-alive GET
# of a tiny response, 100 connections, for chatload, wrk, oha and Locust's FastHttpUser.
#
#   bench/http.sh [--seconds 10] [--runs 3] [--connections 100]
#
# The server is nginx from Debian (one worker, `return 200 "ok\n"`, no access log) pinned to
# core 1; each generator in turn is pinned to core 0 (`taskset`), runs for --seconds, and its
# CPU time is read by /usr/bin/time (user + sys of the generator's whole process). The figure
# per run is requests completed / CPU-seconds; the table shows the median of --runs runs, and
# the median requests per second besides. Higher is better: it is how much load one core of
# generator produces, the thing that decides how many machines a test needs.
#
#   - chatload: the release binary, a closed phase of N vusers each repeating `get: /` (no
#     think), recording per-endpoint HDR histograms and CO-safe latency as in any run;
#     requests = result.json's http.requests.
#   - wrk (Debian): `wrk -t1 -cN`; requests from its summary line.
#   - oha (on PATH, in ~/.cargo/bin, or `cargo install --locked oha` into target/bench-tools):
#     `oha -z Ds -c N --no-tui --output-format json`.
#   - Locust (pip into the venv target/bench-venv): FastHttpUser (geventhttpclient), N users,
#     no wait time, one process; requests = the Aggregated row of its stats CSV.
#
# Needs two cores for the pinning to mean anything; on a shared machine the figures are noisy
# (say so when quoting them). Not part of CI. Installs what it lacks (apt-get, cargo install,
# pip). Traffic stays on 127.0.0.1; everything is written under target/bench-http.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
runs=3
connections=100
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    *) echo "usage: bench/http.sh [--seconds N] [--runs N] [--connections N]" >&2; exit 2 ;;
  esac
done

out=target/bench-http
tools=target/bench-tools
venv=target/bench-venv
rm -rf "$out"
mkdir -p "$out"

nginx_pid=""
cleanup() {
  if [ -n "$nginx_pid" ]; then
    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

apt_install() {
  local sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  timeout 300 $sudo_cmd apt-get update -qq </dev/null
  DEBIAN_FRONTEND=noninteractive timeout 600 $sudo_cmd apt-get install -y -qq "$@" </dev/null
}
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ -x /usr/bin/time ] || need+=(time)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# oha: one already installed (PATH or ~/.cargo/bin) or `cargo install --locked` into $tools
# (--locked: oha's own lock file, whose versions build with a stable toolchain).
oha=$(command -v oha || true)
[ -n "$oha" ] || [ ! -x "$HOME/.cargo/bin/oha" ] || oha="$HOME/.cargo/bin/oha"
if [ -z "$oha" ]; then
  if [ ! -x "$tools/bin/oha" ]; then
    echo "-- cargo install oha (into $tools)"
    timeout 1800 cargo install --quiet --locked --root "$tools" oha </dev/null
  fi
  oha="$tools/bin/oha"
fi
if ! timeout 30 "$venv/bin/python" -c 'import locust' 2>/dev/null; then
  echo "-- pip install locust (into $venv)"
  rm -rf "$venv"
  if ! timeout 120 python3 -m venv "$venv"; then
    # Debian's python3 leaves ensurepip (hence venv) to the python3-venv package.
    rm -rf "$venv"
    apt_install python3-venv
    timeout 120 python3 -m venv "$venv"
  fi
  timeout 900 "$venv/bin/pip" install --quiet --disable-pip-version-check locust </dev/null
fi

echo "-- cargo build --release"
timeout 1800 cargo build --release --quiet --bin chatload </dev/null
chatload="${CARGO_TARGET_DIR:-$PWD/target}/release/chatload"

# A free loopback port (the kernel's pick, released just before nginx binds it).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port/"
cat >"$out/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $PWD/$out/nginx.pid;
error_log $PWD/$out/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_body_temp_path $PWD/$out/tmp;
  proxy_temp_path $PWD/$out/tmp;
  fastcgi_temp_path $PWD/$out/tmp;
  uwsgi_temp_path $PWD/$out/tmp;
  scgi_temp_path $PWD/$out/tmp;
  server {
    listen 127.0.0.1:$port;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
CONF
mkdir -p "$out/tmp"
timeout $((runs * seconds * 8 + 600)) taskset -c 1 "$nginx_bin" -c "$PWD/$out/nginx.conf" \
  >"$out/nginx.out" 2>&1 </dev/null &
nginx_pid=$!
for _ in $(seq 50); do
  curl -fsS "$url" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$url" >/dev/null || { echo "nginx did not answer on $url" >&2; cat "$out"/nginx*.* >&2; exit 1; }
echo "-- nginx on $url (core 1); generators on core 0, $connections connections, ${seconds}s x $runs"

cat >"$out/plan.yml" <<PLAN
config:
  target: "$url"
  phases:
    - {duration: ${seconds}s, vusers: $connections}
  report: {formats: [json]}
scenarios:
  - name: get
    flow:
      - get: {url: /, name: tiny}
PLAN
cat >"$out/locustfile.py" <<'PY'
from locust import FastHttpUser, constant, task


class Tiny(FastHttpUser):
    wait_time = constant(0)

    @task
    def tiny(self):
        self.client.get("/")
PY

# measure NAME RUN COMMAND...: runs COMMAND pinned to core 0 under /usr/bin/time; leaves the
# CPU seconds in $cpu and the command's output in $out/NAME-RUN.out.
measure() {
  local name=$1 run=$2
  shift 2
  timeout $((seconds * 4 + 120)) taskset -c 0 /usr/bin/time -f "%U %S" -o "$out/$name-$run.time" \
    "$@" >"$out/$name-$run.out" 2>&1 </dev/null || {
    echo "$name run $run failed:" >&2
    tail -20 "$out/$name-$run.out" >&2
    exit 1
  }
  cpu=$(awk 'END { print $1 + $2 }' "$out/$name-$run.time")
}

for run in $(seq "$runs"); do
  measure chatload "$run" "$chatload" run "$out/plan.yml" --out "$out/chatload-$run" --quiet
  requests=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["aggregate"]["counters"]["http.requests"])' "$out/chatload-$run/result.json")
  echo "chatload $run $requests $cpu" >>"$out/figures"

  measure wrk "$run" wrk -t1 -c"$connections" -d"${seconds}s" "$url"
  requests=$(awk '/requests in/ { print $1 }' "$out/wrk-$run.out")
  echo "wrk $run $requests $cpu" >>"$out/figures"

  measure oha "$run" "$oha" -z "${seconds}s" -c "$connections" --no-tui \
    --output-format json "$url"
  requests=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(d["statusCodeDistribution"].values()))' "$out/oha-$run.out")
  echo "oha $run $requests $cpu" >>"$out/figures"

  measure locust "$run" "$venv/bin/locust" -f "$out/locustfile.py" --headless \
    -u "$connections" -r "$connections" -t "${seconds}s" --host "${url%/}" \
    --csv "$out/locust-$run" --only-summary
  requests=$(python3 -c 'import csv,sys; print(next(r["Request Count"] for r in csv.DictReader(open(sys.argv[1])) if r["Name"] == "Aggregated"))' "$out/locust-${run}_stats.csv")
  echo "locust $run $requests $cpu" >>"$out/figures"
done

python3 - "$out/figures" "$seconds" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, _run, requests, cpu = line.split()
    rows.setdefault(name, []).append((int(requests), float(cpu)))
seconds = float(sys.argv[2])
print()
print("| generator | requests per CPU-second | requests/s | CPU-seconds per run |")
print("|---|---:|---:|---:|")
for name in ("chatload", "wrk", "oha", "locust"):
    runs = rows.get(name, [])
    if not runs:
        continue
    per_cpu = statistics.median(r / c for r, c in runs if c > 0)
    rate = statistics.median(r / seconds for r, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    print(f"| {name} | {per_cpu:,.0f} | {rate:,.0f} | {cpu:.2f} |")
PY
