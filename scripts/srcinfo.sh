#!/usr/bin/env bash
# packaging/arch/.SRCINFO: the PKGBUILD's metadata as the AUR and AUR helpers
# read it, printed by `makepkg --printsrcinfo` (Debian's makepkg, in the sid
# root arch-srcinfo, as nobody: makepkg refuses root).
#
#   scripts/srcinfo.sh           fails with the difference when .SRCINFO is not
#                                what makepkg prints for the PKGBUILD
#   scripts/srcinfo.sh --write   writes it (commit it with the PKGBUILD)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd -P)
pkgb=$repo/packaging/arch/PKGBUILD
srcinfo=$repo/packaging/arch/.SRCINFO

mode=check
case "${1:-}" in
	--write) mode=write ;;
	"") ;;
	*) echo "srcinfo: unknown argument $1 (accepted: --write)" >&2; exit 2 ;;
esac

"$here/buildroot.sh" arch-srcinfo >/dev/null
# the PKGBUILD on stdin, into a folder of nobody's (makepkg checks it may write there)
got=$("$here/inroot.sh" arch-srcinfo sh -c \
	'd=$(mktemp -d) && cat >"$d/PKGBUILD" && chown -R nobody "$d" && cd "$d" && runuser -u nobody -- makepkg --printsrcinfo; rc=$?; rm -rf "$d"; exit $rc' <"$pkgb")
[ -n "$got" ] || { echo "srcinfo: makepkg --printsrcinfo printed nothing for $pkgb" >&2; exit 1; }

if [ $mode = write ]; then
	printf '%s\n' "$got" >"$srcinfo"
	echo "srcinfo: wrote ${srcinfo#"$repo"/}"
	exit 0
fi
if ! diff -u --label "${srcinfo#"$repo"/}" --label "makepkg --printsrcinfo" "$srcinfo" <(printf '%s\n' "$got"); then
	echo "srcinfo: ${srcinfo#"$repo"/} is not the PKGBUILD's: make srcinfo, commit it" >&2
	exit 1
fi
echo "srcinfo: ${srcinfo#"$repo"/} matches makepkg --printsrcinfo"
