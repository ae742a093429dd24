package discover

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// SysfsRoot is the root under which sysfs is read: "/" in production.
// OLLAMA_SYSFS_ROOT points it at a fake tree, for tests of a machine that
// has no such GPU.
func SysfsRoot() string {
	if r := os.Getenv("OLLAMA_SYSFS_ROOT"); r != "" {
		return r
	}
	return "/"
}

// rocmDiscoveryPlan says how the first discovery pass treats AMD GPUs,
// from the KFD topology and the quirk table, before any HIP code runs.
type rocmDiscoveryPlan struct {
	// Denied are the GPUs on which every use of ROCm is denied: HIP must not
	// initialise them.
	Denied []kfdNode
	// Rules[i] is the rule that denies Denied[i].
	Rules []QuirkRule
	// Visible are the AMD GPUs ROCm may see (ROCR_VISIBLE_DEVICES ids).
	Visible []string
	// NeedVulkan is set when a rule may send a model from its library to
	// another one, so the Vulkan twins must be discovered.
	NeedVulkan bool
}

// planROCmDiscovery applies the quirk table to the KFD GPU nodes.
func planROCmDiscovery(nodes []kfdNode, rules []QuirkRule) rocmDiscoveryPlan {
	var p rocmDiscoveryPlan
	for _, n := range nodes {
		if r, ok := deniesEveryUse(rules, "ROCm", n.GfxTarget); ok {
			p.Denied = append(p.Denied, n)
			p.Rules = append(p.Rules, r)
			p.NeedVulkan = true
			continue
		}
		p.Visible = append(p.Visible, rocmVisibleID(n))
		for _, r := range rules {
			if r.Action == QuirkUseOtherLibrary && r.matchesDevice("ROCm", n.GfxTarget) {
				p.NeedVulkan = true
			}
		}
	}
	// A rule for another library (CUDA) cannot be checked before discovery:
	// discover the twins whenever one is in force.
	for _, r := range rules {
		if r.Action == QuirkUseOtherLibrary && !backends.Same(r.Library, "ROCm") && !backends.Same(r.Library, "Vulkan") {
			p.NeedVulkan = true
		}
	}
	return p
}

// allDenied reports whether there are AMD GPUs and ROCm may use none.
func (p rocmDiscoveryPlan) allDenied() bool { return len(p.Denied) > 0 && len(p.Visible) == 0 }

// rocmVisibleID is the id ROCR_VISIBLE_DEVICES and ggml's HIP backend use
// for a GPU: GPU-<unique_id>, or the node's GPU index without one.
func rocmVisibleID(n kfdNode) string {
	if n.UniqueID != 0 {
		return fmt.Sprintf("GPU-%016x", n.UniqueID)
	}
	return fmt.Sprint(n.Node)
}

// rocmDiscoveryEnv is the environment every discovery run (llama-server and
// the native probe) adds where it does not set the variable itself. In the
// flat layout one llama-server loads every backend, so libraries are kept
// from discovery by hiding their devices: those the user did not ask for
// (OLLAMA_LLM_LIBRARY), and for ROCm the GPUs on which a rule denies every
// use, left out of ROCR_VISIBLE_DEVICES. kfdRead is false when the KFD
// topology could not be read: then a rule that denies every use of ROCm on
// some GPU target hides ROCm entirely, since which GPU it covers is not
// known before HIP runs.
func rocmDiscoveryEnv(pref backends.Preference, plan rocmDiscoveryPlan, kfdRead bool, rules []QuirkRule) map[string]string {
	var hidden, shown []string
	for _, l := range backends.GPUs() {
		if pref.IsSet() && !pref.Names(l.Name) {
			hidden = append(hidden, l.Device)
		} else {
			shown = append(shown, l.Device)
		}
	}
	hideROCm := plan.allDenied() || (!kfdRead && deniesROCmSomewhere(rules))
	if hideROCm && !slices.Contains(hidden, "ROCm") {
		hidden = append(hidden, "ROCm")
		shown = slices.DeleteFunc(shown, func(s string) bool { return s == "ROCm" })
	}
	env := backends.HideEnv(hidden, shown)
	if !hideROCm && len(plan.Denied) > 0 && slices.Contains(shown, "ROCm") {
		env["ROCR_VISIBLE_DEVICES"] = strings.Join(plan.Visible, ",")
	}
	if len(env) == 0 {
		return nil
	}
	return env
}

// deniesROCmSomewhere reports whether a rule denies every use of ROCm on
// some GPU target.
func deniesROCmSomewhere(rules []QuirkRule) bool {
	for _, r := range rules {
		if r.Action == QuirkUseOtherLibrary && backends.Same(r.Library, "ROCm") && r.everyModel() {
			return true
		}
	}
	return false
}
