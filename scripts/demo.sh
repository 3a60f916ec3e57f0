#!/usr/bin/env bash
# The README's first command, `make demo` (which runs `make setup` first): builds and runs the
# demo (demo/, the rollgate-demo binary). It starts a local cluster of its own with Prometheus,
# an OCI registry, the analysis service and the controller (image verification enforced), then
# walks through a signed canary with analysis and an approval gate, an automatic abort, the
# refusal of an unsigned image, and the audit trail, saying at each stage what happens and why.
#
# It pauses between stages when run in a terminal (`--non-interactive` runs straight through,
# as it does when stdin is not a terminal). It stops every process it started when it ends,
# fails, or is interrupted with Ctrl-C. Arguments are passed on to rollgate-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# A debug build, like the rest of the workspace (`make setup` built it): quick to bring up to
# date. The demo builds the binaries it runs (controller, analysis service, demo app, CLI) the
# same way the tests do, one package at a time.
cargo build --locked --quiet -p rollgate-demo
exec "${CARGO_TARGET_DIR:-$PWD/target}/debug/rollgate-demo" "$@"
