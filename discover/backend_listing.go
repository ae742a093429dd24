package discover

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// Backend statuses in the listing.
const (
	backendChosen       = "chosen"
	backendAlternate    = "alternate"
	backendNotRequested = "not requested"
	backendNoDevice     = "no device"
	backendFallback     = "fallback"
	backendRemote       = "remote"
	backendUnreachable  = "unreachable"
)

// BackendStatus is one row of the listing: a device through one library.
type BackendStatus struct {
	Library     string   `json:"library"`
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	PCIID       string   `json:"pci_id,omitempty"`
	Compute     string   `json:"compute,omitempty"`
	TotalMemory uint64   `json:"total_memory,omitempty"`
	Status      string   `json:"status"`
	Reason      string   `json:"reason,omitempty"`
	Rules       []string `json:"rules,omitempty"`
}

// BackendListing is what GET /api/backends answers.
type BackendListing struct {
	LLMLibrary   string          `json:"llm_library,omitempty"`
	DefaultOrder string          `json:"default_order"`
	Backends     []BackendStatus `json:"backends"`
	// StuckGPUs are GPUs the idle-GPU watchdog found busy after a runner left.
	StuckGPUs []StuckGPU `json:"stuck_gpus,omitempty"`
	// DiscoveryFailures are discovery runs a backend library killed or hung.
	DiscoveryFailures []DiscoveryFailure `json:"discovery_failures,omitempty"`
}

// StuckGPU is a GPU that stayed busy for a whole window after its runners exited.
type StuckGPU struct {
	// PCIID and Card identify the GPU ("0000:03:00.0", "card1").
	PCIID string `json:"pci_id"`
	Card  string `json:"card"`

	// GfxTarget is the AMD gfx target when known.
	GfxTarget string `json:"gfx_target,omitempty"`

	// Library, Compute, Arch and Model describe the runner that last ran on it.
	Library string `json:"library"`
	Compute string `json:"compute,omitempty"`
	Arch    string `json:"arch,omitempty"`
	Model   string `json:"model,omitempty"`

	// Vision is set when the model had a vision projector loaded.
	Vision bool `json:"vision,omitempty"`

	// MESFirmware is "" where amdgpu does not expose it.
	MESFirmware string `json:"mes_fw_version,omitempty"`

	// OtherRunners used the GPU since it was last idle; if any, the blame is
	// uncertain and nothing is learned.
	OtherRunners []string `json:"other_runners,omitempty"`

	// DetectedAt is when the window ended.
	DetectedAt time.Time `json:"detected_at"`

	// BusyMin and BusyMax are the range of gpu_busy_percent.
	Window  time.Duration `json:"window_ns"`
	Samples int           `json:"samples"`
	BusyMin int           `json:"busy_min"`
	BusyMax int           `json:"busy_max"`

	// ClockMHz, MaxClockMHz and PowerMicrowatts are -1 when not reported.
	ClockMHz        int   `json:"sclk_mhz"`
	MaxClockMHz     int   `json:"sclk_max_mhz"`
	PowerMicrowatts int64 `json:"power_uw"`

	// DenylistEntry keeps the library off this GPU for the model's architecture.
	DenylistEntry string `json:"denylist_entry,omitempty"`

	// Remedy tells the user what to do.
	Remedy string `json:"remedy"`

	// Learned is set when the triple was recorded as a learned quirk.
	Learned bool `json:"learned"`

	// Restored is a finding of an earlier server process during this boot.
	Restored bool `json:"restored,omitempty"`
}

// Learned is what the server learned at run time (gpuwatch.Watchdog).
type Learned interface {
	LearnedRules() []QuirkRule
	StuckGPUs() []StuckGPU
}

// ListBackends lists every device x library discovery found, what was chosen
// and why, and the stuck GPUs. learned may be nil.
func ListBackends(d Discovery, learned Learned) BackendListing {
	pref := d.Preference
	rules := slices.Clone(d.Rules)
	if learned != nil {
		rules = append(rules, learned.LearnedRules()...)
	}
	l := BackendListing{LLMLibrary: pref.String(), DefaultOrder: backends.DefaultOrder(), Backends: []BackendStatus{}}
	row := func(d ml.DeviceInfo, status, reason string) BackendStatus {
		s := BackendStatus{
			Library: d.Library, Name: d.Name, Description: d.Description, PCIID: d.PCIID,
			Compute: d.Compute(), TotalMemory: d.TotalMemory, Status: status, Reason: reason,
		}
		if d.Library == backends.RPC {
			s.Compute = "" // the remote's own decision chose its library
		}
		for _, r := range rules {
			if r.matchesDevice(d.Library, d.Compute()) {
				source := string(r.Source)
				if r.MESFirmware != "" {
					source += ", MES firmware " + r.MESFirmware
				}
				s.Rules = append(s.Rules, fmt.Sprintf("%s (%s)", r.String(), source))
			}
		}
		return s
	}
	p, _ := Decide(PlanInput{Discovery: d})
	choices := p.Choices
	for _, c := range choices {
		l.Backends = append(l.Backends, row(c.Chosen, backendChosen, ""))
		for i, a := range c.Alternates {
			l.Backends = append(l.Backends, row(a, backendAlternate, c.Reasons[i]))
		}
	}
	for _, e := range p.Excluded {
		l.Backends = append(l.Backends, row(e.Device, backendNotRequested, e.Reason))
	}
	for _, name := range p.Missing {
		l.Backends = append(l.Backends, BackendStatus{
			Library: name, Description: "-", Status: backendNoDevice,
			Reason: "OLLAMA_LLM_LIBRARY=" + pref.String() + " names it; discovery found no device",
		})
	}
	for _, lib := range d.Installed {
		if reason, idle := idleLibrary(d, p, lib); idle {
			l.Backends = append(l.Backends, BackendStatus{Library: lib, Description: "-", Status: backendNoDevice, Reason: reason})
		}
	}
	for _, r := range d.Remote {
		if r.Err != "" {
			l.Backends = append(l.Backends, BackendStatus{Library: backends.RPC, Description: r.Endpoint, Status: backendUnreachable, Reason: r.Err})
		}
		for _, dev := range r.Devices {
			l.Backends = append(l.Backends, row(dev, backendRemote, p.remoteUse(pref)))
		}
	}
	l.Backends = append(l.Backends, cpuRow(len(choices) > 0, pref))
	if learned != nil {
		l.StuckGPUs = learned.StuckGPUs()
	}
	l.DiscoveryFailures = currentDiscoveryFailures()
	return l
}

// idleLibrary says why an installed library drives no device.
func idleLibrary(d Discovery, p Plan, lib string) (string, bool) {
	for _, dev := range d.Devices {
		if backends.Same(dev.Library, lib) {
			return "", false
		}
	}
	for _, name := range p.Missing {
		if backends.NameMatches(name, lib, "") {
			return "", false
		}
	}
	l, _ := backends.Lookup(lib)
	switch {
	case d.Preference.IsSet() && !d.Preference.Names(l.Name):
		return "installed; OLLAMA_LLM_LIBRARY=" + d.Preference.String() + " does not request it, so discovery hides it", true
	case l.Device == "ROCm" && d.hidesROCm():
		return "installed; a rule denies ROCm on every AMD GPU, so discovery keeps HIP away", true
	}
	for _, h := range d.Hidden {
		k, _, _ := strings.Cut(h, "=")
		if _, ok := l.Hide[k]; ok {
			return "installed; the server's environment sets " + h, true
		}
	}
	return "installed; discovery found no device", true
}

func cpuRow(gpuChosen bool, pref backends.Preference) BackendStatus {
	row := BackendStatus{Library: "CPU", Description: "CPU", Status: backendChosen, Reason: "no GPU library found a device"}
	switch {
	case gpuChosen:
		row.Status, row.Reason = backendFallback, "layers the GPUs do not hold"
	case pref.IsSet() && !pref.Names("cuda") && !pref.Names("rocm") && !pref.Names("vulkan"):
		row.Reason = "OLLAMA_LLM_LIBRARY=" + pref.String()
	}
	return row
}
