package discover

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// SysfsRoot is the root under which sysfs is read; OLLAMA_SYSFS_ROOT points
// it at a fake tree for tests.
func SysfsRoot() string {
	if r := os.Getenv("OLLAMA_SYSFS_ROOT"); r != "" {
		return r
	}
	return "/"
}

// rocmDiscoveryPlan says how the first discovery pass treats AMD GPUs,
// decided before any HIP code runs.
type rocmDiscoveryPlan struct {
	// Denied are the GPUs HIP must not initialise.
	Denied []kfdNode
	Rules  []QuirkRule
	// Visible are ROCR_VISIBLE_DEVICES ids.
	Visible    []string
	NeedVulkan bool
}

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
	// A rule for another library cannot be checked before discovery.
	for _, r := range rules {
		if r.Action == QuirkUseOtherLibrary && !backends.Same(r.Library, "ROCm") && !backends.Same(r.Library, "Vulkan") {
			p.NeedVulkan = true
		}
	}
	return p
}

func (p rocmDiscoveryPlan) allDenied() bool { return len(p.Denied) > 0 && len(p.Visible) == 0 }

// rocmVisibleID is GPU-<unique_id>, or the node's GPU index without one.
func rocmVisibleID(n kfdNode) string {
	if n.UniqueID != 0 {
		return fmt.Sprintf("GPU-%016x", n.UniqueID)
	}
	return fmt.Sprint(n.Node)
}

// discoveryEnv is the environment every discovery run adds. In the flat
// layout one llama-server loads every backend, so libraries are kept from
// discovery by hiding their devices. Without the KFD topology, a rule that
// denies ROCm on some GPU target hides ROCm entirely, since which GPU it
// covers is not known before HIP runs.
func (d Discovery) discoveryEnv() map[string]string {
	var hidden, shown []string
	for _, l := range backends.GPUs() {
		if d.Preference.IsSet() && !d.Preference.Names(l.Name) {
			hidden = append(hidden, l.Device)
		} else {
			shown = append(shown, l.Device)
		}
	}
	hideROCm := d.hidesROCm()
	if hideROCm && !slices.Contains(hidden, "ROCm") {
		hidden = append(hidden, "ROCm")
		shown = slices.DeleteFunc(shown, func(s string) bool { return s == "ROCm" })
	}
	env := backends.HideEnv(hidden, shown)
	if !hideROCm && len(d.ROCm.Denied) > 0 && slices.Contains(shown, "ROCm") {
		env["ROCR_VISIBLE_DEVICES"] = strings.Join(d.ROCm.Visible, ",")
	}
	if len(env) == 0 {
		return nil
	}
	return env
}

func deniesROCmSomewhere(rules []QuirkRule) bool {
	for _, r := range rules {
		if r.Action == QuirkUseOtherLibrary && backends.Same(r.Library, "ROCm") && r.everyModel() {
			return true
		}
	}
	return false
}
