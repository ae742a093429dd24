package discover

import (
	"errors"
	"testing"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/ml/backends"
)

func TestWithLibraryOption(t *testing.T) {
	cases := []struct {
		name      string
		requested string
		params    map[string]any
		want      string
	}{
		{name: "unset", want: ""},
		{name: "model parameter", requested: "vulkan", params: map[string]any{"library": "vulkan"}, want: "model parameter"},
		{name: "request over parameter", requested: "rocm", params: map[string]any{"library": "vulkan"}, want: "request option"},
		{name: "request only", requested: "rocm", want: "request option"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ModelLoad{Name: "m", Arch: "qwen3", Vision: true}.WithLibraryOption(tc.requested, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if m.LibrarySource != tc.want || m.Library.String() != tc.requested || !m.Vision || m.Arch != "qwen3" {
				t.Errorf("WithLibraryOption = %+v, want source %q", m, tc.want)
			}
		})
	}
}

func TestWithLibraryOptionRefusesABadOption(t *testing.T) {
	_, err := ModelLoad{Name: "m", Arch: "qwen3"}.WithLibraryOption("vulkn", nil)
	if !errors.Is(err, envconfig.ErrLibraryOption) || err.Error() != `library option "vulkn": "vulkn" is not a library name; accepted: one of cpu, cuda, cuda_v12, cuda_v13, cuda_jetpack5, cuda_jetpack6, rocm, rocm_v7_1, rocm_v7_2, vulkan, rpc, or a comma-separated list of them` {
		t.Errorf("WithLibraryOption(vulkn) error = %v", err)
	}
}

// mustLibrary parses a `library` option for a test's table.
func mustLibrary(v string) backends.Preference {
	p, err := envconfig.ParseModelLibrary(v)
	if err != nil {
		panic(err)
	}
	return p
}

// mustPreference parses an OLLAMA_LLM_LIBRARY value for a test's table.
func mustPreference(v string) backends.Preference {
	p, err := envconfig.ParseLLMLibrary(v)
	if err != nil {
		panic(err)
	}
	return p
}
