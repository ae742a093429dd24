package llm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"
)

func TestPlanRunnerDevices(t *testing.T) {
	dev := func(library, name, id, filterID string) ml.DeviceInfo {
		return ml.DeviceInfo{DeviceID: ml.DeviceID{Library: library, ID: id}, Name: name, FilterID: filterID}
	}
	rocm := dev("ROCm", "ROCm0", "0", "GPU-fa4e000000000001")
	vulkan := dev("Vulkan", "Vulkan0", "0", "")
	cases := []struct {
		name    string
		devices []ml.DeviceInfo
		want    RunnerDevices
	}{
		{
			name:    "cpu only: every GPU library hidden",
			devices: nil,
			want: RunnerDevices{Device: "none", Env: map[string]string{
				"CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1", "GGML_VK_VISIBLE_DEVICES": "",
			}},
		},
		{
			name:    "the Vulkan twin: ROCm hidden from HIP",
			devices: []ml.DeviceInfo{vulkan},
			want: RunnerDevices{Device: "Vulkan0", Env: map[string]string{
				"GGML_VK_VISIBLE_DEVICES": "0", "CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1",
			}},
		},
		{
			name:    "ROCm: Vulkan hidden, CUDA left to --device (HIP reads CUDA_VISIBLE_DEVICES)",
			devices: []ml.DeviceInfo{rocm},
			want: RunnerDevices{Device: "ROCm0", Env: map[string]string{
				"ROCR_VISIBLE_DEVICES": "GPU-fa4e000000000001", "GGML_VK_VISIBLE_DEVICES": "",
			}},
		},
		{
			name:    "second Vulkan device alone: renumbered from 0",
			devices: []ml.DeviceInfo{dev("Vulkan", "Vulkan1", "1", "")},
			want: RunnerDevices{Device: "Vulkan0", Env: map[string]string{
				"GGML_VK_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1",
			}},
		},
		{
			name:    "two Vulkan devices: listed even where upstream would not filter",
			devices: []ml.DeviceInfo{dev("Vulkan", "Vulkan0", "0", ""), dev("Vulkan", "Vulkan1", "1", "")},
			want: RunnerDevices{Device: "Vulkan0,Vulkan1", Env: map[string]string{
				"GGML_VK_VISIBLE_DEVICES": "0,1", "CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1",
			}},
		},
		{
			name:    "a device without a numbered name: llama-server chooses",
			devices: []ml.DeviceInfo{dev("Metal", "Metal", "0", "")},
			want: RunnerDevices{Device: "", Env: map[string]string{
				"CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1", "GGML_VK_VISIBLE_DEVICES": "",
			}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ROCR_VISIBLE_DEVICES", "")
			t.Setenv("HIP_VISIBLE_DEVICES", "")
			t.Setenv("CUDA_VISIBLE_DEVICES", "")
			got := PlanRunnerDevices(tc.devices)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PlanRunnerDevices (-want +got):\n%s", diff)
			}
			args := appendRunnerDeviceArgs([]string{"--model", "m"}, tc.devices)
			wantArgs := []string{"--model", "m"}
			if tc.want.Device != "" {
				wantArgs = append(wantArgs, "--device", tc.want.Device)
			}
			if diff := cmp.Diff(wantArgs, args); diff != "" {
				t.Errorf("appendRunnerDeviceArgs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewModelLoad(t *testing.T) {
	cases := []struct {
		name      string
		requested string
		params    map[string]any
		want      string
	}{
		{name: "unset", want: ""},
		{name: "model parameter", requested: "vulkan", params: map[string]any{"library": "vulkan"}, want: "model parameter"},
		{name: "request over parameter", requested: "rocm", params: map[string]any{"library": "vulkan"}, want: "request option"},
		{name: "request only", requested: "rocm", want: "request option"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewModelLoad("m", "qwen3", true, tc.requested, tc.params)
			if m.LibrarySource != tc.want || m.Library != tc.requested || !m.Vision || m.Arch != "qwen3" {
				t.Errorf("NewModelLoad = %+v, want source %q", m, tc.want)
			}
		})
	}
}
