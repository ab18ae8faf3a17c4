#!/usr/bin/env bash
# Offline checks of deploy/kubernetes/ (no cluster needed, none is used):
# - every manifest against the Kubernetes API schemas (`kubernetes-validate --strict`, from
#   PyPI, in a venv under target/);
# - the Indexed Job is consistent: completionMode Indexed, completions = parallelism = the N
#   given to `--shards`, and the merge Job lists one result per shard;
# - the plan in the ConfigMap passes `chatload check --shards N` (each shard judged on its
#   share of the connections).
#
#   CHATLOAD=target/debug/chatload deploy/kubernetes/validate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CHATLOAD="${CHATLOAD:-target/debug/chatload}"
venv=target/ci-k8s-venv
work=target/k8s-validate
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  timeout 300 "$venv/bin/pip" install --quiet "kubernetes-validate>=1.31"
fi
rm -rf "$work"
mkdir -p "$work"
manifests=(deploy/kubernetes/*.yaml)
# envsubst placeholders are strings to the schema; substitute real-looking values anyway so
# what is validated is what `kubectl apply` would get.
for f in "${manifests[@]}"; do
  sed -e 's/\${RUN_ID}/chat-20261202-1000/g' -e 's/\${START_AT}/2026-12-02T10:00:00Z/g' \
    "$f" >"$work/$(basename "$f")"
done
timeout 120 "$venv/bin/kubernetes-validate" --strict --quiet "$work"/*.yaml
timeout 60 "$venv/bin/python" - "$work" <<'PY'
import sys, yaml
work = sys.argv[1]
def load(name): return yaml.safe_load(open(f"{work}/{name}"))
job = load("shards-job.yaml")["spec"]
args = job["template"]["spec"]["containers"][0]["args"]
n = int(args[args.index("--shards") + 1])
assert job["completionMode"] == "Indexed", "the shards Job must be Indexed"
assert job["completions"] == job["parallelism"] == n, \
    f"completions {job['completions']}, parallelism {job['parallelism']} and --shards {n} differ"
assert "--start-at" in args, "shards must start together (--start-at)"
merge = load("merge-job.yaml")["spec"]["template"]["spec"]["containers"][0]["args"]
pieces = [a for a in merge if a.endswith("/result.json")]
assert pieces == [f"/results/$(RUN_ID)/shard-{i}/result.json" for i in range(n)], \
    f"the merge Job must list shard-0..shard-{n - 1}: {pieces}"
open(f"{work}/plan.yml", "w").write(load("configmap.yaml")["data"]["plan.yml"])
print(f"kubernetes: {n} shards, manifests valid")
open(f"{work}/shards", "w").write(str(n))
PY
timeout 60 "$CHATLOAD" check --shards "$(cat "$work/shards")" "$work/plan.yml"
