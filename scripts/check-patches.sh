#!/usr/bin/env bash
# Proves the patch round trip: the patches regenerated from the assembled tree
# are byte for byte patches/*.patch (so none was edited by hand, and the tree
# holds exactly the series). Then each patch must build alone: fork-base and
# every prefix of the series are built and vetted (tests compiled too) in a
# scratch work tree.
# usage: check-patches.sh TREE
set -euo pipefail
tree=${1:?usage: check-patches.sh TREE}
here=$(dirname "$0")
version=$(cat "$tree/.git/fork-state/upstream")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/format-patches.sh" "$tree" "$tmp"
if ! diff -r "$here/../patches" "$tmp" -x cgo-era >"$tmp.diff"; then
	cat "$tmp.diff" >&2
	rm -f "$tmp.diff"
	echo "check-patches: patches/ is not what $tree regenerates; edit upstream files in $tree and run 'make patches' (or 'make src' after a change to patches/)" >&2
	exit 1
fi
rm -f "$tmp.diff"
echo "check-patches: $(ls "$tmp" | wc -l) patches of $version regenerate byte for byte"

# The packages the series touches, vetted with their tests at every prefix.
vet_pkgs=(./api/... ./cmd/... ./discover/... ./envconfig/... ./llm/... ./ml/... ./server/...)
wt=$tmp/prefix
git -C "$tree" worktree add -q --detach "$wt" fork-base
trap 'git -C "$tree" worktree remove --force "$wt" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
n=0
for c in $(git -C "$tree" rev-list --reverse fork-base~1..HEAD); do
	[ "$c" = "$(git -C "$tree" rev-parse fork-base~1)" ] && continue
	git -C "$wt" checkout -q --detach "$c"
	subject=$(git -C "$wt" log -1 --format=%s)
	if ! (cd "$wt" && go build ./... && go vet "${vet_pkgs[@]}"); then
		echo "check-patches: the series does not build or vet at \"$subject\"" >&2
		exit 1
	fi
	n=$((n + 1))
done
echo "check-patches: fork-base and each of the $((n - 1)) patches build and vet alone"
