package envconfig

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLLMLibrary(t *testing.T) {
	cases := []struct {
		value   string
		want    string // canonical form
		wantErr string // substring of the error
	}{
		{value: "", want: ""},
		{value: "  ", want: ""},
		{value: "vulkan", want: "vulkan"},
		{value: "Vulkan", want: "vulkan"},
		{value: "ROCM", want: "rocm"},
		{value: "vulkan,cpu", want: "vulkan,cpu"},
		{value: " vulkan , rocm ", want: "vulkan,rocm"},
		{value: "cuda_v13,cuda_v12,vulkan", want: "cuda_v13,cuda_v12,vulkan"},
		{value: "vulkan,vulkan", want: "vulkan"},
		{value: "vulkn", wantErr: `"vulkn" is not a library name; accepted: one of cpu, cuda, cuda_v12`},
		{value: "vulkan,bogus", wantErr: `"bogus" is not a library name`},
		{value: "../x", wantErr: `"../x" is not a library name`},
		{value: "/usr/lib/ollama/rocm", wantErr: `"/usr/lib/ollama/rocm" is not a library name`},
		{value: "vulkan,,cpu", wantErr: `OLLAMA_LLM_LIBRARY="vulkan,,cpu": empty item`},
		{value: ",", wantErr: ": empty item"},
		{value: "hip", wantErr: `"hip" is not a library name`},
		{value: "mlx_metal_v3,vulkan", wantErr: `the MLX runner variant "mlx_metal_v3" must be the only value`},
		{value: "mlx_", wantErr: `"mlx_" is not a library name`},
		{value: "mlx_../cuda", wantErr: `"mlx_../cuda" is not a library name`},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			got, err := ParseLLMLibrary(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseLLMLibrary(%q) error = %v, want it to contain %q", tc.value, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLLMLibrary(%q): %v", tc.value, err)
			}
			if got.String() != tc.want {
				t.Errorf("ParseLLMLibrary(%q) = %q, want %q", tc.value, got, tc.want)
			}
			if got.IsSet() != (tc.want != "") {
				t.Errorf("IsSet() = %v for %q", got.IsSet(), tc.value)
			}
		})
	}
}

// TestParseLLMLibraryMLXVariant: Ollama's MLX runner (v0.20.4 and later)
// reads OLLAMA_LLM_LIBRARY=mlx_<variant>; the GGML side takes it as no
// preference, as upstream's discovery does.
func TestParseLLMLibraryMLXVariant(t *testing.T) {
	for value, want := range map[string]string{"mlx_metal_v3": "mlx_metal_v3", " MLX_CUDA_V13 ": "mlx_cuda_v13"} {
		p, err := ParseLLMLibrary(value)
		if err != nil {
			t.Fatalf("ParseLLMLibrary(%q): %v", value, err)
		}
		if p.MLXVariant() != want || p.IsSet() || p.String() != "" {
			t.Errorf("ParseLLMLibrary(%q) = MLXVariant %q IsSet %v String %q; want %q, false, empty", value, p.MLXVariant(), p.IsSet(), p.String(), want)
		}
		for _, dir := range []string{"rocm", "vulkan", "cuda_v13"} {
			if !p.WantsLibraryDir(dir) {
				t.Errorf("ParseLLMLibrary(%q).WantsLibraryDir(%q) = false, want every GGML folder", value, dir)
			}
		}
	}
	t.Setenv("OLLAMA_LLM_LIBRARY", "mlx_metal_v3")
	if err := CheckLLMLibrary(); err != nil {
		t.Errorf("CheckLLMLibrary() with mlx_metal_v3: %v", err)
	}
}

func TestLibraryPreferenceRankAndDirs(t *testing.T) {
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
	}
	for _, tc := range cases {
		p, err := ParseLLMLibrary(tc.pref)
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
	}
	for value, want := range dirCases {
		p, err := ParseLLMLibrary(value)
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
	rocm := LibraryOption{Library: "ROCm", LibraryPath: []string{"/l/ollama", "/l/ollama/rocm"}}
	vulkan := LibraryOption{Library: "Vulkan", LibraryPath: []string{"/l/ollama", "/l/ollama/vulkan"}}
	cuda := LibraryOption{Library: "CUDA", LibraryPath: []string{"/l/ollama"}}
	type result struct {
		AWins  bool
		Reason string
	}
	cases := []struct {
		pref string
		a, b LibraryOption
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
		p, err := ParseLLMLibrary(tc.pref)
		if err != nil {
			t.Fatal(err)
		}
		aWins, reason := p.Prefer(tc.a, tc.b)
		if diff := cmp.Diff(tc.want, result{aWins, reason}); diff != "" {
			t.Errorf("pref %q: Prefer(%s, %s) (-want +got):\n%s", tc.pref, tc.a.Library, tc.b.Library, diff)
		}
	}
}

func TestCheckLLMLibraryReadsEnvironment(t *testing.T) {
	t.Setenv("OLLAMA_LLM_LIBRARY", ` "Vulkan,cpu" `)
	if err := CheckLLMLibrary(); err != nil {
		t.Fatal(err)
	}
	if got := LLMLibraryPreference().String(); got != "vulkan,cpu" {
		t.Errorf("LLMLibraryPreference() = %q, want vulkan,cpu", got)
	}
	t.Setenv("OLLAMA_LLM_LIBRARY", "vulkn")
	if err := CheckLLMLibrary(); err == nil || !strings.Contains(err.Error(), `"vulkn"`) {
		t.Errorf("CheckLLMLibrary() = %v, want an error naming vulkn", err)
	}
	if LLMLibraryPreference().IsSet() {
		t.Error("an invalid value must not select libraries")
	}
}

func FuzzParseLLMLibrary(f *testing.F) {
	for _, seed := range []string{"", "vulkan", "Vulkan,ROCM", "cuda_v13,cuda_v12,vulkan,cpu", "vulkn", "../x", "vulkan,,cpu", " , ", "cuda_jetpack6", "\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		p, err := ParseLLMLibrary(value)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if p.IsSet() {
				t.Errorf("ParseLLMLibrary(%q) failed but selected %q", value, p)
			}
			return
		}
		// An accepted value names only known libraries and round-trips.
		for _, n := range p.LibraryNames() {
			if !isLLMLibraryName(n) {
				t.Errorf("ParseLLMLibrary(%q) accepted unknown name %q", value, n)
			}
		}
		again, err := ParseLLMLibrary(p.String())
		if err != nil || again.String() != p.String() {
			t.Errorf("round trip of %q: %q, %v", p, again, err)
		}
		if strings.ContainsAny(p.String(), "/\\. ") {
			t.Errorf("accepted value %q could be used as a path", p)
		}
		if v := p.MLXVariant(); v != "" {
			if p.IsSet() || !isMLXVariant(v) || strings.ContainsAny(v, "/\\. ") {
				t.Errorf("ParseLLMLibrary(%q): MLX variant %q (IsSet %v)", value, v, p.IsSet())
			}
			if again, err := ParseLLMLibrary(v); err != nil || again.MLXVariant() != v {
				t.Errorf("round trip of MLX variant %q: %q, %v", v, again.MLXVariant(), err)
			}
		}
	})
}
