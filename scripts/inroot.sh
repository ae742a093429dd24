#!/bin/bash
# Run a command inside a build root.
#
#   scripts/inroot.sh ROOT CMD [ARGS...]
#
# ROOT is a root name (trixie, sid: resolved under
# ${OBS_ROOTS:-/var/cache/ollama-backend-select/roots}) or a directory path.
#
# Mounted inside, at the same paths as outside so absolute paths work:
#   /proc, /dev (recursive: dri, kfd, pts, shm), /sys (recursive),
#   this repository, the ccache dir (${OBS_CCACHE_DIR:-/var/cache/ollama-backend-select/ccache}),
#   ${OLLAMA_SRC} when it lies outside the repository (e.g. the Go module cache),
#   and every path in ${OBS_BIND} (space separated; created if missing).
# OBS_NO_BINDS=1 mounts only /proc, /dev and /sys (used by buildroot.sh).
#
# The mounts live in a private mount namespace (unshare -m) that vanishes with
# the last process in it, so nothing is left mounted after exit, failure,
# Ctrl-C or kill -9.  The command replaces this script (same PID), which lets
# callers (integration tests) start e.g. `inroot.sh trixie ollama serve` in
# the background and stop it by PID.  The working directory is kept when it is
# visible inside, else /.
set -euo pipefail

die() { echo "inroot: $*" >&2; exit 125; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd -P)

[ $# -ge 2 ] || die "usage: $0 ROOT CMD [ARGS...]"
root=$1
shift
case "$root" in
	*/*) ;;
	*) root=${OBS_ROOTS:-/var/cache/ollama-backend-select/roots}/$root ;;
esac
[ -d "$root/usr/bin" ] || die "$root is not a build root (run scripts/buildroot.sh NAME)"
root=$(cd "$root" && pwd -P)
[ "$(id -u)" = 0 ] || die "must run as root"

# Outside: enter a private mount namespace, then re-run this script there.
if [ -z "${_OBS_INROOT_NS:-}" ]; then
	export _OBS_INROOT_NS=1
	if unshare --mount --propagation private true 2>/dev/null; then
		exec unshare --mount --propagation private -- "$0" "$root" "$@"
	fi
	# No mount namespaces: mount in the host namespace and clean up by trap.
	export _OBS_INROOT_NS=trap
fi

mounted=()
cleanup() {
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
	done
}
if [ "$_OBS_INROOT_NS" = trap ]; then
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
fi

mnt() { # mnt KIND SRC  (target = same path inside the root)
	local kind=$1 src=$2 dst=$root$2
	if [ -d "$src" ]; then mkdir -p "$dst"; else mkdir -p "$(dirname "$dst")"; [ -e "$dst" ] || : >"$dst"; fi
	case "$kind" in
		proc) mount -t proc proc "$dst" ;;
		rbind) mount --rbind "$src" "$dst"; mount --make-rslave "$dst" ;;
		bind) mount --bind "$src" "$dst" ;;
	esac
	mounted+=("$dst")
}

mnt proc /proc
mnt rbind /dev
mnt rbind /sys

if [ -z "${OBS_NO_BINDS:-}" ]; then
	binds=("$repo")
	ccache_dir=${OBS_CCACHE_DIR:-/var/cache/ollama-backend-select/ccache}
	mkdir -p "$ccache_dir"
	binds+=("$ccache_dir")
	if [ -n "${OLLAMA_SRC:-}" ] && [ -d "$OLLAMA_SRC" ]; then binds+=("$OLLAMA_SRC"); fi
	for b in ${OBS_BIND:-}; do mkdir -p "$b"; binds+=("$b"); done
	done_binds=()
	for b in "${binds[@]}"; do
		b=$(cd "$b" && pwd -P)
		skip=
		for d in "${done_binds[@]}"; do
			case "$b/" in "$d/"*) skip=1 ;; esac
		done
		case "$b/" in "$root/"*) skip=1 ;; esac
		[ -n "$skip" ] && continue
		mnt bind "$b"
		done_binds+=("$b")
	done
fi

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cwd=$(pwd -P)
if [ "$_OBS_INROOT_NS" = trap ]; then
	# keep this shell alive so the trap can unmount
	chroot "$root" /bin/sh -c 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"' sh "$cwd" "$@" &
	child=$!
	trap 'kill -INT $child 2>/dev/null' INT
	trap 'kill -TERM $child 2>/dev/null' TERM
	rc=0
	while :; do
		wait "$child" && rc=0 || rc=$?
		kill -0 "$child" 2>/dev/null || break
	done
	exit "$rc"
fi
exec chroot "$root" /bin/sh -c 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"' sh "$cwd" "$@"
