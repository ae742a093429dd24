#!/usr/bin/env bash
# Build llama-server and the ggml backends the fork ships from source, in
# build roots this machine makes itself, and install them in one layout.
#
#   scripts/native.sh LAYOUT "LIBS"     LAYOUT: subdir | flat; LIBS: any of vulkan hip
#
# The top-level CMakeLists.txt drives upstream's llama/server CMake of the
# pinned Ollama module with the llama.cpp tree of scripts/llama-src.sh. One
# CMake build per build root: native-vulkan builds the base (llama-server,
# libggml-base, libggml, libllama, libmtmd, the CPU backend, libggml-rpc and
# ggml-rpc-server, both in lib/ollama in either layout) and ggml-vulkan;
# native-rocm builds ggml-hip for OBS_HIP_TARGETS (default gfx1200;gfx1201),
# and the base too when LIBS has no vulkan. Build folders build/native/<root>;
# the install is dist/native/<LAYOUT>/lib/ollama. ccache lives in
# /var/cache/ollama-backend-select/ccache (OBS_CCACHE_DIR), shared by every
# checkout and CI run on the machine.
#
# Environment: NATIVE_JOBS (default 2), NATIVE_NICE (default 10), OBS_CPU
# (generic | all, default generic), OBS_HIP_TARGETS, NATIVE_CMAKE_ARGS.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd -P)
layout=${1:-subdir}
libs=${2:-vulkan}
case "$layout" in subdir|flat) ;; *) echo "native: LAYOUT=$layout: subdir or flat" >&2; exit 2 ;; esac
for l in $libs; do case "$l" in vulkan|hip) ;; *) echo "native: LIBS: $l is not vulkan or hip" >&2; exit 2 ;; esac; done

jobs=${NATIVE_JOBS:-2}
nice=${NATIVE_NICE:-10}
ccache_dir=${OBS_CCACHE_DIR:-/var/cache/ollama-backend-select/ccache}
prefix=$repo/dist/native/$layout

tree=$("$here/llama-src.sh")
mod=$(cd "$repo" && go mod download -json github.com/ollama/ollama | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$mod/llama/server" ] || { echo "native: no Ollama module folder" >&2; exit 1; }

has() { case " $libs " in *" $1 "*) return 0 ;; esac; return 1; }
parts=()   # "root base(ON/OFF) libs"
if has vulkan || ! has hip; then
	parts+=("native-vulkan ON $(has vulkan && echo vulkan)")
	has hip && parts+=("native-rocm OFF hip")
else
	parts+=("native-rocm ON hip")
fi

# One build folder per root serves both layouts (the layout is only the
# install's): runs for two layouts at once wait for each other.
mkdir -p "$repo/build/native"
exec 8>"$repo/build/native/.lock"
flock 8
rm -rf "$prefix"
for p in "${parts[@]}"; do
	read -r root base plibs <<<"$p"
	t0=$(date +%s)
	"$here/buildroot.sh" "$root" >/dev/null
	bdir=$repo/build/native/$root
	args=(-S "$repo" -B "$bdir" -G Ninja -Wno-dev
		-DOLLAMA_SRC="$mod" -DLLAMA_CPP_SRC="$tree"
		-DOBS_BASE="$base" -DOBS_LIBS="${plibs:-}" -DOBS_LAYOUT="$layout"
		-DOBS_CPU="${OBS_CPU:-generic}" -DCMAKE_INSTALL_PREFIX="$prefix"
		-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
	if [ "$root" = native-rocm ]; then
		# Debian's HIP compiler is its LLVM clang (hipcc wraps it)
		hipcxx=$("$here/inroot.sh" "$root" sh -c 'ls -d /usr/lib/llvm-*/bin/clang++ | sort -V | tail -n1')
		args+=(-DCMAKE_HIP_COMPILER="$hipcxx" -DCMAKE_HIP_COMPILER_LAUNCHER=ccache)
	fi
	[ -n "${OBS_HIP_TARGETS:-}" ] && args+=(-DOBS_HIP_TARGETS="$OBS_HIP_TARGETS")
	# shellcheck disable=SC2206
	args+=(${NATIVE_CMAKE_ARGS:-})
	run() {
		OLLAMA_SRC=$mod OBS_BIND="$tree $(dirname "$tree")" "$here/inroot.sh" "$root" \
			env CCACHE_DIR="$ccache_dir" CCACHE_BASEDIR="$repo" CCACHE_COMPILERCHECK=content \
			CCACHE_MAXSIZE=8G nice -n "$nice" "$@"
	}
	echo "native: $root: configure (base=$base libs=${plibs:-none} layout=$layout)"
	run cmake "${args[@]}" >"$repo/build/native-$root-configure.log" 2>&1 ||
		{ tail -40 "$repo/build/native-$root-configure.log"; exit 1; }
	echo "native: $root: build (-j$jobs)"
	run cmake --build "$bdir" --target obs-ship -j "$jobs"
	run cmake --install "$bdir" --component obs
	run ccache -s 2>/dev/null | grep -E '^[[:space:]]*(Hits|Misses):' | head -2 | sed "s/^/native: $root: ccache: /" || true
	echo "native: $root done in $(( $(date +%s) - t0 )) s"
done
echo "native: installed ($layout) in $prefix/lib/ollama:"
(cd "$prefix/lib/ollama" && find . -type f -o -type l | sort | sed 's/^/  /')
