package backends

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPreferenceRankAndDirs(t *testing.T) {
	type rank struct {
		Index int
		OK    bool
	}
	cases := []struct {
		pref    string
		library string
		libDir  string
		want    rank
	}{
		{"vulkan,rocm", "Vulkan", "/usr/lib/ollama", rank{0, true}},
		{"vulkan,rocm", "ROCm", "/usr/lib/ollama/rocm", rank{1, true}},
		{"vulkan", "ROCm", "/usr/lib/ollama", rank{0, false}},
		{"cuda", "CUDA", "/usr/lib/ollama/cuda_v12", rank{0, true}},
		{"cuda_v13", "CUDA", "/usr/lib/ollama/cuda_v12", rank{0, false}},
		{"cuda_v13", "CUDA", "/usr/lib/ollama/cuda_v13", rank{0, true}},
		// The flat layout has one CUDA library; any cuda item selects it.
		{"cuda_v13", "CUDA", "/usr/lib/ollama", rank{0, true}},
		{"cpu", "CUDA", "/usr/lib/ollama", rank{0, false}},
		{"cpu,rocm", "ROCm", "/usr/lib/ollama", rank{1, true}},
		{"rocm_v7_2", "ROCm", "/usr/lib/ollama/rocm_v7_1", rank{0, false}},
		{"rocm_v7_2", "ROCm", "/usr/lib/ollama/rocm_v7_2", rank{0, true}},
		{"rocm_v7_2", "ROCm", "/usr/lib/ollama", rank{0, true}},
	}
	for _, tc := range cases {
		p, err := ParsePreference(tc.pref)
		if err != nil {
			t.Fatal(err)
		}
		i, ok := p.Rank(tc.library, tc.libDir)
		if diff := cmp.Diff(tc.want, rank{i, ok}); diff != "" {
			t.Errorf("%q.Rank(%s, %s) (-want +got):\n%s", tc.pref, tc.library, tc.libDir, diff)
		}
	}

	dirs := []string{"rocm", "rocm_v7_1", "rocm_v7_2", "vulkan", "cuda_v12", "cuda_v13", "cuda_jetpack6", "mlx"}
	dirCases := map[string][]string{
		"":              dirs,
		"vulkan":        {"vulkan"},
		"ROCm,vulkan":   {"rocm", "rocm_v7_1", "rocm_v7_2", "vulkan"},
		"rocm":          {"rocm", "rocm_v7_1", "rocm_v7_2"},
		"cuda":          {"cuda_v12", "cuda_v13", "cuda_jetpack6"},
		"cuda_v13":      {"cuda_v13"},
		"cpu":           nil,
		"cuda_jetpack6": {"cuda_jetpack6"},
		"rocm_v7_2":     {"rocm_v7_2"},
	}
	for value, want := range dirCases {
		p, err := ParsePreference(value)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range dirs {
			if p.WantsLibraryDir(d) {
				got = append(got, d)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("WantsLibraryDir with %q (-want +got):\n%s", value, diff)
		}
	}
}

func TestPrefer(t *testing.T) {
	rocm := Option{Library: "ROCm", LibraryPath: []string{"/l/ollama", "/l/ollama/rocm"}}
	vulkan := Option{Library: "Vulkan", LibraryPath: []string{"/l/ollama", "/l/ollama/vulkan"}}
	cuda := Option{Library: "CUDA", LibraryPath: []string{"/l/ollama"}}
	type result struct {
		AWins  bool
		Reason string
	}
	cases := []struct {
		pref string
		a, b Option
		want result
	}{
		{"", rocm, vulkan, result{true, "default order CUDA > ROCm > Vulkan"}},
		{"", vulkan, rocm, result{false, "default order CUDA > ROCm > Vulkan"}},
		{"", cuda, vulkan, result{true, "default order CUDA > ROCm > Vulkan"}},
		{"", rocm, rocm, result{true, "found first"}},
		{"vulkan", rocm, vulkan, result{false, "OLLAMA_LLM_LIBRARY=vulkan does not request ROCm"}},
		{"vulkan", vulkan, rocm, result{true, "OLLAMA_LLM_LIBRARY=vulkan does not request ROCm"}},
		{"vulkan,rocm", rocm, vulkan, result{false, "OLLAMA_LLM_LIBRARY=vulkan,rocm lists Vulkan first"}},
		{"rocm,vulkan", rocm, vulkan, result{true, "OLLAMA_LLM_LIBRARY=rocm,vulkan lists ROCm first"}},
		// Neither requested: the built-in order still decides between them.
		{"cpu", rocm, vulkan, result{true, "default order CUDA > ROCm > Vulkan"}},
	}
	for _, tc := range cases {
		p, err := ParsePreference(tc.pref)
		if err != nil {
			t.Fatal(err)
		}
		aWins, reason := p.Prefer(tc.a, tc.b)
		if diff := cmp.Diff(tc.want, result{aWins, reason}); diff != "" {
			t.Errorf("pref %q: Prefer(%s, %s) (-want +got):\n%s", tc.pref, tc.a.Library, tc.b.Library, diff)
		}
	}
}

// TestHideEnv: HIP reads CUDA_VISIBLE_DEVICES, so CUDA is hidden through it
// only where ROCm is hidden too.
func TestHideEnv(t *testing.T) {
	tests := []struct {
		hidden, shown []string
		want          map[string]string
	}{
		{[]string{"CUDA", "ROCm", "Vulkan"}, nil, map[string]string{"CUDA_VISIBLE_DEVICES": "-1", "ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1", "GGML_VK_VISIBLE_DEVICES": ""}},
		{[]string{"CUDA", "Vulkan"}, []string{"ROCm"}, map[string]string{"GGML_VK_VISIBLE_DEVICES": ""}},
		{[]string{"hip"}, []string{"Vulkan"}, map[string]string{"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1"}},
		{[]string{"Metal"}, nil, map[string]string{}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, HideEnv(tt.hidden, tt.shown)); diff != "" {
			t.Errorf("HideEnv(%v, %v) (-want +got):\n%s", tt.hidden, tt.shown, diff)
		}
	}
}
