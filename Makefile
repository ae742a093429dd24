# ollama-backend-select: a patched fork of Ollama's GPU backend selection,
# kept as an overlay and a patch series on the pinned upstream Go module.
# `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

MODULE      := github.com/ollama/ollama
# The pin lives in go.mod's require line; UPSTREAM=vX.Y.Z overrides it for one
# run without editing go.mod: that release is assembled in its own tree
# (build/ollama-vX.Y.Z, the series applied strictly) and built into
# dist/vX.Y.Z/, so the pinned build/ollama and dist/bin stay as they are.
PIN         := $(shell go list -m -f '{{.Version}}' $(MODULE))
UPSTREAM    ?= $(PIN)
# The fork's own release number, appended to the upstream version.
FORK_RELEASE := 1
VERSION     ?= $(patsubst v%,%,$(UPSTREAM))-bs$(FORK_RELEASE)

# The overlay packages, listed once (the PKGBUILD and bump.sh read it too).
OVERLAY_PKGS := $(shell cat tools/overlay/packages)
BUILD       := build
ifeq ($(UPSTREAM),$(PIN))
TREE        := $(BUILD)/ollama
DIST        := dist
UPSTREAM_WT := $(BUILD)/upstream
# A 3-way merge starts a conflict resolution on the pin (check-patches proves
# the result); on any other release patches must apply strictly.
SRC_ENV     := ASSEMBLE_3WAY=1
else
TREE        := $(BUILD)/ollama-$(UPSTREAM)
DIST        := dist/$(UPSTREAM)
UPSTREAM_WT := $(BUILD)/upstream-$(UPSTREAM)
SRC_ENV     :=
endif
OLLAMA_SRC  ?= $(TREE)

# Packages of upstream whose tests run in the assembled tree: those the fork
# touches and the server that depends on them.
UPSTREAM_TEST_PKGS := ./discover/... ./envconfig/... ./llm/... ./ml/... ./server/...

GOBUILDFLAGS ?= -trimpath
GO_LDFLAGS  := -X=$(MODULE)/version.Version=$(VERSION)
export CGO_ENABLED := 1

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-16s %s\n", $$1, $$2}'
	@echo "  variables: UPSTREAM=$(UPSTREAM) (pin in go.mod: $(PIN); docs/upstream.md for others) VERSION=$(VERSION)"

.PHONY: src
src: ## materialize the pinned upstream in build/ollama with the overlay and patches as commits
	@$(SRC_ENV) scripts/assemble.sh $(TREE) $(UPSTREAM) $(OVERLAY_PKGS)

.PHONY: build
build: src ## build the patched ollama (CPU backend built in) into dist/bin/ollama
	cd $(TREE) && go build $(GOBUILDFLAGS) -ldflags='$(GO_LDFLAGS)' -o $(CURDIR)/$(DIST)/bin/ollama .
	@echo "built $(DIST)/bin/ollama $(VERSION)"

.PHONY: build-upstream
build-upstream: src ## build pristine upstream (the "upstream" tag) into dist/upstream/bin/ollama, for baselines
	rm -rf $(UPSTREAM_WT)
	git -C $(TREE) worktree prune
	git -C $(TREE) worktree add -q --detach $(CURDIR)/$(UPSTREAM_WT) upstream
	cd $(UPSTREAM_WT) && go build $(GOBUILDFLAGS) -ldflags='-X=$(MODULE)/version.Version=$(patsubst v%,%,$(UPSTREAM))' \
		-o $(CURDIR)/$(DIST)/upstream/bin/ollama .
	@echo "built $(DIST)/upstream/bin/ollama (pristine $(UPSTREAM))"

# Today's Ollama runs models in llama.cpp's llama-server, which it looks for
# in ../lib/ollama next to the binary. The run-time root (a Debian sid root,
# scripts/roots/runtime.list) has Debian's llama-server and ggml backends in
# their flat layout; dist/lib/ollama/llama-server points at it, so the
# server runs inside that root.
RUNTIME_ROOT := runtime
RUNTIME_TRIPLET := $(shell gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
RUNTIME_BACKENDS := /usr/lib/$(RUNTIME_TRIPLET)/ggml/backends0
# RUNTIME=native: dist/lib/ollama is the from-source build instead
# (make native, in LAYOUT), still run in the run-time root (lavapipe, sid's
# C++ run time): `make run RUNTIME=native`, `make integration RUNTIME=native`.
RUNTIME ?= debian
LAYOUT  ?= subdir
LIBS    ?= vulkan
NATIVE_LIB := $(CURDIR)/dist/native/$(LAYOUT)/lib/ollama
.PHONY: arch-pkg
arch-pkg: ## the real makepkg on packaging/arch (Debian's makepkg in a sid root), the three packages checked, installed with pacman -U in a scratch root, the installed server and RPC server run; green: packaging/arch-pkg.record (OBS_CPU=generic: one CPU backend; OBS_HIP_TARGETS=gfx1200: one target)
	mkdir -p $(MESA_CACHE)
	$(INTEGRATION_ENV) scripts/arch-pkg.sh $(ARGS)

.PHONY: runtime
runtime: $(if $(filter native,$(RUNTIME)),native) ## the run-time root (llama-server + ggml CPU/Vulkan backends, Debian sid) and dist/lib/ollama (RUNTIME=native: the native build)
	@scripts/buildroot.sh $(RUNTIME_ROOT) >/dev/null
ifeq ($(RUNTIME),native)
	@rm -rf $(DIST)/lib/ollama
	@mkdir -p $(DIST)/lib
	@ln -sfn $(NATIVE_LIB) $(DIST)/lib/ollama
	@echo "runtime: $(DIST)/lib/ollama -> $(NATIVE_LIB)"
else
	@test ! -L $(DIST)/lib/ollama || rm $(DIST)/lib/ollama
	@mkdir -p $(DIST)/lib/ollama
	@# llama-server finds its backends itself (ggml's compiled-in folder);
	@# Ollama's native probe (PCI ids, to pair a GPU's libraries) opens them
	@# and libggml-base/libggml from lib/ollama, as in upstream's layout.
	@ln -sfn /usr/bin/llama-server $(DIST)/lib/ollama/llama-server
	@for f in libggml-base.so libggml.so; do ln -sfn /usr/lib/$(RUNTIME_TRIPLET)/$$f.0 $(DIST)/lib/ollama/$$f; done
	@for f in $$(cd $$(scripts/buildroot.sh --path $(RUNTIME_ROOT))$(RUNTIME_BACKENDS) && ls libggml-*.so | grep -v '^libggml-cpu'); do \
		ln -sfn $(RUNTIME_BACKENDS)/$$f $(DIST)/lib/ollama/$$f; done
endif

# llama-server and the ggml backends the fork ships, built from source by
# upstream's llama/server CMake (CMakeLists.txt) with the pinned llama.cpp
# tree (scripts/llama-src.sh), in build roots this machine makes itself
# (scripts/roots/native-vulkan.list, native-rocm.list); ccache in
# /var/cache/ollama-backend-select/ccache. LAYOUT: subdir (lib/ollama/<library>/,
# upstream's and Arch's) or flat (one folder); LIBS: any of vulkan hip.
.PHONY: llama-src
llama-src: ## the pinned llama.cpp tree (node-llama-cpp's git bundle, sha256-checked) with v0.34.4's compat patch; prints its path
	@scripts/llama-src.sh

.PHONY: native
native: ## build llama-server + ggml (CPU, RPC with ggml-rpc-server, LIBS="vulkan hip") from source into dist/native/LAYOUT (LAYOUT=subdir|flat)
	scripts/native.sh $(LAYOUT) "$(LIBS)"

.PHONY: native-check
native-check: native ## native, then the load checks: lavapipe in --list-devices, tiny models generate on it, gfx1200/gfx1201 code objects in libggml-hip
	scripts/native-check.sh $(LAYOUT)

.PHONY: srcinfo
srcinfo: ## write packaging/arch/.SRCINFO with makepkg --printsrcinfo (after a change to the PKGBUILD; commit it)
	@scripts/srcinfo.sh --write

.PHONY: check-srcinfo
check-srcinfo: ## packaging/arch/.SRCINFO is what makepkg --printsrcinfo prints for the PKGBUILD
	@scripts/srcinfo.sh

.PHONY: arch-sources
arch-sources: ## packaging/arch laid out for makepkg in build/arch with its pinned sources, every sha256 checked (ARGS=--update rewrites the fork tarball's)
	@scripts/arch-sources.sh $(ARGS)

# What the user owns (models, keys, learned rules: ~/.ollama, and
# OLLAMA_MODELS when set) stays on the host, bound into the run-time root at
# the same path: rebuilding the root never touches it.
OLLAMA_STATE := $(HOME)/.ollama
.PHONY: run
run: build runtime ## build, then run `ollama serve` on 127.0.0.1:11434 in the run-time root (OLLAMA_HOST to change); models and keys stay in ~/.ollama on the host
	@mkdir -p $(OLLAMA_STATE) $(OLLAMA_MODELS)
	@echo "run: models, keys and learned rules in $(or $(OLLAMA_MODELS),$(OLLAMA_STATE)/models) and $(OLLAMA_STATE), outside the run-time root"
	OBS_BIND="$${OBS_BIND:-} $(OLLAMA_STATE) $(OLLAMA_MODELS)" OLLAMA_HOST=$${OLLAMA_HOST:-127.0.0.1:11434} \
		scripts/inroot.sh $(RUNTIME_ROOT) $(CURDIR)/$(DIST)/bin/ollama serve

# A small real model without the internet: a GGUF written here
# (integration/cmd/tinygguf: a qwen3 of ~107K parameters that prints a fixed
# cycle of ASCII), imported into the running server with `ollama create`.
# num_predict ends its answers: nothing in its weights says when to stop.
MODEL ?= tiny
.PHONY: model
model: ## write a tiny GGUF and `ollama create` it as MODEL (default tiny) on the running server (make run); then: dist/bin/ollama run tiny hello
	@mkdir -p $(BUILD)/model
	go run ./integration/cmd/tinygguf -o $(BUILD)/model/$(MODEL).gguf
	printf 'FROM ./$(MODEL).gguf\nPARAMETER num_predict 48\n' >$(BUILD)/model/Modelfile
	cd $(BUILD)/model && OLLAMA_HOST=$${OLLAMA_HOST:-127.0.0.1:11434} $(CURDIR)/$(DIST)/bin/ollama create $(MODEL) -f Modelfile

.PHONY: check
check: check-docs test lint fuzz check-patches arch-sources check-srcinfo integration pr ## everything CI runs (Debian host, root): the docs' links and cited tests, unit and upstream tests, upstream's lint, short fuzzing, the patch round trip and each patch built alone, the Arch sources against the PKGBUILD and its .SRCINFO, integration suite on the real llama-server, the upstream pull requests; .ci/run adds make arch-pkg when its inputs changed

# The whole suite (integration/README.md); INTEGRATION_RUN picks some. The
# cgo-era suite runs in its maintenance tree (make cgo-era T=integration).
# RUNTIME=native runs the lavapipe scenario (the fakes match Debian's ggml
# only) and the tiny models on the native build; in the subdir layout
# llama-server gets the Vulkan backend in GGML_BACKEND_PATH, as Ollama starts it.
#
# lavapipe compiles each Vulkan pipeline on the CPU: about 110 CPU-seconds
# for a tiny model with Mesa 26.2 (minutes for the from-source ggml-vulkan),
# every time a llama-server starts with an empty shader cache (each test
# server has its own HOME). One cache for every test, kept between runs
# beside the roots, makes it once; what is tested (which device runs the
# model) does not depend on it.
MESA_CACHE  ?= $(abspath $(or $(OBS_ROOTS),/var/cache/ollama-backend-select/roots)/../mesa-shader-cache)
INTEGRATION_ENV := MESA_SHADER_CACHE_DIR=$(MESA_CACHE) OBS_BIND="$${OBS_BIND:-} $(MESA_CACHE)"
ifeq ($(RUNTIME),native)
INTEGRATION_RUN ?= TestLlamaServerLavapipe
INTEGRATION_ENV += OBS_NATIVE_LIB=$(NATIVE_LIB)
TINY_ENV := OBS_LLAMA_READY_TIMEOUT=8m
TINY_LLAMA_SERVER := $(CURDIR)/scripts/inroot.sh $(RUNTIME_ROOT) env $(if $(filter subdir,$(LAYOUT)),GGML_BACKEND_PATH=$(NATIVE_LIB)/vulkan/libggml-vulkan.so) $(NATIVE_LIB)/llama-server
else
INTEGRATION_RUN ?= .
TINY_ENV := OBS_LLAMA_READY_TIMEOUT=6m
TINY_LLAMA_SERVER := $(CURDIR)/scripts/inroot.sh $(RUNTIME_ROOT) llama-server
endif
.PHONY: integration
integration: build runtime ## the integration suite: the built server as a black box on the real llama-server (lavapipe, fake GPU twin, tiny models); RUNTIME=native: on the native build
	go test ./integration/internal/...
	mkdir -p $(MESA_CACHE)
	$(INTEGRATION_ENV) OBS_LLAMA_SERVER="$(TINY_LLAMA_SERVER)" OBS_LLAMA_DEVICES="none Vulkan0" GGML_VK_VISIBLE_DEVICES=0 $(TINY_ENV) \
		go test -tags integration -count=1 -timeout 40m ./integration/internal/tinymodel
	$(INTEGRATION_ENV) go test -tags integration -count=1 -timeout 40m -run '$(INTEGRATION_RUN)' ./integration/

# The upstream pull requests (docs/upstream/): their sources are
# upstream/pr/<N>-<name>/, their generated series build/pr/<N>/ (not kept in
# git). scripts/pr.sh says what each step does.
.PHONY: pr
pr: src runtime ## the upstream pull requests: each series git am'd on pristine upstream alone, every commit gofmt/vet/golangci-lint/tested, its binary, its integration scenarios before (fail) and after (pass)
	@test "$(UPSTREAM)" = "$(PIN)" || { echo "pr: the pull requests are written on the pin $(PIN)"; exit 1; }
	mkdir -p $(MESA_CACHE)
	$(INTEGRATION_ENV) AUTHOR="$(AUTHOR)" scripts/pr.sh check

.PHONY: pr-src
pr-src: src ## build/pr/tree: pristine upstream with one commit per pull-request step, to edit
	AUTHOR="$(AUTHOR)" scripts/pr.sh src

.PHONY: pr-patches
pr-patches: ## write upstream/pr/ back from build/pr/tree's commits, byte-stable (AUTHOR="Name <email>" authors the patches; default: git config user)
	AUTHOR="$(AUTHOR)" scripts/pr.sh patches

.PHONY: cgo-era
cgo-era: ## a target of the cgo-runner releases (v0.18.2..v0.24.3) in their maintenance tree: make cgo-era T="check-patches UPSTREAM=v0.20.0"
	scripts/cgo-era.sh $(T)

.PHONY: check-docs
check-docs: ## every relative link in the Markdown docs resolves, every test they cite exists
	@scripts/check-docs.sh

.PHONY: test
test: test-overlay test-upstream ## all unit tests: this module, then upstream's tests in the assembled tree

.PHONY: lint
lint: src ## upstream's golangci-lint, with its .golangci.yaml, over the assembled tree: what goes upstream passes upstream's CI
	cd $(TREE) && $(CURDIR)/scripts/golangci-lint.sh run --config .golangci.yaml --build-tags assembled ./...

.PHONY: test-overlay
test-overlay: ## go vet and go test of this module (fast, no cgo build of upstream)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go test ./...

# Every fuzz target of this module, FUZZTIME each (CI: a short run; the
# 10-minute runs are recorded in docs/reliability.md). A failure leaves its
# input in the package's testdata/fuzz, to commit as a seed once fixed.
# CI counts executions rather than seconds: a time-bounded run can end in a
# spurious "context deadline exceeded" failure from go test's fuzz
# coordinator (seen once on this machine, FuzzWatchdogBusyPercent, 5s),
# which is no finding.
FUZZTIME ?= 50000x
.PHONY: fuzz
fuzz: ## run every fuzz target of this module for FUZZTIME (default 50000x) each
	@n=0; for pkg in $$(go list ./...); do \
		for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz: $$pkg $$f ($(FUZZTIME))"; \
			out=$$(go test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || \
				{ echo "$$out"; exit 1; }; \
			n=$$((n + 1)); \
		done; \
	done; \
	test $$n -gt 0 || { echo "fuzz: no fuzz targets found"; exit 1; }; \
	echo "fuzz: $$n targets, $(FUZZTIME) each, no failure"

.PHONY: test-upstream
test-upstream: src ## upstream's tests of the packages the fork touches (and the server), in build/ollama
	cd $(TREE) && go test -trimpath -tags assembled $(UPSTREAM_TEST_PKGS)

.PHONY: patches
patches: ## regenerate patches/ from the commits after fork-base in build/ollama
	@test "$(UPSTREAM)" = "$(PIN)" || { echo "patches/ is the pin's series; to move it to $(UPSTREAM): make bump (docs/upstream.md)"; exit 1; }
	@test -d $(TREE)/.git || { echo "no $(TREE): run 'make src' first"; exit 1; }
	@test -z "$$(git -C $(TREE) status --porcelain --untracked-files=no)" || \
		{ echo "$(TREE) has uncommitted changes: commit them first"; exit 1; }
	rm -f patches/*.patch
	scripts/format-patches.sh $(TREE) patches
	@git -C $(TREE) rev-parse HEAD > $(TREE)/.git/fork-state/head
	@echo "patches/: $$(ls patches/*.patch 2>/dev/null | wc -l) patches"

.PHONY: check-patches
check-patches: src ## prove the patch round trip (regenerating patches/ from build/ollama changes no byte) and that each patch builds and vets alone
	@scripts/check-patches.sh $(TREE)

.PHONY: bump
bump: ## move the pin to UPSTREAM=vX.Y.Z: bump commit, conflict-resolved patches, mechanical refresh, drops (docs/upstream.md)
	@test "$(UPSTREAM)" != "$(PIN)" || { echo "bump: UPSTREAM=vX.Y.Z, another release than the pin $(PIN)"; exit 1; }
	scripts/bump.sh --pin $(UPSTREAM)

.PHONY: upstream-matrix
upstream-matrix: ## on demand: does the series apply, build, test on each served release (docs/upstream.md), the cgo era's too; FULL="v..." also builds and tests those
	nice -n 15 scripts/upstream-matrix.sh $(filter-out v0.1% v0.2%,$(FULL))
	scripts/cgo-era.sh upstream-matrix FULL="$(filter v0.1% v0.2%,$(FULL))"

.PHONY: clean
clean: ## remove build/ and dist/ (caches outside the repo stay)
	rm -rf $(BUILD) $(DIST)

