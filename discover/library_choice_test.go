package discover

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

const lib = "/usr/lib/ollama"

// layouts gives a device's LibraryPath in each install layout.
var layouts = map[string]func(subdir string) []string{
	"flat":   func(string) []string { return []string{lib} },
	"subdir": func(subdir string) []string { return []string{lib, lib + "/" + subdir} },
}

func dev(layout, library, id, pci, compute string, integrated bool) ml.DeviceInfo {
	subdir := map[string]string{"ROCm": "rocm", "Vulkan": "vulkan", "CUDA": "cuda_v13"}[library]
	d := ml.DeviceInfo{
		DeviceID:    ml.DeviceID{ID: id, Library: library},
		Name:        library + id,
		Description: "test GPU " + pci,
		PCIID:       pci,
		Integrated:  integrated,
		TotalMemory: 16 << 30,
		LibraryPath: layouts[layout](subdir),
	}
	switch compute {
	case "gfx1200":
		d.ComputeMajor, d.ComputeMinor = 0x12, 0x00
	case "gfx1201":
		d.ComputeMajor, d.ComputeMinor = 0x12, 0x01
	case "gfx1100":
		d.ComputeMajor, d.ComputeMinor = 0x11, 0x00
	case "9.0":
		d.ComputeMajor, d.ComputeMinor = 9, 0
	}
	return d
}

// summary is what a test asserts of a choice: chosen library per physical
// device, then its alternates in order.
type summary struct {
	Chosen     string
	Alternates []string
}

func summarize(choices []libraryChoice) []summary {
	var out []summary
	for _, c := range choices {
		s := summary{Chosen: c.Chosen.Library + "@" + c.Chosen.PCIID + c.Chosen.ID}
		for _, a := range c.Alternates {
			s.Alternates = append(s.Alternates, a.Library)
		}
		out = append(out, s)
	}
	return out
}

func TestChooseLibraries(t *testing.T) {
	type deviceSet func(layout string) []ml.DeviceInfo
	sets := map[string]deviceSet{
		"rocm+vulkan twin": func(l string) []ml.DeviceInfo {
			return []ml.DeviceInfo{dev(l, "ROCm", "0", "0000:03:00.0", "gfx1200", false), dev(l, "Vulkan", "0", "0000:03:00.0", "", false)}
		},
		"vulkan found before rocm": func(l string) []ml.DeviceInfo {
			return []ml.DeviceInfo{dev(l, "Vulkan", "0", "0000:03:00.0", "", false), dev(l, "ROCm", "0", "0000:03:00.0", "gfx1200", false)}
		},
		"cuda+vulkan twin": func(l string) []ml.DeviceInfo {
			return []ml.DeviceInfo{dev(l, "CUDA", "GPU-1", "0000:01:00.0", "9.0", false), dev(l, "Vulkan", "0", "0000:01:00.0", "", false)}
		},
		"two amd gpus": func(l string) []ml.DeviceInfo {
			return []ml.DeviceInfo{
				dev(l, "ROCm", "0", "0000:03:00.0", "gfx1200", false), dev(l, "ROCm", "1", "0000:04:00.0", "gfx1100", false),
				dev(l, "Vulkan", "0", "0000:03:00.0", "", false), dev(l, "Vulkan", "1", "0000:04:00.0", "", false),
			}
		},
		"igpu+dgpu": func(l string) []ml.DeviceInfo {
			return []ml.DeviceInfo{
				dev(l, "ROCm", "0", "0000:03:00.0", "gfx1200", false),
				dev(l, "Vulkan", "0", "0000:03:00.0", "", false), dev(l, "Vulkan", "1", "0000:0c:00.0", "", true),
			}
		},
		"no pci ids": func(l string) []ml.DeviceInfo {
			// Without PCI ids, upstream from v0.30 still pairs a Vulkan device
			// with a ROCm or CUDA one of the same description
			// (ml.DeviceInfo.Compare, likelyVulkanDuplicate): twins.
			return []ml.DeviceInfo{dev(l, "ROCm", "0", "", "gfx1200", false), dev(l, "Vulkan", "0", "", "", false)}
		},
		"cpu only": func(string) []ml.DeviceInfo { return nil },
	}
	cases := []struct {
		set          string
		pref         string
		want         []summary
		wantExcluded []string
	}{
		{set: "rocm+vulkan twin", pref: "", want: []summary{{"ROCm@0000:03:00.00", []string{"Vulkan"}}}},
		{set: "rocm+vulkan twin", pref: "vulkan", want: []summary{{"Vulkan@0000:03:00.00", nil}}, wantExcluded: []string{"ROCm"}},
		{set: "rocm+vulkan twin", pref: "rocm", want: []summary{{"ROCm@0000:03:00.00", nil}}, wantExcluded: []string{"Vulkan"}},
		{set: "rocm+vulkan twin", pref: "vulkan,rocm", want: []summary{{"Vulkan@0000:03:00.00", []string{"ROCm"}}}},
		{set: "rocm+vulkan twin", pref: "vulkan,cpu", want: []summary{{"Vulkan@0000:03:00.00", nil}}, wantExcluded: []string{"ROCm"}},
		{set: "rocm+vulkan twin", pref: "cpu", wantExcluded: []string{"ROCm", "Vulkan"}},
		{set: "rocm+vulkan twin", pref: "cuda", wantExcluded: []string{"ROCm", "Vulkan"}},
		{set: "vulkan found before rocm", pref: "", want: []summary{{"ROCm@0000:03:00.00", []string{"Vulkan"}}}},
		{set: "vulkan found before rocm", pref: "vulkan,rocm", want: []summary{{"Vulkan@0000:03:00.00", []string{"ROCm"}}}},
		{set: "cuda+vulkan twin", pref: "", want: []summary{{"CUDA@0000:01:00.0GPU-1", []string{"Vulkan"}}}},
		{set: "cuda+vulkan twin", pref: "vulkan", want: []summary{{"Vulkan@0000:01:00.00", nil}}, wantExcluded: []string{"CUDA"}},
		{set: "cuda+vulkan twin", pref: "cuda_v13,vulkan", want: []summary{{"CUDA@0000:01:00.0GPU-1", []string{"Vulkan"}}}},
		{set: "two amd gpus", pref: "", want: []summary{
			{"ROCm@0000:03:00.00", []string{"Vulkan"}}, {"ROCm@0000:04:00.01", []string{"Vulkan"}},
		}},
		{set: "two amd gpus", pref: "vulkan,rocm", want: []summary{
			{"Vulkan@0000:03:00.00", []string{"ROCm"}}, {"Vulkan@0000:04:00.01", []string{"ROCm"}},
		}},
		{set: "igpu+dgpu", pref: "", want: []summary{
			{"ROCm@0000:03:00.00", []string{"Vulkan"}}, {"Vulkan@0000:0c:00.01", nil},
		}},
		{set: "igpu+dgpu", pref: "rocm", want: []summary{{"ROCm@0000:03:00.00", nil}}, wantExcluded: []string{"Vulkan", "Vulkan"}},
		{set: "no pci ids", pref: "", want: []summary{{"ROCm@0", []string{"Vulkan"}}}},
		{set: "no pci ids", pref: "vulkan", want: []summary{{"Vulkan@0", nil}}, wantExcluded: []string{"ROCm"}},
		{set: "cpu only", pref: "", want: nil},
		{set: "cpu only", pref: "vulkan", want: nil},
	}
	for _, tc := range cases {
		for layout := range layouts {
			t.Run(tc.set+"/"+tc.pref+"/"+layout, func(t *testing.T) {
				pref, err := envconfig.ParseLLMLibrary(tc.pref)
				if err != nil {
					t.Fatal(err)
				}
				choices, excluded := chooseLibraries(sets[tc.set](layout), pref)
				if diff := cmp.Diff(tc.want, summarize(choices)); diff != "" {
					t.Errorf("choices (-want +got):\n%s", diff)
				}
				var gotExcluded []string
				for _, e := range excluded {
					gotExcluded = append(gotExcluded, e.Device.Library)
				}
				if diff := cmp.Diff(tc.wantExcluded, gotExcluded); diff != "" {
					t.Errorf("excluded (-want +got):\n%s", diff)
				}
				// One physical device is counted once for memory.
				var total uint64
				for _, d := range choiceDevices(choices) {
					total += d.TotalMemory
				}
				if want := uint64(len(tc.want)) * (16 << 30); total != want {
					t.Errorf("total memory %d, want %d", total, want)
				}
				for _, c := range choices {
					if len(c.Reasons) != len(c.Alternates) {
						t.Errorf("%d reasons for %d alternates", len(c.Reasons), len(c.Alternates))
					}
				}
			})
		}
	}
}

func TestLogLibraryChoices(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	pref, _ := envconfig.ParseLLMLibrary("vulkan,rocm,cuda")
	devices := []ml.DeviceInfo{
		dev("flat", "ROCm", "0", "0000:03:00.0", "gfx1200", false),
		dev("flat", "Vulkan", "0", "0000:03:00.0", "", false),
	}
	p, _ := Decide(PlanInput{Discovery: Discovery{Devices: devices, Preference: pref}})
	logLibraryChoices(p, pref)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2 (one per physical device, one ERROR for cuda):\n%s", len(lines), buf.String())
	}
	for _, want := range []string{`level=INFO`, `msg="backend library chosen"`, `pci_id=0000:03:00.0`, `library=Vulkan`, `alternates="ROCm (OLLAMA_LLM_LIBRARY=vulkan,rocm,cuda lists Vulkan first)"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}
	for _, want := range []string{`level=ERROR`, `library=cuda`, `found="Vulkan test GPU 0000:03:00.0"`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("line %q lacks %q", lines[1], want)
		}
	}
}

// TestDiscoveryChoose: the record keeps every library's devices, the
// scheduler gets one device per GPU.
func TestDiscoveryChoose(t *testing.T) {
	devices := []ml.DeviceInfo{
		dev("subdir", "Vulkan", "0", "0000:03:00.0", "", false),
		dev("subdir", "ROCm", "0", "0000:03:00.0", "gfx1200", false),
	}
	found, got := Discovery{}.Choose(devices)
	if len(got) != 1 || got[0].Library != "ROCm" {
		t.Fatalf("Choose kept %+v, want the ROCm device only", got)
	}
	if diff := cmp.Diff(devices, found.Devices); diff != "" {
		t.Errorf("recorded devices (-want +got):\n%s", diff)
	}
	p, _ := Decide(PlanInput{Discovery: found})
	if len(p.Choices) != 1 || len(p.Choices[0].Alternates) != 1 || p.Choices[0].Alternates[0].Library != "Vulkan" {
		t.Errorf("choices = %+v, want ROCm with the Vulkan alternate", summarize(p.Choices))
	}
}

func TestRunnerLibrary(t *testing.T) {
	cases := []struct {
		ids  []ml.DeviceID
		want string
	}{
		{nil, ""},
		{[]ml.DeviceID{{ID: "0", Library: "Vulkan"}}, "Vulkan"},
		{[]ml.DeviceID{{ID: "0", Library: "CUDA"}, {ID: "1", Library: "CUDA"}, {ID: "0", Library: "Vulkan"}}, "CUDA,Vulkan"},
		{[]ml.DeviceID{{ID: "cpu", Library: "cpu"}}, ""},
	}
	for _, tc := range cases {
		if got := RunnerLibrary(tc.ids); got != tc.want {
			t.Errorf("RunnerLibrary(%v) = %q, want %q", tc.ids, got, tc.want)
		}
	}
}

func TestTwins(t *testing.T) {
	rocm := dev("flat", "ROCm", "GPU-1", "0000:03:00.0", "gfx1200", false)
	vk := dev("flat", "Vulkan", "vk-1", "0000:03:00.0", "", false)
	other := dev("flat", "ROCm", "GPU-2", "0000:04:00.0", "gfx1100", false)
	found := Discovery{Devices: []ml.DeviceInfo{rocm, vk, other}}
	// Only the chosen ROCm device of the first GPU has a twin; the lone
	// gfx1100 and the alternate itself have none.
	want := map[ml.DeviceID][]ml.DeviceID{rocm.DeviceID: {vk.DeviceID}}
	if diff := cmp.Diff(want, found.Twins()); diff != "" {
		t.Errorf("twins (-want +got):\n%s", diff)
	}
}
