#!/usr/bin/env bash
# The live dashboard in a real browser: a run of plans/basic.yml with `--dashboard`, headless
# Chromium opens the page mid-run, and
#   - the page script ran and drew the report's charts from the event stream (the DOM has the
#     run's phase and SVG charts, not the "waiting" placeholder);
#   - the browser logged no console error and no uncaught exception;
#   - a screenshot is taken and is not blank (scripts/report-screenshot.sh's check).
# Writes under target/ci-dashboard (dashboard.png there; docs/dashboard.png is a copy of one).
#   tests/interop/dashboard.sh          (CHATLOAD=/path/to/chatload to use a built binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/interop/lib.sh
. tests/interop/lib.sh

fresh_out target/ci-dashboard

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  apt_install chromium
  browser=chromium
fi

chatload_built

port=$(free_ports 1)
start_bg 120 "$out/run.log" "$chatload_bin" run plans/basic.yml --out "$out/run" --quiet \
  --dashboard "127.0.0.1:$port"
run_pid=$bg_pid
sleep 10

profile=$(mktemp -d)
cleanup_paths+=("$profile")
chrome() {
  timeout 60 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --window-size=1280,2000 \
    --enable-logging=stderr --v=0 "$@" "http://127.0.0.1:$port/"
}
chrome --dump-dom >"$out/dom.html" 2>"$out/console.log" || true
chrome --screenshot="$PWD/$out/dashboard.png" >/dev/null 2>>"$out/console.log" || true

# The page logs nothing when all is well, and Chromium logs every console message and uncaught
# exception as `...:CONSOLE:...` on stderr: any such line fails the check.
if grep -E ':CONSOLE[:(]|Uncaught' "$out/console.log" >"$out/errors.log"; then
  echo "the page logged errors:" >&2
  cat "$out/errors.log" >&2
  exit 1
fi
grep -q '<svg' "$out/dom.html" || { echo "no chart in the page's DOM ($out/dom.html)" >&2; exit 1; }
grep -q 'id="phase">[^<–]' "$out/dom.html" || { echo "the page shows no phase" >&2; exit 1; }
if grep -q 'waiting for the first interval' "$out/dom.html"; then
  echo "the page never received an interval" >&2
  exit 1
fi
echo "dashboard DOM: charts and run state present; no console errors"

# The screenshot must not be blank: reuse the report screenshot's PNG check.
python3 - "$out/dashboard.png" <<'PY'
import os, sys
path = sys.argv[1]
if not os.path.exists(path) or os.path.getsize(path) < 10_000:
    sys.exit(f"screenshot missing or tiny: {path}")
print(f"screenshot ok: {path} ({os.path.getsize(path) // 1024} KiB)")
PY

wait "$run_pid"
echo "dashboard check passed in $((SECONDS - start)) s"
