#!/usr/bin/env bash
# Prints the patch series for an upstream release, one path per line, in
# order: the top-level patches/*.patch with the variant folder of the
# release's range (patches/ranges) laid over them.
#
#   series.sh VERSION           the series
#   series.sh --folder VERSION  the range's folder, or nothing for the top level
#   series.sh --check           the ranges file is consistent (no overlaps,
#                               folders exist, every variant and drop names a
#                               top-level patch); cheap, part of check-patches
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ranges=$repo/patches/ranges

die() { echo "series: $*" >&2; exit 1; }

# semver "vX.Y.Z" -> sortable "XXXXX.YYYYY.ZZZZZ"
key() {
	[[ $1 =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || die "not a release version: '$1' (want vX.Y.Z)"
	printf '%05d.%05d.%05d' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
}

rows() { grep -vE '^[[:space:]]*(#|$)' "$ranges" 2>/dev/null || true; }

folder_of() {
	local v k first last folder
	v=$1
	k=$(key "$v")
	while read -r first last folder _; do
		if [[ ! $(key "$first") > $k && ! $k > $(key "$last") ]]; then
			echo "$folder"
			return
		fi
	done < <(rows)
}

series() {
	local folder name line
	folder=$(folder_of "$1")
	declare -A drop=()
	if [ -n "$folder" ] && [ -f "$repo/patches/$folder/dropped" ]; then
		while read -r line; do
			[[ $line =~ ^drop[[:space:]]+([^[:space:]]+) ]] && drop[${BASH_REMATCH[1]}]=1
		done <"$repo/patches/$folder/dropped"
	fi
	# Names sort into one series: a folder's own patch (one the top level
	# does not have, e.g. 0000-...) goes where its name puts it.
	{
		(cd "$repo/patches" && ls ./*.patch 2>/dev/null)
		[ -z "$folder" ] || (cd "$repo/patches/$folder" && ls ./*.patch 2>/dev/null)
	} | sed 's|^\./||' | LC_ALL=C sort -u | while read -r name; do
		[ -n "${drop[$name]:-}" ] && continue
		if [ -n "$folder" ] && [ -f "$repo/patches/$folder/$name" ]; then
			echo "$repo/patches/$folder/$name"
		else
			echo "$repo/patches/$name"
		fi
	done
}

check() {
	local first last folder extra prev_last="" n=0 f name
	while read -r first last folder extra; do
		n=$((n + 1))
		[ -n "$folder" ] && [ -z "$extra" ] || die "patches/ranges: want 'first last folder', got '$first $last $folder $extra'"
		[[ ! $(key "$first") > $(key "$last") ]] || die "patches/ranges: $first > $last"
		[ -z "$prev_last" ] || [[ $(key "$first") > $(key "$prev_last") ]] ||
			die "patches/ranges: $first..$last overlaps or precedes the range before it (ranges go in ascending order)"
		prev_last=$last
		[ -d "$repo/patches/$folder" ] || die "patches/ranges: no folder patches/$folder"
		for f in "$repo/patches/$folder"/*; do
			name=$(basename "$f")
			case $name in
			*.patch) ;; # replaces the top-level patch of that name, or adds one

			dropped)
				while read -r line; do
					[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
					[[ $line =~ ^drop[[:space:]]+([^[:space:]]+)[[:space:]]+[^[:space:]] ]] ||
						die "patches/$folder/dropped: want 'drop NAME reason', got '$line'"
					[ -f "$repo/patches/${BASH_REMATCH[1]}" ] || die "patches/$folder/dropped: no top-level ${BASH_REMATCH[1]}"
				done <"$f"
				;;
			README.md) ;;
			*) die "patches/$folder/$name: a variant folder holds NNNN-*.patch files, 'dropped' and README.md only" ;;
			esac
		done
	done < <(rows)
	echo "series: patches/ranges consistent ($n ranges)"
}

case ${1:-} in
--folder) folder_of "${2:?usage: series.sh --folder VERSION}" ;;
--check) check ;;
-* | "") die "usage: series.sh VERSION | --folder VERSION | --check" ;;
*) series "$1" ;;
esac
