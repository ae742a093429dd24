package discover

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
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
	// Model is the model to place: its architecture, whether it loads a
	// vision projector, and its own `library` option with the input that
	// set it (request option or model parameter).
	Model llm.ModelLoad
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
	// Overrides are the rules the model's `library` option overrode.
	Overrides []quirkDecision
	// DecidedBy names the input that decided the model's library: "request
	// option", "model parameter", "rule", "OLLAMA_LLM_LIBRARY" or "default
	// order"; "no GPU offered" when the scheduler offered none.
	DecidedBy string
	// Runner is the --device list and environment of the model's runner.
	Runner llm.RunnerDevices
}

// Decide is the one place where the backend is decided. It is pure: the
// same input gives the same plan. Precedence, first that speaks decides: the
// model's `library` option (request over model parameter), the rules,
// OLLAMA_LLM_LIBRARY's order, the built-in order. The error, wrapping
// envconfig.ErrLibraryOption, is a `library` option that is not a library
// name or that no offered GPU can serve without "cpu" in it.
func Decide(in PlanInput) (Plan, error) {
	var p Plan
	p.Choices, p.Excluded = chooseLibraries(checkedDevices(in.Devices), in.Preference)
	p.Missing = missingLibraries(p.Choices, in.Preference)
	modelPref, err := envconfig.ParseModelLibrary(in.Model.Library)
	if err != nil {
		return Plan{}, err
	}
	if modelPref.IsSet() {
		if err := p.placeByModelOption(in, modelPref); err != nil {
			return Plan{}, err
		}
	} else {
		p.GPUs, p.Quirks = applyQuirks(in.Offered, in.Model, in.Rules, p.Choices)
		for _, g := range p.GPUs {
			p.Reasons = append(p.Reasons, placementReason(g, p.Choices, p.Quirks, in.Preference))
		}
		p.DecidedBy = "default order"
		switch {
		case len(in.Offered) == 0:
			p.DecidedBy = "no GPU offered"
		case len(p.Quirks) > 0:
			p.DecidedBy = "rule"
		case in.Preference.IsSet():
			p.DecidedBy = "OLLAMA_LLM_LIBRARY"
		}
	}
	p.Runner = llm.PlanRunnerDevices(p.GPUs)
	return p, nil
}

// placeByModelOption places the model by its own `library` option: on each
// offered GPU the first library of the list that the GPU has (chosen or
// alternate), over any rule that denies it; "cpu" in the list before a
// library the GPU has leaves the GPU out. A GPU with none of the listed
// libraries is left out; with no GPU left and no "cpu" listed, the option
// cannot be served: an error for this request, not a silent CPU run.
func (p *Plan) placeByModelOption(in PlanInput, pref envconfig.LibraryPreference) error {
	source := cmp.Or(in.Model.LibrarySource, "model option")
	p.DecidedBy = source
	reason := fmt.Sprintf("%s library=%s", source, pref)
	var have []string
	for _, gpu := range in.Offered {
		candidates := append([]ml.DeviceInfo{gpu}, alternatesOf(gpu, p.Choices)...)
		for _, c := range candidates {
			have = append(have, c.Library)
		}
		chosen, ok := pickListed(pref, candidates)
		if !ok {
			continue
		}
		// An alternate is the same memory seen through another library:
		// the offered device's numbers are the fresh ones.
		chosen.TotalMemory, chosen.FreeMemory = gpu.TotalMemory, gpu.FreeMemory
		if rule, denied := DeniesLibrary(in.Rules, chosen.Library, chosen.Compute(), in.Model); denied {
			p.Overrides = append(p.Overrides, quirkDecision{Device: chosen, Denied: rule})
		}
		p.GPUs = append(p.GPUs, chosen)
		p.Reasons = append(p.Reasons, reason)
	}
	if len(p.GPUs) == 0 && !pref.Names("cpu") {
		found := "no GPU"
		if len(have) > 0 {
			found = strings.Join(slices.Compact(have), ", ")
		}
		return fmt.Errorf("%w %q of model %s: no device can serve it (found: %s); add cpu to the list to allow a CPU run",
			envconfig.ErrLibraryOption, pref.String(), in.Model.Name, found)
	}
	return nil
}

// pickListed returns the device of the first name in pref that one of
// candidates (one GPU through its libraries) matches; false when "cpu" comes
// first or nothing matches.
func pickListed(pref envconfig.LibraryPreference, candidates []ml.DeviceInfo) (ml.DeviceInfo, bool) {
	for _, name := range pref.LibraryNames() {
		if name == "cpu" {
			return ml.DeviceInfo{}, false
		}
		for _, c := range candidates {
			if envconfig.LibraryNameMatches(name, c.Library, libraryDir(c)) {
				return c, true
			}
		}
	}
	return ml.DeviceInfo{}, false
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

// logModelPlan explains a model's placement: the rules' decisions (a WARN
// for each rule the model's `library` option overrides), then one INFO line
// with the library and device of every GPU, the input that decided and the
// --device its runner gets.
func logModelPlan(p Plan, m llm.ModelLoad) {
	logQuirkDecisions(m, p.Quirks)
	for _, o := range p.Overrides {
		slog.Warn("backend plan: the model's library option overrides a rule", "model", m.Name, "arch", m.Arch,
			"library", o.Device.Library, "gpu", o.Device.Description, "pci_id", o.Device.PCIID,
			"rule", o.Denied.String(), "rule_source", string(o.Denied.Source), "reason", o.Denied.Reason, "option", m.Library, "option_source", m.LibrarySource)
	}
	slog.Info("backend plan for model", "model", m.Name, "arch", m.Arch, "vision", m.Vision,
		"library", RunnerLibrary(deviceIDs(p.GPUs)), "decided_by", p.DecidedBy, "device", p.Runner.Device, "placement", p.describe())
}

func deviceIDs(devices []ml.DeviceInfo) []ml.DeviceID {
	ids := make([]ml.DeviceID, len(devices))
	for i, d := range devices {
		ids[i] = d.DeviceID
	}
	return ids
}
