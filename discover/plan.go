package discover

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/llm"
	"github.com/ollama/ollama/ml"
)

// PlanInput is everything the choice of backend library depends on. It is
// gathered by discovery (Devices), the environment (Preference, Rules) and
// the scheduler (Model, Offered); Decide reads nothing else.
type PlanInput struct {
	// Devices are the devices discovery found, every library's view of a
	// GPU separately (a ROCm device and its Vulkan twin are two entries).
	Devices []ml.DeviceInfo
	// Preference is OLLAMA_LLM_LIBRARY.
	Preference envconfig.LibraryPreference
	// Rules are the quirk rules in force: built-in, OLLAMA_BACKEND_DENYLIST,
	// learned (BackendQuirkRules).
	Rules []QuirkRule
	// Model and Arch (general.architecture, "qwen3") name the model to
	// place.
	Model, Arch string
	// Offered are the GPUs the scheduler offers the model (chosen devices
	// with fresh free memory); none: the model runs on the CPU. Discovery
	// offers none and reads Choices.
	Offered []ml.DeviceInfo
}

// Plan is the decision: per physical GPU the library chosen and the
// alternates, and for a model the library on each of its GPUs and what its
// runner may use. Logs, /api/ps and `ollama backends` print its reasons.
type Plan struct {
	Choices  []libraryChoice
	Excluded []excludedLibrary
	// Missing are libraries OLLAMA_LLM_LIBRARY names that found no device.
	Missing []string
	// GPUs are the model's GPUs after the rules, in order, each through
	// the library it uses; Reasons[i]
	// says why GPUs[i] uses that library.
	GPUs    []ml.DeviceInfo
	Reasons []string
	// Quirks are what the rules did to the model's GPUs.
	Quirks []quirkDecision
	// Runner is the --device list and environment of the model's runner.
	Runner llm.RunnerDevices
}

// Decide is the one place where the backend is decided. It is pure: the
// same input gives the same plan.
func Decide(in PlanInput) Plan {
	var p Plan
	p.Choices, p.Excluded = chooseLibraries(checkedDevices(in.Devices), in.Preference)
	p.Missing = missingLibraries(p.Choices, in.Preference)
	p.GPUs, p.Quirks = applyQuirks(in.Offered, in.Arch, in.Rules, p.Choices)
	for _, g := range p.GPUs {
		p.Reasons = append(p.Reasons, placementReason(g, p.Choices, p.Quirks, in.Preference))
	}
	p.Runner = llm.PlanRunnerDevices(p.GPUs)
	return p
}

// placementReason says why the model uses g's library on its GPU.
func placementReason(g ml.DeviceInfo, choices []libraryChoice, quirks []quirkDecision, pref envconfig.LibraryPreference) string {
	for _, q := range quirks {
		if q.Replacement != nil && q.Replacement.DeviceID == g.DeviceID {
			return fmt.Sprintf("rule %s (%s) denies %s for this model", q.Denied.String(), q.Denied.Source, q.Device.Library)
		}
	}
	for _, c := range choices {
		if c.Chosen.DeviceID != g.DeviceID {
			continue
		}
		if len(c.Alternates) == 0 {
			if pref.IsSet() {
				return fmt.Sprintf("OLLAMA_LLM_LIBRARY=%s; the only library of this GPU it requests", pref)
			}
			return "the only library of this GPU"
		}
		return c.Reasons[0]
	}
	return "offered by the scheduler"
}

// describe renders the placements for a log line: "Vulkan <GPU> (reason)"
// per GPU; "cpu" without GPUs.
func (p Plan) describe() string {
	if len(p.GPUs) == 0 {
		return "cpu"
	}
	parts := make([]string, len(p.GPUs))
	for i, g := range p.GPUs {
		parts[i] = fmt.Sprintf("%s %s (%s)", g.Library, g.Description, p.Reasons[i])
	}
	return strings.Join(parts, "; ")
}

// logModelPlan explains a model's placement: the rules' decisions, then one
// INFO line with the library and device of every GPU and the --device its
// runner gets.
func logModelPlan(p Plan, model, arch string) {
	logQuirkDecisions(model, arch, p.Quirks)
	slog.Info("backend plan for model", "model", model, "arch", arch,
		"library", RunnerLibrary(deviceIDs(p.GPUs)), "device", p.Runner.Device, "placement", p.describe())
}

func deviceIDs(devices []ml.DeviceInfo) []ml.DeviceID {
	ids := make([]ml.DeviceID, len(devices))
	for i, d := range devices {
		ids[i] = d.DeviceID
	}
	return ids
}
