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
	// QuirkUseOtherLibrary keeps the library off the device for matching
	// models, so another library (Vulkan on AMD) may serve it.
	QuirkUseOtherLibrary QuirkAction = "use-other-library"

	// quirkQueues1 keeps the library but starts the runner with
	// GPU_MAX_HW_QUEUES=1 (see quirkEnv).
	quirkQueues1 QuirkAction = "queues1"
)

// QuirkSource says where a quirk rule came from.
type QuirkSource string

const (
	// quirkSourceBuiltin marks rules from builtinQuirks.
	quirkSourceBuiltin QuirkSource = "builtin"

	// quirkSourceEnv marks rules from OLLAMA_BACKEND_DENYLIST.
	quirkSourceEnv QuirkSource = "env"

	// QuirkSourceLearned marks rules recorded at run time after a failure
	// was observed on this machine.
	QuirkSourceLearned QuirkSource = "learned"
)

// QuirkRule is one entry of the quirk table: a library that misbehaves on a
// class of devices, for every model or for some model architectures.
type QuirkRule struct {
	// Library is the library as upstream names it in ml.DeviceInfo.Library:
	// "ROCm", "CUDA", "Vulkan". Matching is case-insensitive and "hip"
	// stands for "ROCm".
	Library string

	// ComputePattern is a path.Match glob on ml.DeviceInfo.Compute(): the
	// gfx name for ROCm ("gfx1200", "gfx120*"), "major.minor" for CUDA
	// ("9.0"). Upstream reports "0.0" for every Vulkan device.
	ComputePattern string

	// ArchPatterns are path.Match globs on the model's GGUF
	// general.architecture. Empty, or containing "*", means every
	// architecture.
	ArchPatterns []string

	// Capabilities are model capabilities the rule needs besides the
	// architecture (envconfig.BackendDenyCapabilities: "vision", a model
	// that loads a vision projector). Empty: every model of the archs.
	Capabilities []string

	// Action is what to do when the rule matches.
	Action QuirkAction

	// Reason explains the rule for logs, with links to the evidence.
	Reason string

	// Source says where the rule came from.
	Source QuirkSource

	// MESFirmware is, for a learned rule, the GPU's MES firmware version
	// when it was learned; "" otherwise.
	MESFirmware string
}

// quirkQwen3Archs are the GGUF general.architecture values of the Qwen3
// family as upstream v0.18.2 registers them (model/models/...).
var quirkQwen3Archs = []string{"qwen3", "qwen3moe", "qwen35", "qwen35moe", "qwen3next", "qwen3vl", "qwen3vlmoe"}

// builtinQuirks returns the built-in quirk table. The result is a fresh copy
// the caller may modify. Each entry carries its evidence in Reason.
//
// ROCm on gfx1200 (RDNA4, RX 9060 XT) with Qwen3-family models uses another
// library. That is the seed report: with ROCm 7.2 those models leave the GPU
// at 100% busy and top clock after unload, after the process exits too,
// until reboot; Qwen2.5 and Gemma 3 on the same GPU and stack are fine, and
// Vulkan (RADV) is fine for every model.
//
// ROCm on gfx1201 (RDNA4, RX 9070 XT / R9700) with a model that loads a
// vision projector uses another library. Two independent llama.cpp reports,
// both HIP on gfx1201, tie a GPU held at full load to the loaded mmproj and
// see it go away without --mmproj: ggml-org/llama.cpp#21430 (RX 9070 XT,
// "mmproj keeps GPU at full load after inference") and #23965 (R9700, Qwen
// 3.6 with mmproj-BF16, "GPU stays busy even when there are no requests";
// without --mmproj "this issue does not appear"). Text-only models keep
// ROCm on gfx1201: the other gfx1201 reports (ROCm/ROCm#5706, #6298) are not
// tied to a model, recover when the process exits, and AMD attributes them
// to MES firmware that affects gfx12, gfx11 and gfx906 alike; a rule for
// every model would move every gfx1201 user off ROCm on evidence that would
// equally condemn gfx11. Owners of affected cards can opt in with
// OLLAMA_BACKEND_DENYLIST, e.g. "rocm:gfx1201:*=queues1" (keep ROCm, one
// hardware queue, which cleared it for one R9700 owner in #5706) or
// "rocm:gfx1201:qwen3*".
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

// parseQuirkAction returns the action named s ("use-other-library" or
// "queues1", any letter case).
func parseQuirkAction(s string) (QuirkAction, error) {
	switch a := QuirkAction(strings.ToLower(s)); a {
	case QuirkUseOtherLibrary, quirkQueues1:
		return a, nil
	}
	return "", fmt.Errorf("unknown quirk action %q; accepted: %q, %q", s, QuirkUseOtherLibrary, quirkQueues1)
}

// validate checks that the rule can match anything at all: a known library,
// well-formed non-empty globs and a known action. Reason and Source are not
// checked.
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

// String formats the rule in OLLAMA_BACKEND_DENYLIST syntax,
// library:compute[:arch,...][=queues1].
func (r QuirkRule) String() string {
	lib, ok := envconfig.CanonicalLibraryName(r.Library)
	if !ok {
		lib = r.Library
	}
	// One formatter for both: a rule is written as the entry that makes it.
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

// everyModel reports whether the rule applies to every model: every
// architecture and no capability needed.
func (r QuirkRule) everyModel() bool { return r.everyArch() && len(r.Capabilities) == 0 }

// everyArch reports whether the rule applies to every model architecture:
// it has no arch patterns, or one of them is all '*'.
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

// Matches reports whether the rule applies to a device of the given library
// and compute string (as ml.DeviceInfo reports them) running model m.
// Library names compare case-insensitively with "hip" standing for "ROCm";
// compute and arch compare case-insensitively. An empty arch (model not
// known yet) matches only rules for every arch; a rule that needs "vision"
// matches only a model that loads a projector. A malformed pattern matches
// nothing; Validate reports it.
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

// matchQuirks returns the rules that match, in table order.
func matchQuirks(rules []QuirkRule, library, compute string, m ModelLoad) []QuirkRule {
	var out []QuirkRule
	for _, r := range rules {
		if r.Matches(library, compute, m) {
			out = append(out, r)
		}
	}
	return out
}

// DeniesLibrary returns the first QuirkUseOtherLibrary rule that matches, if
// any: the library should not run this model on this device.
func DeniesLibrary(rules []QuirkRule, library, compute string, m ModelLoad) (QuirkRule, bool) {
	for _, r := range rules {
		if r.Action == QuirkUseOtherLibrary && r.Matches(library, compute, m) {
			return r, true
		}
	}
	return QuirkRule{}, false
}

// deniesEveryUse returns the first QuirkUseOtherLibrary rule that matches the
// device for every model architecture, if any. Such a device can be kept out
// of the library's discovery runner altogether (for ROCm, by leaving it out of
// ROCR_VISIBLE_DEVICES).
func deniesEveryUse(rules []QuirkRule, library, compute string) (QuirkRule, bool) {
	for _, r := range rules {
		if r.Action == QuirkUseOtherLibrary && r.everyModel() && r.matchesDevice(library, compute) {
			return r, true
		}
	}
	return QuirkRule{}, false
}

// quirkEnv returns the environment variables a runner needs for the
// given matched rules (from matchQuirks): GPU_MAX_HW_QUEUES=1 when any of
// them is quirkQueues1. It returns nil when nothing is needed. Whether a value
// the user set already should win is the caller's decision.
func quirkEnv(matched []QuirkRule) map[string]string {
	for _, r := range matched {
		if r.Action == quirkQueues1 {
			return map[string]string{"GPU_MAX_HW_QUEUES": "1"}
		}
	}
	return nil
}

// isQuirkMatchAll reports whether p matches every string without '/'.
func isQuirkMatchAll(p string) bool {
	return p != "" && strings.Trim(p, "*") == ""
}
