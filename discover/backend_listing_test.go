package discover

import (
	"bytes"
	"github.com/costa-os/ollama-backend-select/ml/backends"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

func TestFormatBackends(t *testing.T) {
	l := backendListing{
		LLMLibrary:   "vulkan,rocm",
		DefaultOrder: "CUDA > ROCm > Vulkan",
		Backends: []backendStatus{
			{Library: "Vulkan", Description: "AMD Radeon RX 9060 XT", PCIID: "0000:03:00.0", Compute: "0.0", TotalMemory: 16 << 30, Status: backendChosen},
			{Library: "ROCm", Description: "AMD Radeon RX 9060 XT", PCIID: "0000:03:00.0", Compute: "gfx1200", TotalMemory: 16 << 30, Status: backendAlternate,
				Reason: "OLLAMA_LLM_LIBRARY=vulkan,rocm lists Vulkan first", Rules: []string{"rocm:gfx1200:qwen3,qwen3moe=use-other-library (builtin)"}},
		},
		DiscoveryFailures: []discoveryFailure{{Failure: "died", LibDirs: "/usr/lib/ollama", Exit: "signal: aborted", Backends: []string{"libggml-hip.so", "libggml-vulkan.so"}, LastOutput: "ggml_abort"}},
	}
	var b bytes.Buffer
	if err := formatBackends(&b, l); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"DEVICE", "0000:03:00.0  0.0      Vulkan", "chosen", "alternate", "lists Vulkan first",
		"rocm:gfx1200:qwen3",
		"OLLAMA_LLM_LIBRARY: vulkan,rocm; default order: CUDA > ROCm > Vulkan",
		"llama-server died during GPU discovery in /usr/lib/ollama (signal: aborted); GPU backends there: libggml-hip.so, libggml-vulkan.so; last output: ggml_abort; move the backend library",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

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

	if l := listBackends(found, nil); len(l.Backends) == 0 || l.Backends[0].Library != "ROCm" || len(l.Backends[0].Rules) != 0 || l.StuckGPUs != nil {
		t.Errorf("listing without anything learned: %+v", l)
	}
	l := listBackends(found, learned)
	if diff := cmp.Diff([]string{"rocm:gfx1200:qwen3 (learned, MES firmware 0x00000080)"}, l.Backends[0].Rules); diff != "" {
		t.Errorf("rules of the ROCm row (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(learned.stuck, l.StuckGPUs); diff != "" {
		t.Errorf("stuck GPUs (-want +got):\n%s", diff)
	}
	var b bytes.Buffer
	if err := formatBackends(&b, l); err != nil {
		t.Fatal(err)
	}
	if want := "GPU 0000:03:00.0 (MES firmware 0x00000080) stayed 99%-100% busy after qwen3:8b with a vision projector (ROCm) unloaded; reboot\n"; !strings.HasSuffix(b.String(), want) {
		t.Errorf("output does not end with %q:\n%s", want, b.String())
	}
}

// TestListBackendsCPURow: the listing always has a CPU row, so a machine
// without a GPU does not print an empty table.
func TestListBackendsCPURow(t *testing.T) {
	pref := func(v string) backends.Preference {
		p, err := envconfig.ParseLLMLibrary(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		gpu  bool
		pref string
		want backendStatus
	}{
		{false, "", backendStatus{Library: "CPU", Description: "CPU", Status: backendChosen, Reason: "no GPU library found a device"}},
		{false, "cpu", backendStatus{Library: "CPU", Description: "CPU", Status: backendChosen, Reason: "OLLAMA_LLM_LIBRARY=cpu"}},
		{false, "vulkan", backendStatus{Library: "CPU", Description: "CPU", Status: backendChosen, Reason: "no GPU library found a device"}},
		{true, "", backendStatus{Library: "CPU", Description: "CPU", Status: backendFallback, Reason: "layers the GPUs do not hold"}},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, cpuRow(tc.gpu, pref(tc.pref))); diff != "" {
			t.Errorf("cpuRow(%v, %q) (-want +got):\n%s", tc.gpu, tc.pref, diff)
		}
	}
	var b bytes.Buffer
	if err := formatBackends(&b, backendListing{DefaultOrder: "CUDA > ROCm > Vulkan", Backends: []backendStatus{cpuRow(false, pref(""))}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "CPU ") || !strings.Contains(lines[1], "chosen") {
		t.Errorf("the table's first row is not the chosen CPU:\n%s", b.String())
	}
}

// TestListBackendsMissing: a library OLLAMA_LLM_LIBRARY names that found no
// device is a row of its own, not left out.
func TestListBackendsMissing(t *testing.T) {
	pref, err := envconfig.ParseLLMLibrary("vulkan,cpu")
	if err != nil {
		t.Fatal(err)
	}
	l := listBackends(Discovery{Preference: pref}, nil)
	want := []backendStatus{
		{Library: "vulkan", Description: "-", Status: backendNoDevice, Reason: "OLLAMA_LLM_LIBRARY=vulkan,cpu names it; discovery found no device"},
		{Library: "CPU", Description: "CPU", Status: backendChosen, Reason: "no GPU library found a device"},
	}
	if diff := cmp.Diff(want, l.Backends); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}
