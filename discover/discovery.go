package discover

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/ml/backends"
	"github.com/ollama/ollama/ml"
)

// Discovery is the record of the server's GPU discovery, made once while
// upstream's GPUDevices bootstraps; nothing changes it afterwards.
type Discovery struct {
	// Preference is OLLAMA_LLM_LIBRARY, Rules the configured quirk rules.
	Preference backends.Preference
	Rules      []QuirkRule
	// ROCm says which AMD GPUs HIP was kept away from; KFDRead is false when
	// the topology could not be read.
	ROCm    rocmDiscoveryPlan
	KFDRead bool
	// Installed are the GPU libraries whose ggml backend is installed, Hidden
	// the visibility variables the server's environment sets.
	Installed []string
	Hidden    []string
	// Devices are every library's devices (a ROCm GPU and its Vulkan twin are
	// two); Faults are the devices left out or corrected.
	Devices []ml.DeviceInfo
	Faults  []deviceFault
	// RPCServers is OLLAMA_RPC_SERVERS; Remote what the last probe of those
	// endpoints found (at start, then at each load and listing).
	RPCServers []string
	Remote     []Remote
}

// StartDiscovery reads what discovery depends on before any backend runs:
// OLLAMA_LLM_LIBRARY, the configured rules and the KFD topology.
func StartDiscovery() Discovery {
	d := Discovery{Preference: envconfig.LLMLibraryPreference(), Rules: configuredQuirkRules()}
	d.Installed = installedLibraries(ml.LibOllamaPath)
	for _, l := range backends.GPUs() {
		for _, k := range slices.Sorted(maps.Keys(l.Hide)) {
			if v, ok := os.LookupEnv(k); ok {
				d.Hidden = append(d.Hidden, k+"="+v)
			}
		}
	}
	nodes, err := readKFDNodes(SysfsRoot())
	if err == nil {
		// An absent topology is no AMD GPU, or a kernel or container that hides it.
		_, err = os.Stat(filepath.Join(SysfsRoot(), filepath.FromSlash(kfdNodesDir)))
	}
	d.KFDRead = err == nil
	if err != nil && deniesROCmSomewhere(d.Rules) {
		slog.Warn("AMD GPU topology not readable: ROCm is kept away from every GPU at discovery, since a rule denies it on some GPU targets", "error", err)
	} else if err != nil {
		slog.Debug("reading AMD GPU topology", "error", err)
	}
	d.ROCm = planROCmDiscovery(nodes, d.Rules)
	d.RPCServers = envconfig.RPCServers()
	d = d.WithRemotes(context.Background())
	for i, n := range d.ROCm.Denied {
		r := d.ROCm.Rules[i]
		slog.Info("backend quirk: ROCm kept away from GPU at discovery, every use is denied",
			"pci_id", n.PCIID, "compute", n.GfxTarget, "rule", r.String(), "rule_source", string(r.Source), "reason", r.Reason)
	}
	return d
}

func installedLibraries(dir string) []string {
	dirs := []string{dir}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(dir, e.Name()))
			}
		}
	}
	var found []string
	for _, f := range backendLibraries(dirs) {
		stem := strings.TrimPrefix(strings.SplitN(f, ".", 2)[0], "libggml-")
		if l, ok := backends.Lookup(stem); ok && !slices.Contains(found, l.Device) {
			found = append(found, l.Device)
		}
	}
	var out []string
	for _, l := range backends.GPUs() {
		if slices.Contains(found, l.Device) {
			out = append(out, l.Device)
		}
	}
	return out
}

// Choose records the devices discovery found and returns the one device per
// physical GPU that the library choice keeps.
func (d Discovery) Choose(found []ml.DeviceInfo) (Discovery, []ml.DeviceInfo) {
	d.Devices, d.Faults = checkDevices(found)
	logDeviceFaults(d.Faults)
	p, _ := Decide(PlanInput{Discovery: d}) // no model: no option to refuse
	logLibraryChoices(p, d.Preference)
	return d, choiceDevices(p.Choices)
}

// skipsLibraryDir reports whether discovery skips a lib/ollama subfolder.
func (d Discovery) skipsLibraryDir(dir string) bool {
	if !d.Preference.WantsLibraryDir(dir) {
		return true
	}
	return strings.HasPrefix(strings.ToLower(dir), "rocm") && d.ROCm.allDenied()
}

// hidesROCm reports whether discovery keeps HIP away from every GPU: the
// rules deny ROCm on all of them, or on some while KFD cannot say which.
func (d Discovery) hidesROCm() bool {
	return d.ROCm.allDenied() || (!d.KFDRead && deniesROCmSomewhere(d.Rules))
}

// needsVulkan reports whether Vulkan is discovered even without
// OLLAMA_VULKAN, since a rule may send a model to a Vulkan twin.
func (d Discovery) needsVulkan() bool {
	return d.Preference.Names("vulkan") || d.ROCm.NeedVulkan
}

// env adds the discovery environment to one run's, keeping what the run sets.
func (d Discovery) env(extra map[string]string) map[string]string {
	add := d.discoveryEnv()
	if len(add) == 0 {
		return extra
	}
	env := maps.Clone(extra)
	if env == nil {
		env = map[string]string{}
	}
	for k, v := range add {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	return env
}

// Twins maps the device discovery chose for each physical GPU to the other
// libraries' ids of that GPU: a runner a rule sent to a twin uses the same
// memory, which the scheduler counts against the chosen device.
func (d Discovery) Twins() map[ml.DeviceID][]ml.DeviceID {
	choices, _ := chooseLibraries(d.Devices, d.Preference)
	twins := map[ml.DeviceID][]ml.DeviceID{}
	for _, c := range choices {
		for _, a := range c.Alternates {
			twins[c.Chosen.DeviceID] = append(twins[c.Chosen.DeviceID], a.DeviceID)
		}
	}
	return twins
}

// WithRemotes probes the remote endpoints again: their free memory changes,
// and an endpoint that was down may be back.
func (d Discovery) WithRemotes(ctx context.Context) Discovery {
	if len(d.RPCServers) > 0 {
		d.Remote = ProbeRemotes(ctx, d.RPCServers)
	}
	return d
}
