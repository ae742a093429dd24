#!/usr/bin/env bash
# Remote GPUs (docs/rpc.md), on the GPU machine in one call: the pinned
# llama.cpp built with CUDA (sm_90) and its RPC backend, then a 4B-class
# model (tinygguf's qwen3-4b preset: random weights, F16) on CUDA0 directly
# and on the same GPU through ggml-rpc-server over loopback, side by side.
# Round trips: GGML_RPC_DEBUG makes the RPC server log one line per command;
# the difference between a 48- and a 16-token decode, over 32, is the
# commands per generated token, by kind.
#
# On this machine first (.devcarry is ignored; the device call carries it):
#   tar -C "$(scripts/llama-src.sh --pristine)" -cf - --exclude=./.git --exclude=./models \
#     --exclude=./docs --exclude=./tests --exclude=./tools/ui --exclude=./media \
#     --exclude=./gguf-py . | xz -T2 >.devcarry/llama-src.tar.xz
#   CGO_ENABLED=0 go build -o .devcarry/tinygguf ./integration/cmd/tinygguf
# Then: device run, carry [".devcarry"], command scripts/h200/rpc-bench.sh
set -euo pipefail
C=${C:-.devcarry}
W=${W:-/tmp/rpc-bench}
OUT=${OUT:-$W/out}
t0=$(date +%s)
log() { echo "[rpc-bench $(( $(date +%s) - t0 ))s] $*"; }
mkdir -p "$W/llama.cpp" "$OUT"
if [ ! -x "$W/b/bin/ggml-rpc-server" ]; then
	tar -xJf "$C/llama-src.tar.xz" -C "$W/llama.cpp"
	cmake -S "$W/llama.cpp" -B "$W/b" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DGGML_RPC=ON \
		-DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
		-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$OUT/cmake.log" 2>&1 ||
		{ tail -30 "$OUT/cmake.log"; exit 1; }
	log "configured"
	cmake --build "$W/b" -j "$(nproc)" --target llama-bench ggml-rpc-server >"$OUT/build.log" 2>&1 ||
		{ tail -30 "$OUT/build.log"; exit 1; }
	log "built"
fi
model=$W/qwen3-4b-f16.gguf
[ -s "$model" ] || "$C/tinygguf" -preset qwen3-4b -o "$model"
log "model $(du -h "$model" | cut -f1)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
bench() { "$W/b/bin/llama-bench" -m "$model" -ngl 99 -fa 1 "$@"; }

bench -dev CUDA0 -p 512 -n 128 -r 10 -o md | tee "$OUT/local.md"
log "local done"
GGML_RPC_DEBUG=1 "$W/b/bin/ggml-rpc-server" -d CUDA0 -H 127.0.0.1 -p 50052 >"$W/rpc.log" 2>&1 &
rpc=$!
trap 'kill $rpc 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "Starting RPC server" "$W/rpc.log" && break; sleep 0.2; done
bench --rpc 127.0.0.1:50052 -dev RPC0 -p 512 -n 128 -r 10 -o md | tee "$OUT/rpc.md"
log "rpc done"
# Commands per decoded token, by kind.
count() {
	local from
	from=$(wc -l <"$W/rpc.log")
	bench --rpc 127.0.0.1:50052 -dev RPC0 -p 0 -n "$1" -r 1 --no-warmup >/dev/null
	tail -n +"$((from + 1))" "$W/rpc.log" | sed -n 's/^\[\([a-z_]*\)\].*/\1/p' | sort | uniq -c
}
count 16 >"$W/n16.txt"
count 48 >"$W/n48.txt"
join -1 2 -2 2 -a 1 -e 0 -o 0,1.1,2.1 <(sort -k2 "$W/n16.txt") <(sort -k2 "$W/n48.txt") |
	awk '{ d = ($3 - $2) / 32; if (d > 0) printf "%-22s %6.2f per token\n", $1, d }' | tee "$OUT/rpc-commands-per-token.txt"
log "done"
