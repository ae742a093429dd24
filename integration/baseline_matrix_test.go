//go:build integration

package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

// TestUpstreamBaselineMatrix records which library pristine v0.18.2 ends up
// with for the fake ROCm+Vulkan twin (same PCI id) across layouts,
// OLLAMA_LLM_LIBRARY, OLLAMA_VULKAN and an init crash of the HIP library.
// The want column is upstream's observed behaviour; the table is logged so
// it can be compared with the fork's.
func TestUpstreamBaselineMatrix(t *testing.T) {
	bin := UpstreamBin()
	RequireBinary(t, bin, "pristine upstream (make build-upstream, or set OBS_UPSTREAM_BIN)")
	cases := []struct {
		layout Layout
		env    []string
		want   string // comma separated libraries of the inference compute records
	}{
		{Flat, nil, "ROCm"},
		{Flat, []string{"OLLAMA_LLM_LIBRARY=vulkan"}, "ROCm"},
		{Flat, []string{"OLLAMA_LLM_LIBRARY=rocm"}, "ROCm"},
		{Flat, []string{"OLLAMA_VULKAN=0"}, "ROCm"},
		{Flat, []string{fakegpu.HIP.Env("FAULT", "crash")}, "cpu"},
		{Flat, []string{fakegpu.HIP.Env("FAULT", "crash-validate")}, "Vulkan"},
		{Subdir, nil, "ROCm"},
		{Subdir, []string{"OLLAMA_VULKAN=1"}, "ROCm"},
		{Subdir, []string{"OLLAMA_LLM_LIBRARY=vulkan"}, "cpu"},
		{Subdir, []string{"OLLAMA_LLM_LIBRARY=vulkan", "OLLAMA_VULKAN=1"}, "Vulkan"},
		{Subdir, []string{"OLLAMA_LLM_LIBRARY=rocm", "OLLAMA_VULKAN=1"}, "ROCm"},
		{Subdir, []string{"OLLAMA_VULKAN=1", fakegpu.HIP.Env("FAULT", "crash")}, "Vulkan"},
		{Subdir, []string{"OLLAMA_VULKAN=1", fakegpu.HIP.Env("FAULT", "crash-validate")}, "Vulkan"},
	}
	// trees live for the whole test (a subtest's TempDir would vanish with it)
	trees := map[Layout]*InstallTree{
		Flat:   NewInstallTree(t, InstallOptions{Binary: bin, Layout: Flat}),
		Subdir: NewInstallTree(t, InstallOptions{Binary: bin, Layout: Subdir}),
	}
	var table []string
	for _, c := range cases {
		name := fmt.Sprintf("%s/%s", c.layout, strings.Join(c.env, ","))
		if len(c.env) == 0 {
			name = c.layout.String() + "/default"
		}
		t.Run(name, func(t *testing.T) {
			tree := trees[c.layout]
			trace := filepath.Join(t.TempDir(), "trace")
			s := StartServer(t, ServerOptions{
				Bin:   tree.Bin,
				Env:   append(twinEnv(trace), c.env...),
				Binds: []string{tree.Root, filepath.Dir(trace)},
			})
			var libs []string
			for _, r := range s.InferenceCompute() {
				libs = append(libs, r["library"])
			}
			slices.Sort(libs)
			got := strings.Join(libs, ",")
			runners := 0
			for _, r := range s.Runners() {
				if r.IsDiscovery() {
					runners++
				}
			}
			table = append(table, fmt.Sprintf("%-70s -> %-8s (%d discovery runners)", name, got, runners))
			if got != c.want {
				t.Errorf("library = %q, want %q", got, c.want)
			}
		})
	}
	t.Logf("upstream v0.18.2 with the fake ROCm+Vulkan twin:\n%s", strings.Join(table, "\n"))
}
