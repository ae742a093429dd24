package discover

import (
	"errors"
	"log/slog"
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestBuiltinQuirksValid(t *testing.T) {
	if err := ValidateQuirks(builtinQuirks()); err != nil {
		t.Fatal(err)
	}
	for _, r := range builtinQuirks() {
		if r.Source != quirkSourceBuiltin {
			t.Errorf("built-in rule %s has source %q", r, r.Source)
		}
		if !strings.Contains(r.Reason, "https://") {
			t.Errorf("built-in rule %s has no link in its reason", r)
		}
	}
}

func TestBuiltinQuirksIsACopy(t *testing.T) {
	a := builtinQuirks()
	a[0].ArchPatterns[0] = "changed"
	a[0].ComputePattern = "changed"
	b := builtinQuirks()
	if b[0].ArchPatterns[0] == "changed" || b[0].ComputePattern == "changed" {
		t.Fatal("builtinQuirks shares state between calls")
	}
}

// TestBuiltinQuirksMatch pins down what the built-in table does and does not
// cover, with library and compute spelled as upstream's DeviceInfo reports
// them.
func TestBuiltinQuirksMatch(t *testing.T) {
	tests := []struct {
		name                   string
		library, compute, arch string
		vision                 bool
		wantDenied             bool
	}{
		{name: "qwen3 on gfx1200", library: "ROCm", compute: "gfx1200", arch: "qwen3", wantDenied: true},
		{name: "qwen3moe on gfx1200", library: "ROCm", compute: "gfx1200", arch: "qwen3moe", wantDenied: true},
		{name: "qwen35 on gfx1200", library: "ROCm", compute: "gfx1200", arch: "qwen35", wantDenied: true},
		{name: "qwen35moe on gfx1200", library: "ROCm", compute: "gfx1200", arch: "qwen35moe", wantDenied: true},
		{name: "qwen3next on gfx1200", library: "ROCm", compute: "gfx1200", arch: "qwen3next", wantDenied: true},
		{name: "qwen3vl on gfx1200", library: "ROCm", compute: "gfx1200", arch: "qwen3vl", wantDenied: true},
		{name: "qwen3vlmoe on gfx1200", library: "ROCm", compute: "gfx1200", arch: "qwen3vlmoe", wantDenied: true},
		{name: "qwen2 on gfx1200", library: "ROCm", compute: "gfx1200", arch: "qwen2"},
		{name: "gemma3 on gfx1200", library: "ROCm", compute: "gfx1200", arch: "gemma3"},
		{name: "qwen3 on gfx1201 not built in", library: "ROCm", compute: "gfx1201", arch: "qwen3"},
		{name: "a vision model on gfx1201", library: "ROCm", compute: "gfx1201", arch: "gemma3", vision: true, wantDenied: true},
		{name: "a vision model on gfx1201, arch not known yet", library: "ROCm", compute: "gfx1201", vision: true, wantDenied: true},
		{name: "a vision model on gfx1201 through Vulkan", library: "Vulkan", compute: "0.0", arch: "gemma3", vision: true},
		{name: "a vision model on gfx1100", library: "ROCm", compute: "gfx1100", arch: "gemma3", vision: true},
		{name: "qwen3 on gfx1100", library: "ROCm", compute: "gfx1100", arch: "qwen3"},
		{name: "qwen3 on Vulkan", library: "Vulkan", compute: "0.0", arch: "qwen3"},
		{name: "qwen3 on CUDA", library: "CUDA", compute: "12.0", arch: "qwen3"},
		{name: "arch not known yet", library: "ROCm", compute: "gfx1200", arch: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, denied := DeniesLibrary(builtinQuirks(), tt.library, tt.compute, ModelLoad{Arch: tt.arch, Vision: tt.vision})
			if denied != tt.wantDenied {
				t.Errorf("DeniesLibrary(builtin, %q, %q, %q) = %v, want %v", tt.library, tt.compute, tt.arch, denied, tt.wantDenied)
			}
		})
	}
	if r, ok := deniesEveryUse(builtinQuirks(), "ROCm", "gfx1200"); ok {
		t.Errorf("built-in table keeps gfx1200 off ROCm for every model via %s; it should only cover the Qwen3 family", r)
	}
	if r, ok := deniesEveryUse(builtinQuirks(), "ROCm", "gfx1201"); ok {
		t.Errorf("built-in table keeps gfx1201 off ROCm for every model via %s; it should only cover vision models", r)
	}
}

func TestQuirkRuleMatches(t *testing.T) {
	tests := []struct {
		name                   string
		rule                   QuirkRule
		library, compute, arch string
		want                   bool
	}{
		{
			name:    "exact",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", ArchPatterns: []string{"qwen3"}, Action: QuirkUseOtherLibrary},
			library: "ROCm", compute: "gfx1200", arch: "qwen3", want: true,
		},
		{
			name:    "library case and hip alias in rule",
			rule:    QuirkRule{Library: "hip", ComputePattern: "gfx1200", Action: QuirkUseOtherLibrary},
			library: "ROCm", compute: "gfx1200", arch: "llama", want: true,
		},
		{
			name:    "hip alias in query",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", Action: QuirkUseOtherLibrary},
			library: "HIP", compute: "gfx1200", want: true,
		},
		{
			name:    "other library",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "*", Action: QuirkUseOtherLibrary},
			library: "Vulkan", compute: "0.0", arch: "qwen3", want: false,
		},
		{
			name:    "unknown library compares as written",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "*", Action: QuirkUseOtherLibrary},
			library: "Metal", compute: "0.0", want: false,
		},
		{
			name:    "compute glob",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx120*", Action: QuirkUseOtherLibrary},
			library: "ROCm", compute: "gfx1201", want: true,
		},
		{
			name:    "compute glob does not reach gfx1100",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx120*", Action: QuirkUseOtherLibrary},
			library: "ROCm", compute: "gfx1100", want: false,
		},
		{
			name:    "compute case-insensitive",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "GFX90A", Action: QuirkUseOtherLibrary},
			library: "ROCm", compute: "gfx90a", want: true,
		},
		{
			name:    "cuda major.minor",
			rule:    QuirkRule{Library: "CUDA", ComputePattern: "9.0", ArchPatterns: []string{"qwen3"}, Action: QuirkUseOtherLibrary},
			library: "CUDA", compute: "9.0", arch: "qwen3", want: true,
		},
		{
			name:    "cuda 9.0 is not 9.0x",
			rule:    QuirkRule{Library: "CUDA", ComputePattern: "9.0", Action: QuirkUseOtherLibrary},
			library: "CUDA", compute: "9.01", want: false,
		},
		{
			name:    "arch glob",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", ArchPatterns: []string{"gemma", "qwen3*"}, Action: QuirkUseOtherLibrary},
			library: "ROCm", compute: "gfx1200", arch: "qwen35moe", want: true,
		},
		{
			name:    "arch case-insensitive",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", ArchPatterns: []string{"qwen3"}, Action: QuirkUseOtherLibrary},
			library: "ROCm", compute: "gfx1200", arch: "Qwen3", want: true,
		},
		{
			name:    "arch mismatch",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", ArchPatterns: []string{"qwen3"}, Action: QuirkUseOtherLibrary},
			library: "ROCm", compute: "gfx1200", arch: "qwen2", want: false,
		},
		{
			name:    "empty arch matches star rule",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx1201", ArchPatterns: []string{"*"}, Action: quirkQueues1},
			library: "ROCm", compute: "gfx1201", arch: "", want: true,
		},
		{
			name:    "malformed pattern matches nothing",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx[", Action: QuirkUseOtherLibrary},
			library: "ROCm", compute: "gfx[", want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rule.Matches(tt.library, tt.compute, ModelLoad{Arch: tt.arch}); got != tt.want {
				t.Errorf("%s.Matches(%q, %q, %q) = %v, want %v", tt.rule, tt.library, tt.compute, tt.arch, got, tt.want)
			}
		})
	}
}

func TestMatchQuirksAndDenies(t *testing.T) {
	queues := QuirkRule{Library: "ROCm", ComputePattern: "gfx1201", Action: quirkQueues1, Source: quirkSourceEnv}
	denyQwen := QuirkRule{Library: "ROCm", ComputePattern: "gfx120*", ArchPatterns: []string{"qwen3*"}, Action: QuirkUseOtherLibrary, Source: quirkSourceEnv}
	denyAll := QuirkRule{Library: "ROCm", ComputePattern: "gfx1100", Action: QuirkUseOtherLibrary, Source: QuirkSourceLearned}
	denyAllStar := QuirkRule{Library: "ROCm", ComputePattern: "gfx1030", ArchPatterns: []string{"qwen3", "*"}, Action: QuirkUseOtherLibrary}
	rules := []QuirkRule{queues, denyQwen, denyAll, denyAllStar}

	tests := []struct {
		name                   string
		library, compute, arch string
		wantMatch              []QuirkRule
		wantDeny               *QuirkRule
		wantEnv                map[string]string
	}{
		{
			name:    "queues1 and deny both match, table order",
			library: "ROCm", compute: "gfx1201", arch: "qwen3",
			wantMatch: []QuirkRule{queues, denyQwen},
			wantDeny:  &denyQwen,
			wantEnv:   map[string]string{"GPU_MAX_HW_QUEUES": "1"},
		},
		{
			name:    "queues1 only",
			library: "ROCm", compute: "gfx1201", arch: "llama",
			wantMatch: []QuirkRule{queues},
			wantEnv:   map[string]string{"GPU_MAX_HW_QUEUES": "1"},
		},
		{
			name:    "every-arch deny",
			library: "ROCm", compute: "gfx1100", arch: "llama",
			wantMatch: []QuirkRule{denyAll},
			wantDeny:  &denyAll,
		},
		{
			name:    "nothing",
			library: "Vulkan", compute: "0.0", arch: "qwen3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := matchQuirks(rules, tt.library, tt.compute, ModelLoad{Arch: tt.arch})
			if diff := cmp.Diff(tt.wantMatch, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("matchQuirks mismatch (-want +got):\n%s", diff)
			}
			deny, ok := DeniesLibrary(rules, tt.library, tt.compute, ModelLoad{Arch: tt.arch})
			if (tt.wantDeny != nil) != ok {
				t.Fatalf("DeniesLibrary ok = %v, want %v", ok, tt.wantDeny != nil)
			}
			if ok {
				if diff := cmp.Diff(*tt.wantDeny, deny); diff != "" {
					t.Errorf("DeniesLibrary mismatch (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.wantEnv, quirkEnv(got)); diff != "" {
				t.Errorf("quirkEnv mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeniesEveryUse(t *testing.T) {
	rules := []QuirkRule{
		{Library: "ROCm", ComputePattern: "gfx1201", Action: quirkQueues1},
		{Library: "ROCm", ComputePattern: "gfx120*", ArchPatterns: []string{"qwen3*"}, Action: QuirkUseOtherLibrary},
		{Library: "ROCm", ComputePattern: "gfx1100", Action: QuirkUseOtherLibrary},
		{Library: "ROCm", ComputePattern: "gfx1030", ArchPatterns: []string{"qwen3", "**"}, Action: QuirkUseOtherLibrary},
		{Library: "CUDA", ComputePattern: "7.*", Action: QuirkUseOtherLibrary},
	}
	tests := []struct {
		name             string
		library, compute string
		wantIndex        int // -1: no rule
	}{
		{name: "queues1 is not a denial", library: "ROCm", compute: "gfx1201", wantIndex: -1},
		{name: "arch-limited deny is not every use", library: "ROCm", compute: "gfx1200", wantIndex: -1},
		{name: "no arch list", library: "ROCm", compute: "gfx1100", wantIndex: 2},
		{name: "star in arch list", library: "ROCm", compute: "gfx1030", wantIndex: 3},
		{name: "cuda glob", library: "cuda", compute: "7.5", wantIndex: 4},
		{name: "other library", library: "Vulkan", compute: "gfx1100", wantIndex: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := deniesEveryUse(rules, tt.library, tt.compute)
			if tt.wantIndex < 0 {
				if ok {
					t.Errorf("deniesEveryUse(%q, %q) = %s, want none", tt.library, tt.compute, r)
				}
				return
			}
			if !ok {
				t.Fatalf("deniesEveryUse(%q, %q) found nothing, want %s", tt.library, tt.compute, rules[tt.wantIndex])
			}
			if diff := cmp.Diff(rules[tt.wantIndex], r); diff != "" {
				t.Errorf("deniesEveryUse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQuirkRuleValidate(t *testing.T) {
	ok := QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", ArchPatterns: []string{"qwen3"}, Action: QuirkUseOtherLibrary}
	tests := []struct {
		name    string
		mutate  func(r *QuirkRule)
		wantErr string // empty: valid
		badPat  bool
	}{
		{name: "valid", mutate: func(r *QuirkRule) {}},
		{name: "hip spelling", mutate: func(r *QuirkRule) { r.Library = "hip" }},
		{name: "queues1", mutate: func(r *QuirkRule) { r.Action = quirkQueues1 }},
		{name: "unknown library", mutate: func(r *QuirkRule) { r.Library = "OpenCL" }, wantErr: `unknown library "OpenCL"`},
		{name: "empty compute", mutate: func(r *QuirkRule) { r.ComputePattern = "" }, wantErr: "empty compute pattern"},
		{name: "bad compute", mutate: func(r *QuirkRule) { r.ComputePattern = "gfx[" }, wantErr: `compute pattern "gfx["`, badPat: true},
		{name: "empty arch", mutate: func(r *QuirkRule) { r.ArchPatterns = []string{"qwen3", ""} }, wantErr: "empty arch pattern"},
		{name: "bad arch", mutate: func(r *QuirkRule) { r.ArchPatterns = []string{"qwen[3"} }, wantErr: `arch pattern "qwen[3"`, badPat: true},
		{name: "no action", mutate: func(r *QuirkRule) { r.Action = "" }, wantErr: `unknown quirk action ""`},
		{name: "unknown action", mutate: func(r *QuirkRule) { r.Action = "reboot" }, wantErr: `unknown quirk action "reboot"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			r.ArchPatterns = append([]string(nil), ok.ArchPatterns...)
			tt.mutate(&r)
			err := r.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%s) = %v, want nil", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate(%s) = %v, want error containing %q", r, err, tt.wantErr)
			}
			if tt.badPat && !errors.Is(err, path.ErrBadPattern) {
				t.Errorf("Validate(%s) = %v, want it to wrap path.ErrBadPattern", r, err)
			}
		})
	}
}

func TestParseQuirkAction(t *testing.T) {
	tests := []struct {
		in      string
		want    QuirkAction
		wantErr bool
	}{
		{in: "use-other-library", want: QuirkUseOtherLibrary},
		{in: "queues1", want: quirkQueues1},
		{in: "Queues1", want: quirkQueues1},
		{in: "", wantErr: true},
		{in: "deny", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseQuirkAction(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseQuirkAction(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseQuirkAction(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestQuirkRuleStringAndLogValue(t *testing.T) {
	tests := []struct {
		name    string
		rule    QuirkRule
		want    string
		wantLog string
	}{
		{
			name:    "deny with archs",
			rule:    QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", ArchPatterns: []string{"qwen3", "qwen35"}, Action: QuirkUseOtherLibrary, Source: quirkSourceBuiltin, Reason: "why"},
			want:    "rocm:gfx1200:qwen3,qwen35",
			wantLog: "library=ROCm compute=gfx1200 archs=qwen3,qwen35 action=use-other-library from=builtin reason=why",
		},
		{
			name:    "queues1, hip spelling",
			rule:    QuirkRule{Library: "hip", ComputePattern: "gfx1201", Action: quirkQueues1, Source: quirkSourceEnv},
			want:    "rocm:gfx1201=queues1",
			wantLog: "library=hip compute=gfx1201 action=queues1 from=env",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.rule.String()); diff != "" {
				t.Errorf("String mismatch (-want +got):\n%s", diff)
			}
			var b strings.Builder
			h := slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
					return slog.Attr{}
				}
				return a
			}})
			slog.New(h).Info("", "quirk", tt.rule)
			want := "quirk." + strings.ReplaceAll(tt.wantLog, " ", " quirk.")
			if diff := cmp.Diff(want, strings.TrimSpace(b.String())); diff != "" {
				t.Errorf("log mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
