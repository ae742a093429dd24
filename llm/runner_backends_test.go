package llm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"
)

func TestRunnerEnv(t *testing.T) {
	rocm := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "0", Library: "ROCm"}, FilterID: "0"}
	vulkan := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "0", Library: "Vulkan"}}
	cuda := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "GPU-1", Library: "CUDA"}}
	cases := []struct {
		name    string
		devices []ml.DeviceInfo
		want    string
	}{
		{"cpu only", nil, "cpu"},
		{"vulkan", []ml.DeviceInfo{vulkan}, "vulkan,cpu"},
		{"rocm is hip", []ml.DeviceInfo{rocm}, "hip,cpu"},
		{"each once, in order", []ml.DeviceInfo{cuda, vulkan, cuda}, "cuda,vulkan,cpu"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := RunnerEnv(tc.devices, false)
			if got := env[RunnerBackendsEnv]; got != tc.want {
				t.Errorf("%s = %q, want %q", RunnerBackendsEnv, got, tc.want)
			}
			// Upstream's visibility variables are still there.
			for k, v := range ml.GetVisibleDevicesEnv(tc.devices, false) {
				if env[k] != v {
					t.Errorf("%s = %q, want upstream's %q", k, env[k], v)
				}
			}
		})
	}
}

func TestGGMLBackendName(t *testing.T) {
	got := map[string]string{}
	for _, l := range []string{"CUDA", "ROCm", "rocm", "Vulkan", "Metal", "cpu"} {
		got[l] = GGMLBackendName(l)
	}
	want := map[string]string{"CUDA": "cuda", "ROCm": "hip", "rocm": "hip", "Vulkan": "vulkan", "Metal": "metal", "cpu": "cpu"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
