#!/usr/bin/env bash
# The README's first command, `make demo` (which runs `make setup` first): builds and runs the
# demo (demo/, the rollgate-demo binary). It installs rollgate as a platform team would, on a
# local cluster of its own with one real node: rollgate's images built here, pushed by digest
# and signed, the chart installed by Helm, controller and analysis service as real pods. Then it
# walks through a signed canary of real pods whose share of real requests follows the weight,
# an analysis and an approval gate, an automatic abort on an SLO breach, the refusal of an
# unsigned image, and the audit log verified against checkpoints published outside the cluster,
# saying at each stage what happens and why. The real node needs root.
#
# It pauses between stages when run in a terminal (`--non-interactive` runs straight through,
# as it does when stdin is not a terminal). It stops every process it started, and undoes the
# real node's changes to the host, when it ends, fails, or is interrupted with Ctrl-C.
# Arguments are passed on to rollgate-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# A debug build, like the rest of the workspace (`make setup` built it): quick to bring up to
# date. The demo builds the CLI the way the tests do, and rollgate's release images with
# scripts/images.sh (the first time takes minutes; it shows the build as it goes).
[ "$(id -u)" -eq 0 ] || { echo "make demo: the real node needs root" >&2; exit 1; }
cargo build --locked --quiet -p rollgate-demo
exec "${CARGO_TARGET_DIR:-$PWD/target}/debug/rollgate-demo" "$@"
