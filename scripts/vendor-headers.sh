#!/usr/bin/env bash
# Supplies the three header-only libraries that upstream vendors under
# llama/llama.cpp/vendor/ but that Go module zips drop (they skip vendor/
# folders): nlohmann/json, stb_image and miniaudio.
#
# The headers come from the system, the way distributions unbundle them
# (Arch: nlohmann-json stb miniaudio; Debian: nlohmann-json3-dev libstb-dev
# libminiaudio-dev). On a Debian-family host that lacks one of them (Debian 12
# has no libminiaudio-dev), the missing packages are downloaded from Debian
# trixie into a private cache and unpacked there, without touching the host.
#
# usage: vendor-headers.sh DEST_VENDOR_DIR CACHE_DIR
set -euo pipefail

dest=${1:?usage: vendor-headers.sh DEST_VENDOR_DIR CACHE_DIR}
cache=${2:?usage: vendor-headers.sh DEST_VENDOR_DIR CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# header in vendor/ | candidates under an include root | Debian package
# nlohmann's json.hpp includes its detail/ headers, so that folder is linked
# whole; the others are single files.
headers=(
	"nlohmann/json.hpp|nlohmann/json.hpp|nlohmann-json3-dev"
	"stb/stb_image.h|stb/stb_image.h stb_image.h|libstb-dev"
	"miniaudio/miniaudio.h|miniaudio/miniaudio.h miniaudio.h|libminiaudio-dev"
)

find_header() { # include-root candidates...
	local root=$1 c
	shift
	for c in "$@"; do
		if [ -f "$root/$c" ]; then
			echo "$root/$c"
			return 0
		fi
	done
	return 1
}

missing_pkgs=()
for h in "${headers[@]}"; do
	IFS='|' read -r _ cands pkg <<<"$h"
	# shellcheck disable=SC2086
	if ! find_header /usr/include $cands >/dev/null && ! find_header "$cache/root/usr/include" $cands >/dev/null; then
		case " ${missing_pkgs[*]} " in *" $pkg "*) ;; *) missing_pkgs+=("$pkg") ;; esac
	fi
done

if [ ${#missing_pkgs[@]} -gt 0 ]; then
	if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
		echo "vendor-headers: missing system headers; install: ${missing_pkgs[*]} (Debian names; Arch: nlohmann-json stb miniaudio)" >&2
		exit 1
	fi
	# Reuse the host's Debian mirror; only the suite differs.
	mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
	[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
	if [ -z "$mirror" ]; then
		echo "vendor-headers: no Debian mirror in the host's apt sources; install: ${missing_pkgs[*]}" >&2
		exit 1
	fi
	echo "vendor-headers: fetching ${missing_pkgs[*]} from Debian trixie into $cache" >&2
	apt_dir=$cache/apt
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$cache/root"
	echo "deb $mirror trixie main" >"$apt_dir/sources.list"
	apt_opts=(
		-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
		-o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o Debug::NoLocking=1 -o APT::Sandbox::User=root
	)
	apt-get -qq "${apt_opts[@]}" update
	(cd "$apt_dir/archives" && apt-get -qq "${apt_opts[@]}" download "${missing_pkgs[@]}")
	for deb in "$apt_dir"/archives/*.deb; do
		dpkg-deb -x "$deb" "$cache/root"
	done
fi

for h in "${headers[@]}"; do
	IFS='|' read -r target cands pkg <<<"$h"
	# shellcheck disable=SC2086
	src=$(find_header /usr/include $cands || find_header "$cache/root/usr/include" $cands) || {
		echo "vendor-headers: $target not found after fetching $pkg" >&2
		exit 1
	}
	if [ "$target" = nlohmann/json.hpp ]; then
		mkdir -p "$dest"
		ln -sfn "$(dirname "$(readlink -f "$src")")" "$dest/nlohmann"
	else
		mkdir -p "$dest/$(dirname "$target")"
		ln -sfn "$(readlink -f "$src")" "$dest/$target"
	fi
done
echo "vendor-headers: $(cd "$dest" && find . -name '*.h*' | sort | tr '\n' ' ')" >&2
