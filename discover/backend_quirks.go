package discover

import (
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/llm"
	"github.com/ollama/ollama/ml"
)

// backendQuirkRules is the quirk table of the configuration: the built-in
// rules (unless OLLAMA_BACKEND_DENYLIST holds "none"), then the user's
// entries. What the server learned at run time (discover/gpuwatch) comes
// after them, from the caller: PlaceModel and listBackends take it.
// A malformed variable counts as empty here; `ollama serve` refuses to
// start with one (envconfig.CheckBackendSelection).
func backendQuirkRules() []QuirkRule {
	deny, _ := envconfig.BackendDenylistFromEnv()
	var rules []QuirkRule
	if !deny.DropBuiltins {
		rules = append(rules, builtinQuirks()...)
	}
	for _, e := range deny.Entries {
		rules = append(rules, QuirkRule{
			Library:        e.Library,
			ComputePattern: e.Compute,
			ArchPatterns:   e.Archs,
			Capabilities:   e.Capabilities,
			Action:         QuirkAction(e.Action),
			Reason:         "OLLAMA_BACKEND_DENYLIST",
			Source:         quirkSourceEnv,
		})
	}
	return rules
}

// quirkDecision is what the quirk table did to one GPU for one model.
type quirkDecision struct {
	Device ml.DeviceInfo // as discovered (the chosen library)
	Denied QuirkRule
	// Replacement is the alternate library used instead; nil when the GPU
	// was left out because no allowed alternate exists.
	Replacement *ml.DeviceInfo
}

// applyQuirks returns the GPUs model m may use: each GPU whose library a
// rule denies for m is replaced by its best allowed alternate (choices: what
// discovery found for the same physical device), or left out when it has
// none. GPUs that are not denied stay as they are.
func applyQuirks(gpus []ml.DeviceInfo, m llm.ModelLoad, rules []QuirkRule, choices []libraryChoice) ([]ml.DeviceInfo, []quirkDecision) {
	if m.Arch == "" {
		return gpus, nil
	}
	out := make([]ml.DeviceInfo, 0, len(gpus))
	var decisions []quirkDecision
	for _, gpu := range gpus {
		rule, denied := DeniesLibrary(rules, gpu.Library, gpu.Compute(), m)
		if !denied {
			out = append(out, gpu)
			continue
		}
		d := quirkDecision{Device: gpu, Denied: rule}
		for _, alt := range alternatesOf(gpu, choices) {
			// The alternate is the same memory seen through another
			// library: the chosen device's numbers are the fresh ones.
			alt.TotalMemory, alt.FreeMemory = gpu.TotalMemory, gpu.FreeMemory
			if _, denied := DeniesLibrary(rules, alt.Library, alt.Compute(), m); !denied {
				d.Replacement = &alt
				out = append(out, alt)
				break
			}
		}
		decisions = append(decisions, d)
	}
	return out, decisions
}

func alternatesOf(gpu ml.DeviceInfo, choices []libraryChoice) []ml.DeviceInfo {
	for _, c := range choices {
		if c.Chosen.DeviceID == gpu.DeviceID && c.Chosen.PCIID == gpu.PCIID {
			return append([]ml.DeviceInfo(nil), c.Alternates...)
		}
	}
	return nil
}

// logQuirkDecisions explains each decision in one line: INFO when another
// library of the same GPU takes over, WARN when the GPU is left out.
func logQuirkDecisions(m llm.ModelLoad, decisions []quirkDecision) {
	for _, d := range decisions {
		attrs := []any{
			"model", m.Name, "arch", m.Arch, "vision", m.Vision,
			"gpu", d.Device.Description, "pci_id", d.Device.PCIID, "compute", d.Device.Compute(),
			"denied", d.Device.Library, "rule", d.Denied.String(), "rule_source", string(d.Denied.Source), "reason", d.Denied.Reason,
		}
		if d.Replacement != nil {
			slog.Info("backend quirk: model runs on another library of the same GPU", append(attrs, "library", d.Replacement.Library)...)
			continue
		}
		slog.Warn("backend quirk: GPU left out for this model, no allowed library can drive it; install the Vulkan backend (ollama-vulkan) to use it",
			attrs...)
	}
}

// PlaceModel is the model-load call site: the GPUs the scheduler offers
// model m, placed by Decide with what discovery found, OLLAMA_LLM_LIBRARY,
// the rules in force (the rules the server learned, from
// gpuwatch.Watchdog.LearnedRules, last) and the model's `library` option;
// the plan is explained in the log. It returns the GPUs the model uses and
// the input that decided (for /api/ps), or an error wrapping
// envconfig.ErrLibraryOption when the model's option cannot be served.
func PlaceModel(gpus []ml.DeviceInfo, m llm.ModelLoad, learned ...QuirkRule) ([]ml.DeviceInfo, string, error) {
	libraryChoicesMu.Lock()
	devices := discovered
	libraryChoicesMu.Unlock()
	p, err := Decide(PlanInput{
		Devices:    devices,
		Preference: envconfig.LLMLibraryPreference(),
		Rules:      append(backendQuirkRules(), learned...),
		Model:      m,
		Offered:    gpus,
	})
	if err != nil {
		slog.Error("backend plan for model: the library option cannot be served", "model", m.Name, "option", m.Library, "option_source", m.LibrarySource, "error", err)
		return nil, "", err
	}
	logModelPlan(p, m)
	return p.GPUs, p.DecidedBy, nil
}

// NextLibrary names the library the next load of model m uses on the GPU at
// pciID that ran it through library (compute as that library reports it),
// under the quirk table in force with learned last: the first library of
// the GPU (chosen, then alternates) the rules allow, or "CPU" when none
// does. The idle-GPU watchdog names it when it learns from a runner that
// keeps dying or leaves its GPU busy.
func NextLibrary(pciID, library, compute string, m llm.ModelLoad, learned ...QuirkRule) string {
	return nextLibrary(pciID, library, compute, m, append(backendQuirkRules(), learned...), currentLibraryChoices())
}

func nextLibrary(pciID, library, compute string, m llm.ModelLoad, rules []QuirkRule, choices []libraryChoice) string {
	for _, c := range choices {
		devs := append([]ml.DeviceInfo{c.Chosen}, c.Alternates...)
		if !slices.ContainsFunc(devs, func(d ml.DeviceInfo) bool {
			return envconfig.SameLibrary(d.Library, library) && strings.EqualFold(d.Compute(), compute) && strings.EqualFold(d.PCIID, pciID)
		}) {
			continue
		}
		for _, d := range devs {
			if _, denied := DeniesLibrary(rules, d.Library, d.Compute(), m); !denied {
				return d.Library
			}
		}
	}
	return "CPU"
}

// quirkRunnerEnv gives a model's runner the variables its quirk rules ask
// for (GPU_MAX_HW_QUEUES=1 for the queues1 action); a variable the user set
// in the server's environment is left as it is.
func quirkRunnerEnv(devices []ml.DeviceInfo, m llm.ModelLoad) map[string]string {
	if m.Arch == "" {
		return nil
	}
	rules := backendQuirkRules()
	var matched []QuirkRule
	for _, d := range devices {
		matched = append(matched, matchQuirks(rules, d.Library, d.Compute(), m)...)
	}
	env := quirkEnv(matched)
	for k := range env {
		if os.Getenv(k) != "" {
			delete(env, k)
		}
	}
	return env
}

var registerQuirkRunnerEnv sync.Once

func init() {
	registerQuirkRunnerEnv.Do(func() { llm.AddRunnerEnvHook(quirkRunnerEnv) })
}
