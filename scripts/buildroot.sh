#!/bin/bash
# Create or refresh a cached Debian build root.
#
#   scripts/buildroot.sh NAME          build NAME if missing or stale, print its path
#   scripts/buildroot.sh --path NAME   print the path only (builds nothing)
#   scripts/buildroot.sh --force NAME  rebuild even if up to date
#
# NAME selects scripts/roots/NAME.list (package list + directives, see
# trixie.list).  The root lives in ${OBS_ROOTS:-/var/cache/ollama-backend-select/roots}/NAME
# and is rebuilt only when the sha256 of the list file plus this script
# changes (stamp: ROOTS/NAME.stamp).  A rebuild is made in NAME.new and swapped
# in when complete, so an interrupted rebuild never leaves a half root behind.
#
# The Debian mirror is read from the host's apt sources (the first deb source
# serving "main" from a .../debian URI); set OBS_MIRROR to override.
# Needs root.  Installs debootstrap on the host with apt-get if it is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOTS=${OBS_ROOTS:-/var/cache/ollama-backend-select/roots}

die() { echo "buildroot: $*" >&2; exit 1; }
log() { echo "buildroot: $*" >&2; }

mode=build
case "${1:-}" in
	--path) mode=path; shift ;;
	--force) mode=force; shift ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
name=${1:-}
[ -n "$name" ] || die "usage: $0 [--path|--force] NAME"
list=$here/roots/$name.list
[ -f "$list" ] || die "no package list $list"
root=$ROOTS/$name
stamp=$ROOTS/$name.stamp

if [ "$mode" = path ]; then
	echo "$root"
	exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mount)"

want=$(cat "$list" "$here/buildroot.sh" | sha256sum | cut -d' ' -f1)

mkdir -p "$ROOTS"
# Serialise concurrent builds of the same root (parallel make, CI retries).
exec 9>"$ROOTS/$name.lock"
flock 9

if [ "$mode" != force ] && [ -f "$stamp" ] && [ -d "$root/usr" ] &&
	[ "$(cat "$stamp")" = "$want" ]; then
	log "$name is up to date ($root)"
	echo "$root"
	exit 0
fi

# ---- parse the list ---------------------------------------------------------
suite=
sources=()        # "SUITE PRIO"
declare -A pkgs   # key: install suite ("-" = default), value: space-separated packages
from=-
while read -r line; do
	line=${line%%#*}
	read -r -a w <<<"$line" || true
	[ ${#w[@]} -gt 0 ] || continue
	case "${w[0]}" in
		@suite) suite=${w[1]} ;;
		@source) sources+=("${w[1]} ${w[2]:-100}") ;;
		@from) from=${w[1]:--} ;;
		@*) die "$list: unknown directive ${w[0]}" ;;
		*) pkgs[$from]+=" ${w[*]}" ;;
	esac
done <"$list"
[ -n "$suite" ] || die "$list: missing @suite"

# ---- host dependencies ------------------------------------------------------
if ! command -v debootstrap >/dev/null; then
	log "installing debootstrap on the host"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends debootstrap ||
		{ apt-get update && apt-get install -y --no-install-recommends debootstrap; }
fi

# ---- mirror -----------------------------------------------------------------
host_mirror() {
	local f uri
	# deb822 .sources files
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk 'BEGIN{IGNORECASE=1}
			/^[[:space:]]*$/ { if (deb && main && u ~ /\/debian\/?$/) { print u; exit } ; deb=0; main=0; u="" ; next }
			/^Types:/ { for (i=2;i<=NF;i++) if ($i=="deb") deb=1 }
			/^URIs:/ { u=$2 }
			/^Components:/ { for (i=2;i<=NF;i++) if ($i=="main") main=1 }
			END { if (deb && main && u ~ /\/debian\/?$/) print u }' "$f" | head -n1)
		[ -n "$uri" ] && { echo "${uri%/}"; return; }
	done
	# one-line sources.list format
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(awk '$1=="deb" { u=$2; if (u ~ /^\[/) { for (i=2;i<=NF;i++) if ($i ~ /\]$/) { u=$(i+1); break } }
			if (u ~ /\/debian\/?$/) { print u; exit } }' "$f")
		[ -n "$uri" ] && { echo "${uri%/}"; return; }
	done
}
mirror=${OBS_MIRROR:-$(host_mirror)}
[ -n "$mirror" ] || die "could not read a Debian mirror from /etc/apt; set OBS_MIRROR"

# ---- build ------------------------------------------------------------------
new=$ROOTS/$name.new
old=$ROOTS/$name.old
for d in "$new" "$old"; do
	if [ -d "$d" ]; then
		# a previous run may have died with mounts inside
		grep -F " $d/" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l || true
		rm -rf --one-file-system "$d"
	fi
done

log "debootstrap --variant=minbase $suite -> $new (mirror $mirror)"
t0=$(date +%s)
for try in 1 2 3; do
	debootstrap --variant=minbase "$suite" "$new" "$mirror" && break
	[ "$try" -lt 3 ] || die "debootstrap $suite failed"
	log "debootstrap failed (try $try), retrying"
	rm -rf --one-file-system "$new"
	sleep 5
done

# apt configuration inside the root
rm -f "$new/etc/apt/sources.list"
{
	echo "Types: deb"
	echo "URIs: $mirror"
	echo "Suites: $suite"
	echo "Components: main"
	echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
} >"$new/etc/apt/sources.list.d/debian.sources"
: >"$new/etc/apt/preferences.d/obs"
for s in "${sources[@]}"; do
	read -r ssuite sprio <<<"$s"
	{
		echo
		echo "Types: deb"
		echo "URIs: $mirror"
		echo "Suites: $ssuite"
		echo "Components: main"
		echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
	} >>"$new/etc/apt/sources.list.d/debian.sources"
	printf 'Package: *\nPin: release n=%s\nPin-Priority: %s\n\n' "$ssuite" "$sprio" \
		>>"$new/etc/apt/preferences.d/obs"
done
# Snapshot-style mirrors serve Release files past their Valid-Until date.
cat >"$new/etc/apt/apt.conf.d/99obs" <<'EOF'
Acquire::Check-Valid-Until "false";
Acquire::Check-Date "false";
Acquire::Retries "5";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
# no daemons from postinst scripts
printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
chmod 755 "$new/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$new/etc/resolv.conf" 2>/dev/null || true

in_new() { OBS_NO_BINDS=1 "$here/inroot.sh" "$new" "$@"; }
export DEBIAN_FRONTEND=noninteractive
in_new apt-get update
if [ -n "${pkgs[-]:-}" ]; then
	# shellcheck disable=SC2086
	in_new apt-get install -y ${pkgs[-]}
fi
for s in "${!pkgs[@]}"; do
	[ "$s" != - ] || continue
	# shellcheck disable=SC2086
	in_new apt-get install -y -t "$s" ${pkgs[$s]}
done
in_new apt-get clean
rm -rf "$new/var/lib/apt/lists/"*
# keep the list of what went in, for the record
in_new dpkg-query -W -f '${Package} ${Version}\n' >"$new/.obs-packages"

# swap in, unless something still runs inside the old root
if [ -d "$root" ]; then
	for p in /proc/[0-9]*; do
		if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then
			die "$root is in use (pid ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline" | cut -c1-80)); rerun when it is idle"
		fi
	done
	grep -F " $root/" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l || true
	mv "$root" "$old"
fi
mv "$new" "$root"
echo "$want" >"$stamp"
rm -rf --one-file-system "$old"
log "$name ready in $(( $(date +%s) - t0 ))s: $root ($(du -sh --one-file-system "$root" | cut -f1))"
echo "$root"
