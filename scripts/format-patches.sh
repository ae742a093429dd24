#!/usr/bin/env bash
# Writes the commits after fork-base in TREE (or the commits of RANGE) as
# patches into OUTDIR, in the one byte-stable form the repository keeps (no
# commit ids, no signature, no diffstat, fixed abbreviation length).
# usage: format-patches.sh TREE OUTDIR [RANGE]
set -euo pipefail
tree=${1:?usage: format-patches.sh TREE OUTDIR [RANGE]}
out=${2:?usage: format-patches.sh TREE OUTDIR [RANGE]}
mkdir -p "$out"
git -C "$tree" -c core.abbrev=12 -c diff.noprefix=false -c diff.mnemonicPrefix=false \
	format-patch -q --zero-commit --no-signature --no-stat --no-numbered \
	-o "$(cd "$out" && pwd)" "${3:-fork-base..HEAD}"
