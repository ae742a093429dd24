#!/usr/bin/env bash
# Lays out packaging/arch for makepkg in build/arch: the PKGBUILD and its
# files, and the three pinned sources, each checked against the PKGBUILD:
#   ollama-v0.34.4.zip              the Go module zip of the pin (module cache, go.sum-verified)
#   node-llama-cpp-3.22.1.tgz       scripts/llama-src.sh --tarball (sha256-pinned)
#   ollama-backend-select-*.tar.gz  git archive of HEAD's overlay, patches, tools,
#                                   scripts and CMakeLists.txt
#
#   scripts/arch-sources.sh            prints build/arch; fails if a sum differs
#   scripts/arch-sources.sh --update   writes the fork tarball's sum into
#                                      packaging/arch/PKGBUILD (after a change
#                                      to what the tarball holds; commit it)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd -P)
out=$repo/build/arch
pkgb=$repo/packaging/arch/PKGBUILD
ver=$(sed -n 's/^_ollamaver=//p' "$pkgb")
rel=$(sed -n 's/^_forkrel=//p' "$pkgb")
nlc=$(sed -n 's/^_nlcver=//p' "$pkgb")

rm -rf "$out"
mkdir -p "$out"
cp "$repo"/packaging/arch/* "$out"/
zip=$(cd "$repo" && go mod download -json "github.com/ollama/ollama@v$ver" | sed -n 's/^[[:space:]]*"Zip": "\(.*\)",$/\1/p')
cp "$zip" "$out/ollama-v$ver.zip"
cp "$("$here/llama-src.sh" --tarball)" "$out/node-llama-cpp-$nlc.tgz"
# git archive stamps every file with the commit's time, so its sum would
# change with each commit (the one writing the sum too): repack with fixed
# times, owners and order, and gzip without a name or time.
fork=$(mktemp -d)
trap 'rm -rf "$fork"' EXIT
git -C "$repo" archive --format=tar --prefix=ollama-backend-select/ \
	HEAD -- CMakeLists.txt go.mod go.sum discover envconfig llm ml patches tools | tar -x -C "$fork"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=u+rw,go+r,go-w -C "$fork" -cf - ollama-backend-select |
	gzip -9n >"$out/ollama-backend-select-$ver-bs$rel.tar.gz"

forksum=$(sha256sum "$out/ollama-backend-select-$ver-bs$rel.tar.gz" | cut -d' ' -f1)
if [ "${1:-}" = --update ]; then
	python3 - "$pkgb" "$forksum" <<'PY'
import re, sys
p, s = sys.argv[1], open(sys.argv[1]).read()
lines = s.split("sha256sums=(", 1)
sums = re.findall(r"'([^']*)'", lines[1].split(")", 1)[0])
new = lines[1].replace("'" + sums[2] + "'", "'" + sys.argv[2] + "'", 1)
open(p, "w").write(lines[0] + "sha256sums=(" + new)
PY
	cp "$pkgb" "$out/PKGBUILD"
fi
# every source against the PKGBUILD's sums
mapfile -t names < <(cd "$out" && bash -c 'source ./PKGBUILD; printf "%s\n" "${source[@]}"')
mapfile -t sums < <(cd "$out" && bash -c 'source ./PKGBUILD; printf "%s\n" "${sha256sums[@]}"')
bad=0
for i in "${!names[@]}"; do
	got=$(sha256sum "$out/${names[i]}" | cut -d' ' -f1)
	[ "$got" = "${sums[i]}" ] || { echo "arch-sources: ${names[i]}: sha256 $got, PKGBUILD says ${sums[i]}" >&2; bad=1; }
done
[ $bad = 0 ] || { echo "arch-sources: the fork tarball is HEAD's: commit the change, run make arch-sources ARGS=--update, commit the PKGBUILD" >&2; exit 1; }
echo "$out"
