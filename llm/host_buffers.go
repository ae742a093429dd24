package llm

import "slices"

// cpuBufferTypes are host-memory buffers that llama-server logs like a device.
var cpuBufferTypes = []string{"AMX"}

func isCPUBufferType(name string) bool {
	return slices.Contains(cpuBufferTypes, name)
}
