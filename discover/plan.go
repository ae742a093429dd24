package discover

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/llm"
	"github.com/costa-os/ollama-backend-select/ml/backends"
	"github.com/ollama/ollama/ml"
)

// PlanInput is everything the choice of backend library depends on; Decide
// reads nothing else.
type PlanInput struct {
	// Discovery is what the server found at start: the devices of every
	// library, OLLAMA_LLM_LIBRARY and the configured rules.
	Discovery Discovery
	// Learned are the rules the server learned at run time
	// (gpuwatch.Watchdog.LearnedRules); they come after the configured ones.
	Learned []QuirkRule
	// Model is the model to place.
	Model ModelLoad
	// Offered are the GPUs the scheduler offers the model (chosen devices
	// with fresh free memory); none: the model runs on the CPU.
	Offered []ml.DeviceInfo
	// ServerEnv reads the server's environment: a variable set there is
	// not overridden by a rule's (os.Getenv; nil: nothing set).
	ServerEnv func(string) string
}

// Plan is the decision: per physical GPU the library chosen and the
// alternates, and for a model the library on each of its GPUs with the
// reasons. Runner turns it into the runner's --device and environment for
// the GPUs the scheduler places the model on.
type Plan struct {
	Choices  []libraryChoice
	Excluded []excludedLibrary
	// Missing are libraries OLLAMA_LLM_LIBRARY names that found no device.
	Missing []string
	// GPUs are the model's GPUs after the rules, in order, each through the
	// library it uses and with the runner variables its rules ask for in
	// RunnerEnvOverrides; Reasons[i] says why GPUs[i] uses that library.
	GPUs    []ml.DeviceInfo
	Reasons []string
	// Quirks are what the rules did to the model's GPUs.
	Quirks []quirkDecision
	// Overrides are the rules the model's `library` option overrode.
	Overrides []quirkDecision
	// DecidedBy names the input that decided the model's library: "request
	// option", "model parameter", "rule", "OLLAMA_LLM_LIBRARY" or "default
	// order"; "" when the scheduler offered no GPU and nothing chose the CPU.
	DecidedBy string
}

// Decide is the one place where the backend is decided; it is pure.
// Precedence, first that speaks decides: the model's `library` option
// (request over model parameter), the rules, OLLAMA_LLM_LIBRARY's order,
// the built-in order. The error, wrapping envconfig.ErrLibraryOption, is a
// `library` option that no offered GPU can serve without "cpu" in it.
func Decide(in PlanInput) (Plan, error) {
	var p Plan
	pref := in.Discovery.Preference
	p.Choices, p.Excluded = chooseLibraries(in.Discovery.Devices, pref)
	p.Missing = missingLibraries(p.Choices, pref)
	rules := slices.Concat(in.Discovery.Rules, in.Learned)
	if in.Model.Library.IsSet() {
		if err := p.placeByModelOption(in, rules); err != nil {
			return Plan{}, err
		}
	} else {
		p.GPUs, p.Quirks = applyQuirks(in.Offered, in.Model, rules, p.Choices)
		for _, g := range p.GPUs {
			p.Reasons = append(p.Reasons, placementReason(g, p.Choices, p.Quirks, pref))
		}
		switch {
		case len(in.Offered) == 0 && pref.IsSet() && !pref.Names("cpu"):
		case len(in.Offered) == 0 && pref.IsSet():
			p.DecidedBy = "OLLAMA_LLM_LIBRARY"
		case len(in.Offered) == 0:
		case len(p.Quirks) > 0:
			p.DecidedBy = "rule"
		case pref.IsSet():
			p.DecidedBy = "OLLAMA_LLM_LIBRARY"
		default:
			p.DecidedBy = "default order"
		}
	}
	for i, g := range p.GPUs {
		p.GPUs[i].RunnerEnvOverrides = ruleRunnerEnv(g, in.Model, rules, in.ServerEnv)
	}
	return p, nil
}

// placeByModelOption places the model by its own `library` option: on each
// offered GPU the first library of the list that the GPU has (chosen or
// alternate), over any rule that denies it; "cpu" in the list before a
// library the GPU has leaves the GPU out. With no GPU left and no "cpu"
// listed, the option cannot be served: an error, not a silent CPU run.
func (p *Plan) placeByModelOption(in PlanInput, rules []QuirkRule) error {
	pref := in.Model.Library
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
		if rule, denied := DeniesLibrary(rules, chosen.Library, chosen.Compute(), in.Model); denied {
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
func pickListed(pref backends.Preference, candidates []ml.DeviceInfo) (ml.DeviceInfo, bool) {
	for _, name := range pref.LibraryNames() {
		if name == "cpu" {
			return ml.DeviceInfo{}, false
		}
		for _, c := range candidates {
			if backends.NameMatches(name, c.Library, libraryDir(c)) {
				return c, true
			}
		}
	}
	return ml.DeviceInfo{}, false
}

// placementReason says why the model uses g's library on its GPU.
func placementReason(g ml.DeviceInfo, choices []libraryChoice, quirks []quirkDecision, pref backends.Preference) string {
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

// ruleRunnerEnv is the runner environment the rules ask for on g
// (GPU_MAX_HW_QUEUES=1 for queues1), with g's own overrides; a variable
// set in the server's environment is left as the user set it.
func ruleRunnerEnv(g ml.DeviceInfo, m ModelLoad, rules []QuirkRule, serverEnv func(string) string) map[string]string {
	env := maps.Clone(g.RunnerEnvOverrides)
	if m.Arch == "" {
		return env
	}
	for k, v := range quirkEnv(matchQuirks(rules, g.Library, g.Compute(), m)) {
		if serverEnv != nil && serverEnv(k) != "" {
			continue
		}
		if env == nil {
			env = map[string]string{}
		}
		env[k] = v
	}
	return env
}

// Runner is the plan carried out on the GPUs the scheduler placed the
// model on (a subset of p.GPUs; by device id): llama-server's --device and
// environment. A placed device the plan does not hold is left out.
func (p Plan) Runner(placed []ml.DeviceInfo) llm.RunnerDevices {
	var gpus []ml.DeviceInfo
	for _, g := range p.GPUs {
		if slices.ContainsFunc(placed, func(d ml.DeviceInfo) bool { return d.DeviceID == g.DeviceID }) {
			gpus = append(gpus, g)
		}
	}
	return runnerDevices(gpus)
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

func deviceIDs(devices []ml.DeviceInfo) []ml.DeviceID {
	ids := make([]ml.DeviceID, len(devices))
	for i, d := range devices {
		ids[i] = d.DeviceID
	}
	return ids
}
