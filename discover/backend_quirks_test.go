package discover

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

func TestApplyQuirks(t *testing.T) {
	twin := func(compute, pci string) libraryChoice {
		rocm := dev("flat", "ROCm", "GPU-"+pci, pci, compute, false)
		rocm.FreeMemory = 12 << 30
		vk := dev("flat", "Vulkan", "0", pci, "", false)
		vk.FreeMemory = 15 << 30 // stale: measured at discovery
		return libraryChoice{Chosen: rocm, Alternates: []ml.DeviceInfo{vk}, Reasons: []string{"default order"}}
	}
	rdna4 := twin("gfx1200", "0000:03:00.0")
	rdna3 := twin("gfx1100", "0000:04:00.0")
	lone := libraryChoice{Chosen: dev("flat", "ROCm", "GPU-lone", "0000:05:00.0", "gfx1200", false)}

	cases := []struct {
		name     string
		denylist string
		gpus     []ml.DeviceInfo
		choices  []libraryChoice
		arch     string
		want     []string // library@pci of the GPUs offered to the model
		wantLeft int      // GPUs left out
	}{
		{"qwen3 on gfx1200 goes to Vulkan", "", []ml.DeviceInfo{rdna4.Chosen}, []libraryChoice{rdna4}, "qwen3", []string{"Vulkan@0000:03:00.0"}, 0},
		{"qwen35moe too", "", []ml.DeviceInfo{rdna4.Chosen}, []libraryChoice{rdna4}, "qwen35moe", []string{"Vulkan@0000:03:00.0"}, 0},
		{"qwen2 stays on ROCm", "", []ml.DeviceInfo{rdna4.Chosen}, []libraryChoice{rdna4}, "qwen2", []string{"ROCm@0000:03:00.0"}, 0},
		{"gemma3 stays on ROCm", "", []ml.DeviceInfo{rdna4.Chosen}, []libraryChoice{rdna4}, "gemma3", []string{"ROCm@0000:03:00.0"}, 0},
		{"gfx1100 untouched by the built-in table", "", []ml.DeviceInfo{rdna3.Chosen}, []libraryChoice{rdna3}, "qwen3", []string{"ROCm@0000:04:00.0"}, 0},
		{"none drops the built-ins", "none", []ml.DeviceInfo{rdna4.Chosen}, []libraryChoice{rdna4}, "qwen3", []string{"ROCm@0000:03:00.0"}, 0},
		{"every use denied", "rocm:gfx1200", []ml.DeviceInfo{rdna4.Chosen}, []libraryChoice{rdna4}, "llama", []string{"Vulkan@0000:03:00.0"}, 0},
		{"user entry for gfx1100", "rocm:gfx11*:qwen3", []ml.DeviceInfo{rdna4.Chosen, rdna3.Chosen}, []libraryChoice{rdna4, rdna3}, "qwen3", []string{"Vulkan@0000:03:00.0", "Vulkan@0000:04:00.0"}, 0},
		{"no alternate: left out", "", []ml.DeviceInfo{lone.Chosen, rdna3.Chosen}, []libraryChoice{lone, rdna3}, "qwen3", []string{"ROCm@0000:04:00.0"}, 1},
		{"alternate denied too: left out", "none rocm:gfx1200 vulkan:*:qwen3", []ml.DeviceInfo{rdna4.Chosen}, []libraryChoice{rdna4}, "qwen3", nil, 1},
		{"queues1 keeps ROCm", "none rocm:gfx1200:*=queues1", []ml.DeviceInfo{rdna4.Chosen}, []libraryChoice{rdna4}, "qwen3", []string{"ROCm@0000:03:00.0"}, 0},
		{"unknown architecture: nothing applies", "rocm:gfx1200:qwen3", []ml.DeviceInfo{rdna4.Chosen}, []libraryChoice{rdna4}, "", []string{"ROCm@0000:03:00.0"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OLLAMA_BACKEND_DENYLIST", tc.denylist)
			if _, err := envconfig.BackendDenylistFromEnv(); err != nil {
				t.Fatal(err)
			}
			got, decisions := applyQuirks(tc.gpus, ModelLoad{Arch: tc.arch}, configuredQuirkRules(), tc.choices)
			var names []string
			for _, g := range got {
				names = append(names, g.Library+"@"+g.PCIID)
				if g.Library == "Vulkan" && g.FreeMemory != 12<<30 {
					t.Errorf("alternate free memory %d, want the chosen device's fresh 12 GiB", g.FreeMemory)
				}
			}
			if diff := cmp.Diff(tc.want, names); diff != "" {
				t.Errorf("GPUs offered (-want +got):\n%s", diff)
			}
			left := 0
			for _, d := range decisions {
				if d.Replacement == nil {
					left++
				}
			}
			if left != tc.wantLeft {
				t.Errorf("%d GPUs left out, want %d", left, tc.wantLeft)
			}
		})
	}
}

// TestDecideQueues1: a queues1 rule rides on the plan's GPU as a runner
// variable and reaches the runner's environment; a value the user set in
// the server's environment wins.
func TestDecideQueues1(t *testing.T) {
	rocm := dev("flat", "ROCm", "GPU-1", "0000:03:00.0", "gfx1201", false)
	tests := []struct {
		denylist, arch, serverValue, want string
	}{
		{"rocm:gfx1201:*=queues1", "qwen3", "", "1"},
		{"rocm:gfx1201:qwen3=queues1", "llama", "", ""},
		{"", "qwen3", "", ""},
		{"rocm:gfx1201:*=queues1", "qwen3", "4", ""},
	}
	for _, tt := range tests {
		t.Run(tt.denylist+" "+tt.arch+" "+tt.serverValue, func(t *testing.T) {
			t.Setenv("OLLAMA_BACKEND_DENYLIST", tt.denylist)
			serverEnv := func(k string) string {
				if k == "GPU_MAX_HW_QUEUES" {
					return tt.serverValue
				}
				return ""
			}
			found := Discovery{Rules: configuredQuirkRules(), Devices: []ml.DeviceInfo{rocm}}
			p, err := Decide(PlanInput{Discovery: found, Model: ModelLoad{Arch: tt.arch}, Offered: []ml.DeviceInfo{rocm}, ServerEnv: serverEnv})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.GPUs[0].RunnerEnvOverrides["GPU_MAX_HW_QUEUES"]; got != tt.want {
				t.Errorf("plan's GPU_MAX_HW_QUEUES=%q, want %q", got, tt.want)
			}
			if got := p.Runner(p.GPUs, 0).Env["GPU_MAX_HW_QUEUES"]; got != tt.want {
				t.Errorf("runner's GPU_MAX_HW_QUEUES=%q, want %q", got, tt.want)
			}
			if rocm.RunnerEnvOverrides != nil {
				t.Error("Decide wrote into the discovered device")
			}
		})
	}
}
