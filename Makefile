# ollama-backend-select: a patched fork of Ollama's GPU backend selection,
# kept as an overlay and a patch series on the pinned upstream Go module.
# `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

MODULE      := github.com/ollama/ollama
# The pin lives in go.mod's require line; UPSTREAM=vX.Y.Z overrides it for one
# run without editing go.mod: that release is assembled in its own tree
# (build/ollama-vX.Y.Z, with the series patches/ranges gives it) and built into
# dist/vX.Y.Z/, so the pinned build/ollama and dist/bin stay as they are.
PIN         := $(shell go list -m -f '{{.Version}}' $(MODULE))
UPSTREAM    ?= $(PIN)
# The fork's own release number, appended to the upstream version.
FORK_RELEASE := 1
VERSION     ?= $(patsubst v%,%,$(UPSTREAM))-bs$(FORK_RELEASE)

OVERLAY_PKGS := discover discover/gpuwatch envconfig llm ml
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
	@# llama.cpp lives in the module up to v0.2x; later releases fetch it with CMake
	@test ! -d $(TREE)/llama/llama.cpp || scripts/vendor-headers.sh $(TREE)/llama/llama.cpp/vendor $(BUILD)/deps >/dev/null 2>$(BUILD)/deps.log || \
		{ cat $(BUILD)/deps.log >&2; exit 1; }

.PHONY: build
build: src ## build the patched ollama (CPU backend built in) into dist/bin/ollama
	cd $(TREE) && go build $(GOBUILDFLAGS) -ldflags='$(GO_LDFLAGS)' -o $(CURDIR)/$(DIST)/bin/ollama .
	@echo "built $(DIST)/bin/ollama $(VERSION)"

.PHONY: build-upstream
build-upstream: src ## build pristine upstream (the "upstream" tag) into dist/upstream/bin/ollama, for baselines
	rm -rf $(UPSTREAM_WT)
	git -C $(TREE) worktree prune
	git -C $(TREE) worktree add -q --detach $(CURDIR)/$(UPSTREAM_WT) upstream
	test ! -d $(TREE)/llama/llama.cpp || cp -a $(TREE)/llama/llama.cpp/vendor $(UPSTREAM_WT)/llama/llama.cpp/
	cd $(UPSTREAM_WT) && go build $(GOBUILDFLAGS) -ldflags='-X=$(MODULE)/version.Version=$(patsubst v%,%,$(UPSTREAM))' \
		-o $(CURDIR)/$(DIST)/upstream/bin/ollama .
	@echo "built $(DIST)/upstream/bin/ollama (pristine $(UPSTREAM))"

.PHONY: run
run: build ## build, then run `ollama serve` on 127.0.0.1:11434 (OLLAMA_HOST to change)
	OLLAMA_HOST=$${OLLAMA_HOST:-127.0.0.1:11434} $(DIST)/bin/ollama serve

.PHONY: check
check: arch-check test fuzz check-patches pr vulkan rocm-check native-check integration arch-pkg ## everything CI runs (Debian host, root): PKGBUILD lint, unit and upstream tests, short fuzzing, patch round trip, PR series, Vulkan and ROCm (gfx1200) builds + checks, integration suite, the three Arch packages

.PHONY: integration
integration: build build-upstream ## the integration suite: the built servers as black boxes (fake GPU twin, tiny models)
	go test -tags integration -count=1 -timeout 40m ./integration/...

.PHONY: test
test: test-overlay test-upstream ## all unit tests: this module, then upstream's tests in the assembled tree

.PHONY: test-overlay
test-overlay: ## go vet and go test of this module (fast, no cgo build of upstream)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go test ./...

# Every fuzz target of this module, FUZZTIME each (CI: a short run; the
# 10-minute runs are recorded in docs/reliability.md). A failure leaves its
# input in the package's testdata/fuzz, to commit as a seed once fixed.
FUZZTIME ?= 5s
.PHONY: fuzz
fuzz: ## run every fuzz target of this module for FUZZTIME (default 5s) each
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
	cd $(TREE) && go test -trimpath $(UPSTREAM_TEST_PKGS)

.PHONY: patches
patches: ## regenerate patches/ from the commits after fork-base in build/ollama
	@test "$(UPSTREAM)" = "$(PIN)" || { echo "patches/ is the pin's series; for $(UPSTREAM) write variants (docs/upstream.md)"; exit 1; }
	@test -d $(TREE)/.git || { echo "no $(TREE): run 'make src' first"; exit 1; }
	@test -z "$$(git -C $(TREE) status --porcelain --untracked-files=no)" || \
		{ echo "$(TREE) has uncommitted changes: commit them first"; exit 1; }
	rm -f patches/*.patch
	scripts/format-patches.sh $(TREE) patches
	@git -C $(TREE) rev-parse HEAD > $(TREE)/.git/fork-state/head
	@echo "patches/: $$(ls patches/*.patch 2>/dev/null | wc -l) patches"

.PHONY: check-patches
check-patches: src ## prove the patch round trip: regenerating patches/ from build/ollama changes no byte
	@scripts/check-patches.sh $(TREE)

.PHONY: pr
pr: src ## an upstream-ready series in dist/pr, proven by git am on a pristine tree and its tests
	scripts/make-pr.sh $(TREE) $(DIST)/pr "$(UPSTREAM_TEST_PKGS)"

.PHONY: bump
bump: ## move the pin to UPSTREAM=vX.Y.Z: bump commit, conflict-resolved patches, mechanical refresh, drops (docs/upstream.md)
	@test "$(UPSTREAM)" != "$(PIN)" || { echo "bump: UPSTREAM=vX.Y.Z, another release than the pin $(PIN)"; exit 1; }
	scripts/bump.sh --pin $(UPSTREAM)

.PHONY: variant
variant: ## port the series to UPSTREAM=vX.Y.Z as variants in patches/vX.Y.Z (RANGE="first last" to widen)
	scripts/bump.sh --variant $(UPSTREAM) $(RANGE)

.PHONY: check-variants
check-variants: ## the byte round trip of every variant folder, each on its own release (downloads them; not in CI)
	@for v in $$(grep -vE '^[[:space:]]*(#|$$)' patches/ranges | awk '{print $$3}'); do \
		$(MAKE) -s check-patches UPSTREAM=$$v || exit 1; done

.PHONY: upstream-matrix
upstream-matrix: ## on demand: does the series apply, build, test on each served release (docs/upstream.md); FULL="v..." also builds and tests those
	nice -n 15 scripts/upstream-matrix.sh $(FULL)

.PHONY: clean
clean: ## remove build/ and dist/ (caches outside the repo stay)
	rm -rf $(BUILD) $(DIST)

-include mk/*.mk
