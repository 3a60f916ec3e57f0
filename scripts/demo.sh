#!/usr/bin/env bash
# Brings up the local cluster with rollgate's CRDs installed, applies a demo Rollout and prints
# how to use the cluster. Stops everything on Ctrl-C (or at once with DEMO_EXIT=1).
set -euo pipefail
cd "$(dirname "$0")/.."

tools_dir="${ROLLGATE_TOOLS_DIR:-$PWD/target/tools}"
demo_dir="$PWD/target/demo"
rm -rf "$demo_dir" && mkdir -p "$demo_dir"
kubectl=("$tools_dir/kubectl" --kubeconfig "$demo_dir/cluster/kubeconfig")

"$tools_dir/rollgate-cluster" up --dir "$demo_dir/cluster" >"$demo_dir/up.out" 2>"$demo_dir/up.log" &
cluster_pid=$!
stop() {
  kill -TERM "$cluster_pid" 2>/dev/null || true
  wait "$cluster_pid" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "==> starting the local Kubernetes cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)"
for _ in $(seq 1 1800); do
  grep -q "rollgate-cluster ready" "$demo_dir/up.out" 2>/dev/null && break
  kill -0 "$cluster_pid" 2>/dev/null || { cat "$demo_dir/up.log"; exit 1; }
  sleep 0.1
done
grep "rollgate-cluster ready" "$demo_dir/up.out" || { echo "the cluster did not start"; exit 1; }

echo "==> installing rollgate's CRDs"
"${kubectl[@]}" apply --server-side -f crds/yaml/ >/dev/null
# `kubectl wait` fails at once while a new CRD has no conditions yet: retry it.
for _ in $(seq 1 100); do
  "${kubectl[@]}" wait --for=condition=Established --timeout=10s -f crds/yaml/ >/dev/null 2>&1 && break
  sleep 0.2
done
"${kubectl[@]}" get nodes

echo "==> a valid Rollout is accepted"
"${kubectl[@]}" apply --server-side -f tests/fixtures/demo/canary-rollout.yaml
"${kubectl[@]}" get rollouts -o wide

echo "==> an invalid one is refused by the API server, naming the field"
sed 's/setWeight: 20/setWeight: 120/' tests/fixtures/demo/canary-rollout.yaml \
  | "${kubectl[@]}" apply --server-side -f - || true

cat <<USAGE

The cluster is up. In another terminal:
  export KUBECONFIG=$demo_dir/cluster/kubeconfig
  $tools_dir/kubectl get rollouts
  $tools_dir/kubectl explain rollout.spec.strategy.canary
Component logs: $demo_dir/cluster/logs/
(The controller that walks Rollouts through their steps is not part of this build yet.)
USAGE

if [ "${DEMO_EXIT:-0}" = 1 ]; then
  exit 0
fi
echo "Press Ctrl-C to stop the cluster."
wait "$cluster_pid"
