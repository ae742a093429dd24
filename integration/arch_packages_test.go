//go:build integration

package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestArchPackages: the packages makepkg built from packaging/arch, installed
// with pacman -U in a scratch root (scripts/arch-pkg.sh sets
// OBS_ARCH_SCRATCH to it). The installed /usr/bin/ollama finds the packaged
// llama-server in /usr/lib/ollama and ggml-vulkan in /usr/lib/ollama/vulkan,
// discovers lavapipe, runs a tiny qwen3 there with OLLAMA_LLM_LIBRARY=vulkan,
// and refuses OLLAMA_LLM_LIBRARY=vulkn at start.
func TestArchPackages(t *testing.T) {
	root := os.Getenv("OBS_ARCH_SCRATCH")
	if root == "" {
		t.Skip("OBS_ARCH_SCRATCH unset: make arch-pkg installs the packages in a scratch root and runs this test there")
	}
	opts := func(env ...string) ServerOptions {
		return ServerOptions{
			Bin:     filepath.Join(root, "usr", "bin", "ollama"),
			RootBin: "/usr/bin/ollama",
			Prefix:  []string{filepath.Join(RepoRoot(), "scripts", "inroot.sh"), root},
			Env:     env,
		}
	}

	t.Run("OLLAMA_LLM_LIBRARY=vulkan", func(t *testing.T) {
		s := StartServer(t, opts("OLLAMA_LLM_LIBRARY=vulkan", "GGML_VK_VISIBLE_DEVICES=0"))
		if _, err := s.WaitForLog(regexp.MustCompile(`msg="inference compute"`), 2*time.Minute); err != nil {
			t.Fatalf("discovery did not finish: %v\n%s", err, tail(s.Log(), 30))
		}
		rec := forkOneRecord(t, s, "inference compute")
		forkCheckFields(t, "inference compute", rec, map[string]string{"library": "Vulkan", "description": "~llvmpipe"})

		m := forkCreateTiny(t, s, "qwen3")
		forkGenerate(t, s, m)
		r := forkLastRunner(t, s, m)
		if len(r.Args) == 0 || filepath.Clean(r.Args[0]) != "/usr/lib/ollama/llama-server" {
			t.Errorf("runner %q, want the packaged /usr/lib/ollama/llama-server", r.Args)
		}
		if got := runnerDevice(r); got != "Vulkan0" {
			t.Errorf("runner --device %q, want Vulkan0 (args %q)", got, r.Args)
		}
		if !r.MapsLib("libggml-vulkan.so") {
			t.Errorf("the runner did not load libggml-vulkan.so (maps %q)", r.Libs)
		}
		ps := forkPsEntry(t, s, m)
		if ps.SizeVRAM <= 0 || ps.Library != "Vulkan" || ps.LibraryDecidedBy != "OLLAMA_LLM_LIBRARY" {
			t.Errorf("/api/ps %+v, want size_vram > 0 on Vulkan, decided by OLLAMA_LLM_LIBRARY", ps)
		}
	})

	t.Run("OLLAMA_LLM_LIBRARY=vulkn", func(t *testing.T) {
		o := opts("OLLAMA_LLM_LIBRARY=vulkn")
		o.NoWait = true
		s := StartServer(t, o)
		code, err := s.WaitExit(time.Minute)
		if err != nil {
			t.Fatalf("the server did not stop: %v\n%s", err, tail(s.Log(), 20))
		}
		if code == 0 || !regexp.MustCompile(`OLLAMA_LLM_LIBRARY.*vulkn`).MatchString(s.Log()) {
			t.Errorf("exit %d, want a refusal naming vulkn:\n%s", code, tail(s.Log(), 20))
		}
	})
}
