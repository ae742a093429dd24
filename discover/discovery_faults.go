package discover

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/costa-os/ollama-backend-select/llm"
	"github.com/ollama/ollama/format"
	"github.com/ollama/ollama/ml"
)

// What the fork does about backend libraries that misbehave at discovery:
// a library that crashes or hangs its discovery runner is named and left
// out, and the runner's other libraries are discovered again without it; a
// device reported with impossible properties is named and left out (or
// corrected). Each fault is one WARN line per server process.

// DiscoveryRetryTimeout bounds a discovery runner started again without a
// library that crashed or hung the first one. It is a fresh bound: the
// first runner may have used up the discovery timeout by hanging.
const DiscoveryRetryTimeout = 30 * time.Second

// MaxDeviceMemory is the most memory a GPU may report; more is no real GPU
// (the largest have a few hundred GiB) but a library reporting garbage.
const MaxDeviceMemory uint64 = 64 << 40

// DiscoveryFaultMsg is the log message of a library that crashed or hung a
// discovery runner.
const DiscoveryFaultMsg = "backend library failed during GPU discovery; left out"

// DeviceFaultMsg is the log message of a device reported with impossible
// properties.
const DeviceFaultMsg = "backend library reported a faulty device"

var (
	discoveryFaultsMu sync.Mutex
	discoveryFaults   = map[string]bool{} // what was reported, by file or folder
)

// reportOnce reports whether key is new, remembering it.
func reportOnce(key string) bool {
	discoveryFaultsMu.Lock()
	defer discoveryFaultsMu.Unlock()
	if discoveryFaults[key] {
		return false
	}
	discoveryFaults[key] = true
	return true
}

// gpuBackendFile is a GPU backend library in a runner's library folders.
type gpuBackendFile struct {
	name string // GGML backend name: "hip"
	path string
}

// gpuBackendFiles lists the GPU backend libraries a runner with these
// library folders may load (allowed: the runner's OLLAMA_GGML_BACKENDS, ""
// for all), in the order ggml loads them.
func gpuBackendFiles(dirs []string, allowed string) []gpuBackendFile {
	var out []gpuBackendFile
	seen := map[string]bool{}
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			m := backendFileName.FindStringSubmatch(e.Name())
			if m == nil || m[1] == "cpu" || !slices.Contains(ggmlBackendNames, m[1]) || seen[m[1]] {
				continue
			}
			if allowed != "" && !slices.Contains(strings.Split(allowed, ","), m[1]) {
				continue
			}
			seen[m[1]] = true
			out = append(out, gpuBackendFile{name: m[1], path: filepath.Join(dir, e.Name())})
		}
	}
	slices.SortStableFunc(out, func(a, b gpuBackendFile) int {
		return slices.Index(ggmlBackendNames, a.name) - slices.Index(ggmlBackendNames, b.name)
	})
	return out
}

// DiscoveryRunnerFailed explains a discovery runner that gave no device
// list because it exited (crashed) or did not answer in time (hung). out is
// the writer DiscoveryOutput returned for it, dirs and env its library
// folders and extra environment. ggml loads backend libraries one by one
// in a fixed order and logs each it initialised, so the fault is put on the
// first library of the runner's folders that it did not report: one WARN
// names it. When other GPU libraries shared the runner (the flat layout),
// retry is the environment of a runner without it, and ok is true; the
// caller starts that runner with a fresh timeout (DiscoveryRetryTimeout).
func DiscoveryRunnerFailed(out io.Writer, dirs []string, env map[string]string, exited, timedOut bool, took time.Duration) (retry map[string]string, ok bool) {
	if !exited && !timedOut {
		return nil, false
	}
	fault := "crashed"
	if !exited {
		fault = "hung"
	}
	var loaded map[string]bool
	if o, isOutput := out.(*discoveryOutput); isOutput {
		loaded = o.loadedFiles()
	}
	var culprit *gpuBackendFile
	var rest []string
	for _, f := range gpuBackendFiles(dirs, env[llm.RunnerBackendsEnv]) {
		if culprit == nil && !loaded[filepath.Base(f.path)] {
			culprit = &f
			continue
		}
		rest = append(rest, f.name)
	}
	if culprit == nil {
		// Every library initialised: the runner failed later, e.g. on a
		// device it then filtered out; nothing to leave out.
		slog.Debug("GPU discovery runner failed after loading its backend libraries",
			"fault", fault, "took", took.Round(time.Millisecond), "libdirs", strings.Join(dirs, string(os.PathListSeparator)))
		return nil, false
	}
	if env["GGML_CUDA_INIT"] == "1" {
		// Upstream's second pass initialises one device deeply precisely
		// so that an unsupported GPU crashes there and is filtered out:
		// expected, and about that device only.
		if reportOnce("validation\x00" + culprit.path) {
			slog.Info("GPU failed the deep initialisation check of discovery; that device is not used", "library", culprit.name,
				"file", culprit.path, "fault", fault, "took", took.Round(time.Millisecond), "device_env", deviceFilterEnv(env))
		}
		return nil, false
	}
	instead := "its GPUs are not used through it"
	if len(rest) > 0 {
		instead = "discovering " + strings.Join(rest, ", ") + " again without it"
		retry = maps.Clone(env)
		if retry == nil {
			retry = map[string]string{}
		}
		retry[llm.RunnerBackendsEnv] = strings.Join(append(rest, "cpu"), ",")
	}
	if reportOnce(culprit.path) {
		slog.Warn(DiscoveryFaultMsg, "library", culprit.name, "file", culprit.path, "fault", fault,
			"took", took.Round(time.Millisecond), "instead", instead)
	}
	return retry, len(rest) > 0
}

// deviceFilterEnv renders the device-visibility variables of a runner's
// environment ("ROCR_VISIBLE_DEVICES=GPU-1"), for naming the device.
func deviceFilterEnv(env map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if strings.HasSuffix(k, "_VISIBLE_DEVICES") {
			parts = append(parts, k+"="+env[k])
		}
	}
	return strings.Join(parts, " ")
}

// DeviceFault is a device that discovery found with impossible properties.
type DeviceFault struct {
	Device ml.DeviceInfo
	// Problem says what is wrong, Instead what was done about it.
	Problem, Instead string
}

// deviceLibraryName names a device's library for messages, also when the
// library did not say ("ROCm0" -> "ROCm").
func deviceLibraryName(d ml.DeviceInfo) string {
	if d.Library != "" {
		return d.Library
	}
	if n := strings.TrimRight(d.Name, "0123456789"); n != "" {
		return n
	}
	return filepath.Base(libraryDir(d))
}

// CheckDevices returns the devices fit to use, and a fault for each device
// left out or corrected: no library name, no or absurd memory (more than
// MaxDeviceMemory), free memory above the total (taken as the total), a PCI
// id reported twice by one library (the first device is kept), and no PCI
// id while another library reports a GPU of the same size (taken to be that
// GPU seen twice, and left out so that it is not counted twice; without
// such a twin it is used as a GPU of its own, said only when another
// library reports devices too).
func CheckDevices(devices []ml.DeviceInfo) ([]ml.DeviceInfo, []DeviceFault) {
	var out []ml.DeviceInfo
	var faults []DeviceFault
	fault := func(d ml.DeviceInfo, problem, instead string, args ...any) {
		faults = append(faults, DeviceFault{Device: d, Problem: fmt.Sprintf(problem, args...), Instead: instead})
	}
	for _, d := range devices {
		switch {
		case d.Library == "":
			fault(d, "no library name", "device left out")
			continue
		case d.TotalMemory == 0:
			fault(d, "0 bytes of memory", "device left out")
			continue
		case d.TotalMemory > MaxDeviceMemory:
			fault(d, "%s of memory, more than the %s accepted", "device left out",
				format.HumanBytes2(d.TotalMemory), format.HumanBytes2(MaxDeviceMemory))
			continue
		}
		if d.FreeMemory > d.TotalMemory {
			fault(d, fmt.Sprintf("%s free of %s", format.HumanBytes2(d.FreeMemory), format.HumanBytes2(d.TotalMemory)),
				"free memory taken as the total")
			d.FreeMemory = d.TotalMemory
		}
		if d.PCIID != "" {
			if i := slices.IndexFunc(out, func(o ml.DeviceInfo) bool {
				return o.Library == d.Library && strings.EqualFold(o.PCIID, d.PCIID)
			}); i >= 0 {
				fault(d, "PCI id "+d.PCIID+" already reported for device "+out[i].ID, "device left out, the GPU is counted once")
				continue
			}
		}
		out = append(out, d)
	}
	// A device without a PCI id cannot be matched with the same GPU under
	// another library; the same size is the best evidence left.
	kept := out[:0:0]
	for _, d := range out {
		if d.PCIID != "" {
			kept = append(kept, d)
			continue
		}
		i := slices.IndexFunc(out, func(o ml.DeviceInfo) bool {
			return o.PCIID != "" && o.Library != d.Library && o.TotalMemory == d.TotalMemory
		})
		if i >= 0 {
			fault(d, "no PCI id", fmt.Sprintf("device left out: taken to be the %s GPU %s of the same size, so that it is not counted twice", out[i].Library, out[i].PCIID))
			continue
		}
		// Alone in its library (Metal, a lone Vulkan device) there is
		// nothing it could be confused with.
		if slices.ContainsFunc(out, func(o ml.DeviceInfo) bool { return o.Library != d.Library }) {
			fault(d, "no PCI id", "used as a GPU of its own; it cannot be matched with the same GPU under another library")
		}
		kept = append(kept, d)
	}
	return kept, faults
}

// LogDeviceFaults reports each fault in one WARN line, once per server
// process.
func LogDeviceFaults(faults []DeviceFault) {
	for _, f := range faults {
		d := f.Device
		lib := deviceLibraryName(d)
		if !reportOnce(strings.Join([]string{"device", lib, d.ID, f.Problem}, "\x00")) {
			continue
		}
		slog.Warn(DeviceFaultMsg, "library", lib, "name", d.Name, "description", d.Description, "id", d.ID,
			"pci_id", d.PCIID, "libdirs", strings.Join(d.LibraryPath, ","), "problem", f.Problem, "instead", f.Instead)
	}
}

// checkedDevices is SelectLibraries' first step.
func checkedDevices(devices []ml.DeviceInfo) []ml.DeviceInfo {
	ok, faults := CheckDevices(devices)
	LogDeviceFaults(faults)
	return ok
}
