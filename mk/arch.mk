# mk/arch.mk: the Arch Linux packages (packaging/arch), built by a real
# makepkg.  Included by the top-level Makefile.
#
# makepkg refuses to run as root; as root, packaging/arch/ci-makepkg.sh runs
# it as an unprivileged build user it creates.  On Debian (CI) the PKGBUILD's
# OBS_PREBUILT hook packages what `make build` and `make install LAYOUT=flat`
# built, so nothing is compiled twice; on Arch, `makepkg -si` in
# packaging/arch is the real build.
#
# arch-pkg makes all three packages and fails without build/native/hip's
# libggml-hip.so (`make rocm-check` builds it; make check runs that first);
# `make arch-pkg OBS_ARCH_ROCM=0` makes the server and -vulkan packages only.

ARCH_PKG_DIR := packaging/arch
ARCH_ROOT    ?= build/arch/root

.PHONY: arch-check arch-srcinfo arch-pkg arch-root
arch-check: ## Arch PKGBUILD: shellcheck, makepkg's lint, b2sums and .SRCINFO in sync (seconds)
	@$(ARCH_PKG_DIR)/ci-makepkg.sh check

arch-srcinfo: ## rewrite packaging/arch/.SRCINFO and the PKGBUILD's b2sums after editing them
	@$(ARCH_PKG_DIR)/ci-makepkg.sh srcinfo

arch-pkg: ## makepkg the three Arch packages into build/arch/pkg (needs make rocm-check first), check their contents, run them in a scratch root
	@NATIVE_DIR='$(abspath $(NATIVE_DIR))' $(ARCH_PKG_DIR)/ci-makepkg.sh build

arch-root: ## unpack build/arch/pkg into ARCH_ROOT (default build/arch/root), a scratch root to run the server in
	@$(ARCH_PKG_DIR)/ci-makepkg.sh root $(ARCH_ROOT)
