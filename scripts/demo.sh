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

echo "==> starting the rollgate controller"
# This demo's images are fake digests that no registry holds, so the controller keeps only the
# digest rule here (--image-verification=off); signature verification is shown by the tests.
controller="${CARGO_TARGET_DIR:-$PWD/target}/debug/rollgate-controller"
KUBECONFIG="$demo_dir/cluster/kubeconfig" ROLLGATE_ADMIN_ADDR=127.0.0.1:0 ROLLGATE_LEADER_ELECTION=false \
  ROLLGATE_IMAGE_VERIFICATION=off ROLLGATE_GRPC_ADDR=127.0.0.1:0 \
  "$controller" >"$demo_dir/controller.log" 2>&1 &
controller_pid=$!
stop_controller() { kill -TERM "$controller_pid" 2>/dev/null || true; wait "$controller_pid" 2>/dev/null || true; stop; }
trap stop_controller EXIT

rollouts() { "${kubectl[@]}" get rollouts; }
wait_phase() { # phase step
  for _ in $(seq 1 300); do
    [ "$("${kubectl[@]}" get rollout checkout -o jsonpath='{.status.phase}/{.status.currentStepIndex}')" = "$1/$2" ] && return 0
    sleep 0.2
  done
  echo "timed out waiting for $1 at step $2"; rollouts; return 1
}

echo "==> a Rollout with a 4-step canary: its first revision becomes stable at once"
"${kubectl[@]}" apply --server-side -f tests/fixtures/demo/canary-rollout.yaml
wait_phase Healthy 4 && rollouts

echo "==> an invalid spec is refused by the API server, naming the field"
sed 's/setWeight: 20/setWeight: 120/' tests/fixtures/demo/canary-rollout.yaml \
  | "${kubectl[@]}" apply --server-side -f - || true

echo "==> a new digest: 20% of the pods, a 5 s pause, then 60%, then a pause until promoted"
"${kubectl[@]}" patch rollout checkout --type=merge -p \
  '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/checkout@sha256:2222222222222222222222222222222222222222222222222222222222222222"}]}}}}'
wait_phase Paused 1 && rollouts && "${kubectl[@]}" get replicasets
wait_phase Paused 3 && rollouts && "${kubectl[@]}" get replicasets

echo "==> promote (an intent in the status subresource, so GitOps never undoes it)"
"${kubectl[@]}" patch rollout checkout --subresource=status --type=merge -p \
  '{"status":{"userAction":{"id":"demo-promote","action":"Promote","by":"demo","time":"2026-01-01T00:00:00Z"}}}'
wait_phase Healthy 4 && rollouts && "${kubectl[@]}" get replicasets

echo "==> a tag instead of a digest is refused before anything is created"
"${kubectl[@]}" patch rollout checkout --type=merge -p \
  '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/checkout:latest"}]}}}}'
for _ in $(seq 1 100); do
  [ "$("${kubectl[@]}" get rollout checkout -o jsonpath='{.status.phase}')" = Degraded ] && break
  sleep 0.2
done
"${kubectl[@]}" get rollout checkout -o jsonpath='{.status.message}{"\n"}'

cat <<USAGE

The cluster and the controller are up. In another terminal:
  export KUBECONFIG=$demo_dir/cluster/kubeconfig
  $tools_dir/kubectl get rollouts
  $tools_dir/kubectl explain rollout.spec.strategy.canary
Logs: $demo_dir/cluster/logs/ and $demo_dir/controller.log
(Analysis, signature verification and approvals come with the next issues.)
USAGE

if [ "${DEMO_EXIT:-0}" = 1 ]; then
  exit 0
fi
echo "Press Ctrl-C to stop the cluster."
wait "$cluster_pid"
