package discover

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/llm"
	"github.com/costa-os/ollama-backend-select/ml/backends"
	"github.com/ollama/ollama/ml"
)

// PlanInput is everything the choice of backend library depends on.
type PlanInput struct {
	// Discovery is what the server found at start.
	Discovery Discovery
	// Learned are the rules learned at run time, after the configured ones.
	Learned []QuirkRule
	// Model is the model to place.
	Model ModelLoad
	// Offered are the GPUs the scheduler offers; none means the CPU.
	Offered []ml.DeviceInfo
	// ServerEnv reads the server's environment, which rules do not override.
	ServerEnv func(string) string
}

// Plan is the decision: per physical GPU the library chosen, and for a model
// the library on each of its GPUs with the reasons.
type Plan struct {
	Choices  []libraryChoice
	Excluded []excludedLibrary
	// Missing are libraries OLLAMA_LLM_LIBRARY names that found no device.
	Missing []string
	// GPUs are the model's GPUs after the rules, with the runner variables
	// the rules ask for in RunnerEnvOverrides; Reasons[i] explains GPUs[i].
	GPUs    []ml.DeviceInfo
	Reasons []string
	// Quirks are what the rules did to the model's GPUs.
	Quirks []quirkDecision
	// Overrides are the rules the model's `library` option overrode.
	Overrides []quirkDecision
	// DecidedBy names the input that decided: "request option", "model
	// parameter", "rule", "OLLAMA_LLM_LIBRARY", "default order", or "".
	DecidedBy string
	// Remote are the remote devices the model may use, after the local GPUs;
	// remoteNamed says a preference names rpc, so they are used even where
	// the local GPUs would hold the model.
	Remote       []ml.DeviceInfo
	RemoteReason string
	remoteNamed  bool
}

// Decide is the one place where the backend is decided; it is pure. The
// first that speaks decides: the model's `library` option, the rules,
// OLLAMA_LLM_LIBRARY, the built-in order. The error, wrapping
// envconfig.ErrLibraryOption, is an option no offered GPU can serve.
func Decide(in PlanInput) (Plan, error) {
	var p Plan
	pref := in.Discovery.Preference
	p.Choices, p.Excluded = chooseLibraries(in.Discovery.Devices, pref)
	p.Missing = missingLibraries(p.Choices, pref)
	rules := slices.Concat(in.Discovery.Rules, in.Learned)
	p.Remote, p.remoteNamed, p.RemoteReason = remoteChoice(in)
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
		case len(in.Offered) == 0 && p.remoteNamed:
			p.DecidedBy = "OLLAMA_LLM_LIBRARY"
		case len(in.Offered) == 0 && len(p.Remote) > 0:
			p.DecidedBy = "default order"
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

// placeByModelOption places the model by its own `library` option, over any
// rule. Unless "cpu" is listed, an option no GPU can serve is an error
// rather than a silent CPU run.
func (p *Plan) placeByModelOption(in PlanInput, rules []QuirkRule) error {
	pref, reason := preferenceFor(in.Discovery, in.Model)
	p.DecidedBy = in.Model.librarySource()
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
		// An alternate is the same memory: the offered numbers are fresh.
		chosen.TotalMemory, chosen.FreeMemory = gpu.TotalMemory, gpu.FreeMemory
		if rule, denied := DeniesLibrary(rules, chosen.Library, chosen.Compute(), in.Model); denied {
			p.Overrides = append(p.Overrides, quirkDecision{Device: chosen, Denied: rule})
		}
		p.GPUs = append(p.GPUs, chosen)
		p.Reasons = append(p.Reasons, reason)
	}
	if len(p.Remote) > 0 {
		have = append(have, backends.RPC)
	}
	if len(p.GPUs) == 0 && !pref.Names("cpu") && !p.remoteNamed {
		found := "no GPU"
		if len(have) > 0 {
			found = strings.Join(slices.Compact(have), ", ")
		}
		return fmt.Errorf("%w %q of model %s: no device can serve it (found: %s); add cpu to the list to allow a CPU run",
			envconfig.ErrLibraryOption, pref.String(), in.Model.Name, found)
	}
	return nil
}

// pickListed returns the device of the first name in pref that candidates
// match; false when "cpu" comes first or nothing matches.
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

// ruleRunnerEnv is the runner environment the rules ask for on g; a variable
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

// Runner is llama-server's --device, --rpc and environment for the GPUs
// placed and a model that needs need bytes.
func (p Plan) Runner(placed []ml.DeviceInfo, need uint64) llm.RunnerDevices {
	r, _ := p.runner(placed, need)
	return r
}

func (p Plan) runner(placed []ml.DeviceInfo, need uint64) (llm.RunnerDevices, string) {
	var gpus []ml.DeviceInfo
	for _, g := range p.GPUs {
		if slices.ContainsFunc(placed, func(d ml.DeviceInfo) bool { return d.DeviceID == g.DeviceID }) {
			gpus = append(gpus, g)
		}
	}
	remote, why := p.remoteFor(gpus, need)
	return withRemote(runnerDevices(gpus), remote), why
}

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
