#!/usr/bin/env bash
# Load checks on what scripts/native.sh built and installed:
#
#   scripts/native-check.sh LAYOUT      LAYOUT: subdir | flat (dist/native/LAYOUT)
#
# - ggml-vulkan (when built): the built llama-server lists lavapipe's Vulkan
#   device (`--list-devices`, GGML_VK_VISIBLE_DEVICES=0), and the tiny
#   models of integration/internal/tinymodel generate the weights' token
#   cycle on it and on the CPU (TestLlamaServer), in the native-vulkan root.
# - ggml-hip (when built): libggml-hip.so holds a code object for each gfx
#   target of OBS_HIP_TARGETS (default gfx1200 gfx1201): the offload bundle
#   ids hipv4-amdgcn-amd-amdhsa--gfxNNNN, and roc-obj-ls where the root has it.
# In the subdir layout llama-server is started the way Ollama starts it: the
# runner folder's backend in GGML_BACKEND_PATH (ggml only searches its own
# folder and the working directory).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd -P)
layout=${1:-subdir}
lib=$repo/dist/native/$layout/lib/ollama
[ -x "$lib/llama-server" ] || { echo "native-check: no $lib/llama-server (make native LAYOUT=$layout)" >&2; exit 1; }
fail=0
ok() { echo "native-check: ok: $*"; }
bad() { echo "native-check: FAIL: $*"; fail=1; }

vk=$(find "$lib" -name 'libggml-vulkan*.so' | head -n1)
if [ -n "$vk" ]; then
	env=(GGML_VK_VISIBLE_DEVICES=0)
	[ "$(dirname "$vk")" != "$lib" ] && env+=(GGML_BACKEND_PATH="$vk")
	out=$("$here/inroot.sh" native-vulkan env "${env[@]}" "$lib/llama-server" --list-devices 2>&1) || true
	echo "$out" | sed 's/^/  | /'
	line=$(echo "$out" | grep -E '^[[:space:]]*Vulkan0: .*llvmpipe' || true)
	[ -n "$line" ] && ok "--list-devices: $(echo "$line" | sed 's/^[[:space:]]*//')" || bad "--list-devices does not list lavapipe as Vulkan0"
	echo "native-check: tiny models on the built llama-server (CPU, Vulkan0)"
	if OBS_LLAMA_SERVER="$here/inroot.sh native-vulkan env ${env[*]} $lib/llama-server" OBS_LLAMA_DEVICES="none Vulkan0" \
		OBS_LLAMA_READY_TIMEOUT=${OBS_LLAMA_READY_TIMEOUT:-8m} go test -timeout 40m -tags integration -count=1 -run '^TestLlamaServer$' -v ./integration/internal/tinymodel 2>&1 |
		tee "$repo/build/native-check-$layout.log" | grep -E '^(=== RUN|--- |    .*: (qwen|tokens)|ok|FAIL|PASS)' ; then
		grep -q '^ok' "$repo/build/native-check-$layout.log" && ok "tiny models generate on the built llama-server" ||
			bad "tiny model test (build/native-check-$layout.log)"
	else
		bad "tiny model test (build/native-check-$layout.log)"
	fi
fi

hip=$(find "$lib" -name 'libggml-hip*.so' | head -n1)
if [ -n "$hip" ]; then
	for t in ${OBS_HIP_TARGETS:-gfx1200 gfx1201}; do
		t=${t//;/ }
		n=$(grep -a -o "hipv4-amdgcn-amd-amdhsa--$t" "$hip" | wc -l)
		[ "$n" -gt 0 ] && ok "$(basename "$hip"): offload bundle id hipv4-amdgcn-amd-amdhsa--$t ($n)" ||
			bad "$(basename "$hip") has no $t code object"
	done
	if "$here/inroot.sh" native-rocm sh -c 'command -v roc-obj-ls' >/dev/null 2>&1; then
		"$here/inroot.sh" native-rocm roc-obj-ls "$hip" | sed 's/^/  | /' | head -20
	fi
fi
[ -n "$vk$hip" ] || bad "neither ggml-vulkan nor ggml-hip in $lib"
exit $fail
