//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

// TestForkLavapipe runs the fork with the real libggml-vulkan.so (make
// vulkan) on Mesa's lavapipe, a CPU-backed Vulkan device, inside the trixie
// root the library was built in, in both layouts, next to the fake ROCm
// library: OLLAMA_LLM_LIBRARY=vulkan must end on Vulkan (llvmpipe), never
// load libggml-hip.so, and generate. The first request compiles Vulkan
// pipelines (1-2 min on 2 cores); the second layout reuses Mesa's shader
// cache in a shared XDG_CACHE_HOME.
func TestForkLavapipe(t *testing.T) {
	repo := RepoRoot()
	vk := filepath.Join(repo, "build", "native", "vulkan", "lib", "ollama")
	if _, err := os.Stat(filepath.Join(vk, "libggml-vulkan.so")); err != nil {
		t.Skipf("no real Vulkan library (make vulkan): %v", err)
	}
	roots := os.Getenv("OBS_ROOTS")
	if roots == "" {
		roots = "/var/cache/ollama-backend-select/roots"
	}
	if _, err := os.Stat(filepath.Join(roots, "trixie", "usr", "bin")); err != nil {
		t.Skipf("no trixie root (make root-trixie): %v", err)
	}
	prefix := []string{filepath.Join(repo, "scripts", "inroot.sh"), "trixie"}
	bin := forkBin(t)
	cache := t.TempDir() // Mesa's pipeline cache, shared by both layouts

	for _, layout := range []Layout{Flat, Subdir} {
		t.Run(layout.String(), func(t *testing.T) {
			dst := map[Layout]string{Flat: "", Subdir: "vulkan/"}[layout]
			tree := NewInstallTree(t, InstallOptions{
				Binary: bin, Layout: layout,
				Fakes: []fakegpu.Variant{fakegpu.HIP},
				Real: map[string]string{
					dst + "libggml-vulkan.so": filepath.Join(vk, "libggml-vulkan.so"),
					// The module finds its base next to itself or one folder up.
					"libggml-base.so.0": filepath.Join(vk, "libggml-base.so.0"),
					"libggml-base.so":   filepath.Join(vk, "libggml-base.so.0"),
				},
			})
			s := StartServer(t, ServerOptions{
				Bin:    tree.Bin,
				Prefix: prefix,
				Binds:  []string{tree.Root, cache},
				Env: []string{
					"OLLAMA_LLM_LIBRARY=vulkan",
					"GGML_VK_VISIBLE_DEVICES=0", // ggml skips CPU-type Vulkan devices otherwise
					"XDG_CACHE_HOME=" + cache,
					fakegpu.HIP.Env("COMPUTE", "gfx1200"),
				},
			})
			ic := s.InferenceCompute()
			if len(ic) != 1 || ic[0]["library"] != "Vulkan" || !strings.Contains(strings.ToLower(ic[0]["description"]), "llvmpipe") {
				t.Fatalf("inference compute = %v, want one Vulkan llvmpipe device", ic)
			}
			m := forkCreateTiny(t, s, "qwen2")
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()
			start := time.Now()
			res, err := s.Generate(ctx, m.Name, "Hi", 8, nil)
			if err != nil {
				t.Fatalf("generate on lavapipe: %v\nlog tail:\n%s", err, tail(s.Log(), 40))
			}
			t.Logf("%s: first generation on lavapipe took %s (%d tokens)", layout, time.Since(start).Round(time.Second), res.EvalCount)
			if res.EvalCount != 8 {
				t.Errorf("eval_count %d, want 8", res.EvalCount)
			}
			if e := forkPsEntry(t, s, m); e.Library != "Vulkan" || e.SizeVRAM == 0 {
				t.Errorf("/api/ps entry = %+v, want the model on Vulkan", e)
			}
			for _, r := range s.Runners() {
				if r.MapsLib("libggml-hip.so") {
					t.Errorf("runner %d %v mapped libggml-hip.so", r.PID, r.Args)
				}
			}
		})
	}
}
