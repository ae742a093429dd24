#!/usr/bin/env bash
# The llama.cpp source tree the from-source build uses, pinned by sha256.
#
#   scripts/llama-src.sh             print the path of the compat-ready tree
#   scripts/llama-src.sh --pristine  print the path of the unpatched tree
#   scripts/llama-src.sh --tarball   print the path of the verified npm tarball
#   scripts/llama-src.sh --info      print what is pinned (name=value lines)
#
# Ollama v0.34.4 fetches llama.cpp at LLAMA_CPP_VERSION (b11081) with CMake's
# FetchContent; no machine of this project reaches llama.cpp's repository.
# The npm package node-llama-cpp ships llama.cpp's source for offline builds
# as llama/gitRelease.bundle (a git bundle of one squashed commit). We pin
# node-llama-cpp 3.22.1, whose bundle is llama.cpp release v0.5.0 (tag in the
# package's llama/llama.cpp.info.json; the squashed commit's message is
# "llama.cpp : bump version to 0.5.0"; tree of 2026-09-28, ggml 0.25.1,
# GGML_BACKEND_API_VERSION 2). Neither bundle is b11081 itself (a squashed
# bundle has no build number). Why this one for v0.34.4 (tagged 2026-09-23):
# it is a tagged llama.cpp release, five days after the Ollama tag;
# v0.34.4's compat patch (llama/compat/001-llama-cpp-hooks.patch) applies to
# it without fuzz and the compat sources build against it; Ollama's Go side
# talks to llama-server over HTTP and opens ggml backends through the
# backend API, still version 2. node-llama-cpp 3.21.1 (tree of 2026-09-12,
# ggml 0.23.0) takes the patch too; it is not used: it is no tagged release
# we can name, and one tree for the build and the benchmarks is simpler.
#
# Caches (shared by every checkout on the machine, reused between CI runs):
#   $OBS_CACHE/npm/node-llama-cpp-<ver>.tgz        fetched with `npm pack`, sha256 checked
#   $OBS_CACHE/llama.cpp/<tag>-<commit12>/          the bundle's tree, read-only by convention
#   $OBS_CACHE/llama.cpp/<tag>-<commit12>+ollama-<pin>/  the same with the compat patch
#                                                   applied and committed (upstream's CMake
#                                                   then finds it "already applied" and
#                                                   leaves the tree alone)
# OBS_CACHE defaults to /var/cache/ollama-backend-select. OLLAMA_MODULE_DIR
# overrides the Ollama module folder (default: `go mod download` of the pin).
set -euo pipefail

NLC_VERSION=3.22.1
NLC_SHA256=a0d9dd80eacd2ab1cfe71aee57ac8a806487fd70b3d2a38fbec637752d9e5c5f
BUNDLE_SHA256=5f5d1105d5df040738d87b8290e5d17e7362131cdcfdb0831618e0ea528b4a51
LLAMA_COMMIT=de3ff815ea7d559ee917f063901b8986f038abc6
LLAMA_TAG=v0.5.0
GGML_VERSION=0.25.1
OLLAMA_PIN=v0.34.4

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${OBS_CACHE:-/var/cache/ollama-backend-select}
tgz=$CACHE/npm/node-llama-cpp-$NLC_VERSION.tgz
pristine=$CACHE/llama.cpp/$LLAMA_TAG-${LLAMA_COMMIT:0:12}
ready=$pristine+ollama-$OLLAMA_PIN

die() { echo "llama-src: $*" >&2; exit 1; }
log() { echo "llama-src: $*" >&2; }

mode=ready
case "${1:-}" in
	"") ;;
	--pristine) mode=pristine ;;
	--tarball) mode=tarball ;;
	--info)
		printf '%s\n' node_llama_cpp=$NLC_VERSION tgz_sha256=$NLC_SHA256 bundle_sha256=$BUNDLE_SHA256 \
			llama_cpp_tag=$LLAMA_TAG llama_cpp_commit=$LLAMA_COMMIT ggml=$GGML_VERSION ollama=$OLLAMA_PIN \
			tgz=$tgz pristine=$pristine ready=$ready
		exit 0 ;;
	-h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1 (--help)" ;;
esac

mkdir -p "$CACHE/npm" "$CACHE/llama.cpp"
exec 9>"$CACHE/llama.cpp/.lock"
flock 9

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# 1. the npm tarball
if ! sha_ok "$tgz" "$NLC_SHA256"; then
	command -v npm >/dev/null || die "npm is needed to fetch node-llama-cpp $NLC_VERSION (or place the tarball at $tgz)"
	tmp=$(mktemp -d "$CACHE/npm/.pack.XXXXXX")
	log "npm pack node-llama-cpp@$NLC_VERSION"
	(cd "$tmp" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null) || { rm -rf "$tmp"; die "npm pack failed"; }
	got=$(sha256sum "$tmp/node-llama-cpp-$NLC_VERSION.tgz" | cut -d' ' -f1)
	[ "$got" = "$NLC_SHA256" ] || { rm -rf "$tmp"; die "node-llama-cpp-$NLC_VERSION.tgz: sha256 $got, want $NLC_SHA256"; }
	mv "$tmp/node-llama-cpp-$NLC_VERSION.tgz" "$tgz"
	rm -rf "$tmp"
fi
[ "$mode" = tarball ] && { echo "$tgz"; exit 0; }

# 2. the pristine tree, from the bundle
if [ "$(git -C "$pristine" rev-parse HEAD 2>/dev/null)" != "$LLAMA_COMMIT" ]; then
	tmp=$(mktemp -d "$CACHE/llama.cpp/.tree.XXXXXX")
	tar -xzf "$tgz" -C "$tmp" package/llama/gitRelease.bundle
	sha_ok "$tmp/package/llama/gitRelease.bundle" "$BUNDLE_SHA256" || { rm -rf "$tmp"; die "gitRelease.bundle: sha256 mismatch"; }
	git -c advice.detachedHead=false clone -q "$tmp/package/llama/gitRelease.bundle" "$tmp/tree"
	[ "$(git -C "$tmp/tree" rev-parse HEAD)" = "$LLAMA_COMMIT" ] || { rm -rf "$tmp"; die "bundle HEAD is not $LLAMA_COMMIT"; }
	git -C "$tmp/tree" remote remove origin
	rm -rf "$pristine"
	mv "$tmp/tree" "$pristine"
	rm -rf "$tmp"
	log "llama.cpp $LLAMA_TAG ($LLAMA_COMMIT) in $pristine"
fi
[ "$mode" = pristine ] && { echo "$pristine"; exit 0; }

# 3. the compat-ready tree: v0.34.4's compat patch applied and committed
if [ "$(git -C "$ready" rev-parse HEAD^ 2>/dev/null)" != "$LLAMA_COMMIT" ] ||
	[ -n "$(git -C "$ready" status --porcelain 2>/dev/null)" ]; then
	mod=${OLLAMA_MODULE_DIR:-$(cd "$here/.." && go mod download -json "github.com/ollama/ollama@$OLLAMA_PIN" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')}
	patch=$mod/llama/compat/001-llama-cpp-hooks.patch
	[ -f "$patch" ] || die "no compat patch at $patch"
	tmp=$(mktemp -d "$CACHE/llama.cpp/.ready.XXXXXX")
	git -c advice.detachedHead=false clone -q --no-hardlinks "$pristine" "$tmp/tree"
	git -C "$tmp/tree" remote remove origin
	git -C "$tmp/tree" apply --whitespace=nowarn "$patch" || { rm -rf "$tmp"; die "compat patch does not apply"; }
	git -C "$tmp/tree" add -A
	git -C "$tmp/tree" -c user.name=llama-src -c user.email=llama-src@localhost \
		commit -q -m "Ollama $OLLAMA_PIN llama/compat/001-llama-cpp-hooks.patch"
	rm -rf "$ready"
	mv "$tmp/tree" "$ready"
	rm -rf "$tmp"
	log "compat-ready tree in $ready"
fi
echo "$ready"
