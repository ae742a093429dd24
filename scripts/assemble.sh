#!/usr/bin/env bash
# Materializes the pinned upstream release as a git work tree and lays the
# fork on top of it:
#
#   upstream   the module zip's content, verified by go.sum (tag "upstream")
#   fork-base  this repository's overlay files, added (tag "fork-base")
#   ...        one commit per patch of patches/*.patch, applied with git am
#
# Patches apply strictly (no fuzz, no 3-way merge) unless ASSEMBLE_3WAY=1,
# which the Makefile sets for the pinned release only: there a 3-way merge is
# the start of resolving a conflict (make check-patches proves the result),
# on any other release it would be a silent fuzzy apply.
#
# The tree is rebuilt only when an input changed (upstream version, overlay
# files, patches, this script). Local commits or edits in the tree are never
# thrown away: the script stops and says how to keep them.
#
# usage: assemble.sh TREE UPSTREAM_VERSION OVERLAY_PKGS...
set -euo pipefail

tree=${1:?usage: assemble.sh TREE UPSTREAM_VERSION OVERLAY_PKGS...}
version=${2:?usage: assemble.sh TREE UPSTREAM_VERSION OVERLAY_PKGS...}
shift 2
pkgs=("$@")
repo=$(pwd)
module=github.com/ollama/ollama

say() { echo "src: $*" >&2; }
die() { echo "src: $*" >&2; exit 1; }

g() { git -C "$tree" -c user.name=ollama-backend-select -c user.email=fork@localhost \
	-c core.abbrev=12 -c advice.detachedHead=false "$@"; }

# Everything the overlay+patch layers are made of; a change here re-applies them.
inputs_hash() {
	{
		echo "$version"
		sha256sum "$repo/scripts/assemble.sh" "$repo/tools/overlay/main.go"
		find "${pkgs[@]}" -type f -print0 | sort -z | xargs -0 -r sha256sum
		sha256sum "$repo"/patches/*.patch
	} | sha256sum | cut -d' ' -f1
}

state=$tree/.git/fork-state
want=$(inputs_hash)

# Pristine layer: (re)create when missing or for another upstream version.
if [ ! -d "$tree/.git" ] || [ "$(cat "$state/upstream" 2>/dev/null)" != "$version" ]; then
	if [ -d "$tree/.git" ] && [ -f "$state/head" ]; then
		if [ -n "$(g status --porcelain --untracked-files=no)" ] || [ "$(g rev-parse HEAD)" != "$(cat "$state/head")" ]; then
			die "$tree has local changes or commits; run 'make patches' to keep them (or remove $tree) before switching to $version"
		fi
	fi
	say "materializing $module@$version"
	dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$dir" ] && [ -d "$dir" ] || die "go mod download $module@$version gave no source folder"
	rm -rf "$tree"
	mkdir -p "$tree"
	cp -a "$dir"/. "$tree"/
	chmod -R u+w "$tree"
	g init -q -b main
	# The vendored headers are supplied at build time, never committed.
	printf '%s\n' /llama/llama.cpp/vendor/ >>"$tree/.git/info/exclude"
	g add -A
	g commit -q --no-verify -m "upstream $module $version" -m "Content of the Go module zip, verified by go.sum."
	g tag -f upstream >/dev/null
	mkdir -p "$state"
	echo "$version" >"$state/upstream"
	rm -f "$state/inputs" "$state/head"
fi

if [ "$(cat "$state/inputs" 2>/dev/null)" = "$want" ] && [ "$(g rev-parse HEAD)" = "$(cat "$state/head" 2>/dev/null)" ]; then
	say "up to date ($(g rev-list --count fork-base..HEAD) patches on $version)"
	exit 0
fi

if [ -f "$state/head" ]; then
	if [ -n "$(g status --porcelain --untracked-files=no)" ]; then
		die "$tree has uncommitted changes; commit them and run 'make patches', or 'git -C $tree stash', then run make again"
	fi
	if [ "$(g rev-parse HEAD)" != "$(cat "$state/head")" ]; then
		die "$tree has commits that patches/ does not hold yet; run 'make patches' to keep them (or 'git -C $tree reset --hard $(cat "$state/head")' to drop them)"
	fi
fi
if [ -d "$tree/.git/rebase-apply" ]; then
	g am --abort || true
fi

say "laying the overlay (${pkgs[*]}) on $version"
g reset -q --hard upstream
g clean -q -fd
go run ./tools/overlay apply -tree "$tree" "${pkgs[@]}"
g add -A
g commit -q --no-verify --allow-empty -m "Add the backend-select overlay" \
	-m "New files from ollama-backend-select: ${pkgs[*]}."
g tag -f fork-base >/dev/null

mapfile -t patches < <(ls "$repo"/patches/*.patch 2>/dev/null)
am_args=(-q --committer-date-is-author-date)
[ "${ASSEMBLE_3WAY:-0}" = 1 ] && am_args+=(-3)
if [ ${#patches[@]} -gt 0 ]; then
	say "applying ${#patches[@]} patches$([ "${ASSEMBLE_3WAY:-0}" = 1 ] && echo " (3-way allowed)")"
	# --committer-date-is-author-date keeps the commits, and so the
	# regenerated patches, identical from one assembly to the next.
	if ! g am "${am_args[@]}" "${patches[@]}"; then
		if [ "${ASSEMBLE_3WAY:-0}" = 1 ]; then
			cat >&2 <<MSG
src: a patch does not apply to $version (no fuzz is allowed).
     Resolve it in $tree: edit the conflicting files, 'git add' them,
     'git -C $tree am --continue', then 'make patches' to write the result back.
     Or give up with 'git -C $tree am --abort'.
MSG
		else
			cat >&2 <<MSG
src: $(cat "$tree/.git/rebase-apply/next" 2>/dev/null || echo ?)th patch of the series does not apply to $version strictly.
     The series is written on the pin; moving it to $version is a bump
     (make bump UPSTREAM=$version, docs/upstream.md).
MSG
		fi
		exit 1
	fi
fi
g rev-parse HEAD >"$state/head"
echo "$want" >"$state/inputs"
say "ready: $(g rev-list --count fork-base..HEAD) patches on $version"
