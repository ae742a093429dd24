//go:build integration

package integration

// Reliability scenarios (docs/reliability.md): backend libraries that
// misbehave at discovery, with the fake twin's fault modes. Each case
// asserts the one WARN line that names the library and what the server did
// instead, what /api/ps answers, that the server still serves, and that
// stopping it leaves no process behind.

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

// The fork's discovery fault lines (discoveryFaultMsg and deviceFaultMsg
// in discover).
const (
	relDiscoveryFaultMsg = "backend library failed during GPU discovery; left out"
	relDeviceFaultMsg    = "backend library reported a faulty device"
)

// relStopClean stops the server the way a user does (SIGTERM) and fails the
// test when any process of it (a runner) is left once it has exited.
func relStopClean(t testing.TB, s *Server) {
	t.Helper()
	left, err := s.StopGracefully(30 * time.Second)
	if err != nil {
		t.Error(err)
	}
	for _, p := range left {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
		t.Errorf("process left behind after the server exited: pid %d ppid %d %s\n%s", p.PID, p.PPID, strings.Join(p.Args, " "), st)
	}
}

// relFaultLines are the discovery fault lines of the log.
func relFaultLines(s *Server) []LogRecord {
	return append(s.LogRecords(relDiscoveryFaultMsg), s.LogRecords(relDeviceFaultMsg)...)
}

type relDiscoveryCase struct {
	name   string
	layout Layout
	env    []string
	// msg and want describe the one fault line expected.
	msg  string
	want map[string]string
	// library is the one "inference compute" library, and so what a qwen2
	// model runs on.
	library string
	// hang: the fault costs the discovery timeout (run in parallel).
	hang bool
}

var relDiscoveryCases = []relDiscoveryCase{
	{
		// The HIP library aborts in ggml_backend_init. Flat: it shares the
		// discovery runner with Vulkan, which is discovered again without it
		// (upstream ends on the CPU).
		name: "crash/flat", layout: Flat, env: []string{fakegpu.HIP.Env("FAULT", "crash")},
		msg:     relDiscoveryFaultMsg,
		want:    map[string]string{"level": "WARN", "library": "hip", "fault": "crashed", "instead": "discovering vulkan again without it", "file": "~libggml-hip.so"},
		library: "Vulkan",
	},
	{
		name: "crash/subdir", layout: Subdir, env: []string{fakegpu.HIP.Env("FAULT", "segv")},
		msg:     relDiscoveryFaultMsg,
		want:    map[string]string{"level": "WARN", "library": "hip", "fault": "crashed", "instead": "its GPUs are not used through it", "file": "~rocm/libggml-hip.so"},
		library: "Vulkan",
	},
	{
		// Hangs in ggml_backend_init: the discovery timeout (30 s) once.
		name: "hang/flat", layout: Flat, env: []string{fakegpu.HIP.Env("FAULT", "hang")},
		msg:     relDiscoveryFaultMsg,
		want:    map[string]string{"level": "WARN", "library": "hip", "fault": "hung", "instead": "discovering vulkan again without it"},
		library: "Vulkan", hang: true,
	},
	{
		// The Vulkan twin reports no PCI id: it cannot be matched with the
		// ROCm device, and would count the one GPU twice.
		name: "no-pci-id/flat", layout: Flat, env: []string{fakegpu.Vulkan.Env("PCI_ID", "none")},
		msg:     relDeviceFaultMsg,
		want:    map[string]string{"level": "WARN", "library": "Vulkan", "problem": "no PCI id", "instead": "~taken to be the ROCm GPU " + forkPCIID},
		library: "ROCm",
	},
	{
		name: "zero-memory/flat", layout: Flat, env: []string{fakegpu.HIP.Env("TOTAL_MIB", "0")},
		msg:     relDeviceFaultMsg,
		want:    map[string]string{"level": "WARN", "library": "ROCm", "problem": "0 bytes of memory", "instead": "device left out"},
		library: "Vulkan",
	},
	{
		name: "absurd-memory/subdir", layout: Subdir, env: []string{fakegpu.HIP.Env("TOTAL_MIB", "1073741824")},
		msg:     relDeviceFaultMsg,
		want:    map[string]string{"level": "WARN", "library": "ROCm", "problem": "1048576.0 GiB of memory, more than the 65536.0 GiB accepted", "instead": "device left out"},
		library: "Vulkan",
	},
	{
		name: "no-library-name/subdir", layout: Subdir, env: []string{fakegpu.HIP.Env("FAULT", "nolibname")},
		msg:     relDeviceFaultMsg,
		want:    map[string]string{"level": "WARN", "library": "ROCm", "name": "ROCm0", "problem": "no library name", "instead": "device left out"},
		library: "Vulkan",
	},
	{
		// One GPU reported twice by the ROCm library (two ids, one PCI id).
		name: "same-pci-id-twice/flat", layout: Flat, env: []string{fakegpu.HIP.Env("FAULT", "dup-pci")},
		msg:     relDeviceFaultMsg,
		want:    map[string]string{"level": "WARN", "library": "ROCm", "id": "GPU-fa4e000000000002", "problem": "PCI id " + forkPCIID + " already reported for device GPU-fa4e000000000001"},
		library: "ROCm",
	},
}

// TestForkReliabilityDiscovery: one server per fault; it starts, uses what
// works, and says what misbehaved in one WARN line.
func TestForkReliabilityDiscovery(t *testing.T) {
	forkBin(t)
	beds := map[Layout]*forkBed{}
	for _, layout := range forkLayouts {
		beds[layout] = newForkBed(t, layout)
	}
	for _, c := range relDiscoveryCases {
		t.Run(c.name, func(t *testing.T) {
			if c.hang {
				t.Parallel() // 30 s of waiting: overlap it with the rest
			}
			start := time.Now()
			s := beds[c.layout].start(t, append([]string{"OLLAMA_SYSFS_ROOT=" + forkRdna4Sysfs(t)}, c.env...)...)
			ready := time.Since(start)
			lines := relFaultLines(s.Server)
			if len(lines) != 1 {
				t.Errorf("want one fault line, got %d: %v", len(lines), lines)
			}
			rec := forkOneRecord(t, s.Server, c.msg)
			forkCheckFields(t, c.name, rec, c.want)
			if rec != nil {
				t.Logf("log: level=%s msg=%q library=%s %s", rec["level"], rec["msg"], rec["library"], relFaultDetail(rec))
			}
			if got := forkInferenceLibraries(s.Server); !slices.Equal(got, []string{c.library}) {
				t.Errorf("inference compute %v, want [%s]", got, c.library)
			}

			m := forkCreateTiny(t, s.Server, "qwen2")
			var loads []time.Duration
			for i := 0; i < 2; i++ { // load, unload, load again
				st := time.Now()
				forkGenerate(t, s.Server, m)
				loads = append(loads, time.Since(st))
				if e := forkPsEntry(t, s.Server, m); e.Library != c.library || e.SizeVRAM == 0 {
					t.Errorf("/api/ps %+v, want the model in VRAM on %s", e, c.library)
				}
				if i == 0 {
					forkUnload(t, s.Server, m)
				}
			}
			t.Logf("ready after %s, loads %v", ready.Round(time.Millisecond), loads)
			if c.hang {
				// The timeout is paid once, at discovery: the hanging library
				// was initialised by exactly one process, and no load waits.
				hangs := 0
				for _, e := range s.traceEvents(t) {
					if e.Event == "fault" && e.Fields["mode"] == "hang" {
						hangs++
					}
				}
				if hangs != 1 {
					t.Errorf("the library hung in %d processes, want 1 (discovery, once)", hangs)
				}
				if ready > 60*time.Second {
					t.Errorf("ready after %s, want one discovery timeout (30 s) and little more", ready)
				}
				for _, l := range loads {
					if l > 20*time.Second {
						t.Errorf("a model load took %s after the hang: the timeout is paid again", l)
					}
				}
			}
			if n := len(relFaultLines(s.Server)); n != 1 {
				t.Errorf("%d fault lines after two model loads, want the one of discovery", n)
			}
			forkCheckServes(t, s.Server, m)
			relStopClean(t, s.Server)
		})
	}
}

// relFaultDetail formats the fields of a fault line that say what happened.
func relFaultDetail(rec LogRecord) string {
	var parts []string
	for _, k := range []string{"fault", "took", "problem", "instead", "file"} {
		if v, ok := rec[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%q", k, v))
		}
	}
	return strings.Join(parts, " ")
}
