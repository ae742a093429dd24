package discover

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"
)

// fakeLearned stands in for the server's idle-GPU watchdog.
type fakeLearned struct {
	rules []QuirkRule
	stuck []StuckGPU
}

func (f fakeLearned) LearnedRules() []QuirkRule { return f.rules }
func (f fakeLearned) StuckGPUs() []StuckGPU     { return f.stuck }

// TestListBackendsLearned: what the server learned shows in the listing,
// the learned rule on the rows it matches and the stuck GPU after the table.
func TestListBackendsLearned(t *testing.T) {
	rocm := dev("flat", "ROCm", "GPU-1", "0000:03:00.0", "gfx1200", false)
	found := Discovery{Devices: []ml.DeviceInfo{rocm}}
	learned := fakeLearned{
		rules: []QuirkRule{{Library: "ROCm", ComputePattern: "gfx1200", ArchPatterns: []string{"qwen3"}, Action: QuirkUseOtherLibrary, Source: QuirkSourceLearned, MESFirmware: "0x00000080"}},
		stuck: []StuckGPU{{PCIID: "0000:03:00.0", Library: "ROCm", Model: "qwen3:8b", Vision: true, MESFirmware: "0x00000080", BusyMin: 99, BusyMax: 100, Remedy: "reboot"}},
	}

	if l := ListBackends(found, nil); len(l.Backends) == 0 || l.Backends[0].Library != "ROCm" || len(l.Backends[0].Rules) != 0 || l.StuckGPUs != nil {
		t.Errorf("listing without anything learned: %+v", l)
	}
	l := ListBackends(found, learned)
	if diff := cmp.Diff([]string{"rocm:gfx1200:qwen3 (learned, MES firmware 0x00000080)"}, l.Backends[0].Rules); diff != "" {
		t.Errorf("rules of the ROCm row (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(learned.stuck, l.StuckGPUs); diff != "" {
		t.Errorf("stuck GPUs (-want +got):\n%s", diff)
	}
}

// TestListBackendsCPURow: the listing always has a CPU row, so a machine
// without a GPU does not print an empty table.
func TestListBackendsCPURow(t *testing.T) {
	cases := []struct {
		gpu  bool
		pref string
		want BackendStatus
	}{
		{false, "", BackendStatus{Library: "CPU", Description: "CPU", Status: backendChosen, Reason: "no GPU library found a device"}},
		{false, "cpu", BackendStatus{Library: "CPU", Description: "CPU", Status: backendChosen, Reason: "OLLAMA_LLM_LIBRARY=cpu"}},
		{false, "vulkan", BackendStatus{Library: "CPU", Description: "CPU", Status: backendChosen, Reason: "no GPU library found a device"}},
		{true, "", BackendStatus{Library: "CPU", Description: "CPU", Status: backendFallback, Reason: "layers the GPUs do not hold"}},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, cpuRow(tc.gpu, mustPreference(tc.pref))); diff != "" {
			t.Errorf("cpuRow(%v, %q) (-want +got):\n%s", tc.gpu, tc.pref, diff)
		}
	}
}

// TestListBackendsMissing: a library OLLAMA_LLM_LIBRARY names that found no
// device is a row of its own, not left out.
func TestListBackendsMissing(t *testing.T) {
	l := ListBackends(Discovery{Preference: mustPreference("vulkan,cpu")}, nil)
	want := []BackendStatus{
		{Library: "vulkan", Description: "-", Status: backendNoDevice, Reason: "OLLAMA_LLM_LIBRARY=vulkan,cpu names it; discovery found no device"},
		{Library: "CPU", Description: "CPU", Status: backendChosen, Reason: "no GPU library found a device"},
	}
	if diff := cmp.Diff(want, l.Backends); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// TestListBackendsIdleLibraries: an installed library that drives no
// device is listed with the reason.
func TestListBackendsIdleLibraries(t *testing.T) {
	vk := dev("flat", "Vulkan", "0", "0000:03:00.0", "", false)
	tests := []struct {
		name  string
		found Discovery
		want  map[string]string // library -> reason of its "no device" row
	}{
		{"OLLAMA_LLM_LIBRARY=cpu", Discovery{Preference: mustPreference("cpu"), Installed: []string{"ROCm", "Vulkan"}}, map[string]string{
			"ROCm":   "installed; OLLAMA_LLM_LIBRARY=cpu does not request it, so discovery hides it",
			"Vulkan": "installed; OLLAMA_LLM_LIBRARY=cpu does not request it, so discovery hides it",
		}},
		{"lavapipe hidden by the user", Discovery{Installed: []string{"Vulkan"}, Hidden: []string{"GGML_VK_VISIBLE_DEVICES="}}, map[string]string{
			"Vulkan": "installed; the server's environment sets GGML_VK_VISIBLE_DEVICES=",
		}},
		{"no AMD GPU", Discovery{Installed: []string{"ROCm", "Vulkan"}, Devices: []ml.DeviceInfo{vk}}, map[string]string{
			"ROCm": "installed; discovery found no device",
		}},
		{"ROCm kept away by a rule", Discovery{Installed: []string{"ROCm"}, ROCm: rocmDiscoveryPlan{Denied: []kfdNode{{GfxTarget: "gfx1200"}}}}, map[string]string{
			"ROCm": "installed; a rule denies ROCm on every AMD GPU, so discovery keeps HIP away",
		}},
		{"requested and missing: its own row only", Discovery{Preference: mustPreference("vulkan"), Installed: []string{"Vulkan"}}, map[string]string{
			"vulkan": "OLLAMA_LLM_LIBRARY=vulkan names it; discovery found no device",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			for _, b := range ListBackends(tt.found, nil).Backends {
				if b.Status == backendNoDevice {
					got[b.Library] = b.Reason
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("no-device rows (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInstalledLibraries(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"libggml-base.so", "libggml-cpu-haswell.so", "vulkan/libggml-vulkan.so", "rocm_v7_2/libggml-hip.so", "libggml-rpc.so.0"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"ROCm", "Vulkan"}, installedLibraries(dir)); diff != "" {
		t.Errorf("installedLibraries (-want +got):\n%s", diff)
	}
}
