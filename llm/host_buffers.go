package llm

import "slices"

// cpuBufferTypes are the CPU backend's extra buffer types that ggml does not
// name "CPU_*": host memory, though llama-server's log lists them like a
// device ("AMX model buffer size = 2421.92 MiB" on a CPU with Intel AMX
// tiles, with --device none). Counted as VRAM they made /api/ps report
// 2.5 GB on the GPU for a model that ran on the CPU (an H200 host, 2026-12-02).
var cpuBufferTypes = []string{"AMX"}

// isCPUBufferType reports whether a llama-server buffer name is one of
// cpuBufferTypes.
func isCPUBufferType(name string) bool {
	return slices.Contains(cpuBufferTypes, name)
}
