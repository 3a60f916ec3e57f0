#!/usr/bin/env bash
# Builds Argo Rollouts' controller from its Go module, for the side-by-side benchmark
# (`make bench-compare`): prints the path of the binary. The module's go.mod has replace
# directives, so `go install pkg@version` refuses it; the module is downloaded through the Go
# module proxy, copied, and built in place with its own go.mod and go.sum. Built once per
# version into the tools directory (target/tools, or ROLLGATE_TOOLS_DIR).
set -euo pipefail
version="${ARGO_ROLLOUTS_VERSION:-v1.10.1}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
tools="${ROLLGATE_TOOLS_DIR:-$root/target/tools}"
binary="$tools/argo-rollouts-controller-$version"
export GOTOOLCHAIN=local CGO_ENABLED=0 PATH="/usr/local/go/bin:$PATH"
if [[ ! -x "$binary" ]]; then
  module_dir="$(go mod download -json "github.com/argoproj/argo-rollouts@$version" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  source_dir="$tools/argo-rollouts-src-$version"
  if [[ ! -d "$source_dir" ]]; then
    mkdir -p "$tools"
    cp -r "$module_dir" "$source_dir.partial"
    chmod -R u+w "$source_dir.partial"
    mv "$source_dir.partial" "$source_dir"
  fi
  echo "building Argo Rollouts $version (a cold build takes several minutes)" >&2
  (cd "$source_dir" && go build -trimpath -ldflags "-s -w" -o "$binary.partial" ./cmd/rollouts-controller)
  mv "$binary.partial" "$binary"
fi
echo "$binary"
