#!/usr/bin/env bash
# The record of the last green `make arch-pkg` (packaging/arch-pkg.record): a
# hash over everything the Arch packages are built from, with the date, the
# build's settings and its summary lines. The one place that says what those
# inputs are; scripts/arch-pkg.sh writes the record, .ci/run compares it.
#
#   scripts/arch-record.sh hash           the inputs' hash at HEAD
#   scripts/arch-record.sh write SUMMARY  the record, after a green run: the hash,
#                                         the date, HEAD, then SUMMARY's lines
#   scripts/arch-record.sh check          exit 0 with one line naming the recorded
#                                         run when HEAD's inputs hash to it; exit 3
#                                         with both hashes when they changed
#
# The hash is over HEAD's blobs (content and mode, by path, sorted): not the
# mtimes, not the record itself (outside the inputs). A run from a work tree
# whose inputs differ from HEAD writes no record: it would name inputs that
# were not built.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd -P)
record=$repo/packaging/arch-pkg.record

# What makepkg builds from: the PKGBUILD and its files, the fork tarball's
# paths (CMakeLists.txt, go.mod/go.sum with the Ollama pin, the overlay,
# patches, tools), the llama.cpp pin, the build-root lists and the scripts
# that make the roots and run makepkg, and the test of the installed packages.
inputs=(packaging/arch CMakeLists.txt go.mod go.sum discover envconfig llm ml patches tools
	scripts/arch-pkg.sh scripts/arch-sources.sh scripts/arch-record.sh scripts/llama-src.sh
	scripts/buildroot.sh scripts/inroot.sh scripts/roots/arch-build.list scripts/roots/arch-scratch.list
	integration/arch_packages_test.go)

die() { echo "arch-record: $*" >&2; exit 1; }

inputs_hash() {
	local files
	files=$(git -C "$repo" ls-tree -r --full-tree HEAD -- "${inputs[@]}" | LC_ALL=C sort -k4)
	[ -n "$files" ] || die "no inputs at HEAD (${inputs[*]})"
	printf '%s\n' "$files" | sha256sum | cut -d' ' -f1
}

field() { sed -n "s/^$1: //p" "$record" | head -n1; }

case "${1:-}" in
hash)
	inputs_hash
	;;
write)
	summary=${2:?usage: $0 write SUMMARY}
	[ -f "$summary" ] || die "no summary file $summary"
	dirty=$(git -C "$repo" status --porcelain -- "${inputs[@]}")
	if [ -n "$dirty" ]; then
		echo "arch-record: inputs differ from HEAD, no record written:" >&2
		printf '%s\n' "$dirty" | sed 's/^/arch-record:   /' >&2
		exit 0
	fi
	{
		echo "# The last green \`make arch-pkg\`: scripts/arch-record.sh wrote it; .ci/run"
		echo "# runs makepkg when the inputs' hash is no longer this one."
		echo "hash: $(inputs_hash)"
		echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo "commit: $(git -C "$repo" rev-parse --short=12 HEAD) $(git -C "$repo" log -1 --format=%s | cut -c1-72)"
		cat "$summary"
	} >"$record.new"
	mv "$record.new" "$record"
	echo "arch-record: wrote ${record#"$repo"/}:"
	sed 's/^/  /' "$record"
	;;
check)
	want=$(inputs_hash)
	if [ ! -f "$record" ]; then
		echo "arch-pkg: no record (${record#"$repo"/}) of a green run: makepkg runs"
		exit 3
	fi
	got=$(field hash)
	if [ "$got" = "$want" ]; then
		echo "arch-pkg: inputs as recorded, green on $(field date) at $(field commit | cut -d' ' -f1) ($(field settings)): no makepkg"
		exit 0
	fi
	echo "arch-pkg: inputs changed since the record of $(field date) (hash $want, recorded ${got:-none}): makepkg runs"
	exit 3
	;;
*)
	die "unknown argument '${1:-}' (accepted: hash, write SUMMARY, check)"
	;;
esac
