package envconfig

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseBackendDenylist(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want BackendDenylist
	}{
		{name: "empty", in: "", want: BackendDenylist{}},
		{name: "blank", in: " \t\n ; ;", want: BackendDenylist{}},
		{name: "none alone", in: "none", want: BackendDenylist{DropBuiltins: true}},
		{name: "none any case", in: "  NONE ", want: BackendDenylist{DropBuiltins: true}},
		{
			name: "vision models of every arch",
			in:   "rocm:gfx1201:*:Vision",
			want: BackendDenylist{Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx1201", Capabilities: []string{"vision"}, Action: BackendDenyUseOtherLibrary},
			}},
		},
		{
			name: "qwen3 vision models, queues1",
			in:   "rocm:gfx1200:qwen3*:vision,vision=queues1",
			want: BackendDenylist{Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx1200", Archs: []string{"qwen3*"}, Capabilities: []string{"vision"}, Action: BackendDenyQueues1},
			}},
		},
		{
			name: "rocm with arch glob",
			in:   "rocm:gfx1200:qwen3*",
			want: BackendDenylist{Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx1200", Archs: []string{"qwen3*"}, Action: BackendDenyUseOtherLibrary},
			}},
		},
		{
			name: "rocm compute glob, every arch",
			in:   "rocm:gfx120*",
			want: BackendDenylist{Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx120*", Action: BackendDenyUseOtherLibrary},
			}},
		},
		{
			name: "cuda",
			in:   "cuda:9.0:qwen3",
			want: BackendDenylist{Entries: []BackendDenyEntry{
				{Library: "CUDA", Compute: "9.0", Archs: []string{"qwen3"}, Action: BackendDenyUseOtherLibrary},
			}},
		},
		{
			name: "queues1 with star arch becomes every arch",
			in:   "rocm:gfx1201:*=queues1",
			want: BackendDenylist{Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx1201", Action: BackendDenyQueues1},
			}},
		},
		{
			name: "star among archs becomes every arch",
			in:   "rocm:gfx1201:qwen3,**",
			want: BackendDenylist{Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx1201", Action: BackendDenyUseOtherLibrary},
			}},
		},
		{
			name: "none with entry",
			in:   "none rocm:gfx1100",
			want: BackendDenylist{DropBuiltins: true, Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx1100", Action: BackendDenyUseOtherLibrary},
			}},
		},
		{
			name: "hip spelling, case folded, semicolons",
			in:   "HIP:GFX1200:Qwen3,QWEN35MOE=Queues1;vulkan:*;;Cuda:12.?",
			want: BackendDenylist{Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx1200", Archs: []string{"qwen3", "qwen35moe"}, Action: BackendDenyQueues1},
				{Library: "Vulkan", Compute: "*", Action: BackendDenyUseOtherLibrary},
				{Library: "CUDA", Compute: "12.?", Action: BackendDenyUseOtherLibrary},
			}},
		},
		{
			name: "entry order kept, none anywhere",
			in:   "rocm:gfx1201\nnone\trocm:gfx1200:qwen3",
			want: BackendDenylist{DropBuiltins: true, Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx1201", Action: BackendDenyUseOtherLibrary},
				{Library: "ROCm", Compute: "gfx1200", Archs: []string{"qwen3"}, Action: BackendDenyUseOtherLibrary},
			}},
		},
		{
			name: "rocm star compute, star collapses",
			in:   "rocm:***:gemma[23]",
			want: BackendDenylist{Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "*", Archs: []string{"gemma[23]"}, Action: BackendDenyUseOtherLibrary},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBackendDenylist(tt.in)
			if err != nil {
				t.Fatalf("ParseBackendDenylist(%q) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseBackendDenylist(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseBackendDenylistErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// wantIn are substrings the error must contain.
		wantIn []string
		isErr  error
	}{
		{name: "library only", in: "rocm", wantIn: []string{`entry "rocm"`, "missing ':compute'"}},
		{name: "unknown library", in: "opencl:gfx1200", wantIn: []string{`entry "opencl:gfx1200"`, `unknown library "opencl"`, "rocm (or hip), cuda, vulkan"}},
		{name: "metal not accepted", in: "metal:*", wantIn: []string{`unknown library "metal"`}},
		{name: "empty library", in: ":gfx1200", wantIn: []string{"empty library"}},
		{name: "empty compute", in: "rocm:", wantIn: []string{`entry "rocm:"`, "empty compute"}},
		{name: "empty compute with archs", in: "rocm::qwen3", wantIn: []string{"empty compute"}},
		{name: "empty arch list", in: "rocm:gfx1200:", wantIn: []string{"empty arch list"}},
		{name: "empty arch item", in: "rocm:gfx1200:qwen3,,qwen35", wantIn: []string{`empty arch in list "qwen3,,qwen35"`}},
		{name: "trailing comma", in: "rocm:gfx1200:qwen3,", wantIn: []string{"empty arch in list"}},
		{name: "unknown capability", in: "rocm:gfx1200:qwen3:extra", wantIn: []string{`unknown model capability "extra" (accepted: vision)`}},
		{name: "too many fields", in: "rocm:gfx1200:qwen3:vision:x", wantIn: []string{"5 ':'-separated fields"}},
		{name: "bad compute glob", in: "rocm:gfx120[", wantIn: []string{`compute "gfx120["`, "bad glob"}, isErr: path.ErrBadPattern},
		{name: "bad arch glob", in: "rocm:gfx1200:qwen[3", wantIn: []string{`arch "qwen[3"`, "bad glob"}, isErr: path.ErrBadPattern},
		{name: "unknown action", in: "rocm:gfx1201=reboot", wantIn: []string{`unknown action "reboot"`, "queues1"}},
		{name: "empty action", in: "rocm:gfx1201=", wantIn: []string{"empty action"}},
		{name: "two actions", in: "rocm:gfx1201=queues1=queues1", wantIn: []string{`unknown action "queues1=queues1"`}},
		{name: "rocm compute not gfx", in: "rocm:1200", wantIn: []string{`compute "1200"`, "gfx name"}},
		{name: "cuda compute not major.minor", in: "cuda:sm_90", wantIn: []string{`compute "sm_90"`, "major.minor"}},
		{name: "odd character", in: "rocm:gfx1200:qwen/3", wantIn: []string{`character '/'`}},
		{name: "non-ascii", in: "rocm:gfx1200:qwén3", wantIn: []string{"not accepted in a pattern"}},
		{name: "every bad entry named", in: "rocm:gfx1200 bogus rocm: cuda:9.0", wantIn: []string{`entry "bogus"`, `entry "rocm:"`}},
		{name: "none does not excuse a bad entry", in: "none rocm", wantIn: []string{`entry "rocm"`}},
		{name: "absurdly long raw", in: strings.Repeat(" ", 64<<10+1), wantIn: []string{"65537 bytes long; at most 65536"}},
		{name: "too long normalized", in: strings.Repeat("hip:* ", 700), wantIn: []string{"once normalized; at most 4096"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBackendDenylist(tt.in)
			if err == nil {
				t.Fatalf("ParseBackendDenylist(%q) = %v, want error", tt.in, got)
			}
			if diff := cmp.Diff(BackendDenylist{}, got); diff != "" {
				t.Errorf("value on error is not zero (-want +got):\n%s", diff)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if tt.isErr != nil && !errors.Is(err, tt.isErr) {
				t.Errorf("error %q is not %v", err, tt.isErr)
			}
			if len(tt.in) < 200 && !strings.Contains(err.Error(), backendDenyForm) {
				t.Errorf("error %q does not show the expected form", err)
			}
		})
	}
}

func TestBackendDenylistString(t *testing.T) {
	tests := []struct {
		name string
		in   BackendDenylist
		want string
	}{
		{name: "zero", in: BackendDenylist{}, want: ""},
		{name: "none", in: BackendDenylist{DropBuiltins: true}, want: "none"},
		{
			name: "entries",
			in: BackendDenylist{DropBuiltins: true, Entries: []BackendDenyEntry{
				{Library: "ROCm", Compute: "gfx1200", Archs: []string{"qwen3", "qwen35"}, Action: BackendDenyUseOtherLibrary},
				{Library: "ROCm", Compute: "gfx1201", Action: BackendDenyQueues1},
				{Library: "CUDA", Compute: "9.0"},
			}},
			want: "none rocm:gfx1200:qwen3,qwen35 rocm:gfx1201=queues1 cuda:9.0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.in.String()); diff != "" {
				t.Errorf("String() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseBackendDenylist checks that the parser never panics and that every
// accepted value round-trips through String.
func FuzzParseBackendDenylist(f *testing.F) {
	for _, s := range []string{
		"",
		"none",
		"rocm:gfx1200:qwen3*",
		"rocm:gfx120*",
		"cuda:9.0:qwen3",
		"rocm:gfx1201:*=queues1",
		"rocm:gfx1201:*:vision",
		"none rocm:gfx1100",
		"hip:GFX1200:qwen3,qwen35moe;vulkan:*",
		"rocm:gfx120[",
		"rocm:gfx1200:qwen3,,x",
		"rocm::=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseBackendDenylist(s)
		if err != nil {
			return
		}
		out := d.String()
		d2, err := ParseBackendDenylist(out)
		if err != nil {
			t.Fatalf("String() of accepted %q gave %q, which does not parse: %v", s, out, err)
		}
		if diff := cmp.Diff(d, d2); diff != "" {
			t.Fatalf("round trip of %q through %q changed the value (-first +second):\n%s", s, out, diff)
		}
		for _, e := range d.Entries {
			if e.Action != BackendDenyUseOtherLibrary && e.Action != BackendDenyQueues1 {
				t.Fatalf("entry %+v has action %q", e, e.Action)
			}
			if e.Archs != nil && len(e.Archs) == 0 {
				t.Fatalf("entry %+v has an empty non-nil arch list", e)
			}
		}
	})
}
