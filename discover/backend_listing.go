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
)

// BackendStatus is one row of the backend listing: a device seen through
// one library, or the CPU.
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

// BackendListing is what GET /api/backends answers (discover/listing).
type BackendListing struct {
	LLMLibrary   string          `json:"llm_library,omitempty"`
	DefaultOrder string          `json:"default_order"`
	Backends     []BackendStatus `json:"backends"`
	// StuckGPUs are GPUs the idle-GPU watchdog found busy after a runner
	// left them.
	StuckGPUs []StuckGPU `json:"stuck_gpus,omitempty"`
	// DiscoveryFailures are discovery runs a backend library killed or hung.
	DiscoveryFailures []DiscoveryFailure `json:"discovery_failures,omitempty"`
}

// StuckGPU is a GPU that stayed busy for the whole watch window after its
// runners exited, with no runner left on it: what the idle-GPU watchdog
// (discover/gpuwatch) found, listed by GET /api/backends and `ollama
// backends`.
type StuckGPU struct {
	// PCIID and Card identify the GPU ("0000:03:00.0", "card1").
	PCIID string `json:"pci_id"`
	Card  string `json:"card"`

	// GfxTarget is the AMD gfx target ("gfx1200") when known.
	GfxTarget string `json:"gfx_target,omitempty"`

	// Library, Compute, Arch and Model describe the runner that last ran
	// on the GPU.
	Library string `json:"library"`
	Compute string `json:"compute,omitempty"`
	Arch    string `json:"arch,omitempty"`
	Model   string `json:"model,omitempty"`

	// Vision is set when that model had a vision projector loaded.
	Vision bool `json:"vision,omitempty"`

	// MESFirmware is the GPU's MES firmware version ("0x00000080") read
	// from amdgpu's sysfs; "" where the kernel does not expose it.
	MESFirmware string `json:"mes_fw_version,omitempty"`

	// OtherRunners lists other runners ("ROCm gemma3 (gemma3:4b)") that
	// used the GPU since it was last seen idle. When there are any, the
	// blame is uncertain and nothing is learned.
	OtherRunners []string `json:"other_runners,omitempty"`

	// DetectedAt is when the window ended.
	DetectedAt time.Time `json:"detected_at"`

	// Window is how long the GPU was watched, Samples how many readings
	// were taken, BusyMin and BusyMax the range of gpu_busy_percent.
	Window  time.Duration `json:"window_ns"`
	Samples int           `json:"samples"`
	BusyMin int           `json:"busy_min"`
	BusyMax int           `json:"busy_max"`

	// ClockMHz is the core clock at the end of the window and MaxClockMHz
	// the top clock level (pp_dpm_sclk), PowerMicrowatts the power draw
	// (hwmon); -1 when the GPU does not report it.
	ClockMHz        int   `json:"sclk_mhz"`
	MaxClockMHz     int   `json:"sclk_max_mhz"`
	PowerMicrowatts int64 `json:"power_uw"`

	// DenylistEntry is the OLLAMA_BACKEND_DENYLIST entry that keeps the
	// library off this GPU for the model's architecture
	// ("rocm:gfx1200:qwen3"); "" when none can be written.
	DenylistEntry string `json:"denylist_entry,omitempty"`

	// Remedy tells the user what to do, in one sentence or two.
	Remedy string `json:"remedy"`

	// Learned is set when the triple was recorded as a learned quirk.
	Learned bool `json:"learned"`

	// Restored is set for a finding of an earlier server process during
	// this boot, read back from the learned-quirks file.
	Restored bool `json:"restored,omitempty"`
}

// Learned is what the server learned while it runs, for the listing: the
// quirk rules learned from runners that misbehaved and the GPUs found
// stuck. The server's idle-GPU watchdog (discover/gpuwatch.Watchdog) is
// one.
type Learned interface {
	LearnedRules() []QuirkRule
	StuckGPUs() []StuckGPU
}

// ListBackends lists every device x library discovery found, with what was
// chosen and why, the quirk rules that apply to it (learned ones included),
// the libraries OLLAMA_LLM_LIBRARY names that found no device, the CPU, and
// the stuck GPUs. learned may be nil.
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
		l.Backends = append(l.Backends, BackendStatus{Library: name, Description: "-", Status: backendNoDevice,
			Reason: "OLLAMA_LLM_LIBRARY=" + pref.String() + " names it; discovery found no device"})
	}
	for _, lib := range d.Installed {
		if reason, idle := idleLibrary(d, p, lib); idle {
			l.Backends = append(l.Backends, BackendStatus{Library: lib, Description: "-", Status: backendNoDevice, Reason: reason})
		}
	}
	l.Backends = append(l.Backends, cpuRow(len(choices) > 0, pref))
	if learned != nil {
		l.StuckGPUs = learned.StuckGPUs()
	}
	l.DiscoveryFailures = currentDiscoveryFailures()
	return l
}

// idleLibrary says why an installed library drives no device, and whether
// none does (a library OLLAMA_LLM_LIBRARY names has its own row).
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
	case l.Device == "ROCm" && (d.ROCm.allDenied() || (!d.KFDRead && deniesROCmSomewhere(d.Rules))):
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

// cpuRow is the listing's CPU row: the CPU runs every model when no GPU was
// chosen, and otherwise takes the layers the GPUs do not hold.
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
