#!/usr/bin/env bash
# Builds rollgate's images without a container engine or a base image, pushes them, signs them
# with cosign and attaches an SBOM and a SLSA provenance statement as in-toto attestations.
#
#   bash scripts/images.sh [--registry HOST[:PORT][/PREFIX]] [--key COSIGN_KEY] [--out DIR]
#                          [--images "pause controller ..."] [--insecure] [--no-sign]
#                          [--progress]
#
# Images (each `rollgate-<name>`): controller, analysis, demo-app, pause (the sandbox image of
# the real node). Each holds one binary in /usr/bin, Debian's CA bundle in /etc/ssl/certs,
# /etc/passwd and /etc/group naming the non-root user 65532, and nothing else: no shell. The
# binaries are x86_64-unknown-linux-gnu built with `+crt-static` (glibc linked statically); a
# binary that still has shared libraries gets them copied from this machine into the image.
#
# Reproducible: the layer is a GNU tar with sorted entries, uid/gid 0, mtime SOURCE_DATE_EPOCH
# (the commit's time) and no atime/ctime; crane gzips it deterministically and writes a config
# without timestamps; the binaries are built with --remap-path-prefix for every absolute path
# (workspace, cargo home, target dir, toolchain) and stripped. Two runs of the same commit give
# the same digests (tests/e2e/tests/e2e/images.rs checks it).
#
# Tools: crane (tests/tools/crane) assembles and pushes, cosign (tests/tools/cosign) signs and
# attests, both built by scripts/setup.sh into target/tools; cargo-sbom (installed here into
# target/tools/cargo-sbom with `cargo install --locked` when missing) writes the SPDX SBOM of
# each binary's crate from Cargo.lock.
#
# Registry: --registry or ROLLGATE_IMAGE_REGISTRY; when neither is given, a local registry
# (Debian's docker-registry) is started on 127.0.0.1 for the run, under the cluster binary's
# `supervise` (it stops with this script). Plain HTTP is used for loopback registries and
# with --insecure. Key: --key or COSIGN_KEY (its password in COSIGN_PASSWORD); when neither is
# given a key pair without password is generated into the output directory.
#
# --progress: cargo prints each crate it compiles (quiet otherwise), for callers that show the
# build as it goes (the demo).
#
# Output (--out, default target/images): digests.txt (`name repository@digest`),
# values-images.yaml (chart values pinning the images by digest), rollgate-pause.tar (the pause
# image as a tarball for `ctr -n k8s.io images import`, named rollgate.local/rollgate-pause:
# <version>), and per image its layer, SBOM and provenance.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

export GOTOOLCHAIN=local CGO_ENABLED=0
export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
# Only the flags set below reach the compiler (cargo prefers CARGO_ENCODED_RUSTFLAGS).
unset CARGO_ENCODED_RUSTFLAGS
tools_dir="${ROLLGATE_TOOLS_DIR:-$PWD/target/tools}"
log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'images.sh: %s\n' "$*" >&2; exit 1; }

registry="${ROLLGATE_IMAGE_REGISTRY:-}"
key="${COSIGN_KEY:-}"
out="$PWD/target/images"
images="controller analysis demo-app pause"
insecure=false
sign=true
cargo_quiet=(--quiet)
while (($#)); do
  case $1 in
    --registry) registry=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --insecure) insecure=true; shift ;;
    --no-sign) sign=false; shift ;;
    --progress) cargo_quiet=(); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

crane="$tools_dir/crane"
cosign="$tools_dir/cosign"
[ -x "$crane" ] || die "$crane is missing: run scripts/setup.sh"
if $sign; then [ -x "$cosign" ] || die "$cosign is missing: run scripts/setup.sh"; fi

# --- What is built ----------------------------------------------------------------------------
version=$(cargo metadata --no-deps --format-version 1 --locked |
  jq -r '.packages[] | select(.name == "rollgate-controller") | .version')
revision=$(git rev-parse HEAD)
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
source_url="https://github.com/rollgate/rollgate"
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
  log "warning: the worktree has uncommitted changes; revision $revision does not describe them"

# --- The binaries: static, stripped, with no absolute path of this machine ---------------------
triple=x86_64-unknown-linux-gnu
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
sysroot=$(rustc --print sysroot)
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
export RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols \
--remap-path-prefix=$PWD=/rollgate --remap-path-prefix=$cargo_home=/cargo \
--remap-path-prefix=$target_dir=/target --remap-path-prefix=$sysroot=/rustc"
packages=()
for name in $images; do packages+=(-p "rollgate-$name"); done
log "building ${packages[*]} (release, $triple, crt-static)"
start=$(date +%s)
started_on=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# --target keeps these flags off build scripts and proc-macros and the output in its own dir.
# The compilers see a fixed SOURCE_DATE_EPOCH: cc-rs reruns the build script of every crate that
# compiles C (ring, psm, ...) when it changes, and so every crate above them, and the commit
# time changes with each commit; the binaries embed no date either way. The layers below get the
# commit time.
SOURCE_DATE_EPOCH=0 cargo build --locked --release "${cargo_quiet[@]}" --target "$triple" "${packages[@]}"
log "built the binaries in $(($(date +%s) - start)) s"
bin_dir="$target_dir/$triple/release"

# --- The registry -----------------------------------------------------------------------------
registry_pid=""
cleanup() { [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "$registry" ]; then
  port=""
  for _ in $(seq 50); do
    candidate=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
  done
  [ -n "$port" ] || die "no free loopback port found"
  storage="$out/registry"
  mkdir -p "$storage"
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$storage/data" "$port" >"$storage/config.yml"
  "$tools_dir/rollgate-cluster" supervise -- docker-registry serve "$storage/config.yml" \
    >"$storage/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || die "the local registry did not start: $(cat "$storage/registry.log")"
  registry="127.0.0.1:$port"
  log "started a local registry at $registry (storage $storage/data)"
fi
case $registry in 127.* | localhost* | \[::1\]*) insecure=true ;; esac
crane_flags=()
cosign_flags=(--tlog-upload=false --use-signing-config=false --new-bundle-format=false --yes)
if $insecure; then
  crane_flags+=(--insecure)
  cosign_flags+=(--allow-insecure-registry --allow-http-registry)
fi

# --- Signing key and SBOM tool ----------------------------------------------------------------
if $sign; then
  if [ -z "$key" ]; then
    key="$out/cosign.key"
    if [ ! -e "$key" ]; then
      log "generating a cosign key pair (no password) in $out"
      (cd "$out" && COSIGN_PASSWORD="" "$cosign" generate-key-pair >/dev/null 2>&1)
    fi
    export COSIGN_PASSWORD=""
  fi
  export COSIGN_PASSWORD="${COSIGN_PASSWORD:-}"
  cargo_sbom="$tools_dir/cargo-sbom/bin/cargo-sbom"
  if [ ! -x "$cargo_sbom" ]; then
    log "installing cargo-sbom 0.10.0 into $tools_dir/cargo-sbom (about a minute)"
    # Without the images' RUSTFLAGS: crt-static would apply to its proc-macros too.
    env -u RUSTFLAGS cargo install --locked --quiet --root "$tools_dir/cargo-sbom" cargo-sbom@0.10.0
  fi
fi

# --- One image --------------------------------------------------------------------------------
# build_image NAME: stages the root filesystem, tars it reproducibly, assembles the image with
# crane and pushes it; prints the digest.
build_image() {
  local name=$1 binary="rollgate-$1" dir="$out/rollgate-$1"
  local root="$dir/rootfs"
  rm -rf "$dir" && mkdir -p "$dir"
  install -d -m 0755 "$root" "$root/etc" "$root/etc/ssl" "$root/etc/ssl/certs" "$root/usr" "$root/usr/bin"
  install -m 0755 "$bin_dir/$binary" "$root/usr/bin/$binary"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"
  # A binary that is not fully static gets its shared libraries (and the loader) from Debian.
  local lib
  for lib in $(ldd "$root/usr/bin/$binary" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    log "rollgate-$name: adding shared library $lib"
    install -D -m 0755 "$lib" "$root$lib"
  done
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$dir/layer.tar" etc usr
  local repository="$registry/rollgate-$name"
  "$crane" append "${crane_flags[@]}" --oci-empty-base -f "$dir/layer.tar" -t "$repository:$version" >/dev/null 2>>"$dir/crane.log"
  "$crane" mutate "${crane_flags[@]}" "$repository:$version" -t "$repository:$version" \
    --set-platform linux/amd64 --user 65532:65532 --workdir / \
    --entrypoint "/usr/bin/$binary" --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --label "org.opencontainers.image.source=$source_url" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.title=rollgate-$name" \
    --label "org.opencontainers.image.licenses=Apache-2.0" >/dev/null 2>>"$dir/crane.log"
  "$crane" digest "${crane_flags[@]}" "$repository:$version" 2>>"$dir/crane.log"
}

# provenance NAME DIR: the SLSA v1 provenance predicate of one image (cosign wraps it in an
# in-toto statement whose subject is the image digest).
provenance() {
  local name=$1 dir=$2
  jq -n --arg source "$source_url" --arg revision "$revision" --arg version "$version" \
    --arg image "rollgate-$name" --arg triple "$triple" --arg rustc "$(rustc -V)" \
    --arg epoch "$SOURCE_DATE_EPOCH" --arg started "$started_on" \
    --arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg lock "$(sha256sum Cargo.lock | cut -d' ' -f1)" \
    --arg ca_version "$(dpkg-query -W -f='${Version}' ca-certificates 2>/dev/null || echo unknown)" \
    --arg ca "$(sha256sum "$dir/rootfs/etc/ssl/certs/ca-certificates.crt" | cut -d' ' -f1)" \
    --arg binary "$(sha256sum "$dir/rootfs/usr/bin/rollgate-$name" | cut -d' ' -f1)" \
    --arg layer "$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)" \
    --arg crane "$("$crane" version)" '{
      buildDefinition: {
        buildType: ($source + "/scripts/images.sh@v1"),
        externalParameters: {source: $source, revision: $revision, image: $image, version: $version},
        internalParameters: {
          target: $triple, rustc: $rustc, sourceDateEpoch: $epoch,
          rustflags: "-C target-feature=+crt-static -C strip=symbols --remap-path-prefix=..."
        },
        resolvedDependencies: [
          {uri: ("git+" + $source + "@" + $revision), digest: {gitCommit: $revision}},
          {uri: "Cargo.lock", digest: {sha256: $lock}},
          {uri: ("pkg:deb/debian/ca-certificates@" + $ca_version), digest: {sha256: $ca}}
        ]
      },
      runDetails: {
        builder: {id: ($source + "/scripts/images.sh"), version: {crane: $crane}},
        metadata: {startedOn: $started, finishedOn: $finished},
        byproducts: [
          {name: ("/usr/bin/" + $image), digest: {sha256: $binary}},
          {name: "layer.tar", digest: {sha256: $layer}}
        ]
      }
    }'
}

# values_file: chart values pinning the controller and analysis images by digest.
values_file() {
  printf '# Written by scripts/images.sh for revision %s: the images by digest.\n' "$revision"
  local component
  for component in controller analysis; do
    local line
    line=$(grep "^rollgate-$component " "$out/digests.txt" | cut -d' ' -f2) || continue
    printf '%s:\n  image:\n    repository: %s\n    digest: %s\n' "$component" "${line%@*}" "${line#*@}"
  done
}

# attest NAME DIGEST: signs the image and attaches its SBOM and SLSA provenance.
attest() {
  local name=$1 digest=$2 dir="$out/rollgate-$1"
  local reference="$registry/rollgate-$name@$digest"
  "$cargo_sbom" sbom --cargo-package "rollgate-$name" --output-format spdx_json_2_3 >"$dir/sbom.spdx.json"
  provenance "$name" "$dir" >"$dir/provenance.json"
  local log="$dir/cosign.log"
  "$cosign" sign --key "$key" "${cosign_flags[@]}" "$reference" >>"$log" 2>&1 ||
    die "cosign sign $reference failed: $(tail -n 5 "$log")"
  "$cosign" attest --key "$key" "${cosign_flags[@]}" --type spdxjson \
    --predicate "$dir/sbom.spdx.json" "$reference" >>"$log" 2>&1 ||
    die "cosign attest (SBOM) of $reference failed: $(tail -n 5 "$log")"
  "$cosign" attest --key "$key" "${cosign_flags[@]}" --type slsaprovenance1 \
    --predicate "$dir/provenance.json" "$reference" >>"$log" 2>&1 ||
    die "cosign attest (provenance) of $reference failed: $(tail -n 5 "$log")"
}

: >"$out/digests.txt"
start=$(date +%s)
for name in $images; do
  digest=$(build_image "$name")
  if $sign; then attest "$name" "$digest"; fi
  size=$(stat -c %s "$out/rollgate-$name/layer.tar")
  printf '%s %s/rollgate-%s@%s\n' "rollgate-$name" "$registry" "$name" "$digest" | tee -a "$out/digests.txt"
  log "rollgate-$name: layer $((size / 1024)) KiB uncompressed"
  if [ "$name" = pause ]; then
    "$crane" mutate "${crane_flags[@]}" "$registry/rollgate-pause@$digest" \
      -t "rollgate.local/rollgate-pause:$version" -o "$out/rollgate-pause.tar" >/dev/null 2>>"$out/rollgate-pause/crane.log"
    log "rollgate-pause: wrote $out/rollgate-pause.tar (image rollgate.local/rollgate-pause:$version)"
  fi
done
log "assembled$($sign && echo ', signed and attested') in $(($(date +%s) - start)) s"

values_file >"$out/values-images.yaml"
log "chart values pinning these digests: $out/values-images.yaml (helm install -f it)"
