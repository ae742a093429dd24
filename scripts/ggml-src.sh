#!/usr/bin/env bash
# Fetches the ggml headers of the ggml version installed in a root (default:
# the runtime root) from Debian's source package, for the fake GPU backend of
# integration/ (integration/internal/fakegpu), which must match the backend
# ABI (ggml-backend-impl.h) of the llama-server that loads it.
#
#   scripts/ggml-src.sh [ROOT]        prints the header folder on stdout
#
# Result: build/ggml-src/<version>/include/*.h (public headers) and
# build/ggml-src/<version>/src/ggml-backend-impl.h (+ the other src/*.h),
# where <version> is the Debian version of the root's libggml0 (dpkg-query).
# Idempotent: an existing complete folder is reused without any download.
#
# How: inside the root (scripts/inroot.sh, as root), apt-get with a private
# deb-src list and private state under build/ggml-src/.apt (the root's own
# apt configuration and lists are not touched) downloads the source package
# (apt-get source --download-only ggml=<version>, no dpkg-dev needed) from the
# mirror named in the root's debian.sources; the upstream tarball and the
# Debian patches to header files are unpacked here.
#
# Exit status 3: the mirror does not serve that source version (404, or the
# version left sid); that answer is cached for a day. Callers then use the fake's own ABI declarations
# (integration/testdata/fakegpu/ggml-abi.h), which were checked against the
# 0.27.0 binaries.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd -P)
root=${1:-runtime}

die() { echo "ggml-src: $1" >&2; exit "${2:-1}"; }

inroot() { "$here/inroot.sh" "$root" "$@"; }

version=$(inroot dpkg-query -W -f '${Version}' libggml0 2>/dev/null) || die "libggml0 is not installed in root $root"
src_pkg=$(inroot dpkg-query -W -f '${source:Package}' libggml0)
[ -n "$version" ] && [ -n "$src_pkg" ] || die "cannot read libggml0's version in root $root"

out=$repo/build/ggml-src/$version
if [ -f "$out/src/ggml-backend-impl.h" ] && [ -f "$out/include/ggml-backend.h" ]; then
	echo "$out"
	exit 0
fi

work=$repo/build/ggml-src/.apt
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/dl"
# The root's mirror (deb822 stanza of debian.sources, else a one-line list).
mirror=$(inroot sh -c 'sed -n "s/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p" /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1')
[ -n "$mirror" ] || mirror=$(inroot sh -c 'awk "\$1==\"deb\" {print \$2; exit}" /etc/apt/sources.list 2>/dev/null')
suite=$(inroot sh -c 'sed -n "s/^Suites:[[:space:]]*\([^[:space:]]*\).*/\1/p" /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1')
[ -n "$mirror" ] || die "no Debian mirror in root $root's apt sources"
cat >"$work/src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: ${suite:-sid}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

apt_opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=-
	-o "Dir::Etc::sourcelist=$work/src.sources" -o "Dir::State::Lists=$work/lists"
	-o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root -q)

# A recent failed download is not retried for a day (the mirror of this
# workplace serves no ggml sources; every test build would ask again).
miss=$repo/build/ggml-src/$version.unavailable
if [ -f "$miss" ] && [ -n "$(find "$miss" -mmin -1440 2>/dev/null)" ]; then
	die "source package $src_pkg=$version not served by the mirror (cached answer: rm $miss to ask again)" 3
fi

dsc=$(ls "$work/dl/${src_pkg}_${version#*:}.dsc" 2>/dev/null || true)
if [ -z "$dsc" ]; then
	echo "ggml-src: downloading source package $src_pkg=$version from $mirror" >&2
	inroot apt-get "${apt_opts[@]}" update >&2 || die "apt-get update (deb-src) failed"
	if ! (cd "$work/dl" && inroot apt-get "${apt_opts[@]}" source --download-only "$src_pkg=$version" >&2); then
		date >"$miss"
		die "the mirror does not serve source package $src_pkg=$version" 3
	fi
fi

orig=$(ls "$work/dl/${src_pkg}_${version%-*}".orig.tar.* 2>/dev/null | head -n1 || true)
deb=$(ls "$work/dl/${src_pkg}_${version#*:}".debian.tar.* 2>/dev/null | head -n1 || true)
[ -n "$orig" ] || die "no upstream tarball for $src_pkg=$version in $work/dl"

tmp=$(mktemp -d "$repo/build/ggml-src/.x.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -xf "$orig" -C "$tmp"
top=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n1)
[ -f "$top/src/ggml-backend-impl.h" ] || die "$orig has no src/ggml-backend-impl.h"
# Debian patches that touch headers (the quilt series, applied in order).
if [ -n "$deb" ]; then
	tar -xf "$deb" -C "$top"
	if [ -f "$top/debian/patches/series" ]; then
		while read -r p _; do
			case "$p" in '' | '#'*) continue ;; esac
			if command -v patch >/dev/null && grep -q "^+++ .*\.h" "$top/debian/patches/$p"; then
				(cd "$top" && patch -p1 -s <"debian/patches/$p") || echo "ggml-src: warning: patch $p does not apply" >&2
			fi
		done <"$top/debian/patches/series"
	fi
fi
mkdir -p "$tmp/out/include" "$tmp/out/src"
cp "$top"/include/*.h "$tmp/out/include/"
cp "$top"/src/*.h "$tmp/out/src/"
echo "$src_pkg $version" >"$tmp/out/VERSION"
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp/out" "$out"
echo "$out"
