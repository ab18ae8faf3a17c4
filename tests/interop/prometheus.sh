#!/usr/bin/env bash
# A real Prometheus scrapes a run of plans/basic.yml (about 25 s) through
# `run --metrics-listen`, and what its HTTP API answers must agree with the run's result.json:
#   - `promtool check metrics` accepts a mid-run scrape (Prometheus' own linter);
#   - sum(rate(chatload_messages_sent_total[10s])) at the end of the `hold` phase is within
#     20 % of the messages the result counts in those 10 s (steady closed-model load);
#   - histogram_quantile(0.99, sum by (le) (chatload_delivery_seconds_bucket)) over the whole
#     run is within 10 % (or 1 ms, whichever is larger) of result.json's delivery p99 (the
#     buckets are 5.9 % apart; see src/export/buckets.rs).
# Debian's `prometheus` package (which brings promtool) is installed when missing. Everything
# goes under target/ci-prometheus: the Prometheus config (free loopback ports), its data, logs.
#   tests/interop/prometheus.sh          (CHATLOAD=/path/to/chatload to use a built binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/interop/lib.sh
. tests/interop/lib.sh

fresh_out target/ci-prometheus

command -v python3 >/dev/null 2>&1 || apt_install --no-install-recommends python3
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  apt_install --no-install-recommends prometheus
fi

chatload_built

# Two free loopback ports (bound and released at once; nothing else here picks ports).
read -r metrics_port prom_port < <(free_ports 2)

# The shipped config's static job, aimed at this run (Debian builds Prometheus without the
# Kubernetes discovery, so the shipped file's pod job is checked by upstream promtool only).
cat > "$out/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: chatload
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YAML
promtool check config "$out/prometheus.yml" >/dev/null

echo "-- prometheus on 127.0.0.1:$prom_port, chatload metrics on 127.0.0.1:$metrics_port"
start_bg 150 "$out/prometheus.log" prometheus --config.file="$out/prometheus.yml" \
  --storage.tsdb.path="$out/data" --web.listen-address="127.0.0.1:$prom_port" --log.level=warn

start_bg 120 "$out/run.log" "$chatload_bin" run plans/basic.yml --out "$out/run" --quiet \
  --metrics-listen "127.0.0.1:$metrics_port"
run_pid=$bg_pid

# A scrape in the middle of the run, through Prometheus' own linter.
sleep 12
python3 - "$metrics_port" >"$out/scrape.txt" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode(), end="")
PY
promtool check metrics <"$out/scrape.txt"
echo "promtool check metrics: ok ($(wc -l <"$out/scrape.txt") lines)"

wait "$run_pid"
echo "-- run finished; asking Prometheus"
timeout 60 python3 - "$prom_port" "$out/run/result.json" <<'PY'
import json, sys, time, urllib.parse, urllib.request

port, result_path = sys.argv[1], sys.argv[2]
result = json.load(open(result_path))

def query(expr, at):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    for _ in range(30):
        body = json.load(urllib.request.urlopen(url, timeout=5))
        if body.get("status") == "success" and body["data"]["result"]:
            return float(body["data"]["result"][0]["value"][1])
        time.sleep(1)
    sys.exit(f"no answer from Prometheus for {expr} at {at}")

hold = next(p for p in result["phases"] if p["name"] == "hold")
run_start_ms = result["run"]["startedAtMs"]
hold_end_s = (run_start_ms + hold["endOffsetMs"]) / 1000
at = hold_end_s - 0.5
window_start_ms = (at - 10) * 1000
sent_in_window = sum(
    i["counters"]["messages.sent"] * max(0.0, min(i["endMs"], at * 1000) - max(i["startMs"], window_start_ms))
    / max(1, i["endMs"] - i["startMs"])
    for i in result["intermediate"]
)
expected_rate = sent_in_window / 10
rate = query("sum(rate(chatload_messages_sent_total[10s]))", at)
print(f"messages sent per second over the last 10 s of hold: Prometheus {rate:.2f}, result.json {expected_rate:.2f}")
if expected_rate <= 0 or abs(rate - expected_rate) > 0.2 * expected_rate:
    sys.exit("the rate Prometheus computed is not within 20 % of result.json's")

end_s = result["run"]["endedAtMs"] / 1000 + 2
p99 = query("histogram_quantile(0.99, sum by (le) (chatload_delivery_seconds_bucket))", end_s) * 1000
expected_p99 = result["aggregate"]["summaries"]["delivery"]["p99"]
count = query("sum(chatload_delivery_seconds_count)", end_s)
expected_count = result["aggregate"]["summaries"]["delivery"]["count"]
print(f"delivery p99: Prometheus {p99:.3f} ms, result.json {expected_p99:.3f} ms; count {count:.0f} vs {expected_count}")
if count != expected_count:
    sys.exit("the last scrape did not see every delivery")
if abs(p99 - expected_p99) > max(0.1 * expected_p99, 1.0):
    sys.exit("the p99 Prometheus estimated is not within 10 % (or 1 ms) of result.json's")
PY
echo "prometheus interop passed in $((SECONDS - start)) s"
