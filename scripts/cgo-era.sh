#!/usr/bin/env bash
# Runs a make target of the cgo-runner era (Ollama v0.18.2 to v0.24.3) in a
# work tree of the maintenance commit named in patches/cgo-era, so that the
# range keeps its own overlay, series and variants while the main line
# follows today's Ollama.
#
#   scripts/cgo-era.sh TARGET [VAR=VALUE ...]   e.g. check-patches UPSTREAM=v0.20.0
#   scripts/cgo-era.sh --range                  print "FIRST LAST" of the range
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
conf=$repo/patches/cgo-era
die() { echo "cgo-era: $*" >&2; exit 1; }

field() { awk -v k="$1" '$1 == k { print $2 }' "$conf"; }
commit=$(field commit)
[ -n "$commit" ] || die "$conf names no commit"
if [ "${1:-}" = --range ]; then
	echo "$(field first) $(field last)"
	exit 0
fi
[ $# -ge 1 ] || die "usage: $0 TARGET [VAR=VALUE ...] | --range"
git -C "$repo" cat-file -e "$commit^{commit}" 2>/dev/null ||
	die "commit $commit is not in this clone (fetch the full history)"

wt=$repo/build/cgo-era
if [ "$(git -C "$wt" rev-parse HEAD 2>/dev/null)" != "$commit" ]; then
	echo "cgo-era: work tree $wt at ${commit:0:12}" >&2
	git -C "$repo" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
	git -C "$repo" worktree prune
	git -C "$repo" worktree add -q --detach "$wt" "$commit"
fi
exec make -C "$wt" "$@"
