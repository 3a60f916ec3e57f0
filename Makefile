# The README's two commands: `make demo` and `make test`. Both work on a fresh machine.
.PHONY: demo test setup check vet-go crds bench bench-compare images

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
	test -z "$$(gofmt -l tests/cluster)"

# go vet type-checks the whole Kubernetes dependency graph with build settings of its own:
# minutes on a cold cache, so it is not part of `check`.
vet-go:
	cd tests/cluster && GOTOOLCHAIN=local CGO_ENABLED=0 go vet -trimpath ./...

crds:
	cargo run --quiet -p rollgate-crds --bin crdgen

# Benchmarks print their figures. FLEET sets the fleet size (500 by default; 2000 to show scale).
FLEET ?= 500
TARGET := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
bench: setup
	cargo build --release --quiet -p rollgate-controller -p rollgate-bench
	$(TARGET)/release/revision_hash
	$(TARGET)/release/judge_throughput
	$(TARGET)/release/judge_simulation
	$(TARGET)/release/latency_simulation
	$(TARGET)/release/verify_latency
	$(TARGET)/release/grpc_watch
	$(TARGET)/release/audit_log
	ROLLGATE_CONTROLLER_BIN=$(TARGET)/release/rollgate-controller $(TARGET)/release/fleet $(FLEET)
	ROLLGATE_CONTROLLER_BIN=$(TARGET)/release/rollgate-controller $(TARGET)/release/breach_to_abort

# rollgate and Argo Rollouts side by side on the same fleet (fresh clusters, alternating, ROUNDS
# rounds), with the ratios against issue 17's targets. Builds Argo Rollouts ARGO_ROLLOUTS_VERSION
# from its Go module first (bench/argo/build.sh). Not in CI.
ROUNDS ?= 1
ARGO_ROLLOUTS_VERSION ?= v1.10.1
bench-compare: setup
	cargo build --release --quiet -p rollgate-controller -p rollgate-bench
	argo="$$(ARGO_ROLLOUTS_VERSION=$(ARGO_ROLLOUTS_VERSION) bash bench/argo/build.sh)" && \
	  ROLLGATE_CONTROLLER_BIN=$(TARGET)/release/rollgate-controller \
	  $(TARGET)/release/compare $(FLEET) --argo "$$argo" --rounds $(ROUNDS)

# rollgate's images (controller, analysis, demo-app, pause), built without a container engine,
# pushed to REGISTRY (host[:port][/prefix]; empty: a local registry started for the run),
# signed with COSIGN_KEY (empty: a key generated into target/images) and attested (SPDX SBOM,
# SLSA provenance). Prints the digests; writes target/images/values-images.yaml for the chart.
REGISTRY ?=
COSIGN_KEY ?=
images: setup
	bash scripts/images.sh $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(COSIGN_KEY),--key $(COSIGN_KEY))
