#!/usr/bin/env bash
# Issue 21, device calls 2 and 3: lay out both Ollama binaries over the one
# lib/ollama that build-llama-server.sh made, and run the Go harness's
# TestH200Bench (integration/h200_bench_test.go, built here as a test
# binary) for the phases given: run.sh TAG PHASES [BUDGET_S].
# Raw results go to $OUT (at most 8 files).
set -uo pipefail
tag=$1 phases=$2 budget=${3:-480}
C=${C:-.devcarry}
W=$(mkdir -p build/h200 && cd build/h200 && pwd)
OUT=${OUT:-$W/out}
mkdir -p "$OUT"
[ -x "$W/dist/lib/ollama/llama-server" ] || { echo "no llama-server build in $W/dist (run build-llama-server.sh first)"; exit 1; }
if [ ! -e /etc/vulkan/icd.d/nvidia_icd.json ]; then
	for p in libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libopengl0 libgles2; do dpkg -x "$C"/debs/${p}_*.deb /; done
	mkdir -p /etc/vulkan/icd.d && cp /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/
	ldconfig
fi
for side in fork pristine; do
	mkdir -p "$W/sides/$side/bin"
	xz -dc "$C/ollama-$side.xz" >"$W/sides/$side/bin/ollama"
	chmod +x "$W/sides/$side/bin/ollama"
	ln -sfn "$W/dist/lib" "$W/sides/$side/lib"
done
xz -dc "$C/h200.test.xz" >"$W/h200.test" && chmod +x "$W/h200.test"
{
	nvidia-smi
	nvidia-smi -q | grep -iE "product name|driver version|cuda version|bus width|max clocks" -A0
	nproc; uname -r; grep -m1 "model name" /proc/cpuinfo
	sha256sum "$W"/sides/*/bin/ollama "$W/dist/lib/ollama/llama-server" "$W"/dist/lib/ollama/*/libggml-*.so
} >"$OUT/machine-$tag.txt" 2>&1
export OBS_H200_DIST=$W/sides OBS_H200_WORK=$W/work OBS_H200_OUT=$OUT OBS_H200_PHASES=$phases
export OBS_H200_DEADLINE=$(($(date +%s) + budget))
"$W/h200.test" -test.run '^TestH200Bench$' -test.v -test.timeout 590s 2>&1 | tee "$OUT/console-$tag.txt" | grep -vE '^\s+(harness|h200_bench_test)\.go:[0-9]+: (started|server ready)'
rc=${PIPESTATUS[0]}
tar -czf "$OUT/logs-$tag.tgz" -C "$W/work" logs 2>/dev/null
exit "$rc"
