#!/usr/bin/env bash
# The Arch packages of packaging/arch, built by a real makepkg (Debian's
# makepkg 6.0.2 in CI, or Arch's), and checked.
#
#   ci-makepkg.sh check      shellcheck the PKGBUILD and this script, b2sums of
#                            the local sources, .SRCINFO in sync  (seconds)
#   ci-makepkg.sh srcinfo    rewrite .SRCINFO and the PKGBUILD's b2sums after
#                            an edit of the PKGBUILD or of a file it ships
#   ci-makepkg.sh build      makepkg from this checkout, then check the
#                            packages' contents; they end up in build/arch/pkg
#   ci-makepkg.sh root DIR   unpack build/arch/pkg/*.pkg.tar.zst into DIR, a
#                            scratch root (DIR/usr/bin/ollama serve runs there)
#   ci-makepkg.sh ci         check, then build (what CI runs)
#
# build, in short.  makepkg refuses to run as root, so as root whatever
# makepkg does runs as an unprivileged user ($OBS_ARCH_USER, default
# obs-makepkg, created on first use).  The source is this checkout's HEAD: a
# mirror clone in SRCDEST that carries the tag the PKGBUILD names, and
# makepkg --holdver never fetches.  Arch's makedepends do not exist on Debian,
# so the PKGBUILD's OBS_PREBUILT hook stages what the Makefile built instead of
# compiling: `make build` (dist/bin/ollama) and `make install LAYOUT=flat`
# (libggml-base + libggml-vulkan, built first if missing, and libggml-hip.so
# from build/native/hip, which must exist: `make rocm-check` builds it for
# gfx1200 only; OBS_ARCH_ROCM=0 leaves the -rocm package out instead).  The
# HIP build's targets (its CMakeCache.txt) reach makepkg as AMDGPU_TARGETS,
# the variable the PKGBUILD narrows its target list with; check() then
# requires a code object for exactly those targets.  check() also runs
# `ollama --version` and the overlay's `go test ./...`.  The Go caches are
# hard-linked copies of the host's, so that costs seconds and leaves the
# host's caches untouched; nothing is compiled that the Makefile built.
# Last, the packages are unpacked into a scratch root where the integration
# scenario TestForkArchPackages runs the packaged server with the fake GPU
# twin and compares its selection with a `make install` tree's
# (integration/fork_archpkg_test.go).
#
# Environment: OBS_ARCH_WORK (work folder, default
# /var/tmp/ollama-backend-select-arch), OBS_ARCH_USER, NATIVE_DIR (default
# build/native), OBS_ARCH_ROCM=0 (no -rocm package), and OBS_ARCH_PREBUILT=0
# for the PKGBUILD's real build from this checkout on an Arch machine with the
# makedepends installed (no OBS_PREBUILT, makepkg checks dependencies;
# untested here: there is no Arch machine in this project's CI).
# single quotes hold what other shells expand (bash -c, pkgbuild_eval, grep)
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${OBS_ARCH_WORK:-/var/tmp/ollama-backend-select-arch}
user=${OBS_ARCH_USER:-obs-makepkg}
outdir=$repo/build/arch/pkg
native=${NATIVE_DIR:-$repo/build/native}
case $native in /*) ;; *) native=$repo/$native ;; esac

say() { echo "arch: $*"; }
die() { echo "arch: FAIL: $*" >&2; exit 1; }

# --- PKGBUILD facts ----------------------------------------------------------

# pkgbuild_eval EXPR...: evaluate in a subshell that sourced the PKGBUILD
pkgbuild_eval() {
	(
		set +eu
		# shellcheck disable=SC1091
		source "$here/PKGBUILD"
		for e in "$@"; do eval "echo \"$e\""; done
	)
}

# The b2sums array the local sources call for: SKIP for VCS sources.
expected_b2sums() {
	local s f
	while IFS= read -r s; do
		case $s in
		*://*) echo SKIP ;;
		*)
			f=${s#*::}
			[ -f "$here/$f" ] || die "source $f is not in packaging/arch"
			b2sum "$here/$f" | cut -d' ' -f1
			;;
		esac
	done < <(
		set +eu
		# shellcheck disable=SC1091
		source "$here/PKGBUILD"
		# shellcheck disable=SC2154
		printf '%s\n' "${source[@]}"
	)
}

current_b2sums() {
	(
		set +eu
		# shellcheck disable=SC1091
		source "$here/PKGBUILD"
		# shellcheck disable=SC2154
		printf '%s\n' "${b2sums[@]}"
	)
}

# VERSION as the Makefile computes it (upstream pin + FORK_RELEASE)
make_version() {
	make -C "$repo" -s --no-print-directory -f Makefile \
		-f <(printf 'obs-arch-print-version:\n\t@echo $(VERSION)\n') obs-arch-print-version
}

# --- tools and the build user --------------------------------------------------

ensure_tools() {
	local missing=() t
	for t in makepkg bsdtar shellcheck fakeroot zstd git b2sum readelf; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing makepkg libarchive-tools shellcheck fakeroot zstd (missing: ${missing[*]})"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq --no-install-recommends makepkg libarchive-tools shellcheck fakeroot zstd >/dev/null ||
			{ apt-get update -qq && apt-get install -y -qq --no-install-recommends \
				makepkg libarchive-tools shellcheck fakeroot zstd >/dev/null; }
	else
		die "missing tools: ${missing[*]} (Debian: makepkg libarchive-tools shellcheck fakeroot zstd; Arch: pacman base-devel shellcheck)"
	fi
}

go_bin_dir() {
	local g
	g=$(command -v go || true)
	[ -n "$g" ] || { [ -x /usr/local/go/bin/go ] && g=/usr/local/go/bin/go; }
	[ -n "$g" ] || die "no go in PATH"
	dirname "$(readlink -f "$g")"
}

# Environment of every command run as the build user (a clean one).
builder_env=()
setup_builder() {
	mkdir -p "$work"
	chmod 755 "$work"
	if [ "$(id -u)" = 0 ]; then
		if ! id -u "$user" >/dev/null 2>&1; then
			say "creating the build user $user"
			useradd --system --user-group --no-create-home --home-dir "$work/home" \
				--shell /usr/sbin/nologin "$user"
		fi
		mkdir -p "$work/home"
		chown "$user:" "$work/home"
	fi
	builder_env=(
		"PATH=$(go_bin_dir):/usr/local/bin:/usr/bin:/bin"
		"HOME=$([ "$(id -u)" = 0 ] && echo "$work/home" || echo "$HOME")"
		"LANG=C.UTF-8"
		"GOTOOLCHAIN=local"
		# makepkg looks pacman up at start; it only runs it for dependencies,
		# which --nodeps skips (Debian has no pacman database to ask)
		"PACMAN=true"
	)
}

# as_builder CMD...: run as the build user (root) or as oneself, clean env.
as_builder() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid="$user" --regid="$user" --init-groups -- env -i "${builder_env[@]}" "$@"
	else
		env -i "${builder_env[@]}" "$@"
	fi
}

# builder_dir DIR: an empty folder the build user owns
builder_dir() {
	rm -rf "$1"
	mkdir -p "$1"
	[ "$(id -u)" = 0 ] && chown "$user:" "$1"
	return 0
}

# A copy of packaging/arch the build user can read (the checkout may sit
# under a folder it cannot enter, such as /root).
stage_startdir() {
	local d=$1
	builder_dir "$d"
	cp "$here"/PKGBUILD "$here"/*.conf "$here"/ollama.service "$d/"
	[ "$(id -u)" = 0 ] && chown -R "$user:" "$d"
	return 0
}

# --- check / srcinfo -------------------------------------------------------------

print_srcinfo() {
	local d=$work/srcinfo
	stage_startdir "$d"
	as_builder bash -c 'cd "$1" && makepkg --printsrcinfo' sh "$d"
}

cmd_srcinfo() {
	ensure_tools
	setup_builder
	local sums
	mapfile -t sums < <(expected_b2sums)
	awk -v sums="${sums[*]}" '
		BEGIN { n = split(sums, s, " ") }
		/^b2sums=\(/ { skip = 1
			for (i = 1; i <= n; i++) printf "%s\x27%s\x27%s\n", (i == 1 ? "b2sums=(" : "        "), s[i], (i == n ? ")" : "")
		}
		skip { if ($0 ~ /\)[[:space:]]*$/) skip = 0; next }
		{ print }' "$here/PKGBUILD" >"$here/PKGBUILD.new"
	mv "$here/PKGBUILD.new" "$here/PKGBUILD"
	print_srcinfo >"$here/.SRCINFO"
	say "wrote packaging/arch/.SRCINFO and the b2sums"
}

cmd_check() {
	ensure_tools
	setup_builder
	local fails=0 out
	shellcheck -s bash -e SC2034,SC2154,SC2164 "$here/PKGBUILD" || { say "shellcheck PKGBUILD failed"; fails=$((fails + 1)); }
	shellcheck "$here/ci-makepkg.sh" || { say "shellcheck ci-makepkg.sh failed"; fails=$((fails + 1)); }
	# pkgver is the Makefile's VERSION with '_' for '-' (0.18.2-bs1 -> 0.18.2_bs1)
	local ver made
	ver=$(pkgbuild_eval '$pkgver')
	made=$(make_version) || made="(make failed)"
	if [ "${ver/_/-}" != "$made" ]; then
		say "pkgver=$ver, but the Makefile builds version $made; set pkgver=${made//-/_} (pkgrel=1), then 'make arch-srcinfo'"
		fails=$((fails + 1))
	fi
	if ! diff <(current_b2sums) <(expected_b2sums) >/dev/null; then
		say "the PKGBUILD's b2sums do not match packaging/arch's files; run 'make arch-srcinfo'"
		fails=$((fails + 1))
	fi
	# makepkg lints the PKGBUILD before it prints the .SRCINFO
	out=$(print_srcinfo) || { say "makepkg --printsrcinfo failed"; fails=$((fails + 1)); }
	if ! diff -u "$here/.SRCINFO" <(printf '%s\n' "$out") >&2; then
		say "packaging/arch/.SRCINFO is out of date; run 'make arch-srcinfo' and commit it"
		fails=$((fails + 1))
	fi
	[ "$fails" = 0 ] || die "$fails check(s) failed"
	say "PKGBUILD: shellcheck, pkgver = make VERSION, b2sums, .SRCINFO: ok"
}

# --- build ---------------------------------------------------------------------------

# hard-linked copy of a Go cache the build user can add to; empty if that fails
copy_cache() {
	local from=$1 to=$2
	rm -rf "$to"
	if [ -d "$from" ] && cp -al "$from" "$to" 2>/dev/null; then
		rm -f "$to/trim.txt"
		find "$to" -name '*.lock' -type f -delete
	else
		rm -rf "$to"
		mkdir -p "$to"
		say "no hard-linked copy of $from (other file system?): starting $to empty"
	fi
	[ "$(id -u)" = 0 ] && find "$to" -type d -exec chown "$user:" {} +
	chmod u+w "$to"
}

write_makepkg_conf() {
	# Debian's defaults, with what Arch's makepkg.conf says about flags,
	# options and the package format.
	cat >"$1" <<'EOF'
source /etc/makepkg.conf
CARCH="x86_64"
CHOST="x86_64-pc-linux-gnu"
CPPFLAGS=""
CFLAGS="-march=x86-64 -mtune=generic -O2 -pipe -fno-plt -fexceptions \
        -Wp,-D_FORTIFY_SOURCE=3 -Wformat -Werror=format-security \
        -fstack-clash-protection -fcf-protection \
        -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer"
CXXFLAGS="$CFLAGS -Wp,-D_GLIBCXX_ASSERTIONS"
LDFLAGS="-Wl,-O1 -Wl,--sort-common -Wl,--as-needed -Wl,-z,relro -Wl,-z,now"
MAKEFLAGS="-j$(nproc)"
BUILDENV=(!distcc color !ccache check !sign)
OPTIONS=(strip docs !libtool !staticlibs emptydirs zipman purge !debug !lto)
PKGEXT='.pkg.tar.zst'
COMPRESSZST=(zstd -c -T0 -)
PACKAGER="ollama-backend-select CI <ci@localhost>"
EOF
}

fails=0
passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "arch: FAIL: $*" >&2; fails=$((fails + 1)); }

# files_of PKG: the package's files and links (no folders, no .PKGINFO & co)
files_of() { bsdtar -tf "$1" | grep -v '/$' | grep -v '^\.' | sort; }
pkginfo() { bsdtar -xOf "$1" .PKGINFO; }

expect_files() { # PKG expected-file...
	local pkg=$1
	shift
	local got want
	got=$(files_of "$pkg")
	want=$(printf '%s\n' "$@" | sort)
	if [ "$got" = "$want" ]; then
		ok
	else
		bad "$(basename "$pkg") holds other files than expected:"
		diff <(echo "$want") <(echo "$got") | sed -n 's/^[<>]/    &/p' >&2
	fi
}

expect_info() { # PKG "key = value"...
	local pkg=$1 line info
	shift
	info=$(pkginfo "$pkg")
	for line in "$@"; do
		if grep -qxF "$line" <<<"$info"; then ok; else bad "$(basename "$pkg") .PKGINFO lacks '$line'"; fi
	done
}

check_packages() { # PKGDIR WITH_ROCM [AMDGPU_TARGETS]
	local dir=$1 with_rocm=$2 targets=${3:-} ver rel base server vulkan rocm tmp out
	ver=$(pkgbuild_eval '$pkgver')
	rel=$(pkgbuild_eval '$pkgrel')
	local version=${ver/_/-} upver=${ver%%_*}
	base=ollama-backend-select
	server=$dir/$base-$ver-$rel-x86_64.pkg.tar.zst
	vulkan=$dir/$base-vulkan-$ver-$rel-x86_64.pkg.tar.zst
	rocm=$dir/$base-rocm-$ver-$rel-x86_64.pkg.tar.zst
	for p in "$server" "$vulkan"; do
		[ -f "$p" ] || die "makepkg did not make $(basename "$p")"
	done

	expect_files "$server" \
		usr/bin/ollama \
		usr/lib/ollama/libggml-base.so usr/lib/ollama/libggml-base.so.0 usr/lib/ollama/libggml-base.so.0.0.0 \
		usr/lib/systemd/system/ollama.service usr/lib/sysusers.d/ollama.conf usr/lib/tmpfiles.d/ollama.conf \
		usr/share/doc/$base/ollama.service.d-example.conf \
		usr/share/licenses/$base/LICENSE usr/share/ollama
	expect_info "$server" "pkgname = $base" "pkgver = $ver-$rel" "provides = ollama=$upver" \
		"conflict = ollama" "conflict = ollama-cuda" "depend = glibc"
	expect_files "$vulkan" usr/lib/ollama/libggml-vulkan.so usr/share/licenses/$base-vulkan/LICENSE
	expect_info "$vulkan" "provides = ollama-vulkan=$upver" "conflict = ollama-vulkan" \
		"depend = $base=$ver-$rel" "depend = vulkan-icd-loader"
	if [ "$with_rocm" = 1 ]; then
		[ -f "$rocm" ] || die "makepkg did not make $(basename "$rocm")"
		expect_files "$rocm" usr/lib/ollama/libggml-hip.so usr/share/licenses/$base-rocm/LICENSE
		expect_info "$rocm" "provides = ollama-rocm=$upver" "conflict = ollama-rocm" \
			"depend = $base=$ver-$rel" "depend = hipblas" "depend = rocblas"
	fi

	# no path in two packages (pacman would refuse to install them together)
	out=$(for p in "$dir"/*.pkg.tar.zst; do files_of "$p"; done | sort | uniq -d)
	if [ -z "$out" ]; then ok; else bad "paths in more than one package: $out"; fi

	# what the files are: the binary is this release, the link and unit are right,
	# the modules find libggml-base.so.0 beside them
	tmp=$(mktemp -d)
	bsdtar -xpf "$server" -C "$tmp"
	bsdtar -xpf "$vulkan" -C "$tmp"
	[ "$with_rocm" = 1 ] && bsdtar -xpf "$rocm" -C "$tmp"
	out=$(env -u OLLAMA_HOST "$tmp/usr/bin/ollama" --version 2>&1 || true)
	if [[ $out == *"$version"* ]]; then ok; else bad "usr/bin/ollama --version: $out (want $version)"; fi
	if [ "$(readlink "$tmp/usr/share/ollama")" = /var/lib/ollama ]; then ok; else bad "usr/share/ollama is not a link to /var/lib/ollama"; fi
	if grep -qx 'ExecStart=/usr/bin/ollama serve' "$tmp/usr/lib/systemd/system/ollama.service"; then ok; else bad "ollama.service has no ExecStart=/usr/bin/ollama serve"; fi
	for m in "$tmp"/usr/lib/ollama/libggml-{vulkan,hip}.so; do
		[ -e "$m" ] || continue
		out=$(LC_ALL=C readelf -d "$m")
		if grep -q 'NEEDED.*\[libggml-base.so.0\]' <<<"$out" && grep -q 'RUNPATH.*\[\$ORIGIN\]' <<<"$out"; then
			ok
		else
			bad "$(basename "$m"): wants libggml-base.so.0 with RUNPATH \$ORIGIN; readelf -d says: $(grep -E 'NEEDED|RUNPATH' <<<"$out" | tr -s ' ' | tr '\n' ';')"
		fi
	done
	# after makepkg's strip: the ROCm module still holds a code object for
	# exactly the targets it was built for
	if [ "$with_rocm" = 1 ] && [ -n "$targets" ]; then
		local have want
		have=$(grep -aoE 'amdgcn-amd-amdhsa-[a-z]*-gfx[0-9a-f]+' "$tmp/usr/lib/ollama/libggml-hip.so" | grep -oE 'gfx[0-9a-f]+$' | sort -u | xargs)
		want=$(tr ';' ' ' <<<"$targets" | xargs -n1 | sort -u | xargs)
		if [ "$have" = "$want" ]; then ok; else bad "packaged libggml-hip.so has code objects for '$have', want '$want'"; fi
	fi
	rm -rf "$tmp"
}

# hip_targets: the GPU targets build/native/hip was configured for, as the
# cmake list (gfx1200 or gfx1200;gfx1201); empty for CMakeLists.txt's default
hip_targets() {
	sed -n 's/^AMDGPU_TARGETS:[A-Z]*=//p' "$native/hip/CMakeCache.txt" 2>/dev/null
}

cmd_build() {
	ensure_tools
	setup_builder
	local t0 t1 ver tag url head mirror with_rocm=1 prebuilt=$work/prebuilt targets=${AMDGPU_TARGETS:-}
	local real=0 hook=(OBS_PREBUILT="$work/prebuilt") depflag=--nodeps
	if [ "${OBS_ARCH_PREBUILT:-1}" = 0 ]; then
		real=1 hook=() depflag=--syncdeps
	fi
	if [ "${OBS_ARCH_ROCM:-1}" = 0 ]; then
		with_rocm=0
		say "OBS_ARCH_ROCM=0: no ollama-backend-select-rocm package"
	elif [ "$real" = 0 ]; then
		# A missing ROCm library is a failure, not a skip: CI (make check)
		# builds it first with make rocm-check, and must make three packages.
		[ -e "$native/hip/lib/ollama/libggml-hip.so" ] ||
			die "no $native/hip/lib/ollama/libggml-hip.so for ollama-backend-select-rocm: run 'make rocm-check' first (gfx1200 only; about 16 min cold on 2 cores, plus 4 min for the sid root), or 'make arch-pkg OBS_ARCH_ROCM=0' to make the other two packages only"
		targets=$(hip_targets)
		[ -n "$targets" ] || die "$native/hip/CMakeCache.txt names no AMDGPU_TARGETS"
	fi
	t0=$(date +%s)
	ver=$(pkgbuild_eval '$pkgver')
	tag=v${ver/_/-}
	url=$(pkgbuild_eval '${source[0]}')
	url=${url#*::}
	url=${url#git+}
	url=${url%%#*}

	# 1. what the hook stages: the Makefile's binary and flat install tree
	if [ "$real" = 1 ]; then
		say "OBS_ARCH_PREBUILT=0: the PKGBUILD's real build (Arch makedepends needed); make build for the scratch-root scenario's reference"
		make -C "$repo" --no-print-directory build
	else
		say "make build; make install PREFIX=$prebuilt LAYOUT=flat"
		make -C "$repo" --no-print-directory build
		rm -rf "$prebuilt"
		make -C "$repo" --no-print-directory install PREFIX="$prebuilt" LAYOUT=flat
		install -Dm755 "$repo/dist/bin/ollama" "$prebuilt/bin/ollama"
		if [ "$with_rocm" = 1 ]; then
			[ -e "$prebuilt/lib/ollama/libggml-hip.so" ] || die "make install put no libggml-hip.so into $prebuilt/lib/ollama"
			say "libggml-hip.so built for AMDGPU_TARGETS=$targets ($native/hip)"
		else
			rm -f "$prebuilt/lib/ollama/libggml-hip.so"
		fi
		[ "$(id -u)" = 0 ] && chown -R "$user:" "$prebuilt"
		t1=$(date +%s)
		say "prebuilt tree ready in $((t1 - t0)) s"
	fi

	# 2. the source: HEAD of this checkout, as the tag, in a mirror named like the git source
	head=$(git -C "$repo" rev-parse HEAD)
	if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
		say "note: the checkout has uncommitted changes; the packaged source is HEAD ($head), the prebuilt files come from the work tree"
	fi
	builder_dir "$work/srcdest"
	mirror=$work/srcdest/ollama-backend-select
	git clone -q --mirror "$repo" "$mirror"
	git -C "$mirror" fetch -q "$repo" "+HEAD:refs/tags/$tag"
	git -C "$mirror" config remote.origin.url "$url"
	[ "$(id -u)" = 0 ] && chown -R "$user:" "$mirror"

	# 3. the PKGBUILD and its files; without a HIP library, no -rocm package
	stage_startdir "$work/startdir"
	if [ "$with_rocm" = 0 ]; then
		echo 'pkgname=(ollama-backend-select ollama-backend-select-vulkan)  # ci-makepkg.sh: no libggml-hip.so' \
			>>"$work/startdir/PKGBUILD"
	fi
	write_makepkg_conf "$work/makepkg.conf"

	# 4. Go caches: hard-linked copies of the host's (cp -al takes seconds)
	copy_cache "$(go env GOCACHE)" "$work/go-build"
	copy_cache "$(go env GOMODCACHE)" "$work/gomod"
	builder_dir "$work/build"
	builder_dir "$work/pkg"

	# 5. makepkg; AMDGPU_TARGETS narrows (real build) or names (prebuilt)
	# the ROCm module's GPU targets
	local target_env=()
	[ -z "$targets" ] || target_env=(AMDGPU_TARGETS="$targets")
	t1=$(date +%s)
	say "makepkg as $(if [ "$(id -u)" = 0 ]; then echo "$user"; else id -un; fi), source $tag = $head"
	as_builder env \
		SRCDEST="$work/srcdest" BUILDDIR="$work/build" PKGDEST="$work/pkg" \
		GOCACHE="$work/go-build" GOMODCACHE="$work/gomod" \
		GOPROXY="$(go env GOPROXY)" GOSUMDB="$(go env GOSUMDB)" \
		"${hook[@]}" "${target_env[@]}" \
		bash -c 'cd "$1" && makepkg --config "$2" "$3" --holdver --cleanbuild --force --noconfirm --nocolor' \
		sh "$work/startdir" "$work/makepkg.conf" "$depflag"
	local t2
	t2=$(date +%s)
	say "makepkg took $((t2 - t1)) s"

	# 6. the packages
	check_packages "$work/pkg" "$with_rocm" "$targets"
	rm -rf "$outdir"
	mkdir -p "$outdir"
	cp "$work"/pkg/*.pkg.tar.zst "$outdir/"
	(cd "$outdir" && for p in *.pkg.tar.zst; do echo "  $p $(du -h "$p" | cut -f1)"; done)

	# 7. the packaged server in a scratch root vs. a make install tree
	if [ "$with_rocm" = 1 ]; then
		scratch_root_scenario
	else
		say "scratch-root scenario not run: it needs all three packages (OBS_ARCH_ROCM=0)"
	fi
	say "build took $(($(date +%s) - t0)) s in all (makepkg $((t2 - t1)) s)"
	echo "arch-packages: $passes passed, $fails failed"
	[ "$fails" = 0 ]
}

# The packages unpacked into a scratch root, the fake GPU twin in place of
# the real modules, the packaged server against a make install tree
# (integration/fork_archpkg_test.go); a skip counts as a failure here.
scratch_root_scenario() {
	local log=$repo/build/arch/scratch-root.log t rc=0
	t=$(date +%s)
	say "scratch root: go test -tags integration -run '^TestForkArchPackages\$' ./integration/ (log: build/arch/scratch-root.log)"
	(cd "$repo" && OBS_ARCH_PKG_DIR="$outdir" OBS_ARCH_PKG_REQUIRED=1 \
		go test -tags integration -count=1 -timeout 10m -run '^TestForkArchPackages$' -v ./integration/) >"$log" 2>&1 || rc=$?
	# the comparison table and the verdicts
	sed -n '/packaged root = make install tree:/,/^---/{/^---/!p;}; /^ *--- /p' "$log" || true
	if [ "$rc" = 0 ] && grep -q '^--- PASS: TestForkArchPackages ' "$log"; then
		ok
	else
		bad "TestForkArchPackages did not pass (exit $rc); last lines of build/arch/scratch-root.log:"
		tail -n 40 "$log" >&2
	fi
	say "scratch-root scenario took $(($(date +%s) - t)) s"
}

cmd_root() {
	local dir=${1:?usage: ci-makepkg.sh root DIR}
	local pkgs=("$outdir"/*.pkg.tar.zst)
	[ -e "${pkgs[0]}" ] || die "no packages in $outdir; run 'make arch-pkg' first"
	mkdir -p "$dir"
	for p in "${pkgs[@]}"; do
		bsdtar -xpf "$p" -C "$dir" --exclude '.PKGINFO' --exclude '.BUILDINFO' --exclude '.MTREE' --exclude '.INSTALL'
	done
	say "unpacked ${#pkgs[@]} packages into $dir; run: $dir/usr/bin/ollama serve (finds $dir/usr/lib/ollama)"
}

case ${1:-} in
check) cmd_check ;;
srcinfo) cmd_srcinfo ;;
build) cmd_build ;;
root) shift; cmd_root "$@" ;;
ci)
	cmd_check
	cmd_build
	;;
*)
	awk 'NR > 1 && /^#/ { if (/^# build, in short/) exit; sub(/^# ?/, ""); print }' "$0" >&2
	exit 2
	;;
esac
