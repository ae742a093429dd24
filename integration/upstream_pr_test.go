//go:build integration

package integration

// The scenarios of the upstream pull requests (upstream/pr/<N>-*/scenarios),
// on the binary built from pristine upstream plus the series up to that
// pull request (make pr, OBS_UPSTREAM_ONLY=1). Each asserts only what its
// pull request changes, with upstream's own log lines and llama-server's
// argv: make pr runs it on the series before the pull request (it must
// fail) and with it (it must pass). The fork's binary has its own
// scenarios (llamaserver_test.go); these skip there.

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

func requireUpstreamPR(t *testing.T) {
	t.Helper()
	if !upstreamOnly() {
		t.Skip("a scenario of the upstream pull requests: make pr (OBS_UPSTREAM_ONLY=1)")
	}
}

// computeLibraries is the library of each "inference compute" line: the
// devices discovery kept ("cpu" for none).
func computeLibraries(t *testing.T, s *Server) []string {
	t.Helper()
	if _, err := s.WaitForLog(regexp.MustCompile(`msg="inference compute"`), 3*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, tail(s.Log(), 30))
	}
	time.Sleep(time.Second) // the lines of every device are written together
	var libs []string
	for _, rec := range s.InferenceCompute() {
		libs = append(libs, rec["library"])
	}
	return libs
}

// TestPRDeviceIndex (PR 1): one GPU seen through CUDA and Vulkan in one
// folder is one device, CUDA's, paired by the native probe's PCI id.
func TestPRDeviceIndex(t *testing.T) {
	requireUpstreamPR(t)
	b := newLSBed(t, forkBin(t), fakegpu.CUDA, fakegpu.Vulkan)
	s := b.start(t)
	if got := computeLibraries(t, s); !slices.Equal(got, []string{"CUDA"}) {
		t.Errorf("inference compute libraries %q, want one CUDA device (the Vulkan device is its duplicate)", got)
	}
}

// TestPRLLMLibrary (PR 2): OLLAMA_LLM_LIBRARY decides discovery in a flat
// folder; cpu_avx2 is cpu; a value that is not a library is an ERROR.
func TestPRLLMLibrary(t *testing.T) {
	requireUpstreamPR(t)
	lavapipe := newLSBed(t, forkBin(t))
	twin := newLSBed(t, forkBin(t), fakegpu.CUDA, fakegpu.Vulkan)
	tests := []struct {
		bed     *lsBed
		library string
		want    []string
	}{
		{lavapipe, "cpu", []string{"cpu"}},
		{lavapipe, "cpu_avx2", []string{"cpu"}},
		{lavapipe, "vulkan", []string{"Vulkan"}},
		{twin, "vulkan", []string{"Vulkan"}},
		{twin, "cuda", []string{"CUDA"}},
	}
	for _, tt := range tests {
		name := "lavapipe"
		if tt.bed == twin {
			name = "cuda-twin"
		}
		t.Run(name+"/OLLAMA_LLM_LIBRARY="+tt.library, func(t *testing.T) {
			s := tt.bed.start(t, "GGML_VK_VISIBLE_DEVICES=0", "OLLAMA_LLM_LIBRARY="+tt.library)
			if got := computeLibraries(t, s); !slices.Equal(got, tt.want) {
				t.Errorf("inference compute libraries %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("lavapipe/OLLAMA_LLM_LIBRARY=vulkn", func(t *testing.T) {
		s := lavapipe.start(t, "GGML_VK_VISIBLE_DEVICES=0", "OLLAMA_LLM_LIBRARY=vulkn")
		if got := computeLibraries(t, s); !slices.Equal(got, []string{"Vulkan"}) {
			t.Errorf("inference compute libraries %q, want Vulkan: the value is ignored", got)
		}
		if log := s.Log(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, `OLLAMA_LLM_LIBRARY=\"vulkn\" is not a library`) {
			t.Errorf("no ERROR line naming vulkn in the log:\n%s", tail(log, 20))
		}
	})
}

// TestPRRunnerDevice (PR 3): llama-server gets --device for the device the
// scheduler chose and offloads to it alone, CUDA and Vulkan in one folder.
// (TestLlamaServerLavapipe is PR 3's other scenario.)
func TestPRRunnerDevice(t *testing.T) {
	requireUpstreamPR(t)
	b := newLSBed(t, forkBin(t), fakegpu.CUDA, fakegpu.Vulkan)
	tests := []struct {
		library string
		device  string
		using   string
	}{
		{"", "CUDA0", "using device CUDA0"},
		{"vulkan", "Vulkan0", "using device Vulkan0"},
		{"cpu", "none", ""},
	}
	for _, tt := range tests {
		t.Run("OLLAMA_LLM_LIBRARY="+tt.library, func(t *testing.T) {
			s := b.start(t, "OLLAMA_LLM_LIBRARY="+tt.library)
			m := forkCreateTiny(t, s, "qwen3")
			forkGenerate(t, s, m)
			r := forkLastRunner(t, s, m)
			if got := runnerDevice(r); got != tt.device {
				t.Errorf("runner --device %q, want %q (args %q)", got, tt.device, r.Args)
			}
			log := s.Log()
			for _, line := range []string{"using device CUDA0", "using device Vulkan0"} {
				if used := strings.Contains(log, line); used != (line == tt.using) {
					t.Errorf("llama-server log has %q: %v; want only %q", line, used, tt.using)
				}
			}
		})
	}
}

// TestPRGfx1200Vulkan (PR 4): a gfx1200 seen through ROCm and Vulkan runs
// its models on Vulkan, and HIP never sees the GPU in the runner.
func TestPRGfx1200Vulkan(t *testing.T) {
	requireUpstreamPR(t)
	b := newLSBed(t, forkBin(t), fakegpu.HIP, fakegpu.Vulkan)
	s := b.start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t))
	if got := computeLibraries(t, s); !slices.Equal(got, []string{"Vulkan"}) {
		t.Errorf("inference compute libraries %q, want one Vulkan device", got)
	}
	m := forkCreateTiny(t, s, "qwen2")
	forkGenerate(t, s, m)
	b.checkOnFakeVulkan(t, s, m, true)
}
