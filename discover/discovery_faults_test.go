package discover

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"
)

func faultDevice(lib, id, pci string, totalMiB uint64) ml.DeviceInfo {
	return ml.DeviceInfo{
		DeviceID:    ml.DeviceID{ID: id, Library: lib},
		Name:        lib + "0",
		PCIID:       pci,
		TotalMemory: totalMiB << 20,
		FreeMemory:  totalMiB << 20,
	}
}

func TestCheckDevices(t *testing.T) {
	rocm := faultDevice("ROCm", "GPU-1", "0000:03:00.0", 16384)
	vk := faultDevice("Vulkan", "vk-1", "0000:03:00.0", 16384)
	noLib := faultDevice("", "GPU-1", "0000:03:00.0", 16384)
	noLib.Name = "ROCm0"
	zero := faultDevice("ROCm", "GPU-1", "0000:03:00.0", 0)
	huge := faultDevice("ROCm", "GPU-1", "0000:03:00.0", 1<<30)
	overFree := rocm
	overFree.FreeMemory = rocm.TotalMemory * 2
	dup := faultDevice("ROCm", "GPU-2", "0000:03:00.0", 16384)
	vkNoPCI := faultDevice("Vulkan", "vk-1", "", 16384)
	vkOther := faultDevice("Vulkan", "vk-2", "", 8192)

	tests := []struct {
		name     string
		in       []ml.DeviceInfo
		keep     []string // library/id kept
		problems []string // "library: problem -> instead"
	}{
		{name: "healthy twin", in: []ml.DeviceInfo{rocm, vk}, keep: []string{"ROCm/GPU-1", "Vulkan/vk-1"}},
		{
			name: "no library name", in: []ml.DeviceInfo{noLib, vk}, keep: []string{"Vulkan/vk-1"},
			problems: []string{"ROCm: no library name -> device left out"},
		},
		{
			name: "zero memory", in: []ml.DeviceInfo{zero, vk}, keep: []string{"Vulkan/vk-1"},
			problems: []string{"ROCm: 0 bytes of memory -> device left out"},
		},
		{
			name: "absurd memory", in: []ml.DeviceInfo{huge, vk}, keep: []string{"Vulkan/vk-1"},
			problems: []string{"ROCm: 1048576.0 GiB of memory, more than the 65536.0 GiB accepted -> device left out"},
		},
		{
			name: "free above total", in: []ml.DeviceInfo{overFree}, keep: []string{"ROCm/GPU-1"},
			problems: []string{"ROCm: 32.0 GiB free of 16.0 GiB -> free memory taken as the total"},
		},
		{
			name: "same PCI id twice", in: []ml.DeviceInfo{rocm, dup, vk}, keep: []string{"ROCm/GPU-1", "Vulkan/vk-1"},
			problems: []string{"ROCm: PCI id 0000:03:00.0 already reported for device GPU-1 -> device left out, the GPU is counted once"},
		},
		{
			name: "no PCI id, twin of the same size", in: []ml.DeviceInfo{rocm, vkNoPCI}, keep: []string{"ROCm/GPU-1"},
			problems: []string{"Vulkan: no PCI id -> device left out: taken to be the ROCm GPU 0000:03:00.0 of the same size, so that it is not counted twice"},
		},
		{name: "no PCI id, alone (Metal)", in: []ml.DeviceInfo{faultDevice("Metal", "0", "", 16384)}, keep: []string{"Metal/0"}},
		{
			name: "no PCI id, no twin", in: []ml.DeviceInfo{rocm, vkOther}, keep: []string{"ROCm/GPU-1", "Vulkan/vk-2"},
			problems: []string{"Vulkan: no PCI id -> used as a GPU of its own; it cannot be matched with the same GPU under another library"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, faults := checkDevices(tt.in)
			var keep, problems []string
			for _, d := range ok {
				keep = append(keep, d.Library+"/"+d.ID)
				if d.FreeMemory > d.TotalMemory {
					t.Errorf("%s kept with %d free of %d", d.ID, d.FreeMemory, d.TotalMemory)
				}
			}
			for _, f := range faults {
				problems = append(problems, fmt.Sprintf("%s: %s -> %s", deviceLibraryName(f.Device), f.Problem, f.Instead))
			}
			if diff := cmp.Diff(tt.keep, keep); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.problems, problems); diff != "" {
				t.Errorf("faults (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNextLibrary: the library a model moves to after a runner's death is
// Decide's, with the learned rule in force.
func TestNextLibrary(t *testing.T) {
	rocm := faultDevice("ROCm", "GPU-1", "0000:03:00.0", 16384)
	rocm.ComputeMajor = 0x12
	vk := faultDevice("Vulkan", "vk-1", "0000:03:00.0", 16384)
	twin := Discovery{Devices: []ml.DeviceInfo{rocm, vk}}
	denyROCm := []QuirkRule{{Library: "ROCm", ComputePattern: "gfx1200", ArchPatterns: []string{"qwen2"}, Action: QuirkUseOtherLibrary, Source: QuirkSourceLearned}}
	denyBoth := append(denyROCm, QuirkRule{Library: "Vulkan", ComputePattern: "*", ArchPatterns: []string{"qwen2"}, Action: QuirkUseOtherLibrary})
	tests := []struct {
		name  string
		found Discovery
		rules []QuirkRule
		want  string
	}{
		{"the Vulkan twin", twin, denyROCm, "Vulkan"},
		{"both denied", twin, denyBoth, "CPU"},
		{"no twin known", Discovery{Devices: []ml.DeviceInfo{rocm}}, denyROCm, "CPU"},
		{"nothing discovered", Discovery{}, denyROCm, "CPU"},
	}
	for _, tt := range tests {
		if got := NextLibrary(tt.found, "0000:03:00.0", "ROCm", "gfx1200", ModelLoad{Arch: "qwen2"}, tt.rules...); got != tt.want {
			t.Errorf("%s: NextLibrary = %q, want %q", tt.name, got, tt.want)
		}
	}
}
