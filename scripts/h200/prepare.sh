#!/usr/bin/env bash
# Issue 21, on this machine: everything the GPU machine needs, in
# $CARRY (default <checkout>/.devcarry, ignored): both Ollama binaries
# (make build build-upstream; stripped, xz), the Go harness as a test
# binary, the llama.cpp tree (node-llama-cpp's bundle, without models,
# docs and tests), v0.34.4's llama/server CMake, and Debian sid's glslc,
# Vulkan headers/loader, SPIRV-Headers and glvnd as .debs ($DEBS, from
# `apt-get download` against a sid source list).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# The device tool sends the main checkout: carry into it from a worktree.
main=$(git -C "$root" worktree list --porcelain | sed -n "1s/^worktree //p")
CARRY=${CARRY:-$main/.devcarry}
BUNDLE=${BUNDLE:-/var/cache/obs-npm/package/llama/gitRelease.bundle}
DEBS=${DEBS:?folder of the sid .debs}
mkdir -p "$CARRY/debs"
cd "$root"
for side in fork:dist/bin/ollama pristine:dist/upstream/bin/ollama; do
	strip -o "$CARRY/tmp-ollama" "${side#*:}"
	xz -T2 -6 -c "$CARRY/tmp-ollama" >"$CARRY/ollama-${side%%:*}.xz"
	rm "$CARRY/tmp-ollama"
done
CGO_ENABLED=0 go test -c -tags integration -trimpath -ldflags='-s -w' -o "$CARRY/h200.test" ./integration/
xz -T2 -6 -f "$CARRY/h200.test"
if [ ! -s "$CARRY/llama-src.tar.xz" ]; then
	tmp=$(mktemp -d)
	git clone -q "$BUNDLE" "$tmp/llama.cpp"
	git -C "$tmp/llama.cpp" archive --format=tar HEAD -- . ':!models' ':!docs' ':!media' ':!benches' \
		':!gguf-py' ':!tools/ui/src' ':!tools/ui/tests' ':!tests' | xz -T2 -6 >"$CARRY/llama-src.tar.xz"
	rm -rf "$tmp"
fi
mod=$(go mod download -json github.com/ollama/ollama@"$(go list -m -f '{{.Version}}' github.com/ollama/ollama)" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
tar -C "$mod" -cJf "$CARRY/ollama-cmake.tar.xz" --owner=0 --group=0 --mode=u+w llama LLAMA_CPP_VERSION cmake/apply-git-patches.cmake
cp "$DEBS"/*.deb "$CARRY/debs/"
cp scripts/h200/build-llama-server.sh scripts/h200/run.sh "$CARRY/"
du -sh "$CARRY"
ls -la "$CARRY"
