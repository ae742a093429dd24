//go:build integration

package integration

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
	"github.com/costa-os/ollama-backend-select/integration/internal/tinymodel"
)

// twinEnv configures the fake ROCm + Vulkan twin: one physical GPU (same
// PCI id) seen through both libraries, plus a shared trace file.
func twinEnv(trace string, extra ...string) []string {
	return append([]string{
		fakegpu.SharedEnv("TRACE", trace),
		fakegpu.SharedEnv("PCI_ID", "0000:03:00.0"),
		fakegpu.SharedEnv("TOTAL_MIB", "16384"),
		fakegpu.HIP.Env("NAME", "AMD Radeon RX 9070 XT (fake ROCm)"),
		fakegpu.HIP.Env("COMPUTE", "gfx1200"),
		fakegpu.Vulkan.Env("NAME", "AMD Radeon RX 9070 XT (fake Vulkan)"),
		// Keep each runner alive a little after it has mapped the library
		// so the /proc watcher sees the mapping too (the trace file is the
		// primary evidence).
		fakegpu.SharedEnv("INIT_DELAY_MS", "150"),
	}, extra...)
}

// TestUpstreamBaselineFlatLLMLibraryVulkan documents pristine v0.18.2 with
// the fake twin in the flat layout (lib/ollama/libggml-hip.so and
// lib/ollama/libggml-vulkan.so): OLLAMA_LLM_LIBRARY=vulkan is ignored
// (upstream only compares it with subdirectory names), both libraries are
// loaded into the same discovery runner, the duplicate device is resolved
// in favour of ROCm, and the server ends up with library=ROCm. A model
// then runs in a runner that maps libggml-hip.so with ROCR_VISIBLE_DEVICES.
func TestUpstreamBaselineFlatLLMLibraryVulkan(t *testing.T) {
	bin := UpstreamBin()
	RequireBinary(t, bin, "pristine upstream (make build-upstream, or set OBS_UPSTREAM_BIN)")
	tree := NewInstallTree(t, InstallOptions{Binary: bin, Layout: Flat})
	traceDir := t.TempDir()
	trace := filepath.Join(traceDir, "fakegpu.trace")
	hipLib, vkLib := tree.Libs["libggml-hip.so"], tree.Libs["libggml-vulkan.so"]

	s := StartServer(t, ServerOptions{
		Bin:   tree.Bin,
		Env:   twinEnv(trace, "OLLAMA_LLM_LIBRARY=vulkan"),
		Binds: []string{tree.Root, traceDir},
	})

	// 1. the inference compute line
	ic := s.InferenceCompute()
	if len(ic) != 1 {
		t.Fatalf("want 1 inference compute record, got %d: %v", len(ic), ic)
	}
	rec := ic[0]
	for k, want := range map[string]string{
		"library": "ROCm", "compute": "gfx1200", "pci_id": "0000:03:00.0",
		"id": "GPU-fa4e000000000001", "name": "ROCm0", "type": "discrete",
	} {
		if rec[k] != want {
			t.Errorf("inference compute %s=%q, want %q", k, rec[k], want)
		}
	}
	t.Logf("inference compute: %v", rec)

	// 2. which libraries the discovery runners loaded (trace file)
	evs, err := fakegpu.ReadTrace(trace)
	if err != nil {
		t.Fatal(err)
	}
	regs := fakegpu.Filter(evs, "registered")
	hipPIDs, vkPIDs := map[int]bool{}, map[int]bool{}
	for _, e := range regs {
		switch e.SO {
		case hipLib:
			hipPIDs[e.PID] = true
		case vkLib:
			vkPIDs[e.PID] = true
		default:
			t.Errorf("library loaded from unexpected path %s", e.SO)
		}
	}
	if len(hipPIDs) == 0 {
		t.Errorf("no runner loaded %s; trace:\n%v", hipLib, evs)
	}
	both := 0
	for pid := range hipPIDs {
		if vkPIDs[pid] {
			both++
		}
	}
	if both == 0 {
		t.Errorf("expected the flat layout to load hip and vulkan into the same runner; hip pids %v vulkan pids %v", hipPIDs, vkPIDs)
	}
	validation := 0
	for _, e := range fakegpu.Filter(evs, "init") {
		if e.Fields["cuda_init"] == "1" && e.SO == hipLib {
			validation++
		}
	}
	if validation == 0 {
		t.Errorf("expected a GGML_CUDA_INIT=1 validation pass for the ROCm device")
	}
	t.Logf("discovery: %d runner(s) loaded libggml-hip.so, %d also libggml-vulkan.so, %d ROCm validation pass(es)",
		len(hipPIDs), both, validation)

	// 3. the same, seen from /proc
	mapped := false
	for _, r := range s.Runners() {
		if !r.IsDiscovery() {
			continue
		}
		t.Logf("discovery runner pid %d: libs %v OLLAMA_LIBRARY_PATH=%q ROCR_VISIBLE_DEVICES=%q GGML_CUDA_INIT=%q",
			r.PID, r.Libs, r.Env["OLLAMA_LIBRARY_PATH"], r.Env["ROCR_VISIBLE_DEVICES"], r.Env["GGML_CUDA_INIT"])
		if r.MapsLib("libggml-hip.so") {
			mapped = true
		}
		if lp := r.Env["OLLAMA_LIBRARY_PATH"]; lp != "" && !strings.Contains(lp, tree.LibDir) {
			t.Errorf("runner OLLAMA_LIBRARY_PATH=%q does not include %s", lp, tree.LibDir)
		}
	}
	if !mapped {
		t.Errorf("no discovery runner was seen mapping libggml-hip.so in /proc/PID/maps")
	}

	// 4. a model scheduled on the (fake) ROCm GPU
	t.Run("model", func(t *testing.T) {
		gguf := filepath.Join(t.TempDir(), "tiny.gguf")
		if err := tinymodel.Write(gguf, tinymodel.Tiny("qwen3")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := s.CreateModel(ctx, "tiny", gguf); err != nil {
			t.Fatal(err)
		}
		res, err := s.Generate(ctx, "tiny", "Hello, world", 8, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.EvalCount != 8 {
			t.Errorf("eval_count = %d, want 8", res.EvalCount)
		}
		t.Logf("generate on fake ROCm: %s, %d tokens: %q", res.Wall.Round(time.Millisecond), res.EvalCount, res.Response)
		ps, err := s.PS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps.Models) != 1 || ps.Models[0].SizeVRAM == 0 {
			t.Errorf("want the model (partly) in VRAM, /api/ps: %+v", ps.Models)
		}
		var model []Proc
		for _, r := range s.LiveRunners() {
			if !r.IsDiscovery() {
				model = append(model, r)
			}
		}
		if len(model) != 1 {
			t.Fatalf("want 1 live model runner, got %+v", model)
		}
		r := model[0]
		t.Logf("model runner pid %d: libs %v ROCR_VISIBLE_DEVICES=%q OLLAMA_LIBRARY_PATH=%q",
			r.PID, r.Libs, r.Env["ROCR_VISIBLE_DEVICES"], r.Env["OLLAMA_LIBRARY_PATH"])
		if !r.MapsLib("libggml-hip.so") {
			t.Errorf("model runner does not map libggml-hip.so: %v", r.Libs)
		}
		if r.Env["ROCR_VISIBLE_DEVICES"] == "" {
			t.Errorf("model runner has no ROCR_VISIBLE_DEVICES")
		}
		offload, err := s.WaitForLog(regexpMust(`offloaded \d+/\d+ layers to GPU`), 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		t.Logf("%s", strings.TrimSpace(offload))
		allocs := 0
		for _, e := range fakegpu.Filter(mustTrace(t, trace), "alloc") {
			if e.PID == r.PID && e.SO == hipLib && e.Fields["ok"] == "1" {
				allocs++
			}
		}
		if allocs == 0 {
			t.Errorf("the model runner allocated nothing on the fake ROCm device")
		}
		if slices.ContainsFunc(r.Libs, func(l string) bool { return filepath.Base(l) == "libggml-vulkan.so" }) {
			t.Logf("note: the model runner also maps libggml-vulkan.so (flat layout loads every library in lib/ollama)")
		}
	})
}
