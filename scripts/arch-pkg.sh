#!/usr/bin/env bash
# Builds the Arch packages with the real makepkg from packaging/arch/PKGBUILD
# and its pinned sources (scripts/arch-sources.sh), checks what they hold,
# installs them with pacman -U in a scratch root and runs the installed
# server there (integration TestArchPackages: lavapipe with
# OLLAMA_LLM_LIBRARY=vulkan, refusal of vulkn) and its ggml-rpc-server. After
# a green build, scripts/arch-record.sh writes packaging/arch-pkg.record.
#
#   scripts/arch-pkg.sh            build, inspect, install, run
#   scripts/arch-pkg.sh --no-build inspect, install and run the packages of the last build
#   scripts/arch-pkg.sh --prepare  only makepkg's source checks and prepare() (--nobuild)
#
# No Arch machine here: makepkg is Debian's (pacman's own scripts) in the sid
# root "arch-build", as an unprivileged user, with --nodeps because the
# PKGBUILD's makedepends are Arch names (scripts/roots/arch-build.list maps
# them to Debian packages), and Arch's default flags (makepkg.conf below).
# Debian's HIP compiler is its LLVM clang (HIPCXX); Arch's rocm-toolchain is
# found by CMake without it.
#
# Caches under $OBS_CACHE/arch-pkg (default /var/cache/ollama-backend-select):
# the build folder (fixed paths, so ccache hits from one run to the next),
# ccache, the Go module cache, the packages (pkgdest) and the scratch root.
# Environment: OBS_CPU (PKGBUILD: all, the default, or generic),
# OBS_HIP_TARGETS (PKGBUILD: gfx1200;gfx1201), ARCH_PKG_JOBS (default 2),
# ARCH_PKG_NICE (default 10).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd -P)
cache=${OBS_CACHE:-/var/cache/ollama-backend-select}/arch-pkg
pkgdest=$cache/pkgdest
scratch=$cache/scratch
builder=obs-builder

die() { echo "arch-pkg: $*" >&2; exit 1; }
log() { echo "arch-pkg: $*"; }
hip_default() { sed -n "s/^_hip_targets=\${OBS_HIP_TARGETS:-'\(.*\)'}$/\1/p" "$repo/packaging/arch/PKGBUILD"; }

build=1
makepkg_args=
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
case "${1:-}" in
	--no-build) build=0 ;;
	--prepare) makepkg_args=--nobuild ;;
	"") ;;
	*) die "unknown argument $1 (accepted: --no-build, --prepare)" ;;
esac

"$here/buildroot.sh" arch-build >/dev/null
# The host's Go, and its certificate authorities (Go fetches the modules in
# prepare() and build(), as on Arch; the root has none of its own)
inbuild() { OBS_BIND="$cache /usr/local/go /etc/ssl/certs" "$here/inroot.sh" arch-build "$@"; }

if [ $build = 1 ]; then
	src=$("$here/arch-sources.sh")
	mkdir -p "$cache"/{build,ccache,gomod,pkgdest,work}
	inbuild sh -c "id -u $builder >/dev/null 2>&1 || useradd --create-home --shell /bin/sh $builder"
	uid=$(inbuild id -u "$builder")
	rm -rf "$cache/work" "$pkgdest"
	mkdir -p "$cache/work" "$pkgdest"
	cp -a "$src"/. "$cache/work/"
	hipcxx=$(inbuild sh -c 'ls -d /usr/lib/llvm-*/bin/clang++ | sort -V | tail -n1')
	# Debian's makepkg.conf, then what Arch's sets (x86_64, its hardening
	# flags) and where this run keeps things
	{
		inbuild cat /etc/makepkg.conf
		cat <<-EOF
			CARCH=x86_64
			CHOST=x86_64-pc-linux-gnu
			CFLAGS="-march=x86-64 -mtune=generic -O2 -pipe -fno-plt -fexceptions -Wp,-D_FORTIFY_SOURCE=3 -Wformat -Werror=format-security -fstack-clash-protection -fcf-protection"
			CXXFLAGS="\$CFLAGS -Wp,-D_GLIBCXX_ASSERTIONS"
			LDFLAGS="-Wl,-O1 -Wl,--sort-common -Wl,--as-needed -Wl,-z,relro -Wl,-z,now"
			MAKEFLAGS="-j${ARCH_PKG_JOBS:-2}"
			BUILDENV=(!distcc color !ccache check !sign)
			OPTIONS=(strip docs !libtool !staticlibs emptydirs zipman purge !debug !lto)
			BUILDDIR=$cache/build
			PKGDEST=$pkgdest
			SRCDEST=$cache/work
			PKGEXT=.pkg.tar.zst
			COMPRESSZST=(zstd -c -T0 -)
		EOF
	} >"$cache/work/makepkg.conf"
	chown -R "$uid" "$cache"/{build,ccache,gomod,pkgdest,work}
	settings="OBS_CPU=${OBS_CPU:-all} OBS_HIP_TARGETS=${OBS_HIP_TARGETS:-$(hip_default)} -j${ARCH_PKG_JOBS:-2}"
	log "makepkg ($settings)"
	t0=$(date +%s)
	# CMake takes the compiler launchers and the HIP compiler from these
	# variables; ninja's parallelism from CMAKE_BUILD_PARALLEL_LEVEL.
	inbuild runuser -u "$builder" -- env -i HOME="/home/$builder" LANG=C.UTF-8 \
		PATH=/usr/local/go/bin:/usr/bin:/bin \
		HIPCXX="$hipcxx" CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache \
		CMAKE_HIP_COMPILER_LAUNCHER=ccache CMAKE_BUILD_PARALLEL_LEVEL="${ARCH_PKG_JOBS:-2}" \
		CCACHE_DIR="$cache/ccache" CCACHE_MAXSIZE=8G CCACHE_COMPILERCHECK=content \
		GOMODCACHE="$cache/gomod" GOFLAGS= GOTOOLCHAIN=local OBS_CPU="${OBS_CPU:-}" OBS_HIP_TARGETS="${OBS_HIP_TARGETS:-}" \
		nice -n "${ARCH_PKG_NICE:-10}" sh -c "cd '$cache/work' && makepkg --config '$cache/work/makepkg.conf' --nodeps --noconfirm --cleanbuild $makepkg_args" 2>&1 |
		tee "$cache/makepkg.log"
	took=$(($(date +%s) - t0))
	log "makepkg took $took s"
	[ -z "$makepkg_args" ] || exit 0
	# makepkg only warns when a file names the build folder (ggml's __FILE__
	# without the PKGBUILD's prefix map)
	if grep -F 'contains reference to' "$cache/makepkg.log" | sed 's/^/arch-pkg: /' >&2; then
		die "a package names \$srcdir or \$pkgdir (the warning above; $cache/makepkg.log)"
	fi
	{
		echo "settings: $settings"
		echo "makepkg: $took s ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
	} >>"$summary"
fi

# ---- what the packages hold --------------------------------------------------
ver=$(sed -n 's/^_ollamaver=//p' "$repo/packaging/arch/PKGBUILD")
rel=$(sed -n 's/^_forkrel=//p' "$repo/packaging/arch/PKGBUILD")
hip_targets=${OBS_HIP_TARGETS:-$(hip_default)}
bad=0
check() { if "$@"; then :; else echo "arch-pkg: FAIL: ${msg:-$*}" >&2; bad=1; fi; }
pkg() { echo "$pkgdest/$1-$ver.bs$rel-1-x86_64.pkg.tar.zst"; }
has() { inbuild pacman -Qlpq "$(pkg "$1")" | grep -qx "/$2"; }
info() { inbuild pacman -Qip "$(pkg "$1")" | sed -n "s/^$2 *: //p"; }
for p in ollama-backend-select ollama-backend-select-vulkan ollama-backend-select-rocm; do
	[ -f "$(pkg $p)" ] || die "no package $(pkg $p) (ls $pkgdest: $(ls "$pkgdest" 2>/dev/null | tr '\n' ' '))"
	log "$p: $(info $p 'Installed Size'), provides $(info $p Provides), conflicts $(info $p 'Conflicts With')"
	echo "package: $p $(info $p 'Installed Size') installed, $(du -h "$(pkg $p)" | cut -f1) file" >>"$summary"
done
for f in usr/bin/ollama usr/lib/ollama/llama-server usr/lib/systemd/system/ollama.service \
	usr/lib/ollama/ggml-rpc-server usr/lib/ollama/libggml-rpc.so usr/lib/systemd/system/ollama-rpc.service \
	usr/lib/sysusers.d/ollama.conf usr/lib/tmpfiles.d/ollama.conf; do
	msg="ollama-backend-select lacks /$f" check has ollama-backend-select "$f"
done
msg="ollama-backend-select holds a GPU backend" check test -z "$(inbuild pacman -Qlpq "$(pkg ollama-backend-select)" | grep -E 'libggml-(vulkan|hip)')"
msg="ollama-backend-select-vulkan lacks libggml-vulkan.so" check has ollama-backend-select-vulkan usr/lib/ollama/vulkan/libggml-vulkan.so
msg="ollama-backend-select-rocm lacks libggml-hip.so" check has ollama-backend-select-rocm usr/lib/ollama/rocm/libggml-hip.so
msg="provides/conflicts of ollama-backend-select" check test "$(info ollama-backend-select Provides)/$(info ollama-backend-select 'Conflicts With')" = "ollama=$ver/ollama"
msg="provides/conflicts of ollama-backend-select-vulkan" check test "$(info ollama-backend-select-vulkan Provides)/$(info ollama-backend-select-vulkan 'Conflicts With')" = "ollama-vulkan=$ver/ollama-vulkan"
msg="provides/conflicts of ollama-backend-select-rocm" check test "$(info ollama-backend-select-rocm Provides)/$(info ollama-backend-select-rocm 'Conflicts With')" = "ollama-rocm=$ver/ollama-rocm"

# ---- a scratch root with the packages installed -------------------------------
"$here/buildroot.sh" arch-scratch >/dev/null
grep -F " $scratch/" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l || true
rm -rf --one-file-system "$scratch"
cp -a "$("$here/buildroot.sh" --path arch-scratch)" "$scratch"
cp "$pkgdest"/*.pkg.tar.zst "$scratch/tmp/"
# pacman's free-space check looks for / among the mount points; a chroot's
# / is none
sed -i 's/^CheckSpace/#CheckSpace/' "$scratch/etc/pacman.conf"
# Arch's pacman.conf lets local package files be unsigned; Debian's does not say so
grep -q '^LocalFileSigLevel' "$scratch/etc/pacman.conf" ||
	sed -i 's/^\[options\]$/[options]\nLocalFileSigLevel = Optional/' "$scratch/etc/pacman.conf"
# Arch's dependency names are not in this root's pacman database: -dd
"$here/inroot.sh" "$scratch" sh -c 'pacman -U --noconfirm -dd /tmp/*.pkg.tar.zst && rm /tmp/*.pkg.tar.zst' |
	sed 's/^/arch-pkg: pacman: /'
for t in ${hip_targets//;/ }; do
	n=$(grep -a -c "hipv4-amdgcn-amd-amdhsa--$t" "$scratch/usr/lib/ollama/rocm/libggml-hip.so" || true)
	msg="installed libggml-hip.so has no $t code object" check test "$n" -gt 0
	[ "$n" -gt 0 ] && log "libggml-hip.so: code object for $t"
done
# the installed RPC server finds its backend (libggml-rpc.so beside it) and
# the CPU device, and listens; timeout ends it (stdbuf: its lines before that)
rpc=$(timeout -k 5 20 "$here/inroot.sh" "$scratch" stdbuf -oL /usr/lib/ollama/ggml-rpc-server --port 50152 2>&1 || true)
msg="installed ggml-rpc-server did not start: $(printf '%s' "$rpc" | tail -n3 | tr '\n' ' ')" \
	check grep -q 'Starting RPC server' <<<"$rpc"
grep -q 'Starting RPC server' <<<"$rpc" && log "ggml-rpc-server: $(grep -m1 'Starting RPC server' <<<"$rpc")"
msg="ollama-rpc.service does not run ollama rpc as ollama" check grep -qx 'ExecStart=/usr/bin/ollama rpc' "$scratch/usr/lib/systemd/system/ollama-rpc.service"
[ $bad = 0 ] || die "the packages are not what the PKGBUILD says"

log "installed in $scratch; the installed server:"
cd "$repo"
OBS_ARCH_SCRATCH=$scratch go test -tags integration -count=1 -timeout 20m -run '^TestArchPackages$' -v ./integration/ |
	grep -E '^(=== RUN|--- |\s+---|\s+\S+_test.go:|ok|FAIL|PASS)' | tee "$cache/test.log"
if [ $build = 1 ]; then
	grep -E '^\s*--- ' "$cache/test.log" | sed 's/^\s*/test: /' >>"$summary"
	"$here/arch-record.sh" write "$summary"
fi
