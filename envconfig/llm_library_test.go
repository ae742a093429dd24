package envconfig

import (
	"slices"
	"strings"
	"testing"

	"github.com/costa-os/ollama-backend-select/ml/backends"
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
		// Upstream's docs name the CPU variants; ggml picks its own.
		{value: "cpu_avx2", want: "cpu"},
		{value: "CPU_AVX", want: "cpu"},
		{value: "cpu_avx2,cpu", want: "cpu"},
		{value: "cpu_", wantErr: `"cpu_" is not a library name`},
		// Upstream's folder names: today's work, older ones name the replacement.
		{value: "rocm_v7_2,vulkan", want: "rocm_v7_2,vulkan"},
		{value: "cuda_v11", wantErr: `"cuda_v11" is a library folder of older Ollama releases, not of this one; use "cuda"`},
		{value: "rocm_v6", wantErr: `"rocm_v6" is a library folder of older Ollama releases, not of this one; use "rocm"`},
		{value: "cpu_../x", wantErr: `"cpu_../x" is not a library name`},
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
			if !slices.Contains(backends.AcceptedNames(), n) {
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
			if p.IsSet() || !strings.HasPrefix(v, "mlx_") || strings.ContainsAny(v, "/\\. ") {
				t.Errorf("ParseLLMLibrary(%q): MLX variant %q (IsSet %v)", value, v, p.IsSet())
			}
			if again, err := ParseLLMLibrary(v); err != nil || again.MLXVariant() != v {
				t.Errorf("round trip of MLX variant %q: %q, %v", v, again.MLXVariant(), err)
			}
		}
	})
}
