#!/usr/bin/env bash
# Upstream's linter, the version its CI runs (golangci-lint v2), installed
# once into the shared cache; the arguments are golangci-lint's.
set -euo pipefail
version=v2.15.0
bin=${OBS_CACHE:-/var/cache/ollama-backend-select}/golangci-lint/$version/golangci-lint
if [ ! -x "$bin" ]; then
	echo "golangci-lint: installing $version into $(dirname "$bin") (once)" >&2
	GOBIN=$(dirname "$bin") GOFLAGS= go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
fi
exec "$bin" "$@"
