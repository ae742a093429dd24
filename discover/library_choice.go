package discover

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/ollama/ollama/format"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// libraryChoice is one physical device with every library that can drive
// it, best first; the device is counted once, as Chosen.
type libraryChoice struct {
	Chosen     ml.DeviceInfo
	Alternates []ml.DeviceInfo
	// Reasons[i] says why Alternates[i] lost to the library before it.
	Reasons []string
}

// excludedLibrary is a device of a library OLLAMA_LLM_LIBRARY does not name.
type excludedLibrary struct {
	Device ml.DeviceInfo
	Reason string
}

// chooseLibraries groups the devices that are one physical device
// (ml.DeviceInfo.Compare) and ranks each group with the user's preference.
func chooseLibraries(devices []ml.DeviceInfo, pref backends.Preference) ([]libraryChoice, []excludedLibrary) {
	var choices []libraryChoice
	var excluded []excludedLibrary
	for _, d := range devices {
		if pref.IsSet() {
			if _, ok := pref.Rank(d.Library, libraryDir(d)); !ok {
				excluded = append(excluded, excludedLibrary{Device: d, Reason: fmt.Sprintf("OLLAMA_LLM_LIBRARY=%s does not request %s", pref, d.Library)})
				continue
			}
		}
		placed := false
		for i := range choices {
			switch choices[i].Chosen.Compare(d) {
			case ml.SameBackendDevice:
				// The same library found twice: keep the first, as upstream does.
				placed = true
			case ml.DuplicateDevice:
				choices[i].add(d, pref)
				placed = true
			}
			if placed {
				break
			}
		}
		if !placed {
			choices = append(choices, libraryChoice{Chosen: d})
		}
	}
	return choices, excluded
}

// add puts another library of the same device before the first it beats.
func (c *libraryChoice) add(d ml.DeviceInfo, pref backends.Preference) {
	ranked := append([]ml.DeviceInfo{c.Chosen}, c.Alternates...)
	pos := len(ranked)
	for i, have := range ranked {
		if have.Library == d.Library {
			return
		}
		if haveWins, _ := pref.Prefer(libraryOption(have), libraryOption(d)); !haveWins && pos == len(ranked) {
			pos = i
		}
	}
	ranked = append(ranked[:pos], append([]ml.DeviceInfo{d}, ranked[pos:]...)...)
	c.Chosen, c.Alternates = ranked[0], ranked[1:]
	c.Reasons = make([]string, len(c.Alternates))
	for i := range c.Alternates {
		_, c.Reasons[i] = pref.Prefer(libraryOption(ranked[i]), libraryOption(c.Alternates[i]))
	}
}

func choiceDevices(choices []libraryChoice) []ml.DeviceInfo {
	out := make([]ml.DeviceInfo, 0, len(choices))
	for _, c := range choices {
		out = append(out, c.Chosen)
	}
	return out
}

func libraryOption(d ml.DeviceInfo) backends.Option {
	return backends.Option{Library: d.Library, LibraryPath: d.LibraryPath}
}

func libraryDir(d ml.DeviceInfo) string {
	if len(d.LibraryPath) == 0 {
		return ""
	}
	return d.LibraryPath[len(d.LibraryPath)-1]
}

// logLibraryChoices explains discovery in the log.
func logLibraryChoices(p Plan, pref backends.Preference) {
	choices, excluded := p.Choices, p.Excluded
	for _, c := range choices {
		others := "none"
		if len(c.Alternates) > 0 {
			var parts []string
			for i, a := range c.Alternates {
				parts = append(parts, fmt.Sprintf("%s (%s)", a.Library, c.Reasons[i]))
			}
			others = strings.Join(parts, "; ")
		}
		slog.Info("backend library chosen",
			"name", c.Chosen.Name,
			"description", c.Chosen.Description,
			"pci_id", c.Chosen.PCIID,
			"compute", c.Chosen.Compute(),
			"library", c.Chosen.Library,
			"total", format.HumanBytes2(c.Chosen.TotalMemory),
			"alternates", others)
	}
	for _, e := range excluded {
		slog.Info("backend library not used",
			"name", e.Device.Name,
			"description", e.Device.Description,
			"pci_id", e.Device.PCIID,
			"library", e.Device.Library,
			"reason", e.Reason)
	}
	for _, missing := range p.Missing {
		found := []string{}
		for _, c := range choices {
			found = append(found, fmt.Sprintf("%s %s", c.Chosen.Library, c.Chosen.Description))
		}
		for _, e := range excluded {
			found = append(found, fmt.Sprintf("%s %s (not requested)", e.Device.Library, e.Device.Description))
		}
		if len(found) == 0 {
			found = append(found, "no GPU")
		}
		slog.Error("requested library found no device; continuing with what remains",
			"OLLAMA_LLM_LIBRARY", pref.String(),
			"library", missing,
			"found", strings.Join(found, ", "))
	}
}

// missingLibraries lists the libraries OLLAMA_LLM_LIBRARY names that drive
// no device found.
func missingLibraries(choices []libraryChoice, pref backends.Preference) []string {
	var missing []string
	for _, name := range pref.LibraryNames() {
		if name == "cpu" {
			continue
		}
		found := false
		for _, c := range choices {
			for _, d := range append([]ml.DeviceInfo{c.Chosen}, c.Alternates...) {
				found = found || backends.NameMatches(name, d.Library, libraryDir(d))
			}
		}
		if !found {
			missing = append(missing, name)
		}
	}
	return missing
}

// RunnerLibrary names the libraries of a runner's devices, each once
// ("CUDA,Vulkan"); "" for a runner on the CPU only.
func RunnerLibrary(ids []ml.DeviceID) string {
	var names []string
	for _, id := range ids {
		if id.Library == "" || strings.EqualFold(id.Library, "cpu") {
			continue
		}
		name := id.Library
		if name == backends.RPC {
			name += " " + remoteEndpoint(id)
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return strings.Join(names, ",")
}
