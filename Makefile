# The README's two commands: `make demo` and `make test`. Both work on a fresh machine.
.PHONY: demo test setup check crds bench

demo: setup
	bash scripts/demo.sh

test: setup check
	bash scripts/test.sh

setup:
	bash scripts/setup.sh

# Formatting, lints and generated files; fast, so it runs before the tests.
check:
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets --quiet -- -D warnings
	cd tests/cluster && GOTOOLCHAIN=local go vet ./... && test -z "$$(gofmt -l .)"

crds:
	cargo run --quiet -p rollgate-crds --bin crdgen

bench:
	cargo run --release --quiet -p rollgate-bench --bin revision_hash
