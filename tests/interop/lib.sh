# What the interop scripts under tests/interop/ share; sourced, never run on its own:
#   set -euo pipefail
#   cd "$(dirname "$0")/../.."
#   . tests/interop/lib.sh
# Sourcing it starts the clock ($start) and sets an EXIT trap that ends only the background
# processes the script itself started (the PIDs in $pids) and removes the paths listed in
# $cleanup_paths. Every command below runs under `timeout`, without stdin, on loopback only.
# shellcheck shell=bash disable=SC2034  # $start, $out, $port... are read by the sourcing script

start=$SECONDS

pids=()
cleanup_paths=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ ${#cleanup_paths[@]} -gt 0 ]; then
    rm -rf "${cleanup_paths[@]}"
  fi
}
trap cleanup EXIT

# fresh_out DIR: the script's output directory (under target/), emptied; its path in $out.
fresh_out() {
  out=$1
  rm -rf "$out"
  mkdir -p "$out"
}

# apt_install [APT-GET OPTION...] PACKAGE...: for a fresh Debian machine that lacks a tool
# (sudo when not root). With policy-rc.d or no init system the packages' own services are not
# started: only the processes the scripts start run.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "need the Debian packages: $*" >&2; exit 1; }
  local sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing $* (apt-get)" >&2
  timeout 300 $sudo_cmd apt-get update -qq >&2 </dev/null
  DEBIAN_FRONTEND=noninteractive timeout 600 $sudo_cmd apt-get install -y -qq "$@" >&2 </dev/null
}

# chatload ARG...: the binary in $CHATLOAD, else `cargo run` (a debug build), without stdin.
chatload() {
  if [ -n "${CHATLOAD:-}" ]; then
    timeout 120 "$CHATLOAD" "$@" </dev/null
  else
    timeout 900 cargo run --quiet -- "$@" </dev/null
  fi
}

# chatload_built: the path of a chatload binary in $chatload_bin: $CHATLOAD, else a debug build.
chatload_built() {
  if [ -n "${CHATLOAD:-}" ]; then
    chatload_bin=$CHATLOAD
  else
    timeout 900 cargo build --quiet
    chatload_bin="${CARGO_TARGET_DIR:-target}/debug/chatload"
  fi
}

# free_ports [N]: prints N (default 1) distinct free loopback ports, bound by the kernel at once
# and released. Another process could take one before its user binds it.
free_ports() {
  timeout 10 python3 - "${1:-1}" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
}

# start_bg SECONDS LOG COMMAND...: COMMAND in the background under `timeout SECONDS`, without
# stdin, stdout and stderr to LOG. Its PID goes to $bg_pid and $pids (killed on exit).
# Call it directly, not in $(...), so that the process is this shell's child.
start_bg() {
  local limit=$1 log=$2
  shift 2
  timeout "$limit" "$@" </dev/null >"$log" 2>&1 &
  bg_pid=$!
  pids+=("$bg_pid")
}

# start_server NAME COMMAND...: runs a server (bounded: 300 s) with `--port-file $out/NAME.port`
# appended, its output in $out/NAME.log; waits up to 10 s for it to write the loopback port it
# listens on to that file, and leaves the port in $port.
start_server() {
  local name=$1
  shift
  start_bg 300 "$out/$name.log" "$@" --port-file "$out/$name.port"
  local pid=$bg_pid
  for _ in $(seq 100); do
    [ -s "$out/$name.port" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before listening:" >&2
      cat "$out/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -s "$out/$name.port" ] || { echo "$name did not listen within 10s" >&2; cat "$out/$name.log" >&2; exit 1; }
  port=$(cat "$out/$name.port")
  echo "$name: 127.0.0.1:$port"
}
