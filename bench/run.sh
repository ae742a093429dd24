#!/usr/bin/env bash
# bench/run.sh: prepare build/bench/bundle, everything bench/remote.sh needs
# on the GPU machine, within the 64 MiB that travels with one run.
#
#   bench/run.sh            then, on the GPU machine, from a copy of this tree
#                           with build/bench/bundle:  bash bench/remote.sh
#
# Inputs (built here if missing, with the repository's own targets):
#   dist/bin/ollama                     the fork          (make build)
#   dist/upstream/bin/ollama            pristine v0.18.2  (make build-upstream)
#   build/native/vulkan/lib/ollama/libggml-vulkan.so      (make vulkan)
#   build/ollama/ml/backend/ggml/ggml   GGML sources      (make src)
# Override with FORK_BIN, UPSTREAM_BIN, VULKAN_LIB, GGML_SRC.
#
# The bundle: both binaries stripped and xz'd; libggml-vulkan.so stripped
# and xz'd (built here in the trixie root: the GPU machine has no glslc);
# the GGML sources that CMakeLists.txt (-DOBS_CUDA=ON) needs for libggml-base.so
# and libggml-cuda.so (ggml-quants.c includes ggml-cpu/ headers) (built there: nvcc is there, and the 161 MB module
# would not travel); tinygguf, the model writer, built static here (no Go
# there); Debian's libvulkan1 and glvnd .debs (that machine has no Vulkan
# loader, and NVIDIA's ICD needs libGLdispatch).
# libggml-base.so is NOT taken from the trixie build: that copy needs
# GLIBC_2.43 (the root's glibc comes from sid), the GPU machine has 2.39.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${BENCH_BUNDLE:-build/bench/bundle}
FORK_BIN=${FORK_BIN:-dist/bin/ollama}
UPSTREAM_BIN=${UPSTREAM_BIN:-dist/upstream/bin/ollama}
VULKAN_LIB=${VULKAN_LIB:-build/native/vulkan/lib/ollama/libggml-vulkan.so}
GGML_SRC=${GGML_SRC:-build/ollama/ml/backend/ggml/ggml}
TARGET_GLIBC=${TARGET_GLIBC:-2.39}   # Ubuntu 24.04 on the GPU machine
LIMIT_MIB=${LIMIT_MIB:-60}

log() { printf '%s\n' "run.sh: $*"; }
die() { printf '%s\n' "run.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "needs $1"; }
need xz; need strip; need objdump; need go; need sha256sum; need tar

[ -d "$GGML_SRC/src/ggml-cuda" ] || make src
[ -x "$FORK_BIN" ] || make build
[ -x "$UPSTREAM_BIN" ] || make build-upstream
[ -f "$VULKAN_LIB" ] || make vulkan

# max GLIBC_x.y a file needs
glibc_need() { objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1; }
version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$B" && mkdir -p "$B"

# --- the two ollama binaries --------------------------------------------------
for pair in "fork:$FORK_BIN" "upstream:$UPSTREAM_BIN"; do
	name=${pair%%:*} bin=${pair#*:}
	strip -o "$tmp/ollama-$name" "$bin"
	g=$(glibc_need "$tmp/ollama-$name")
	version_le "$g" "$TARGET_GLIBC" || die "$bin needs GLIBC_$g > $TARGET_GLIBC"
	# the stripped binary still runs and serves
	"$tmp/ollama-$name" --version >/dev/null 2>&1 || die "stripped $bin does not run"
	port=$((20000 + RANDOM % 20000))
	OLLAMA_HOST=127.0.0.1:$port OLLAMA_MODELS=$tmp/models HOME=$tmp "$tmp/ollama-$name" serve >"$tmp/serve-$name.log" 2>&1 &
	spid=$!
	ok=
	for _ in $(seq 100); do
		if OLLAMA_HOST=127.0.0.1:$port "$tmp/ollama-$name" --version 2>/dev/null | grep -q 'ollama version is'; then ok=1; break; fi
		sleep 0.1
	done
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	[ -n "$ok" ] || { cat "$tmp/serve-$name.log" >&2; die "stripped $bin does not serve"; }
	v=$(OLLAMA_HOST=127.0.0.1:1 "$tmp/ollama-$name" --version 2>&1 | grep -o 'client version is .*' || true)
	xz -T0 -6 -c "$tmp/ollama-$name" >"$B/ollama-$name.xz"
	log "ollama-$name: $(stat -c %s "$bin") bytes -> stripped $(stat -c %s "$tmp/ollama-$name") -> xz $(stat -c %s "$B/ollama-$name.xz"); GLIBC_$g; $v"
done

# --- libggml-vulkan.so ----------------------------------------------------------
strip --strip-unneeded -o "$tmp/libggml-vulkan.so" "$VULKAN_LIB"
g=$(glibc_need "$tmp/libggml-vulkan.so")
version_le "$g" "$TARGET_GLIBC" || die "$VULKAN_LIB needs GLIBC_$g > $TARGET_GLIBC"
# a glslc without full GL_NV_cooperative_matrix2 support leaves *_cm2 shader
# symbols undefined (docs/native.md): refuse such a library
if nm -D --undefined-only "$tmp/libggml-vulkan.so" | grep -q '_cm2'; then
	die "$VULKAN_LIB has undefined coopmat2 shader symbols (glslc too old)"
fi
cm2=$(nm -D --defined-only "$tmp/libggml-vulkan.so" | grep -c '_cm2' || true)
xz -T0 -6 -c "$tmp/libggml-vulkan.so" >"$B/libggml-vulkan.so.xz"
vkbuild=$(dirname "$VULKAN_LIB")/../..
glslc_defs=$(grep -o 'GGML_VULKAN_[A-Z0-9_]*_GLSLC_SUPPORT' "$vkbuild/build.ninja" 2>/dev/null | sort -u | tr '\n' ' ' || true)
log "libggml-vulkan.so: $(stat -c %s "$VULKAN_LIB") bytes -> xz $(stat -c %s "$B/libggml-vulkan.so.xz"); GLIBC_$g; $cm2 coopmat2 symbols; $glslc_defs"

# --- GGML sources for the CUDA build ---------------------------------------------
tar -C "$(dirname "$GGML_SRC")" -cJf "$B/ggml-src.tar.xz" \
	--exclude='*.go' --exclude='*.m' --exclude='*.metal' \
	"$(basename "$GGML_SRC")/include" "$(basename "$GGML_SRC")/cmake" "$(basename "$GGML_SRC")/LICENSE" \
	"$(basename "$GGML_SRC")/src/CMakeLists.txt" "$(basename "$GGML_SRC")/src/ggml-cuda" "$(basename "$GGML_SRC")/src/ggml-cpu" \
	$(cd "$(dirname "$GGML_SRC")" && ls "$(basename "$GGML_SRC")"/src/*.{c,cpp,h} 2>/dev/null)
log "ggml-src.tar.xz: $(stat -c %s "$B/ggml-src.tar.xz") bytes"

# --- tinygguf ----------------------------------------------------------------------
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp/tinygguf" ./integration/cmd/tinygguf
xz -T0 -6 -c "$tmp/tinygguf" >"$B/tinygguf.xz"
log "tinygguf: static, xz $(stat -c %s "$B/tinygguf.xz") bytes"

# --- the Vulkan loader -------------------------------------------------------------
# libvulkan1, plus glvnd: NVIDIA's ICD (libGLX_nvidia.so.0) needs
# libGLdispatch.so.0, so without libglvnd0 the loader finds no driver.
LOADER_DEBS="libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libopengl0 libgles2"
mkdir -p "$tmp/debs"
for p in $LOADER_DEBS; do
	f=$(ls .gl/${p}_*_amd64.deb 2>/dev/null | head -1 || true)
	[ -n "$f" ] && cp "$f" "$tmp/debs/"
done
if [ "$(ls "$tmp/debs" | wc -l)" -lt "$(echo $LOADER_DEBS | wc -w)" ]; then
	need apt-get
	mkdir -p "$tmp/apt/partial"
	o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$tmp/apt"
	apt-get $o update >/dev/null
	(cd "$tmp/debs" && apt-get $o download $LOADER_DEBS >/dev/null 2>&1)
fi
cp "$tmp"/debs/*.deb "$B/"
log "Vulkan loader: $(cd "$B" && ls *.deb | tr '\n' ' ')"

# --- manifest ----------------------------------------------------------------------
{
	echo "# bench bundle, made $(date -u +%FT%TZ) on $(hostname) by bench/run.sh"
	echo "repo $(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!bench' ':!docs' 2>/dev/null || echo ' (dirty)')"
	echo "ggml-tree $(git -C "$(dirname "$GGML_SRC")/../../.." rev-parse HEAD 2>/dev/null || echo '?')"
	echo "vulkan-lib $VULKAN_LIB $(stat -c %y "$VULKAN_LIB")"
	for f in ollama-fork ollama-upstream libggml-vulkan.so tinygguf; do
		echo "sha256 $(sha256sum "$tmp/$f" | cut -d' ' -f1) $f"
	done
	echo "fork-bin $FORK_BIN $(stat -c %y "$FORK_BIN") $("$tmp/ollama-fork" --version 2>&1 | grep -o 'client version is .*' || true)"
	echo "upstream-bin $UPSTREAM_BIN $(stat -c %y "$UPSTREAM_BIN")"
	for f in "$B"/*; do
		[ "$(basename "$f")" = MANIFEST ] || echo "bundle $(sha256sum "$f" | cut -d' ' -f1) $(basename "$f")"
	done
} >"$B/MANIFEST"

total=$(du -cb "$B"/* | tail -1 | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
sum=$((total + tree + ${untracked:-0}))
log "bundle $B: $((total / 1024 / 1024)) MiB; with the working tree $((sum / 1024 / 1024)) MiB (limit 64 MiB)"
[ $((sum / 1024 / 1024)) -lt "$LIMIT_MIB" ] || die "too large to travel"
cat <<EOF

Bundle ready. On the GPU machine, from this tree with $B beside it:
    bash bench/remote.sh                  # everything (run 3 of docs/benchmarks.md took 489 s)
In this workplace, through the device tool (10 minutes a command):
    run  command='BENCH_BUDGET_S=545 bash bench/remote.sh all'  carry=["$B"]  kind=nvidia-h100-x1
or, split in two calls on one warm machine:
    run  command='bash bench/remote.sh setup bandwidth check perf report'  carry=["$B"]
    run  command='bash bench/remote.sh setup startup idle vkdiag report'   carry=["$B"]
docs/benchmarks.md lists the exact commands behind its numbers.
EOF
