#!/usr/bin/env bash
# Installs everything rollgate's tests and demo need, on a fresh Debian machine or an old one:
# Debian packages (the CNCF distribution registry, the real node's runc and CNI plugins), the
# Go-built local cluster (which is also kubectl), the tools the tests run (Prometheus, cosign,
# grpcurl, helm, crane, containerd), and the Rust build.
# Idempotent: what is present and current is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOTOOLCHAIN=local CGO_ENABLED=0
export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
tools_dir="${ROLLGATE_TOOLS_DIR:-$PWD/target/tools}"

log() { printf '==> %s\n' "$*"; }

# --- Debian packages --------------------------------------------------------------------------
missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
# scripts/images.sh: jq writes the provenance, curl waits for its registry, the images carry
# Debian's CA bundle.
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
# The real node (`up --real-node`): runc, the CNI plugins, iptables and conntrack.
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
command -v conntrack >/dev/null || missing+=(conntrack)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- The local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok, kubectl) ---
binary="$tools_dir/rollgate-cluster"
newest_source=$(ls -t tests/cluster/*.go tests/cluster/go.mod tests/cluster/go.sum scripts/setup.sh | head -n 1)
if [ ! -x "$binary" ] || [ "$newest_source" -nt "$binary" ]; then
  log "building the local cluster binary (cold: ~10 min on 2 cores; cached: ~15 s)"
  mkdir -p "$tools_dir"
  start=$(date +%s)
  # The version the API server reports (helm checks charts' kubeVersion against it): the
  # Kubernetes module's, from go.mod; a module build would otherwise report v0.0.0-master.
  k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' tests/cluster/go.mod)
  k8s_minor=$(echo "$k8s_version" | cut -d. -f2)
  version_pkg=k8s.io/component-base/version
  version_flags="-X $version_pkg.gitVersion=$k8s_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$k8s_minor -X $version_pkg.gitTreeState=clean"
  (cd tests/cluster && go build -trimpath -ldflags "-s -w $version_flags" -o "$binary" .)
  log "built $binary in $(( $(date +%s) - start )) s"
fi
ln -sf rollgate-cluster "$tools_dir/kubectl"

# --- Client tools from their own Go modules (tests/tools/<tool>: go.mod pins the version) ----
# build_tool <name> <main package> [build tags]: builds tests/tools/<name> into
# $tools_dir/<name> when the binary is missing or older than the module's go.mod/go.sum.
build_tool() {
  local name=$1 package=$2 tags=${3:-} binary="$tools_dir/$1"
  local newest
  newest=$(ls -t "tests/tools/$name/go.mod" "tests/tools/$name/go.sum" | head -n 1)
  if [ ! -x "$binary" ] || [ "$newest" -nt "$binary" ]; then
    log "building $name (cold: minutes on 2 cores; cached: seconds)"
    start=$(date +%s)
    (cd "tests/tools/$name" && go build -trimpath -ldflags "-s -w" -tags "$tags" -o "$binary" "$package")
    log "built $binary in $(( $(date +%s) - start )) s"
  fi
}
build_tool cosign github.com/sigstore/cosign/v3/cmd/cosign
build_tool grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl
build_tool helm helm.sh/helm/v4/cmd/helm
build_tool crane github.com/google/go-containerregistry/cmd/crane
# Prometheus with Kubernetes service discovery (Debian's package has none), and no other
# discovery plugin than file and HTTP: the tags spare a cold build the cloud SDKs.
build_tool prometheus github.com/prometheus/prometheus/cmd/prometheus remove_all_sd,enable_kubernetes_sd

# --- The real node's runtime: containerd v2, its runc shim and ctr (tests/tools/containerd) ---
for tool in containerd containerd-shim-runc-v2 ctr; do
  binary="$tools_dir/$tool"
  newest=$(ls -t tests/tools/containerd/go.mod tests/tools/containerd/go.sum | head -n 1)
  if [ ! -x "$binary" ] || [ "$newest" -nt "$binary" ]; then
    log "building $tool (cold: about 2 min on 2 cores; cached: seconds)"
    start=$(date +%s)
    (cd tests/tools/containerd && go build -trimpath -tags no_btrfs -ldflags "-s -w" -o "$binary" "github.com/containerd/containerd/v2/cmd/$tool")
    log "built $binary in $(( $(date +%s) - start )) s"
  fi
done
# The real node's test workload (tests/cluster/probe, standard library only).
if [ ! -x "$tools_dir/rollgate-probe" ] || [ tests/cluster/probe/main.go -nt "$tools_dir/rollgate-probe" ]; then
  (cd tests/cluster && go build -trimpath -ldflags "-s -w" -o "$tools_dir/rollgate-probe" ./probe)
fi

# --- The Rust workspace -----------------------------------------------------------------------
log "building the Rust workspace"
start=$(date +%s)
cargo build --locked --workspace --all-targets --quiet
log "built the Rust workspace in $(( $(date +%s) - start )) s"
