#!/usr/bin/env bash
# Issue 21, device call 1: build one llama-server with the CUDA (sm_90) and
# Vulkan backends from a local llama.cpp tree through Ollama v0.34.4's own
# llama/server CMake (its compat patch applied by that CMake, through
# FETCHCONTENT_SOURCE_DIR_LLAMA_CPP), and lay it out as upstream's install
# does: lib/ollama/{llama-server, base libs, CPU variants},
# lib/ollama/cuda_v13/{libggml-cuda.so, cudart, cublas},
# lib/ollama/vulkan/libggml-vulkan.so.
#
# One configure for the three presets' settings (default + cpu's
# GGML_CPU_ALL_VARIANTS, llama_cuda_v13's GGML_CUDA with
# CMAKE_CUDA_ARCHITECTURES=90, vulkan's GGML_VULKAN): the CPU part is built
# once instead of three times. Inputs (scripts/h200/prepare.sh makes them):
#   $C/llama-src.tar.xz     llama.cpp tree (node-llama-cpp's bundle, without models/docs/tests)
#   $C/ollama-cmake.tar.xz  v0.34.4's llama/, LLAMA_CPP_VERSION, cmake/apply-git-patches.cmake
#   $C/debs/*.deb           Debian sid: glslc + its libraries, Vulkan headers/loader, SPIRV-Headers, glvnd
# Output: $W/dist/lib/ollama (W=build/h200, kept while the machine is warm).
set -euo pipefail
C=${C:-.devcarry}
W=${W:-build/h200}
J=${J:-$(nproc)}
t0=$(date +%s)
log() { echo "[build $(( $(date +%s) - t0 ))s] $*"; }
mkdir -p "$W"
W=$(cd "$W" && pwd)
rm -rf "$W/llama.cpp" "$W/ollama" "$W/glr" "$W/b" "$W/dist"
mkdir -p "$W/llama.cpp" "$W/ollama" "$W/glr"
tar -xJf "$C/llama-src.tar.xz" -C "$W/llama.cpp"
tar -xJf "$C/ollama-cmake.tar.xz" -C "$W/ollama"
# Vulkan headers, loader, SPIRV-Headers and glvnd into / (the device README's
# recipe; no library of the image is replaced), glslc with sid's C++ runtime
# in a folder of its own.
for p in libvulkan-dev libvulkan1 spirv-headers libglvnd0 libgl1 libglx0 libegl1 libopengl0 libgles2; do
	dpkg -x "$C"/debs/${p}_*.deb /
done
mkdir -p /etc/vulkan/icd.d
cp /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/ 2>/dev/null || echo "no NVIDIA Vulkan ICD file"
ldconfig
for p in glslc libshaderc1 libstdc++6 libgcc-s1; do dpkg -x "$C"/debs/${p}_*.deb "$W/glr"; done
cat >"$W/glslc" <<EOS
#!/bin/sh
LD_LIBRARY_PATH=$W/glr/usr/lib/x86_64-linux-gnu exec $W/glr/usr/bin/glslc "\$@"
EOS
chmod +x "$W/glslc"
"$W/glslc" --version | head -1
command -v git >/dev/null || { echo "no git here: the compat patch needs it"; exit 1; }
nvcc --version | tail -1
log "configure"
cmake -S "$W/ollama/llama/server" -B "$W/b" -G Ninja \
	-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON \
	-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DGGML_CPU_ALL_VARIANTS=ON \
	-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS="-t 4" \
	-DGGML_VULKAN=ON -DVulkan_GLSLC_EXECUTABLE="$W/glslc" \
	-DOLLAMA_RUNNER_DIR= \
	-DFETCHCONTENT_SOURCE_DIR_LLAMA_CPP="$W/llama.cpp" >"$W/configure.log" 2>&1 ||
	{ tail -40 "$W/configure.log"; exit 1; }
grep -E "compat patch|Vulkan|CUDA Toolkit|glslc|coopmat" "$W/configure.log" | head -20 || true
log "build -j$J"
cmake --build "$W/b" -j"$J" --target llama-server llama-quantize ggml-cuda ggml-vulkan >"$W/build.log" 2>&1 ||
	{ grep -E "error|Error" "$W/build.log" | head -30; tail -20 "$W/build.log"; exit 1; }
log "install"
cmake --install "$W/b" --prefix "$W/dist" --component llama-server >/dev/null
L="$W/dist/lib/ollama"
mkdir -p "$L/cuda_v13" "$L/vulkan"
cp -a "$W"/b/bin/libggml-cuda.so* "$L/cuda_v13/"
cp -a "$W"/b/bin/libggml-vulkan.so* "$L/vulkan/"
cu=$(dirname "$(readlink -f "$(command -v nvcc)")")/../lib64
for l in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
	f=$(ls "$cu"/$l* 2>/dev/null | head -1) || true
	[ -n "$f" ] || f=$(ldconfig -p | awk -v l=$l '$1==l {print $NF; exit}')
	cp -L "$f" "$L/cuda_v13/$l"
done
nm -D --undefined-only "$L/vulkan/libggml-vulkan.so" | { grep -c '_cm2' || true; } | sed 's/^/undefined cm2 symbols: /'
ls -la "$L" "$L/cuda_v13" "$L/vulkan"
LD_LIBRARY_PATH="$L" GGML_BACKEND_PATH="$L/vulkan/libggml-vulkan.so" "$L/llama-server" --list-devices 2>&1 | tail -4 || true
LD_LIBRARY_PATH="$L:$L/cuda_v13" GGML_BACKEND_PATH="$L/cuda_v13/libggml-cuda.so" "$L/llama-server" --list-devices 2>&1 | tail -4 || true
log "done"
