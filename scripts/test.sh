#!/usr/bin/env bash
# Runs every test of the workspace (unit, generated-file and end-to-end tests on the local
# cluster) and ends with one line totalling all test binaries: `tests: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ {
  for (i = 1; i <= NF; i++) {
    if ($(i) ~ /^passed/) passed += $(i - 1)
    if ($(i) ~ /^failed/) failed += $(i - 1)
    if ($(i) ~ /^ignored/) ignored += $(i - 1)
  }
}
END { printf "\ntests: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
exit "$status"
