package discover

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/llm"
	"github.com/costa-os/ollama-backend-select/ml/backends"
	"github.com/ollama/ollama/ml"
)

// configuredQuirkRules is the built-in rules (unless OLLAMA_BACKEND_DENYLIST
// holds "none"), then the user's entries; a malformed variable counts as empty.
func configuredQuirkRules() []QuirkRule {
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

type quirkDecision struct {
	Device ml.DeviceInfo // as discovered (the chosen library)
	Denied QuirkRule
	// Replacement is nil when no allowed alternate exists.
	Replacement *ml.DeviceInfo
}

// applyQuirks replaces each GPU whose library a rule denies for m by its best
// allowed alternate among choices, or leaves it out when there is none.
func applyQuirks(gpus []ml.DeviceInfo, m ModelLoad, rules []QuirkRule, choices []libraryChoice) ([]ml.DeviceInfo, []quirkDecision) {
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
			// The alternate is the same memory: the chosen device's numbers are fresh.
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

func logQuirkDecisions(m ModelLoad, decisions []quirkDecision) {
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

// PlaceModel decides which of the offered GPUs and remote devices model m
// uses, with the learned rules, and logs the rules' decisions. The remote
// endpoints are probed again: one that came up since is used. Its error, wrapping
// envconfig.ErrLibraryOption, is a `library` option no offered GPU can serve.
func PlaceModel(d Discovery, gpus []ml.DeviceInfo, m ModelLoad, learned ...QuirkRule) (Plan, error) {
	if mayUseRemotes(d, m) {
		d = d.WithRemotes(context.Background())
	}
	p, err := Decide(PlanInput{Discovery: d, Learned: learned, Model: m, Offered: gpus, ServerEnv: os.Getenv})
	if err != nil {
		slog.Error("backend plan for model: the library option cannot be served", "model", m.Name, "option", m.Library.String(), "option_source", m.LibrarySource, "error", err)
		return Plan{}, err
	}
	logQuirkDecisions(m, p.Quirks)
	for _, o := range p.Overrides {
		slog.Warn("backend plan: the model's library option overrides a rule", "model", m.Name, "arch", m.Arch,
			"library", o.Device.Library, "gpu", o.Device.Description, "pci_id", o.Device.PCIID,
			"rule", o.Denied.String(), "rule_source", string(o.Denied.Source), "reason", o.Denied.Reason, "option", m.Library.String(), "option_source", m.LibrarySource)
	}
	return p, nil
}

// StartRunner carries out plan p on the GPUs model m was placed on, for
// need bytes, and logs the runner's --device, --rpc and environment. The
// remote devices it adds are in the result's Remote.
func StartRunner(p Plan, m ModelLoad, placed []ml.DeviceInfo, need uint64) llm.RunnerDevices {
	r, remoteWhy := p.runner(placed, need)
	attrs := []any{
		"model", m.Name, "arch", m.Arch, "vision", m.Vision,
		"library", RunnerLibrary(deviceIDs(append(slices.Clone(placed), r.Remote...))), "decided_by", p.DecidedBy, "device", r.Device,
		"env", formatEnv(r.Env), "placement", p.describe(),
	}
	if len(r.RPC) > 0 {
		attrs = append(attrs, "rpc", strings.Join(r.RPC, ","), "remote_reason", remoteWhy)
	}
	slog.Info("backend plan for model", attrs...)
	return r
}

// NextLibrary names the library the next load of model m uses on the GPU at
// pciID that ran it through library, or "CPU" when none is allowed.
func NextLibrary(d Discovery, pciID, library, compute string, m ModelLoad, learned ...QuirkRule) string {
	m.Library, m.LibrarySource = backends.Preference{}, ""
	choices, _ := chooseLibraries(d.Devices, d.Preference)
	for _, c := range choices {
		devs := append([]ml.DeviceInfo{c.Chosen}, c.Alternates...)
		if !slices.ContainsFunc(devs, func(g ml.DeviceInfo) bool {
			return backends.Same(g.Library, library) && strings.EqualFold(g.Compute(), compute) && strings.EqualFold(g.PCIID, pciID)
		}) {
			continue
		}
		next, _ := Decide(PlanInput{Discovery: d, Learned: learned, Model: m, Offered: []ml.DeviceInfo{c.Chosen}})
		if len(next.GPUs) > 0 {
			return next.GPUs[0].Library
		}
	}
	return "CPU"
}
