package discover

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/llm"
)

func TestRunnerDevices(t *testing.T) {
	gpu := func(library, name, id, filterID string) ml.DeviceInfo {
		return ml.DeviceInfo{DeviceID: ml.DeviceID{Library: library, ID: id}, Name: name, FilterID: filterID}
	}
	rocm := gpu("ROCm", "ROCm0", "0", "GPU-fa4e000000000001")
	vulkan := gpu("Vulkan", "Vulkan0", "0", "")
	cases := []struct {
		name    string
		devices []ml.DeviceInfo
		want    llm.RunnerDevices
	}{
		{
			name:    "cpu only: every GPU library hidden",
			devices: nil,
			want: llm.RunnerDevices{Device: "none", Env: map[string]string{
				"CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1", "GGML_VK_VISIBLE_DEVICES": "",
			}},
		},
		{
			name:    "the Vulkan twin: ROCm hidden from HIP",
			devices: []ml.DeviceInfo{vulkan},
			want: llm.RunnerDevices{Device: "Vulkan0", Env: map[string]string{
				"GGML_VK_VISIBLE_DEVICES": "0", "CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1",
			}},
		},
		{
			name:    "ROCm: Vulkan hidden, CUDA left to --device (HIP reads CUDA_VISIBLE_DEVICES)",
			devices: []ml.DeviceInfo{rocm},
			want: llm.RunnerDevices{Device: "ROCm0", Env: map[string]string{
				"ROCR_VISIBLE_DEVICES": "GPU-fa4e000000000001", "GGML_VK_VISIBLE_DEVICES": "",
			}},
		},
		{
			name:    "second Vulkan device alone: renumbered from 0",
			devices: []ml.DeviceInfo{gpu("Vulkan", "Vulkan1", "1", "")},
			want: llm.RunnerDevices{Device: "Vulkan0", Env: map[string]string{
				"GGML_VK_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1",
			}},
		},
		{
			name:    "two Vulkan devices: listed even where upstream would not filter",
			devices: []ml.DeviceInfo{gpu("Vulkan", "Vulkan0", "0", ""), gpu("Vulkan", "Vulkan1", "1", "")},
			want: llm.RunnerDevices{Device: "Vulkan0,Vulkan1", Env: map[string]string{
				"GGML_VK_VISIBLE_DEVICES": "0,1", "CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1",
			}},
		},
		{
			name:    "a device without a numbered name: llama-server chooses",
			devices: []ml.DeviceInfo{gpu("Metal", "Metal", "0", "")},
			want: llm.RunnerDevices{Device: "", Env: map[string]string{
				"CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1", "GGML_VK_VISIBLE_DEVICES": "",
			}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ROCR_VISIBLE_DEVICES", "")
			t.Setenv("HIP_VISIBLE_DEVICES", "")
			t.Setenv("CUDA_VISIBLE_DEVICES", "")
			got := runnerDevices(tc.devices)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("runnerDevices (-want +got):\n%s", diff)
			}
		})
	}
}
