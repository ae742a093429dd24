package discover

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/llm"
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

// ggmlBackendNames are the backends ggml_backend_load_all_from_path tries,
// for building an allowlist that leaves one out.
var ggmlBackendNames = []string{"blas", "zendnn", "cann", "cuda", "hip", "metal", "rpc", "sycl", "vulkan", "opencl", "hexagon", "musa", "cpu"}

// ROCmDiscoveryPlan says how the first discovery pass treats AMD GPUs,
// from the KFD topology and the quirk table, before any HIP code runs.
type ROCmDiscoveryPlan struct {
	// Denied are the GPUs on which every use of ROCm is denied: HIP must not
	// initialise them.
	Denied []KFDNode
	// Rules[i] is the rule that denies Denied[i].
	Rules []QuirkRule
	// Visible are the AMD GPUs ROCm may see (ROCR_VISIBLE_DEVICES ids).
	Visible []string
	// NeedVulkan is set when a rule may send a model from its library to
	// another one, so the Vulkan twins must be discovered.
	NeedVulkan bool
}

// PlanROCmDiscovery applies the quirk table to the KFD GPU nodes.
func PlanROCmDiscovery(nodes []KFDNode, rules []QuirkRule) ROCmDiscoveryPlan {
	var p ROCmDiscoveryPlan
	for _, n := range nodes {
		if r, ok := DeniesEveryUse(rules, "ROCm", n.GfxTarget); ok {
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
		if r.Action == QuirkUseOtherLibrary && !sameQuirkLibrary(r.Library, "ROCm") && !sameQuirkLibrary(r.Library, "Vulkan") {
			p.NeedVulkan = true
		}
	}
	return p
}

// AllDenied reports whether there are AMD GPUs and ROCm may use none.
func (p ROCmDiscoveryPlan) AllDenied() bool { return len(p.Denied) > 0 && len(p.Visible) == 0 }

// rocmVisibleID is the id ROCR_VISIBLE_DEVICES and ggml's HIP backend use
// for a GPU: GPU-<unique_id>, or the node's GPU index without one.
func rocmVisibleID(n KFDNode) string {
	if n.UniqueID != 0 {
		return fmt.Sprintf("GPU-%016x", n.UniqueID)
	}
	return fmt.Sprint(n.Node)
}

var (
	rocmPlanOnce sync.Once
	rocmPlan     ROCmDiscoveryPlan
)

// currentROCmPlan reads KFD once per process and explains, once, which
// GPUs ROCm is kept away from.
func currentROCmPlan() ROCmDiscoveryPlan {
	rocmPlanOnce.Do(func() {
		nodes, err := ReadKFDNodes(SysfsRoot())
		if err != nil {
			slog.Warn("reading AMD GPU topology", "error", err)
		}
		rocmPlan = PlanROCmDiscovery(nodes, BackendQuirkRules())
		for i, n := range rocmPlan.Denied {
			slog.Info("backend quirk: ROCm kept away from GPU at discovery, every use is denied",
				"pci_id", n.PCIID, "compute", n.GfxTarget, "rule", rocmPlan.Rules[i].String(),
				"rule_source", string(rocmPlan.Rules[i].Source), "reason", rocmPlan.Rules[i].Reason)
		}
	})
	return rocmPlan
}

// SkipROCmLibraryDir reports whether discovery skips a subfolder of
// lib/ollama (its base name) because ROCm may drive none of the AMD GPUs.
func SkipROCmLibraryDir(dir string) bool {
	return strings.HasPrefix(strings.ToLower(dir), "rocm") && currentROCmPlan().AllDenied()
}

// QuirksNeedVulkan reports whether the quirk table may send a model to a
// Vulkan twin, so Vulkan is discovered even without OLLAMA_VULKAN.
func QuirksNeedVulkan() bool { return currentROCmPlan().NeedVulkan }

// BootstrapEnv is the extra environment of the first discovery runners.
// It keeps libraries the user did not ask for from loading
// (OLLAMA_LLM_LIBRARY), and keeps HIP away from GPUs on which the quirk
// table denies every use of ROCm: such GPUs are left out of
// ROCR_VISIBLE_DEVICES, and when that is every AMD GPU, HIP is not loaded.
func BootstrapEnv() map[string]string {
	env := map[string]string{}
	backends := envconfig.LLMLibraryPreference().GGMLBackends()
	plan := currentROCmPlan()
	if plan.AllDenied() {
		if backends == nil {
			backends = ggmlBackendNames
		}
		backends = without(backends, "hip")
	} else if len(plan.Denied) > 0 {
		env["ROCR_VISIBLE_DEVICES"] = strings.Join(plan.Visible, ",")
	}
	if backends != nil {
		env[llm.RunnerBackendsEnv] = strings.Join(backends, ",")
	}
	if len(env) == 0 {
		return nil
	}
	return env
}

func without(list []string, drop string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// resetROCmPlan forgets the plan, so tests can read another tree.
func resetROCmPlan() { rocmPlanOnce = sync.Once{} }
