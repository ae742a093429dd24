package discover

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// QuirkAction says what to do when a quirk rule matches a device and model.
type QuirkAction string

const (
	// QuirkUseOtherLibrary leaves matching devices to another library.
	QuirkUseOtherLibrary QuirkAction = "use-other-library"

	// quirkQueues1 keeps the library but sets GPU_MAX_HW_QUEUES=1.
	quirkQueues1 QuirkAction = "queues1"
)

// QuirkSource says where a quirk rule came from.
type QuirkSource string

const (
	quirkSourceBuiltin QuirkSource = "builtin"

	quirkSourceEnv QuirkSource = "env"

	// QuirkSourceLearned marks rules learned at run time on this machine.
	QuirkSourceLearned QuirkSource = "learned"
)

// QuirkRule is one entry of the quirk table: a library that misbehaves on a
// class of devices, for every model or for some.
type QuirkRule struct {
	// Library is ml.DeviceInfo.Library; "hip" stands for "ROCm".
	Library string

	// ComputePattern is a glob on ml.DeviceInfo.Compute(). Upstream reports
	// "0.0" for every Vulkan device.
	ComputePattern string

	// ArchPatterns are globs on general.architecture; empty or "*" means all.
	ArchPatterns []string

	// Capabilities are model capabilities the rule needs ("vision").
	Capabilities []string

	// Action is what to do when the rule matches.
	Action QuirkAction

	// Reason explains the rule for logs, with links to the evidence.
	Reason string

	// Source says where the rule came from.
	Source QuirkSource

	// MESFirmware is a learned rule's GPU MES firmware version.
	MESFirmware string
}

// quirkQwen3Archs are the Qwen3 family's architectures in upstream v0.18.2.
var quirkQwen3Archs = []string{"qwen3", "qwen3moe", "qwen35", "qwen35moe", "qwen3next", "qwen3vl", "qwen3vlmoe"}

// builtinQuirks returns a fresh copy of the built-in quirk table; each entry
// carries its evidence in Reason. Vision models keep ROCm off gfx1201 but
// text models do not: the other gfx1201 hangs are not tied to a model, and
// AMD blames MES firmware that affects gfx11 alike.
func builtinQuirks() []QuirkRule {
	return []QuirkRule{
		{
			Library:        "ROCm",
			ComputePattern: "gfx1200",
			ArchPatterns:   append([]string(nil), quirkQwen3Archs...),
			Action:         QuirkUseOtherLibrary,
			Reason: "Qwen3-family models on ROCm left gfx1200 (RDNA4, RX 9060 XT, ROCm 7.2) at 100% busy " +
				"after unload until reboot, while Qwen2.5, Gemma 3 and Vulkan (RADV) were fine. Related 100%-busy " +
				"reports on gfx1201: https://github.com/ROCm/ROCm/issues/5706, " +
				"https://github.com/ggml-org/llama.cpp/issues/21430; AMD attributes that state to MES firmware: " +
				"https://github.com/ROCm/ROCm/issues/6298",
			Source: quirkSourceBuiltin,
		},
		{
			Library:        "ROCm",
			ComputePattern: "gfx1201",
			Capabilities:   []string{"vision"},
			Action:         QuirkUseOtherLibrary,
			Reason: "a loaded vision projector (mmproj) kept gfx1201 (RDNA4, RX 9070 XT, R9700) at full load under HIP, " +
				"and not without it: https://github.com/ggml-org/llama.cpp/issues/21430, " +
				"https://github.com/ggml-org/llama.cpp/issues/23965",
			Source: quirkSourceBuiltin,
		},
	}
}

func parseQuirkAction(s string) (QuirkAction, error) {
	switch a := QuirkAction(strings.ToLower(s)); a {
	case QuirkUseOtherLibrary, quirkQueues1:
		return a, nil
	}
	return "", fmt.Errorf("unknown quirk action %q; accepted: %q, %q", s, QuirkUseOtherLibrary, quirkQueues1)
}

// validate checks that the rule can match anything at all.
func (r QuirkRule) validate() error {
	if _, ok := envconfig.CanonicalLibraryName(r.Library); !ok {
		return fmt.Errorf("quirk rule %s: unknown library %q; accepted: ROCm (or hip), CUDA, Vulkan", r, r.Library)
	}
	if r.ComputePattern == "" {
		return fmt.Errorf("quirk rule %s: empty compute pattern", r)
	}
	if _, err := path.Match(r.ComputePattern, ""); err != nil {
		return fmt.Errorf("quirk rule %s: compute pattern %q: %w", r, r.ComputePattern, err)
	}
	for _, p := range r.ArchPatterns {
		if p == "" {
			return fmt.Errorf("quirk rule %s: empty arch pattern", r)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("quirk rule %s: arch pattern %q: %w", r, p, err)
		}
	}
	if _, err := parseQuirkAction(string(r.Action)); err != nil {
		return fmt.Errorf("quirk rule %s: %w", r, err)
	}
	return nil
}

// ValidateQuirks validates every rule and joins the errors.
func ValidateQuirks(rules []QuirkRule) error {
	var errs []error
	for _, r := range rules {
		if err := r.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// String formats the rule in OLLAMA_BACKEND_DENYLIST syntax.
func (r QuirkRule) String() string {
	lib, ok := envconfig.CanonicalLibraryName(r.Library)
	if !ok {
		lib = r.Library
	}
	return envconfig.BackendDenyEntry{Library: lib, Compute: r.ComputePattern, Archs: r.ArchPatterns, Capabilities: r.Capabilities, Action: string(r.Action)}.String()
}

// LogValue implements slog.LogValuer.
func (r QuirkRule) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("library", r.Library),
		slog.String("compute", r.ComputePattern),
	}
	if len(r.ArchPatterns) > 0 {
		attrs = append(attrs, slog.String("archs", strings.Join(r.ArchPatterns, ",")))
	}
	if len(r.Capabilities) > 0 {
		attrs = append(attrs, slog.String("capabilities", strings.Join(r.Capabilities, ",")))
	}
	attrs = append(attrs,
		slog.String("action", string(r.Action)),
		slog.String("from", string(r.Source)),
	)
	if r.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Reason))
	}
	return slog.GroupValue(attrs...)
}

func (r QuirkRule) everyModel() bool { return r.everyArch() && len(r.Capabilities) == 0 }

func (r QuirkRule) everyArch() bool {
	if len(r.ArchPatterns) == 0 {
		return true
	}
	for _, p := range r.ArchPatterns {
		if isQuirkMatchAll(p) {
			return true
		}
	}
	return false
}

// Matches reports whether the rule applies to a device of library and
// compute running model m. An empty arch (model not known yet) matches only
// rules for every arch. A malformed pattern matches nothing.
func (r QuirkRule) Matches(library, compute string, m ModelLoad) bool {
	if !r.matchesDevice(library, compute) {
		return false
	}
	for _, c := range r.Capabilities {
		if !strings.EqualFold(c, "vision") || !m.Vision {
			return false
		}
	}
	if r.everyArch() {
		return true
	}
	if m.Arch == "" {
		return false
	}
	arch := strings.ToLower(m.Arch)
	for _, p := range r.ArchPatterns {
		if ok, err := path.Match(strings.ToLower(p), arch); err == nil && ok {
			return true
		}
	}
	return false
}

func (r QuirkRule) matchesDevice(library, compute string) bool {
	if !backends.Same(r.Library, library) {
		return false
	}
	ok, err := path.Match(strings.ToLower(r.ComputePattern), strings.ToLower(compute))
	return err == nil && ok
}

func matchQuirks(rules []QuirkRule, library, compute string, m ModelLoad) []QuirkRule {
	var out []QuirkRule
	for _, r := range rules {
		if r.Matches(library, compute, m) {
			out = append(out, r)
		}
	}
	return out
}

// DeniesLibrary returns the first QuirkUseOtherLibrary rule that matches.
func DeniesLibrary(rules []QuirkRule, library, compute string, m ModelLoad) (QuirkRule, bool) {
	for _, r := range rules {
		if r.Action == QuirkUseOtherLibrary && r.Matches(library, compute, m) {
			return r, true
		}
	}
	return QuirkRule{}, false
}

// deniesEveryUse returns the first QuirkUseOtherLibrary rule that matches the
// device for every model; such a device can be kept from discovery.
func deniesEveryUse(rules []QuirkRule, library, compute string) (QuirkRule, bool) {
	for _, r := range rules {
		if r.Action == QuirkUseOtherLibrary && r.everyModel() && r.matchesDevice(library, compute) {
			return r, true
		}
	}
	return QuirkRule{}, false
}

// quirkEnv returns the runner environment the matched rules need, or nil.
func quirkEnv(matched []QuirkRule) map[string]string {
	for _, r := range matched {
		if r.Action == quirkQueues1 {
			return map[string]string{"GPU_MAX_HW_QUEUES": "1"}
		}
	}
	return nil
}

func isQuirkMatchAll(p string) bool {
	return p != "" && strings.Trim(p, "*") == ""
}
