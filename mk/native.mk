# mk/native.mk: the native GGML backend libraries (Vulkan, ROCm/HIP).
#
# Included by the top-level Makefile.  Builds run inside cached Debian roots
# (scripts/buildroot.sh, scripts/inroot.sh) from the GGML sources in
# $(OLLAMA_SRC); outputs go to build/native/{vulkan,hip}; compiler results are
# cached in $(OBS_CCACHE_DIR).  docs/native.md has the details and timings.

OLLAMA_SRC     ?= build/ollama
OBS_CACHE      ?= /var/cache/ollama-backend-select
export OBS_ROOTS      ?= $(OBS_CACHE)/roots
export OBS_CCACHE_DIR ?= $(OBS_CACHE)/ccache

NATIVE_DIR     ?= build/native
VK_BUILD       := $(NATIVE_DIR)/vulkan
HIP_BUILD      := $(NATIVE_DIR)/hip
# empty: upstream's ROCm 7 list (CMakeLists.txt); e.g. AMDGPU_TARGETS=gfx1200
AMDGPU_TARGETS ?=
NATIVE_JOBS    ?= $(shell nproc)
NATIVE_NICE    ?= nice -n 10
PREFIX         ?= dist
LAYOUT         ?= flat

NATIVE_SRC_ABS := $(abspath $(OLLAMA_SRC))
# The environment every in-root command gets.  OLLAMA_SRC makes inroot.sh
# bind the source tree when it lies outside the repository (module cache).
NATIVE_ENV := OLLAMA_SRC=$(NATIVE_SRC_ABS) CCACHE_DIR=$(OBS_CCACHE_DIR) \
	CCACHE_BASEDIR=$(CURDIR) CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=$${CCACHE_MAXSIZE:-20G}
INROOT := $(NATIVE_ENV) scripts/inroot.sh

# cmake configure: only when there is no build.ninja yet or the arguments
# changed (kept in obs-config.args); ninja re-runs cmake itself when a
# CMakeLists.txt changes.  $(1)=build dir, $(2)=root, $(3)=arguments.
define native_configure
	@args='-S $(CURDIR) -B $(abspath $(1)) -G Ninja -DOLLAMA_SRC=$(NATIVE_SRC_ABS) $(3)'; \
	if [ ! -f $(1)/build.ninja ] || [ "$$(cat $(1)/obs-config.args 2>/dev/null)" != "$$args" ]; then \
		echo "cmake $$args"; \
		$(INROOT) $(2) $(NATIVE_NICE) cmake $$args && echo "$$args" >$(1)/obs-config.args; \
	fi
endef

native_empty :=
native_space := $(native_empty) $(native_empty)
# AMDGPU_TARGETS may be given with spaces or semicolons
HIP_TARGETS_CMAKE = $(subst $(native_space),;,$(strip $(subst ;, ,$(AMDGPU_TARGETS))))
HIP_TARGETS_WORDS = $(strip $(subst ;, ,$(AMDGPU_TARGETS)))
HIP_ARGS = -DOBS_HIP=ON \
	$(if $(HIP_TARGETS_WORDS),-DAMDGPU_TARGETS=$(HIP_TARGETS_CMAKE),-UAMDGPU_TARGETS)

# The source tree must exist; order-only, so its timestamps never force a rebuild.
$(OLLAMA_SRC)/go.mod:
	@$(MAKE) --no-print-directory src

.PHONY: roots root-trixie root-sid
roots: root-trixie root-sid ## create/refresh both Debian build roots (trixie: Vulkan + runtime, sid: ROCm)
root-trixie: ## create/refresh the trixie build root (Vulkan build, runs the built server)
	@scripts/buildroot.sh trixie >/dev/null
root-sid: ## create/refresh the sid build root (ROCm/HIP build, ~5.7 GB)
	@scripts/buildroot.sh sid >/dev/null

.PHONY: vulkan
vulkan: root-trixie | $(OLLAMA_SRC)/go.mod ## build libggml-vulkan.so (+ libggml-base.so) in the trixie root, then load-check it
	$(call native_configure,$(VK_BUILD),trixie,-DOBS_VULKAN=ON)
	$(INROOT) trixie $(NATIVE_NICE) cmake --build $(VK_BUILD) -j $(NATIVE_JOBS)
	@scripts/check-native.sh vulkan $(VK_BUILD)

.PHONY: rocm
rocm: root-sid | $(OLLAMA_SRC)/go.mod ## build libggml-hip.so in the sid root (AMDGPU_TARGETS=gfx1200 for one target; default: upstream's ROCm 7 list)
	$(call native_configure,$(HIP_BUILD),sid,$(HIP_ARGS))
	$(INROOT) sid $(NATIVE_NICE) cmake --build $(HIP_BUILD) -j $(NATIVE_JOBS)
	@EXPECT_GFX='$(HIP_TARGETS_WORDS)' scripts/check-native.sh hip $(HIP_BUILD)

.PHONY: rocm-check
rocm-check: ## build libggml-hip.so for gfx1200 only (the quick ROCm build), then check it
	@$(MAKE) --no-print-directory rocm AMDGPU_TARGETS=gfx1200

.PHONY: native-check
native-check: ## check the built native libraries: Vulkan loads (lavapipe), gfx code objects in libggml-hip.so
	@scripts/check-native.sh all

# Installed modules live in $(PREFIX)/lib/ollama (flat) or its vulkan/ and
# rocm/ subdirectories (subdir), next to $(PREFIX)/bin/ollama's ../lib/ollama.
# libggml-base.so.0 always goes to lib/ollama: the modules need it (DT_NEEDED)
# and find it by RUNPATH.  HIP is installed when it has been built.
NATIVE_INSTALL_HIP = $(wildcard $(HIP_BUILD)/lib/ollama/libggml-hip.so)
.PHONY: install
install: vulkan ## install the native libraries into PREFIX (default dist) with LAYOUT=flat|subdir
	@case '$(LAYOUT)' in flat|subdir) ;; *) echo "LAYOUT must be flat or subdir" >&2; exit 2 ;; esac
	@mkdir -p $(PREFIX)/lib/ollama
	rm -rf $(PREFIX)/lib/ollama/vulkan $(PREFIX)/lib/ollama/rocm \
		$(PREFIX)/lib/ollama/libggml-vulkan.so $(PREFIX)/lib/ollama/libggml-hip.so \
		$(PREFIX)/lib/ollama/libggml-base.so*
	$(INROOT) trixie cmake $(abspath $(VK_BUILD)) -DOBS_LAYOUT=$(LAYOUT) >/dev/null
	OBS_BIND='$(abspath $(PREFIX))' $(INROOT) trixie sh -ec 'for c in base vulkan; do \
		cmake --install $(VK_BUILD) --prefix $(abspath $(PREFIX)) --component $$c; done'
	$(if $(NATIVE_INSTALL_HIP),$(INROOT) sid cmake $(abspath $(HIP_BUILD)) -DOBS_LAYOUT=$(LAYOUT) >/dev/null)
	$(if $(NATIVE_INSTALL_HIP),OBS_BIND='$(abspath $(PREFIX))' $(INROOT) sid \
		cmake --install $(HIP_BUILD) --prefix $(abspath $(PREFIX)) --component hip)
	@NATIVE_DIR=$(abspath $(NATIVE_DIR)) scripts/check-native.sh prefix $(PREFIX)
	@find $(PREFIX)/lib/ollama -name 'libggml-*' | sort
