package discover

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlanROCmDiscovery(t *testing.T) {
	rdna4 := kfdNode{Node: 1, GfxTarget: "gfx1200", PCIID: "0000:03:00.0", UniqueID: 0x1234}
	rdna3 := kfdNode{Node: 2, GfxTarget: "gfx1100", PCIID: "0000:04:00.0"}
	type plan struct {
		Denied     []string
		Visible    []string
		NeedVulkan bool
		AllDenied  bool
	}
	cases := []struct {
		name     string
		denylist string
		nodes    []kfdNode
		want     plan
	}{
		{"no AMD GPU, built-ins", "", nil, plan{}},
		{"gfx1200, built-ins: qwen3 only, twin needed", "", []kfdNode{rdna4}, plan{Visible: []string{"GPU-0000000000001234"}, NeedVulkan: true}},
		{"gfx1100, built-ins: nothing applies", "", []kfdNode{rdna3}, plan{Visible: []string{"2"}}},
		{"every use on gfx1200 denied", "rocm:gfx1200", []kfdNode{rdna4, rdna3}, plan{Denied: []string{"gfx1200"}, Visible: []string{"2"}, NeedVulkan: true}},
		{"every AMD GPU denied", "rocm:gfx1*", []kfdNode{rdna4, rdna3}, plan{Denied: []string{"gfx1200", "gfx1100"}, NeedVulkan: true, AllDenied: true}},
		{"none", "none", []kfdNode{rdna4}, plan{Visible: []string{"GPU-0000000000001234"}}},
		{"a CUDA rule needs the twins too", "none cuda:9.0:qwen3", nil, plan{NeedVulkan: true}},
		{"queues1 keeps ROCm and needs no twin", "none rocm:gfx1200:*=queues1", []kfdNode{rdna4}, plan{Visible: []string{"GPU-0000000000001234"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OLLAMA_BACKEND_DENYLIST", tc.denylist)
			p := planROCmDiscovery(tc.nodes, configuredQuirkRules())
			got := plan{Visible: p.Visible, NeedVulkan: p.NeedVulkan, AllDenied: p.allDenied()}
			for _, n := range p.Denied {
				got.Denied = append(got.Denied, n.GfxTarget)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestDiscoveryEnvReadsKFD runs the whole discovery decision on a fake KFD
// tree: one gfx1200 and one gfx1100 GPU; "none" is a tree without KFD.
func TestDiscoveryEnvReadsKFD(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"sys/class/kfd/kfd/topology/nodes/0/properties": "cpu_cores_count 16\nsimd_count 0\ngfx_target_version 0\n",
		"sys/class/kfd/kfd/topology/nodes/1/properties": "simd_count 64\ngfx_target_version 120000\nlocation_id 768\ndomain 0\nunique_id 4660\n",
		"sys/class/kfd/kfd/topology/nodes/2/properties": "simd_count 96\ngfx_target_version 110000\nlocation_id 1024\ndomain 0\n",
	})
	noKFD := t.TempDir()
	cases := []struct {
		root, denylist, llmLibrary string
		want                       map[string]string
	}{
		{root, "", "", nil},
		{root, "", "vulkan", map[string]string{"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1", "CUDA_VISIBLE_DEVICES": "-1"}},
		{root, "", "cpu", map[string]string{"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1", "CUDA_VISIBLE_DEVICES": "-1", "GGML_VK_VISIBLE_DEVICES": ""}},
		// HIP reads CUDA_VISIBLE_DEVICES: CUDA is not hidden through it while ROCm is shown.
		{root, "", "rocm", map[string]string{"GGML_VK_VISIBLE_DEVICES": ""}},
		{root, "rocm:gfx1200", "", map[string]string{"ROCR_VISIBLE_DEVICES": "2"}},
		{root, "rocm:gfx1*", "", map[string]string{"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1"}},
		{root, "rocm:gfx1*", "rocm,vulkan", map[string]string{"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1", "CUDA_VISIBLE_DEVICES": "-1"}},
		// The built-in rule covers some models only: ROCm stays.
		{noKFD, "", "", nil},
		// Without KFD nothing says which GPU is a gfx1200: ROCm is hidden.
		{noKFD, "rocm:gfx1200", "", map[string]string{"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1"}},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.root)+"/"+tc.denylist+"/"+tc.llmLibrary, func(t *testing.T) {
			t.Setenv("OLLAMA_SYSFS_ROOT", tc.root)
			t.Setenv("OLLAMA_BACKEND_DENYLIST", tc.denylist)
			t.Setenv("OLLAMA_LLM_LIBRARY", tc.llmLibrary)
			found := StartDiscovery()
			if diff := cmp.Diff(tc.want, found.env(nil)); diff != "" {
				t.Errorf("discovery environment (-want +got):\n%s", diff)
			}
			// OLLAMA_LLM_LIBRARY without rocm skips the folder too.
			wantSkip := tc.denylist == "rocm:gfx1*" || (tc.llmLibrary != "" && !strings.Contains(tc.llmLibrary, "rocm"))
			if got := found.skipsLibraryDir("rocm"); got != wantSkip {
				t.Errorf("skipsLibraryDir(rocm) = %v, want %v", got, wantSkip)
			}
		})
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
