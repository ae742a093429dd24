#!/usr/bin/env bash
# Writes an upstream-ready patch series and proves it: the overlay becomes one
# ordinary commit of new files, each patch a commit with the fork-only
# trailers (Forwarded:, Bug:) left out; the series is then applied with
# `git am` to a fresh pristine tree and that tree's tests run.
#
# TREE is the assembled tree of any release (build/ollama for the pin,
# build/ollama-vX.Y.Z with that release's variants otherwise): the series is
# for the release TREE holds.
#
# usage: make-pr.sh TREE OUTDIR "TEST_PKGS"
set -euo pipefail
tree=${1:?usage: make-pr.sh TREE OUTDIR TEST_PKGS}
out=${2:?usage: make-pr.sh TREE OUTDIR TEST_PKGS}
test_pkgs=${3:?usage: make-pr.sh TREE OUTDIR TEST_PKGS}
repo=$(pwd)
work=$(mktemp -d)
# The series branch is this run's own, so a run that was interrupted (or
# one running beside it) leaves nothing in the way.
branch=pr-$$
trap 'git -C "$tree" worktree remove --force "$work/series" 2>/dev/null || true;
      git -C "$tree" worktree remove --force "$work/check" 2>/dev/null || true;
      git -C "$tree" branch -D "$branch" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

g() { git -c user.name=ollama-backend-select -c user.email=fork@localhost -c core.abbrev=12 "$@"; }

# 1. Build the series on a pristine worktree.
g -C "$tree" worktree add -q --detach "$work/series" upstream
g -C "$work/series" checkout -q -b "$branch"
g -C "$tree" diff --binary upstream fork-base | g -C "$work/series" apply --index
# A commit that only edits overlay files (a release's variant such as
# 0000-..., following an upstream rename) is part of the overlay commit:
# upstream reviews new files once, as they are on its release.
mapfile -t overlay_files < <(g -C "$tree" diff --name-only --diff-filter=A upstream fork-base)
only_overlay() {
	local f
	for f in $(g -C "$tree" show --format= --name-only "$1"); do
		printf '%s\n' "${overlay_files[@]}" | grep -qxF -- "$f" || return 1
	done
}
commits=()
for c in $(g -C "$tree" rev-list --reverse fork-base..HEAD); do
	if only_overlay "$c"; then
		g -C "$tree" show --binary --format= "$c" | g -C "$work/series" apply --index
		echo "pr: folded into the overlay commit: $(g -C "$tree" log -1 --format=%s "$c")" >&2
	else
		commits+=("$c")
	fi
done
g -C "$work/series" commit -q -F "$repo/docs/pr/overlay.msg"
for c in "${commits[@]}"; do
	g -C "$tree" show --binary --format= "$c" | g -C "$work/series" apply --index
	g -C "$tree" log -1 --format=%B "$c" |
		grep -vE '^(Forwarded|Bug|Bug-[A-Za-z]+|Upstream-Status|Last-Update|Origin):' |
		g -C "$work/series" commit -q --author="$(g -C "$tree" log -1 --format='%an <%ae>' "$c")" \
			--date="$(g -C "$tree" log -1 --format=%aD "$c")" -F -
done
rm -rf "$out"
mkdir -p "$out"
g -C "$work/series" format-patch -q --zero-commit --no-signature -o "$(cd "$out" && pwd)" upstream.."$branch"

# 2. Prove it: git am onto another pristine tree, then its tests.
g -C "$tree" worktree add -q --detach "$work/check" upstream
g -C "$work/check" am -q "$(cd "$out" && pwd)"/*.patch
# llama.cpp is in the module up to v0.2x (its vendored headers are supplied
# at build time); later releases fetch it with CMake.
if [ -d "$tree/llama/llama.cpp/vendor" ]; then
	cp -a "$tree/llama/llama.cpp/vendor" "$work/check/llama/llama.cpp/"
fi
echo "pr: $(ls "$out" | wc -l) patches in $out apply to a pristine tree; running its tests" >&2
# shellcheck disable=SC2086
(cd "$work/check" && go test -trimpath $test_pkgs)
echo "pr: series verified: $out" >&2
