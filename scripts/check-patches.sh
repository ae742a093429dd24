#!/usr/bin/env bash
# Proves the patch round trip: the patches regenerated from the assembled tree
# are byte for byte the files they came from (so none was edited by hand, and
# the tree holds exactly the series). On the pinned tree that is every
# top-level patches/*.patch; on the tree of another release (build/ollama-vX.Y.Z)
# it is the variants of that release's range (patches/ranges), position by
# position in the release's series (scripts/series.sh), on the release the
# variants were written on (the folder's name); top-level patches there, and
# variants on the range's other releases, differ in line numbers and index
# lines by nature.
# Then each patch must build alone: fork-base and every prefix of the
# series are built and vetted (tests compiled too) in a scratch work tree.
# usage: check-patches.sh TREE
set -euo pipefail
tree=${1:?usage: check-patches.sh TREE}
here=$(dirname "$0")
version=$(cat "$tree/.git/fork-state/upstream")
"$here/series.sh" --check
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/format-patches.sh" "$tree" "$tmp"
folder=$("$here/series.sh" --folder "$version")
if [ -n "$folder" ] && [ "$folder" != "$version" ]; then
	# Variants are written on their folder's release; elsewhere in the range
	# they apply strictly (make src proved it) with other line numbers.
	echo "check-patches: $version holds the series of patches/$folder (applied strictly); the byte round trip of its variants is checked on $folder"
	exit 0
fi
mapfile -t series < <("$here/series.sh" "$version")
mapfile -t regen < <(cd "$tmp" && ls)
if [ ${#series[@]} != ${#regen[@]} ]; then
	echo "check-patches: $tree holds ${#regen[@]} commits after fork-base, the series of $version has ${#series[@]}; run 'make src' (or 'make patches')" >&2
	exit 1
fi
bad=0 checked=0
for i in "${!series[@]}"; do
	want=${series[$i]}
	if [ -z "$folder" ] || [[ $want == */patches/$folder/* ]]; then
		checked=$((checked + 1))
		if ! diff -u "$want" "$tmp/${regen[$i]}" >"$tmp.diff"; then
			cat "$tmp.diff" >&2
			echo "check-patches: ${want#*/patches/} is not what $tree regenerates" >&2
			bad=1
		fi
	fi
done
rm -f "$tmp.diff"
if [ -z "$folder" ] && [ "$(cd "$tmp" && ls)" != "$(cd "$here/../patches" && ls ./*.patch | sed 's|^\./||')" ]; then
	echo "check-patches: the regenerated file names differ from patches/*.patch" >&2
	bad=1
fi
if [ $bad = 1 ]; then
	echo "check-patches: patches are not what $tree regenerates; edit upstream files in $tree and run 'make patches'" >&2
	exit 1
fi
echo "check-patches: $checked patches of $version${folder:+ (variants in patches/$folder)} regenerate byte for byte"

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
