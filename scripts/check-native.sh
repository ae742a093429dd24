#!/bin/bash
# Check the native GGML libraries: do they load, and what GPU code is in them.
#
#   scripts/check-native.sh vulkan [BUILD_DIR]   default build/native/vulkan
#   scripts/check-native.sh hip    [BUILD_DIR]   default build/native/hip
#   scripts/check-native.sh prefix PREFIX        an installed tree (make install)
#   scripts/check-native.sh [all]                vulkan, and hip if it was built
#
# Libraries are checked inside the root they were built in (vulkan: trixie,
# hip: sid), since they need that root's glibc/libstdc++ at run time:
#   1. `ldd -r` of the module: every DT_NEEDED found (through the module's own
#      RUNPATH, LD_LIBRARY_PATH unset) and no undefined symbol;
#   2. obs-loadcheck: dlopen(RTLD_NOW) next to libggml-base, as ollama does,
#      then ggml_backend_init() and the device list (Vulkan: lavapipe is
#      offered through GGML_VK_VISIBLE_DEVICES=0 when no GPU shows up; HIP
#      without /dev/kfd reports 0 devices, which passes);
#   3. hip: the gfx code objects bundled in libggml-hip.so, listed with the sid
#      root's clang-offload-bundler; with EXPECT_GFX="gfx1200 ..." each must be
#      present.
# Exits non-zero on the first library that fails.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
inroot=$here/inroot.sh
NATIVE_DIR=${NATIVE_DIR:-$repo/build/native}

die() { echo "check-native: FAIL: $*" >&2; exit 1; }
say() { echo "check-native: $*"; }

abs() { (cd "$1" && pwd); }

# lddcheck ROOT LIB: no "not found", no "undefined symbol"
lddcheck() {
	local root=$1 lib=$2 out
	out=$(env -u LD_LIBRARY_PATH "$inroot" "$root" ldd -r "$lib" 2>&1) || { echo "$out" >&2; die "ldd -r $lib"; }
	if grep -E 'not found|undefined symbol' <<<"$out" >&2; then
		die "$lib has unresolved dependencies or symbols (ldd -r, in the $root root)"
	fi
	say "ldd -r ok ($root root): $lib -> $(grep -o 'libggml-base[^ ]* => [^ ]*' <<<"$out" | head -n1)"
}

loadcheck_bin() { # BUILD_DIR
	local b=$1/bin/obs-loadcheck
	[ -x "$b" ] || die "$b missing (build the obs-loadcheck target)"
	echo "$b"
}

check_vulkan_lib() { # LIB LOADCHECK
	local lib=$1 lc=$2 out
	lddcheck trixie "$lib"
	out=$("$inroot" trixie "$lc" --init "$lib" 2>&1) || { echo "$out" >&2; die "obs-loadcheck $lib"; }
	echo "$out"
	if grep -q '0 device(s)' <<<"$out" && [ -z "${GGML_VK_VISIBLE_DEVICES:-}" ]; then
		say "no Vulkan GPU; retrying with GGML_VK_VISIBLE_DEVICES=0 (lavapipe)"
		GGML_VK_VISIBLE_DEVICES=0 "$inroot" trixie "$lc" --init "$lib" ||
			die "Vulkan init on lavapipe: $lib"
	fi
}

list_gfx() { # LIB -> one "hipv4-amdgcn-amd-amdhsa--gfxNNN" line per code object
	local lib=$1
	"$inroot" sid sh -ec '
		lib=$1
		bundler=$(command -v clang-offload-bundler || ls /usr/lib/llvm-*/bin/clang-offload-bundler 2>/dev/null | sort -V | tail -n1)
		objcopy=$(command -v llvm-objcopy || ls /usr/lib/llvm-*/bin/llvm-objcopy 2>/dev/null | sort -V | tail -n1)
		tmp=$(mktemp -d); trap "rm -rf $tmp" EXIT
		"$objcopy" --dump-section .hip_fatbin="$tmp/fatbin" "$lib" "$tmp/copy" 2>/dev/null || true
		if [ -s "$tmp/fatbin" ] && [ -n "$bundler" ] &&
			"$bundler" --list --type=o --input="$tmp/fatbin" >"$tmp/list" 2>"$tmp/err"; then
			echo "# $bundler --list (.hip_fatbin)" >&2
			sort -u "$tmp/list"
		else
			echo "# clang-offload-bundler failed ($(cat "$tmp/err" 2>/dev/null)); scanning strings" >&2
			grep -aoE "hip[a-z0-9]*-amdgcn-amd-amdhsa-[a-z]*-gfx[0-9a-f]+(:xnack[+-])?" "$lib" | sort -u
		fi
	' sh "$lib"
}

check_hip_lib() { # LIB LOADCHECK
	local lib=$1 lc=$2 objs n g
	lddcheck sid "$lib"
	# --init: the ROCm runtime loads; without a GPU it reports 0 devices
	"$inroot" sid "$lc" --init "$lib" || die "obs-loadcheck $lib"
	objs=$(list_gfx "$lib")
	n=$(grep -c gfx <<<"$objs" || true)
	say "$lib carries $n gfx code object(s):"
	sed 's/^/    /' <<<"$objs"
	[ "$n" -gt 0 ] || die "no gfx code objects in $lib"
	for g in ${EXPECT_GFX:-}; do
		grep -qE -- "--${g}(:|$)" <<<"$objs" || grep -qE -- "-${g}$" <<<"$objs" || die "$g missing from $lib"
	done
}

what=${1:-all}
case "$what" in
vulkan)
	b=$(abs "${2:-$NATIVE_DIR/vulkan}")
	lc=$(loadcheck_bin "$b") || exit 1
	check_vulkan_lib "$b/lib/ollama/libggml-vulkan.so" "$lc"
	;;
hip)
	b=$(abs "${2:-$NATIVE_DIR/hip}")
	lc=$(loadcheck_bin "$b") || exit 1
	check_hip_lib "$b/lib/ollama/libggml-hip.so" "$lc"
	;;
prefix)
	[ -n "${2:-}" ] || die "usage: $0 prefix PREFIX"
	p=$(abs "$2")
	export OBS_BIND="$p ${OBS_BIND:-}" # visible inside the roots at the same path
	found=0
	while IFS= read -r lib; do
		found=1
		case "$lib" in
		*libggml-vulkan.so) lc=$(loadcheck_bin "$NATIVE_DIR/vulkan") || exit 1; check_vulkan_lib "$lib" "$lc" ;;
		*libggml-hip.so) lc=$(loadcheck_bin "$NATIVE_DIR/hip") || exit 1; check_hip_lib "$lib" "$lc" ;;
		esac
	done < <(find "$p/lib/ollama" -name 'libggml-vulkan.so' -o -name 'libggml-hip.so' | sort)
	[ "$found" = 1 ] || die "no backend modules under $p/lib/ollama"
	[ -e "$p/lib/ollama/libggml-base.so.0" ] || die "$p/lib/ollama/libggml-base.so.0 missing"
	say "installed tree $p ok"
	;;
all)
	"$0" vulkan
	if [ -e "$NATIVE_DIR/hip/lib/ollama/libggml-hip.so" ]; then
		"$0" hip
	else
		say "hip not built ($NATIVE_DIR/hip), skipped"
	fi
	;;
*) die "unknown check '$what'" ;;
esac
