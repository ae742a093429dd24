package llm

import "testing"

func TestIsCPUBufferType(t *testing.T) {
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"AMX", true},
		{"CPU", false}, // upstream's own rule covers CPU and CPU_*
		{"CUDA0", false},
		{"ROCm0", false},
		{"Vulkan0", false},
		{"amx", false}, // ggml spells it in capitals
		{"AMX0", false},
	} {
		if got := isCPUBufferType(tt.name); got != tt.want {
			t.Errorf("isCPUBufferType(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
