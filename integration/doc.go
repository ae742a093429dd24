// Package integration holds the end-to-end test bed of the fork: tests that
// start real `ollama serve` processes against fake (and optionally real)
// GGML GPU backend libraries. They carry the build tag "integration":
//
//	go test -tags integration ./integration/...
//
// Environment:
//
//	OBS_OLLAMA_BIN     binary under test (default <repo>/dist/bin/ollama)
//	OBS_UPSTREAM_BIN   pristine v0.18.2 binary for baselines
//	                   (default <repo>/dist/upstream/bin/ollama)
//	OBS_RUN_PREFIX     command prefix to run the server with, e.g.
//	                   "scripts/inroot.sh trixie" (test dirs are passed to it
//	                   in OBS_BIND)
//	OBS_OLLAMA_SRC     upstream source tree for the fake library's headers
//	                   (default: the module cache copy of the pinned version)
//	OBS_LOG_DIR        if set, every server log is copied there
//
// Tests skip (with a message) when a binary they need is absent.
package integration
