package envconfig

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseModelLibrary(t *testing.T) {
	cases := []struct {
		value   string
		want    []string
		wantErr string
	}{
		{value: "", want: nil},
		{value: "vulkan", want: []string{"vulkan"}},
		{value: " Vulkan , CPU ", want: []string{"vulkan", "cpu"}},
		{value: "rocm,vulkan,rocm", want: []string{"rocm", "vulkan"}},
		{value: "vulkn", wantErr: `library option "vulkn": "vulkn" is not a library name; accepted: one of cpu, cuda,`},
		{value: "vulkan,", wantErr: `library option "vulkan,": empty item`},
		{value: "mlx_metal_v3", wantErr: `library option "mlx_metal_v3": an MLX runner variant is not a per-model library`},
		{value: "../lib", wantErr: `"../lib" is not a library name`},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			p, err := ParseModelLibrary(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrLibraryOption) {
					t.Fatalf("ParseModelLibrary(%q) error = %v, want ErrLibraryOption containing %q", tc.value, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseModelLibrary(%q): %v", tc.value, err)
			}
			if diff := cmp.Diff(tc.want, p.LibraryNames()); diff != "" {
				t.Errorf("ParseModelLibrary(%q) names (-want +got):\n%s", tc.value, diff)
			}
		})
	}
}

func TestCheckLibraryOption(t *testing.T) {
	cases := []struct {
		name    string
		value   any
		wantErr string
	}{
		{name: "absent", value: nil},
		{name: "string", value: "vulkan"},
		{name: "modelfile list", value: []string{"rocm"}},
		{name: "typo", value: "vulkn", wantErr: `"vulkn" is not a library name`},
		{name: "two modelfile values", value: []string{"rocm", "vulkan"}, wantErr: `2 values ["rocm" "vulkan"], accepted: one value`},
		{name: "number", value: 3.0, wantErr: `library option 3: a number, accepted: a string`},
		{name: "list", value: []any{"vulkan", "cpu"}, wantErr: `library option ["vulkan","cpu"]: a list, accepted: a string such as "vulkan" or "vulkan,cpu"`},
		{name: "object", value: map[string]any{"name": "vulkan"}, wantErr: `library option {"name":"vulkan"}: an object`},
		{name: "boolean", value: true, wantErr: `library option true: true or false`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckLibraryOption(tc.value)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckLibraryOption(%v): %v", tc.value, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrLibraryOption) {
				t.Fatalf("CheckLibraryOption(%v) error = %v, want ErrLibraryOption containing %q", tc.value, err, tc.wantErr)
			}
		})
	}
}
