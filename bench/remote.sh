#!/usr/bin/env bash
# bench/remote.sh: what runs on the GPU machine (issue 9).
#
#   bash bench/remote.sh [PHASE...]          default: all
#
# Run from the repository root of a copy of this tree, with the bundle that
# bench/run.sh prepared in build/bench/bundle (BENCH_BUNDLE to move it).
# Phases, in the order given:
#   envcheck  what the machine has (driver, toolkits, loader, disk), plus a
#             smoke test: ggml-base built there, the Vulkan module loaded by
#             the fork's discovery, a tiny model generated on Vulkan
#   setup     unpack; install the Vulkan loader; build libggml-base.so and
#             libggml-cuda.so (sm_90) with CMakeLists.txt (-DOBS_CUDA=ON) while the
#             two 4B-class random-weight models are written (tinygguf) and
#             imported with `ollama create -q q4_K_M`; assemble the install
#             trees; sample the GPU at rest. Cached in $BENCH_WORK.
#   check perf startup idle vkdiag bandwidth report   see bench/bench.py
#   all       setup bandwidth check perf startup idle vkdiag report
# Every phase runs `setup` first if it has not run on this machine.
# Needs: nvidia-smi, nvcc + CMake + ninja (CUDA build), python3 (torch for the
# bandwidth probe, matplotlib for the plot), dpkg (to unpack libvulkan1 when
# the machine has no Vulkan loader). Root only for that dpkg -x into /.
#
# Output: the console (PASS/FAIL lines, tables) and, in $OUT (or
# $BENCH_WORK/out): console.txt summary.md results.json idle.csv idle.png
# logs.tar.xz. BENCH_BUDGET_S (default 570) is the wall-clock budget after
# which optional work is skipped, to stay inside a 10-minute command limit.
#
# Knobs (environment): BENCH_RUNS (measured runs per binary, default 8);
# BENCH_PERF_SOLO (1, default: one server on the GPU at a time, in blocks
# A B / B A; 0: both servers loaded, taking turns request by request);
# BENCH_PERF_BLOCKS (2); BENCH_PERF_BACKENDS (CUDA,Vulkan);
# BENCH_PERF_FORK_SUBDIR=1 adds the fork in upstream's subfolder layout;
# BENCH_NO_CUDA=1 / BENCH_NO_QWEN2=1 skip the CUDA module / the qwen2 twin
# (a Vulkan-only speed rerun); BENCH_CUDA_ARCH (90).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUNDLE=${BENCH_BUNDLE:-$ROOT/build/bench/bundle}
W=${BENCH_WORK:-$ROOT/build/bench-work}
OUTDIR=${OUT:-$W/out}
START=$(date +%s)
export BENCH_WORK=$W BENCH_OUT=$OUTDIR
export BENCH_DEADLINE=$((START + ${BENCH_BUDGET_S:-570}))
mkdir -p "$W/logs" "$W/results" "$OUTDIR"
exec > >(tee -a "$OUTDIR/console.txt") 2>&1

ICD=${BENCH_VK_ICD:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
[ -f "$ICD" ] && export VK_DRIVER_FILES=$ICD VK_ICD_FILENAMES=$ICD
export PATH=$PATH:/usr/local/cuda/bin
JOBS=$(nproc)
PY=${BENCH_PYTHON:-python3}
CREATE_PORT=11490

log() { printf '[%4ds] %s\n' $(($(date +%s) - START)) "$*"; }
die() { log "FATAL: $*"; exit 1; }

# ---------------------------------------------------------------------------
unpack() {
	[ -f "$BUNDLE/MANIFEST" ] || die "no bundle at $BUNDLE: run bench/run.sh first and carry build/bench/bundle"
	if cmp -s "$BUNDLE/MANIFEST" "$W/.unpacked" 2>/dev/null; then return 0; fi
	log "unpack $BUNDLE"
	rm -rf "$W/pkg" && mkdir -p "$W/pkg"
	# (wait with pids only: a bare `wait` also waits for the tee above)
	local pids=() p
	xz -dc "$BUNDLE/ollama-fork.xz" >"$W/pkg/ollama-fork" & pids+=($!)
	xz -dc "$BUNDLE/ollama-upstream.xz" >"$W/pkg/ollama-upstream" & pids+=($!)
	xz -dc "$BUNDLE/libggml-vulkan.so.xz" >"$W/pkg/libggml-vulkan.so" & pids+=($!)
	xz -dc "$BUNDLE/tinygguf.xz" >"$W/pkg/tinygguf" & pids+=($!)
	tar -C "$W/pkg" -xJf "$BUNDLE/ggml-src.tar.xz" & pids+=($!)
	for p in "${pids[@]}"; do wait "$p" || die "unpack failed"; done
	chmod +x "$W/pkg/ollama-fork" "$W/pkg/ollama-upstream" "$W/pkg/tinygguf"
	(cd "$W/pkg" && grep '^sha256 ' "$BUNDLE/MANIFEST" | awk '{print $2"  "$3}' | sha256sum -c --quiet) ||
		die "bundle checksums differ from MANIFEST"
	cp "$BUNDLE/MANIFEST" "$W/.unpacked"
}

vulkan_loader() { # the loader and glvnd (NVIDIA's ICD, libGLX_nvidia.so.0, needs libGLdispatch.so.0)
	if ldconfig -p | grep -q 'libvulkan\.so\.1 ' && ldconfig -p | grep -q 'libGLdispatch\.so\.0 '; then return 0; fi
	ls "$BUNDLE"/*.deb >/dev/null 2>&1 || die "no Vulkan loader on this machine and no .deb in the bundle"
	log "install the Vulkan loader and glvnd: $(cd "$BUNDLE" && ls *.deb | tr '\n' ' ')(dpkg -x into /)"
	local f
	for f in "$BUNDLE"/*.deb; do dpkg -x "$f" /; done
	ldconfig
}

cuda_build() { # -> $W/cuda/lib/ollama/{libggml-base.so*,libggml-cuda.so}
	local target=ggml-cuda
	[ "${BENCH_NO_CUDA:-0}" = 1 ] && target=ggml-base # Vulkan-only rerun: libggml-base.so alone
	[ -f "$W/cuda/lib/ollama/lib$target.so" ] && [ -f "$W/cuda/.done" ] && return 0
	local t=$(date +%s)
	cmake -S "$ROOT" -B "$W/cuda" -G Ninja -DGGML_DIR="$W/pkg/ggml" -DOBS_CUDA=ON -DOBS_LOADCHECK=OFF \
		-DCMAKE_CUDA_ARCHITECTURES=${BENCH_CUDA_ARCH:-90} >"$W/logs/cuda-configure.log" 2>&1 ||
		{ tail -30 "$W/logs/cuda-configure.log"; return 1; }
	cmake --build "$W/cuda" --target $target -j "$JOBS" >"$W/logs/cuda-build.log" 2>&1 ||
		{ tail -30 "$W/logs/cuda-build.log"; return 1; }
	echo "$(($(date +%s) - t))" >"$W/cuda/.done"
}

ollama_create_server() { # start a CPU-only fork server for `ollama create`
	OLLAMA_HOST=127.0.0.1:$CREATE_PORT OLLAMA_MODELS=$W/models HOME=$W/home OLLAMA_LLM_LIBRARY=cpu \
		"$W/pkg/ollama-fork" serve >"$W/logs/create-serve.log" 2>&1 &
	echo $!
}

make_model() { # arch name extra-tinygguf-flags...
	local arch=$1 name=$2
	shift 2
	local cli="env OLLAMA_HOST=127.0.0.1:$CREATE_PORT $W/pkg/ollama-fork"
	if $cli show "$name" >/dev/null 2>&1; then return 0; fi
	local d=$W/gguf/$arch t=$(date +%s)
	mkdir -p "$d"
	"$W/pkg/tinygguf" -preset qwen3-4b -arch "$arch" -name "random-$arch-4b" "$@" -o "$d/model.gguf" -modelfile || return 1
	local t1=$(date +%s)
	$cli create "$name" -q q4_K_M -f "$d/Modelfile" </dev/null >"$W/logs/create-$arch.log" 2>&1 ||
		{ tail -5 "$W/logs/create-$arch.log"; return 1; }
	rm -f "$d/model.gguf"
	log "model $name: written in $((t1 - t)) s, imported and quantized in $(($(date +%s) - t1)) s"
}

prune_blobs() { # the F16 source blobs are no longer referenced once quantized
	"$PY" - "$W/models" <<'EOF'
import json, sys, pathlib
root = pathlib.Path(sys.argv[1])
keep = set()
for m in (root / "manifests").rglob("*"):
    if m.is_file():
        j = json.loads(m.read_text())
        keep.update(l["digest"].replace(":", "-") for l in j.get("layers", []) + [j.get("config", {})] if l.get("digest"))
freed = 0
for b in (root / "blobs").glob("sha256-*"):
    if b.name not in keep:
        freed += b.stat().st_size
        b.unlink()
print(f"pruned {freed / 2**30:.1f} GiB of unreferenced blobs")
EOF
}

models() {
	local spid
	spid=$(ollama_create_server)
	for _ in $(seq 200); do
		OLLAMA_HOST=127.0.0.1:$CREATE_PORT "$W/pkg/ollama-fork" list >/dev/null 2>&1 && break
		sleep 0.1
	done
	# qwen3 at Qwen3-4B dimensions; the qwen2 twin has the same hidden size,
	# layers, heads and FFN, with head dim 80 (= hidden/heads): llama.cpp's
	# qwen2 graph, which serves that architecture, needs n_head*head_dim = hidden.
	make_model qwen3 obs-qwen3-4b >"$W/logs/model-qwen3.log" 2>&1 &
	local p3=$!
	local p2=
	if [ "${BENCH_NO_QWEN2:-0}" != 1 ]; then
		make_model qwen2 obs-qwen2-4b -head-dim 0 >"$W/logs/model-qwen2.log" 2>&1 &
		p2=$!
	fi
	local rc=0
	wait $p3 || rc=1
	[ -z "$p2" ] || wait $p2 || rc=1
	cat "$W/logs"/model-qwen*.log
	OLLAMA_HOST=127.0.0.1:$CREATE_PORT "$W/pkg/ollama-fork" list
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	prune_blobs
	return $rc
}

cuda_runtime_links() { # dir: put the CUDA runtime libraries libggml-cuda.so needs next to it
	local dir=$1 lib
	for lib in $(LD_LIBRARY_PATH=$dir ldd "$dir/libggml-cuda.so" | awk '/(cudart|cublas|cublasLt)\.so/ {print $3}' | sort -u); do
		[ -f "$lib" ] && ln -sf "$(readlink -f "$lib")" "$dir/$(basename "$lib")"
	done
	if LD_LIBRARY_PATH=$dir:$dir/.. ldd "$dir/libggml-cuda.so" | grep -q 'not found'; then
		for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
			for lib in "$d"/libcudart.so.* "$d"/libcublas.so.* "$d"/libcublasLt.so.*; do
				[ -f "$lib" ] && ln -sf "$(readlink -f "$lib")" "$dir/$(basename "$lib")"
			done
		done
	fi
	if LD_LIBRARY_PATH=$dir:$dir/.. ldd "$dir/libggml-cuda.so" | grep 'not found'; then
		log "WARNING: libggml-cuda.so has unresolved libraries in $dir (above)"
	fi
	return 0
}

trees() { # the install prefixes (bin/ollama + lib/ollama)
	local C=$W/cuda/lib/ollama T=$W/t
	rm -rf "$T" && mkdir -p "$T"
	# fork, flat layout (every libggml-*.so in lib/ollama, as distributions install)
	mkdir -p "$T/fork-flat/bin" "$T/fork-flat/lib/ollama"
	cp "$W/pkg/ollama-fork" "$T/fork-flat/bin/ollama"
	local cuda=1
	[ -f "$C/libggml-cuda.so" ] || cuda=0 # BENCH_NO_CUDA=1: Vulkan only
	cp -a "$C"/libggml-base.so* "$T/fork-flat/lib/ollama/"
	[ $cuda = 0 ] || cp "$C/libggml-cuda.so" "$T/fork-flat/lib/ollama/"
	cp "$W/pkg/libggml-vulkan.so" "$T/fork-flat/lib/ollama/"
	[ $cuda = 0 ] || cuda_runtime_links "$T/fork-flat/lib/ollama" || return 1
	# upstream, subfolder layout (upstream's release tarball: cuda_v13/, vulkan/)
	mkdir -p "$T/up-sub/bin" "$T/up-sub/lib/ollama/cuda_v13" "$T/up-sub/lib/ollama/vulkan"
	cp "$W/pkg/ollama-upstream" "$T/up-sub/bin/ollama"
	cp -a "$C"/libggml-base.so* "$T/up-sub/lib/ollama/"
	[ $cuda = 0 ] || cp "$C/libggml-cuda.so" "$T/up-sub/lib/ollama/cuda_v13/"
	[ $cuda = 0 ] && rmdir "$T/up-sub/lib/ollama/cuda_v13"
	cp "$W/pkg/libggml-vulkan.so" "$T/up-sub/lib/ollama/vulkan/"
	[ $cuda = 0 ] || cuda_runtime_links "$T/up-sub/lib/ollama/cuda_v13" || return 1
	# upstream, flat layout: what distributions install; upstream loads every library there
	mkdir -p "$T/up-flat/bin"
	cp "$W/pkg/ollama-upstream" "$T/up-flat/bin/ollama"
	cp -a "$T/fork-flat/lib" "$T/up-flat/"
	# fork, subfolder layout: the same libraries as upstream
	mkdir -p "$T/fork-sub/bin"
	cp "$W/pkg/ollama-fork" "$T/fork-sub/bin/ollama"
	cp -a "$T/up-sub/lib" "$T/fork-sub/"
	find "$T" \( -name 'libggml-*' -o -name ollama -o -name 'libcu*' \) | sort | sed 's|^|    |'
}

setup() {
	[ -f "$W/.setup-done" ] && cmp -s "$BUNDLE/MANIFEST" "$W/.setup-done" && return 0
	log "setup"
	unpack || return 1
	vulkan_loader || return 1
	[ -f "$W/results/baseline.json" ] || "$PY" "$ROOT/bench/bench.py" baseline
	log "CUDA build (CMakeLists.txt OBS_CUDA, sm_${BENCH_CUDA_ARCH:-90}, -j$JOBS) and models, in parallel"
	cuda_build &
	local pc=$!
	models &
	local pm=$!
	local rc=0
	wait $pc || { log "CUDA build failed"; rc=1; }
	[ $rc = 0 ] && log "CUDA build took $(cat "$W/cuda/.done") s: $(ls -la "$W/cuda/lib/ollama/"libggml-*.so | awk '{print $5, $9}' | tr '\n' ' ')"
	wait $pm || { log "model creation failed"; rc=1; }
	[ $rc = 0 ] || return 1
	trees || return 1
	df -h "$W" | tail -1
	cp "$BUNDLE/MANIFEST" "$W/.setup-done"
	log "setup done"
}

# ---------------------------------------------------------------------------
envcheck() {
	log "envcheck"
	uname -a
	grep PRETTY /etc/os-release
	ldd --version | head -1
	nproc
	free -g | head -2
	df -h "$W" /tmp | cat
	nvidia-smi --query-gpu=name,driver_version,memory.total,pci.bus_id,compute_cap,power.limit,clocks.max.sm --format=csv
	timeout 1 nvidia-smi --query-gpu=timestamp,utilization.gpu,power.draw,clocks.sm,memory.used --format=csv -lms 200
	which nvcc cmake ninja python3 dpkg curl xz | cat
	nvcc --version | tail -2
	cmake --version | head -1
	python3 -c 'import torch, matplotlib; print("torch", torch.__version__, "matplotlib", matplotlib.__version__)'
	ls -la "$ICD" /usr/local/nvidia/share/vulkan/icd.d/ 2>&1 | cat
	cat "$ICD" 2>/dev/null
	ldconfig -p | grep -E 'libvulkan|libcuda\.so|libcudart|libcublas|libnvidia-ml' | cat
	ls /usr/local/cuda/lib64 2>/dev/null | grep -E 'cudart|cublas' | cat
	unpack || return 1
	vulkan_loader || return 1
	ldconfig -p | grep -E 'libvulkan|libGLdispatch|libGLX' | cat
	for f in $(ldconfig -p | awk '/libGLX_nvidia.so.0/ {print $NF}'); do ldd "$f" | grep -E 'not found|GLdispatch' | sed "s|^|$f: |"; done
	log "configure CMakeLists.txt (OBS_CUDA) and build ggml-base"
	local t=$(date +%s)
	cmake -S "$ROOT" -B "$W/cuda" -G Ninja -DGGML_DIR="$W/pkg/ggml" -DOBS_CUDA=ON -DOBS_LOADCHECK=OFF \
		-DCMAKE_CUDA_ARCHITECTURES=90 2>&1 | tail -15
	cmake --build "$W/cuda" --target ggml-base -j "$JOBS" 2>&1 | tail -3
	log "ggml-base: $(($(date +%s) - t)) s"
	objdump -T "$W/cuda/lib/ollama/libggml-base.so" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1
	local T=$W/t/envcheck
	rm -rf "$T" && mkdir -p "$T/bin" "$T/lib/ollama"
	cp "$W/pkg/ollama-fork" "$T/bin/ollama"
	cp -a "$W/cuda/lib/ollama"/libggml-base.so* "$T/lib/ollama/"
	cp "$W/pkg/libggml-vulkan.so" "$T/lib/ollama/"
	LD_LIBRARY_PATH=$T/lib/ollama ldd "$T/lib/ollama/libggml-vulkan.so" | grep -E 'not found|vulkan|ggml|stdc' | cat
	ldd "$T/bin/ollama" | grep -E 'not found|libc\.so|stdc' | cat
	"$W/pkg/ollama-upstream" --version 2>&1 | tail -1
	log "fork serve with OLLAMA_LLM_LIBRARY=vulkan (discovery)"
	export OLLAMA_HOST=127.0.0.1:11480 OLLAMA_MODELS=$W/models-envcheck HOME=$W/home OLLAMA_LLM_LIBRARY=vulkan
	"$T/bin/ollama" serve >"$W/logs/envcheck-serve.log" 2>&1 &
	local sp=$!
	for _ in $(seq 300); do grep -q 'inference compute' "$W/logs/envcheck-serve.log" && break; sleep 0.1; done
	grep -iE 'inference compute|library chosen|failed|error|level=warn' "$W/logs/envcheck-serve.log" | head -10
	mkdir -p "$W/gguf-tiny" && "$W/pkg/tinygguf" -o "$W/gguf-tiny/tiny.gguf" -modelfile 2>&1 | tail -1
	"$T/bin/ollama" create tiny -f "$W/gguf-tiny/Modelfile" 2>&1 | tail -1
	"$PY" - <<'EOF'
import json, urllib.request, os
port = os.environ["OLLAMA_HOST"].split(":")[1]
def post(path, body):
    r = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(r, timeout=120).read())
r = post("/api/generate", {"model": "tiny", "prompt": "x" * 512, "raw": True, "stream": False, "options": {"num_predict": 16}})
print("tiny on Vulkan:", {k: r.get(k) for k in ("prompt_eval_count", "eval_count", "prompt_eval_duration", "eval_duration")})
print("ps:", json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/ps").read()))
EOF
	grep -E 'ggml_vulkan|load_backend|offloaded|model weights' "$W/logs/envcheck-serve.log" | head -10
	kill $sp
	wait $sp 2>/dev/null
	unset OLLAMA_HOST OLLAMA_MODELS OLLAMA_LLM_LIBRARY
	log "envcheck done"
}

finish() {
	"$PY" "$ROOT/bench/bench.py" report >/dev/null 2>&1 || true
	tar -C "$W" -cJf "$OUTDIR/logs.tar.xz" logs 2>/dev/null || true
	log "outputs in $OUTDIR: $(ls "$OUTDIR" | tr '\n' ' ')"
}

phases=("$@")
[ ${#phases[@]} = 0 ] && phases=(all)
[ "${phases[*]}" = all ] && phases=(setup bandwidth check perf startup idle vkdiag report)
trap finish EXIT
log "bench/remote.sh ${phases[*]} on $(hostname), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
for ph in "${phases[@]}"; do
	case $ph in
	envcheck) envcheck ;;
	setup) setup || die "setup failed" ;;
	check | perf | startup | idle | vkdiag | bandwidth | baseline)
		setup || die "setup failed"
		"$PY" "$ROOT/bench/bench.py" "$ph"
		;;
	report) "$PY" "$ROOT/bench/bench.py" report ;;
	*) die "unknown phase $ph" ;;
	esac
done
