//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
	"github.com/costa-os/ollama-backend-select/integration/internal/tinymodel"
)

// referenceBin prefers the pristine upstream binary (stable behaviour) and
// falls back to the binary under test.
func referenceBin(t *testing.T) string {
	if b := UpstreamBin(); fileExists(b) {
		return b
	}
	b := OllamaBin()
	RequireBinary(t, b, "ollama (neither upstream nor fork)")
	return b
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// TestFakeGPURunsModels checks what the fake library can do when a model is
// scheduled on it: with every layer offloaded to the fake ROCm GPU, tiny
// qwen3 (Ollama engine) and qwen2 (llama.cpp runner) models generate 8
// tokens, in the default "host" mode (the CPU backend computes on the fake
// VRAM) and in "delegate" mode (the fake backend claims the ops and forwards
// graphs to a CPU backend).
func TestFakeGPURunsModels(t *testing.T) {
	bin := referenceBin(t)
	responses := map[string]map[string]string{} // arch -> mode -> text
	for _, mode := range []string{"host", "delegate"} {
		t.Run(mode, func(t *testing.T) {
			tree := NewInstallTree(t, InstallOptions{Binary: bin, Layout: Flat, Fakes: []fakegpu.Variant{fakegpu.HIP}})
			traceDir := t.TempDir()
			trace := filepath.Join(traceDir, "trace")
			s := StartServer(t, ServerOptions{
				Bin:   tree.Bin,
				Binds: []string{tree.Root, traceDir},
				Env: []string{
					fakegpu.SharedEnv("TRACE", trace),
					fakegpu.HIP.Env("COMPUTE_MODE", mode),
					// The fork, when it stands in for upstream, would send
					// qwen3 on gfx1200 off ROCm by its built-in rule;
					// upstream ignores the variable.
					"OLLAMA_BACKEND_DENYLIST=none",
				},
			})
			if ic := s.InferenceCompute(); len(ic) != 1 || ic[0]["library"] != "ROCm" {
				t.Fatalf("inference compute: %v", ic)
			}
			for _, arch := range []string{"qwen3", "qwen2"} {
				t.Run(arch, func(t *testing.T) {
					gguf := filepath.Join(t.TempDir(), arch+".gguf")
					if err := tinymodel.Write(gguf, tinymodel.Tiny(arch)); err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
					defer cancel()
					if err := s.CreateModel(ctx, arch, gguf); err != nil {
						t.Fatal(err)
					}
					res, err := s.Generate(ctx, arch, "Hello, world", 8, nil)
					if err != nil {
						t.Fatal(err)
					}
					if res.EvalCount != 8 {
						t.Errorf("eval_count %d, want 8", res.EvalCount)
					}
					if responses[arch] == nil {
						responses[arch] = map[string]string{}
					}
					responses[arch][mode] = res.Response
					ps, err := s.PS(ctx)
					if err != nil {
						t.Fatal(err)
					}
					for _, m := range ps.Models {
						if m.Name == arch+":latest" {
							t.Logf("%s/%s: %s, size %d, size_vram %d", mode, arch, res.Wall.Round(time.Millisecond), m.Size, m.SizeVRAM)
							if m.SizeVRAM == 0 {
								t.Errorf("size_vram 0: model not scheduled on the fake GPU")
							}
						}
					}
				})
			}
			evs := mustTrace(t, trace)
			if n := len(fakegpu.Filter(evs, "graph-compute")); n != 0 {
				t.Errorf("%d graph_compute calls failed on the fake device", n)
			}
			if mode == "delegate" {
				d := fakegpu.Filter(evs, "delegate")
				if len(d) == 0 {
					t.Errorf("delegate mode never forwarded a graph to the CPU backend")
				}
				t.Logf("delegate: %d runner(s) captured the CPU backend, %d forwarded graphs to it",
					len(fakegpu.Filter(evs, "capture-cpu")), len(d))
			}
		})
	}
	// Both modes run the same CPU kernels on the same weights: greedy
	// output must be identical.
	for arch, byMode := range responses {
		if len(byMode) == 2 && byMode["host"] != byMode["delegate"] {
			t.Errorf("%s: host mode generated %q, delegate mode %q", arch, byMode["host"], byMode["delegate"])
		}
	}
}
