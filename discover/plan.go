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
	// Model is the model to place; the zero value plans discovery only.
	Model ModelInfo
	// Offered are the GPUs the scheduler offers the model (chosen devices
	// with fresh free memory); none: the model runs on the CPU. Without a
	// Model, the plan places every chosen device (discovery).
	Offered []ml.DeviceInfo
}

// ModelInfo is what the decision knows of a model.
type ModelInfo struct {
	Name string
	// Arch is general.architecture ("qwen3").
	Arch string
}

// Placement is the library a model uses on one GPU, and why.
type Placement struct {
	Device ml.DeviceInfo
	Reason string
}

// Plan is the decision: per physical GPU the library chosen and the
// alternates, and for a model the library on each of its GPUs and what its
// runner may use. Logs, /api/ps and `ollama backends` print its reasons.
type Plan struct {
	Choices  []libraryChoice
	Excluded []excludedLibrary
	// Missing are libraries OLLAMA_LLM_LIBRARY names that found no device.
	Missing []string
	// Placements are the model's GPUs after the rules, in order (at
	// discovery: every chosen device).
	Placements []Placement
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
	offered := in.Offered
	if in.Model == (ModelInfo{}) {
		offered = choiceDevices(p.Choices)
	}
	gpus, quirks := applyQuirks(offered, in.Model.Arch, in.Rules, p.Choices)
	p.Quirks = quirks
	for _, g := range gpus {
		p.Placements = append(p.Placements, Placement{Device: g, Reason: placementReason(g, p.Choices, quirks, in.Preference)})
	}
	p.Runner = llm.PlanRunnerDevices(gpus)
	return p
}

// GPUs are the devices of the model's placements.
func (p Plan) GPUs() []ml.DeviceInfo {
	out := make([]ml.DeviceInfo, len(p.Placements))
	for i, pl := range p.Placements {
		out[i] = pl.Device
	}
	return out
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
	if len(p.Placements) == 0 {
		return "cpu"
	}
	parts := make([]string, len(p.Placements))
	for i, pl := range p.Placements {
		parts[i] = fmt.Sprintf("%s %s (%s)", pl.Device.Library, pl.Device.Description, pl.Reason)
	}
	return strings.Join(parts, "; ")
}

// logModelPlan explains a model's placement: the rules' decisions, then one
// INFO line with the library and device of every GPU and the --device its
// runner gets.
func logModelPlan(p Plan, m ModelInfo) {
	logQuirkDecisions(m.Name, m.Arch, p.Quirks)
	slog.Info("backend plan for model", "model", m.Name, "arch", m.Arch,
		"library", RunnerLibrary(deviceIDs(p.GPUs())), "device", p.Runner.Device, "placement", p.describe())
}

func deviceIDs(devices []ml.DeviceInfo) []ml.DeviceID {
	ids := make([]ml.DeviceID, len(devices))
	for i, d := range devices {
		ids[i] = d.DeviceID
	}
	return ids
}
