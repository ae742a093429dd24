#!/usr/bin/env bash
# Proves the patch round trip: the patches regenerated from the assembled tree
# are byte for byte the files in patches/ (so none was edited by hand, and the
# tree holds exactly the series).
# usage: check-patches.sh TREE
set -euo pipefail
tree=${1:?usage: check-patches.sh TREE}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$(dirname "$0")/format-patches.sh" "$tree" "$tmp"
if ! diff -ru --exclude=README.md patches "$tmp" >"$tmp.diff"; then
	cat "$tmp.diff" >&2
	rm -f "$tmp.diff"
	echo "check-patches: patches/ is not what build/ollama regenerates; edit upstream files in $tree and run 'make patches'" >&2
	exit 1
fi
rm -f "$tmp.diff"
echo "check-patches: $(find patches -name '*.patch' | wc -l) patches regenerate byte for byte"
