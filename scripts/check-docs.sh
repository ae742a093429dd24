#!/usr/bin/env bash
# Checks that the Markdown docs describe what exists here: every relative link
# names a tracked file or folder, every cited Go test name is defined.
# The logic and its tests are tools/checkdocs; this only builds and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/checkdocs" ./tools/checkdocs
"$tmp/checkdocs"
