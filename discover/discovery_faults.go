package discover

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ollama/ollama/format"
	"github.com/ollama/ollama/ml"
)

// maxDeviceMemory is the most memory a GPU may report; the largest have a
// few hundred GiB, so more is a library reporting garbage.
const maxDeviceMemory uint64 = 64 << 40

const deviceFaultMsg = "backend library reported a faulty device"

type deviceFault struct {
	Device ml.DeviceInfo
	// Problem says what is wrong, Instead what was done about it.
	Problem, Instead string
}

// deviceLibraryName names a device's library also when it did not say.
func deviceLibraryName(d ml.DeviceInfo) string {
	if d.Library != "" {
		return d.Library
	}
	if n := strings.TrimRight(d.Name, "0123456789"); n != "" {
		return n
	}
	return filepath.Base(libraryDir(d))
}

// checkDevices returns the devices fit to use, and a fault for each device
// left out or corrected. A device without a PCI id while another library
// reports a GPU of the same size is taken to be that GPU seen twice.
func checkDevices(devices []ml.DeviceInfo) ([]ml.DeviceInfo, []deviceFault) {
	var out []ml.DeviceInfo
	var faults []deviceFault
	fault := func(d ml.DeviceInfo, problem, instead string, args ...any) {
		faults = append(faults, deviceFault{Device: d, Problem: fmt.Sprintf(problem, args...), Instead: instead})
	}
	for _, d := range devices {
		switch {
		case d.Library == "":
			fault(d, "no library name", "device left out")
			continue
		case d.TotalMemory == 0:
			fault(d, "0 bytes of memory", "device left out")
			continue
		case d.TotalMemory > maxDeviceMemory:
			fault(d, "%s of memory, more than the %s accepted", "device left out",
				format.HumanBytes2(d.TotalMemory), format.HumanBytes2(maxDeviceMemory))
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
	// Without a PCI id, the same size is the best evidence of the same GPU.
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
		// Alone in its library (Metal) it cannot be confused with anything.
		if slices.ContainsFunc(out, func(o ml.DeviceInfo) bool { return o.Library != d.Library }) {
			fault(d, "no PCI id", "used as a GPU of its own; it cannot be matched with the same GPU under another library")
		}
		kept = append(kept, d)
	}
	return kept, faults
}

func logDeviceFaults(faults []deviceFault) {
	for _, f := range faults {
		d := f.Device
		lib := deviceLibraryName(d)
		slog.Warn(deviceFaultMsg, "library", lib, "name", d.Name, "description", d.Description, "id", d.ID,
			"pci_id", d.PCIID, "libdirs", strings.Join(d.LibraryPath, ","), "problem", f.Problem, "instead", f.Instead)
	}
}
