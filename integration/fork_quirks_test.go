//go:build integration

package integration

// The fork's quirk table: the built-in rule (ROCm on gfx1200 for the Qwen3
// family), OLLAMA_BACKEND_DENYLIST (none, whole-GPU denial read from a fake
// KFD sysfs tree, queues1), with the fake twin posing as a gfx1200 (or
// gfx1100) Radeon seen by ROCm and Vulkan.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

const forkQuirkMsg = "backend quirk: model runs on another library of the same GPU"

// TestForkQuirkBuiltin: default settings on a gfx1200: a qwen3 model loads
// on the Vulkan twin (its runner never opens libggml-hip.so), a qwen2 model
// on ROCm of the same GPU, both at once; /api/ps, `ollama ps` and
// /api/backends say so.
func TestForkQuirkBuiltin(t *testing.T) {
	forkBin(t)
	for _, layout := range forkLayouts {
		t.Run(layout.String(), func(t *testing.T) {
			bed := newForkBed(t, layout)
			s := bed.start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t))

			rec := forkOneRecord(t, s.Server, "backend library chosen")
			forkCheckFields(t, "backend library chosen", rec, map[string]string{
				"library": "ROCm", "compute": "gfx1200", "pci_id": forkPCIID,
				"alternates": "Vulkan (default order CUDA > ROCm > Vulkan)",
			})

			q3, q2 := forkCreateTiny(t, s.Server, "qwen3"), forkCreateTiny(t, s.Server, "qwen2")
			// qwen2 is not in the Qwen3 family: it keeps ROCm
			forkGenerate(t, s.Server, q2)
			if recs := s.LogRecords(forkQuirkMsg); len(recs) != 0 {
				t.Errorf("quirk applied to qwen2: %v", recs)
			}
			r2 := forkLastRunner(t, s.Server, q2)
			if got := r2.Env["OLLAMA_GGML_BACKENDS"]; got != "hip,cpu" {
				t.Errorf("qwen2 runner OLLAMA_GGML_BACKENDS=%q, want hip,cpu", got)
			}
			s.checkRunnerLibs(t, r2, "libggml-hip.so")

			forkGenerate(t, s.Server, q3)
			rec = forkOneRecord(t, s.Server, forkQuirkMsg)
			forkCheckFields(t, "quirk", rec, map[string]string{
				"level": "INFO", "arch": "qwen3", "pci_id": forkPCIID, "compute": "gfx1200",
				"denied": "ROCm", "library": "Vulkan", "rule": "~rocm:gfx1200:qwen3",
			})
			t.Logf("log: %s model=%s arch=%s denied=%s rule=%s library=%s", rec["msg"], rec["model"], rec["arch"], rec["denied"], rec["rule"], rec["library"])
			if rec != nil && !forkHasValue(rec, "builtin") {
				t.Errorf("quirk line does not name the rule's source builtin: %v", rec)
			}
			r3 := forkLastRunner(t, s.Server, q3)
			if got := r3.Env["OLLAMA_GGML_BACKENDS"]; got != "vulkan,cpu" {
				t.Errorf("qwen3 runner OLLAMA_GGML_BACKENDS=%q, want vulkan,cpu", got)
			}
			s.checkRunnerLibs(t, r3, "libggml-vulkan.so")

			// both loaded at once, each on its library
			if e := forkPsEntry(t, s.Server, q3); e.Library != "Vulkan" || e.SizeVRAM == 0 {
				t.Errorf("/api/ps qwen3: %+v, want library Vulkan in VRAM", e)
			}
			if e := forkPsEntry(t, s.Server, q2); e.Library != "ROCm" || e.SizeVRAM == 0 {
				t.Errorf("/api/ps qwen2: %+v, want library ROCm in VRAM", e)
			}
			out := forkCli(t, s.Server, "ps")
			for _, want := range []string{"100% GPU (Vulkan)", "100% GPU (ROCm)"} {
				if !strings.Contains(out, want) {
					t.Errorf("ollama ps lacks %q:\n%s", want, out)
				}
			}
			t.Logf("ollama ps:\n%s", out)

			l := forkBackends(t, s.Server)
			rocm, ok := l.row("ROCm", "chosen")
			if !ok || !slices.ContainsFunc(rocm.Rules, func(r string) bool {
				return strings.Contains(r, "rocm:gfx1200:qwen3") && strings.Contains(r, "builtin")
			}) {
				t.Errorf("/api/backends ROCm row %+v (found %v): want status chosen with the built-in gfx1200 rule", rocm, ok)
			}
			if vk, ok := l.row("Vulkan", "alternate"); !ok || vk.PCIID != forkPCIID {
				t.Errorf("/api/backends: no Vulkan alternate of %s: %+v", forkPCIID, l.Backends)
			}
			table := forkCli(t, s.Server, "backends")
			if !strings.Contains(table, "rocm:gfx1200:qwen3") {
				t.Errorf("ollama backends does not show the rule:\n%s", table)
			}
			t.Logf("ollama backends:\n%s", table)
			forkCheckServes(t, s.Server, q3)
			forkCheckServes(t, s.Server, q2)
		})
	}
}

// TestForkDenylist: OLLAMA_BACKEND_DENYLIST against the same gfx1200 twin.
func TestForkDenylist(t *testing.T) {
	forkBin(t)
	beds := map[Layout]*forkBed{}
	for _, layout := range forkLayouts {
		beds[layout] = newForkBed(t, layout)
	}

	// none: no rules; qwen3 stays on ROCm.
	t.Run("none", func(t *testing.T) {
		s := beds[Flat].start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t), "OLLAMA_BACKEND_DENYLIST=none")
		q3 := forkCreateTiny(t, s.Server, "qwen3")
		forkGenerate(t, s.Server, q3)
		if recs := s.LogRecords(forkQuirkMsg); len(recs) != 0 {
			t.Errorf("quirk applied with OLLAMA_BACKEND_DENYLIST=none: %v", recs)
		}
		if e := forkPsEntry(t, s.Server, q3); e.Library != "ROCm" {
			t.Errorf("/api/ps qwen3 library %q, want ROCm", e.Library)
		}
		s.checkRunnerLibs(t, forkLastRunner(t, s.Server, q3), "libggml-hip.so")
		if rocm, _ := forkBackends(t, s.Server).row("ROCm", "chosen"); len(rocm.Rules) != 0 {
			t.Errorf("/api/backends ROCm rules %v, want none", rocm.Rules)
		}
		forkCheckServes(t, s.Server, q3)
	})

	// rocm:gfx1200 denies every use: HIP is never loaded, by discovery
	// or by any runner, and both models run on Vulkan.
	for _, layout := range forkLayouts {
		t.Run("rocm:gfx1200/"+layout.String(), func(t *testing.T) {
			s := beds[layout].start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t), "OLLAMA_BACKEND_DENYLIST=rocm:gfx1200")
			rec := forkOneRecord(t, s.Server, "backend quirk: ROCm kept away from GPU at discovery, every use is denied")
			forkCheckFields(t, "discovery quirk", rec, map[string]string{
				"level": "INFO", "pci_id": forkPCIID, "compute": "gfx1200", "rule": "rocm:gfx1200",
			})
			if rec != nil && !forkHasValue(rec, "env") {
				t.Errorf("discovery quirk line does not name the rule's source env: %v", rec)
			}
			if got := forkInferenceLibraries(s.Server); !slices.Equal(got, []string{"Vulkan"}) {
				t.Errorf("inference compute %v, want [Vulkan]", got)
			}
			forkCheckNoHIP(t, s, layout)
			for _, arch := range []string{"qwen3", "qwen2"} {
				m := forkCreateTiny(t, s.Server, arch)
				forkGenerate(t, s.Server, m)
				if e := forkPsEntry(t, s.Server, m); e.Library != "Vulkan" {
					t.Errorf("/api/ps %s library %q, want Vulkan", arch, e.Library)
				}
				s.checkRunnerLibs(t, forkLastRunner(t, s.Server, m), "libggml-vulkan.so")
				forkCheckServes(t, s.Server, m)
			}
			forkCheckNoHIP(t, s, layout) // model loads and refreshes included
		})
	}

	// A second AMD GPU (gfx1100) that is not denied: HIP is loaded, but
	// only sees that GPU (ROCR_VISIBLE_DEVICES), so the ROCm discovery
	// runner never initialises the denied gfx1200.
	for _, layout := range forkLayouts {
		t.Run("rocm:gfx1200+gfx1100/"+layout.String(), func(t *testing.T) {
			const otherID = 0x00c0ffee00001100
			root := forkWriteFakeSysfs(t, t.TempDir(),
				forkKFDGPU{GfxVersion: 120000, Bus: forkBus, UniqueID: forkHIPUniqueID},
				forkKFDGPU{GfxVersion: 110000, Bus: 4, UniqueID: otherID})
			s := beds[layout].start(t, "OLLAMA_SYSFS_ROOT="+root, "OLLAMA_BACKEND_DENYLIST=rocm:gfx1200")
			forkOneRecord(t, s.Server, "backend quirk: ROCm kept away from GPU at discovery, every use is denied")
			want := fmt.Sprintf("GPU-%016x", uint64(otherID))
			hipPIDs := s.loadedBy(t, s.HIP)
			if len(hipPIDs) == 0 {
				t.Errorf("HIP was not loaded at all; with a gfx1100 left it should be")
			}
			for _, r := range s.Runners() {
				if !hipPIDs[r.PID] {
					continue
				}
				if got := r.Env["ROCR_VISIBLE_DEVICES"]; got != want {
					t.Errorf("runner %d loaded HIP with ROCR_VISIBLE_DEVICES=%q, want %q", r.PID, got, want)
				}
			}
			for _, e := range s.traceEvents(t) {
				if e.SO == s.HIP && e.Event == "registered" && e.Fields["devices"] != "0" {
					t.Errorf("the ROCm library registered the denied gfx1200 in pid %d: %v", e.PID, e.Fields)
				}
			}
			if got := forkInferenceLibraries(s.Server); !slices.Equal(got, []string{"Vulkan"}) {
				t.Errorf("inference compute %v, want [Vulkan]", got)
			}
			m := forkCreateTiny(t, s.Server, "qwen2")
			forkCheckServes(t, s.Server, m)
			if e := forkPsEntry(t, s.Server, m); e.Library != "Vulkan" {
				t.Errorf("/api/ps library %q, want Vulkan", e.Library)
			}
			t.Logf("HIP loaded by %d process(es), each with ROCR_VISIBLE_DEVICES=%s", len(hipPIDs), want)
		})
	}

	// gfx1100 is not in the built-in table: qwen3 stays on ROCm.
	t.Run("gfx1100", func(t *testing.T) {
		root := forkWriteFakeSysfs(t, t.TempDir(), forkKFDGPU{GfxVersion: 110000, Bus: forkBus, UniqueID: forkHIPUniqueID})
		s := beds[Flat].start(t, "OLLAMA_SYSFS_ROOT="+root, fakegpu.HIP.Env("COMPUTE", "gfx1100"))
		rec := forkOneRecord(t, s.Server, "backend library chosen")
		forkCheckFields(t, "backend library chosen", rec, map[string]string{"library": "ROCm", "compute": "gfx1100"})
		q3 := forkCreateTiny(t, s.Server, "qwen3")
		forkGenerate(t, s.Server, q3)
		if recs := s.LogRecords(forkQuirkMsg); len(recs) != 0 {
			t.Errorf("quirk applied on gfx1100: %v", recs)
		}
		if e := forkPsEntry(t, s.Server, q3); e.Library != "ROCm" {
			t.Errorf("/api/ps qwen3 library %q, want ROCm", e.Library)
		}
		s.checkRunnerLibs(t, forkLastRunner(t, s.Server, q3), "libggml-hip.so")
		if rocm, _ := forkBackends(t, s.Server).row("ROCm", "chosen"); len(rocm.Rules) != 0 {
			t.Errorf("/api/backends gfx1100 ROCm rules %v, want none", rocm.Rules)
		}
		forkCheckServes(t, s.Server, q3)
	})

	// queues1 keeps ROCm and starts its runner with GPU_MAX_HW_QUEUES=1.
	t.Run("queues1", func(t *testing.T) {
		s := beds[Flat].start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t), "OLLAMA_BACKEND_DENYLIST=none rocm:gfx1200:*=queues1")
		q3 := forkCreateTiny(t, s.Server, "qwen3")
		forkGenerate(t, s.Server, q3)
		if e := forkPsEntry(t, s.Server, q3); e.Library != "ROCm" {
			t.Errorf("/api/ps qwen3 library %q, want ROCm", e.Library)
		}
		r := forkLastRunner(t, s.Server, q3)
		if got, ok := r.Env["GPU_MAX_HW_QUEUES"]; got != "1" {
			t.Errorf("ROCm runner GPU_MAX_HW_QUEUES=%q (set %v), want 1", got, ok)
		}
		s.checkRunnerLibs(t, r, "libggml-hip.so")
		for _, d := range s.Runners() {
			if d.IsDiscovery() && d.Env["GPU_MAX_HW_QUEUES"] != "" {
				t.Logf("note: discovery runner %d has GPU_MAX_HW_QUEUES=%q", d.PID, d.Env["GPU_MAX_HW_QUEUES"])
			}
		}
		if rocm, _ := forkBackends(t, s.Server).row("ROCm", "chosen"); !slices.ContainsFunc(rocm.Rules, func(r string) bool { return strings.Contains(r, "=queues1") }) {
			t.Errorf("/api/backends ROCm rules %v, want the queues1 rule", rocm.Rules)
		}
		forkCheckServes(t, s.Server, q3)
	})
}

// forkCheckNoHIP asserts no process loaded the fake HIP library, and how it
// was kept out: flat, every runner was told OLLAMA_GGML_BACKENDS without
// hip; subdir, no runner was given the rocm folder.
func forkCheckNoHIP(t *testing.T, s *forkServer, layout Layout) {
	t.Helper()
	if pids := s.loadedBy(t, s.HIP); len(pids) != 0 {
		t.Errorf("libggml-hip.so loaded by pid(s) %v although every use of ROCm on the GPU is denied", pids)
	}
	for _, r := range s.Runners() {
		if r.MapsLib("libggml-hip.so") {
			t.Errorf("runner %d maps libggml-hip.so", r.PID)
		}
		be, lp := r.Env["OLLAMA_GGML_BACKENDS"], r.Env["OLLAMA_LIBRARY_PATH"]
		switch layout {
		case Flat:
			if be == "" || slices.Contains(strings.Split(be, ","), "hip") {
				t.Errorf("flat: runner %d OLLAMA_GGML_BACKENDS=%q, want a list without hip", r.PID, be)
			}
		case Subdir:
			if strings.Contains(lp, "/rocm") {
				t.Errorf("subdir: runner %d OLLAMA_LIBRARY_PATH=%q includes the rocm folder", r.PID, lp)
			}
		}
	}
}

// TestForkDenylistRejected: a malformed entry stops `ollama serve` at once
// with one line naming it.
func TestForkDenylistRejected(t *testing.T) {
	bin := forkBin(t)
	for _, entry := range []string{"rocm", "rocm:gfx1200=fast", "metal:gfx1200", "rocm::qwen3", "none;vulkan:0.0:"} {
		t.Run(strings.ReplaceAll(entry, ";", "_"), func(t *testing.T) {
			t.Parallel()
			bad := entry
			if i := strings.LastIndex(bad, ";"); i >= 0 {
				bad = bad[i+1:]
			}
			line := forkRefuseToServe(t, bin, []string{"OLLAMA_BACKEND_DENYLIST=" + entry},
				"Error: OLLAMA_BACKEND_DENYLIST entry", fmt.Sprintf("%q", bad), "library:compute[:arch[,arch...]][=queues1]")
			t.Logf("%s", line)
		})
	}
}

// TestForkQuirkNoVulkan: with no Vulkan library installed, the built-in
// rule leaves the gfx1200 out for a qwen3 model (WARN, the model runs on
// the CPU without opening libggml-hip.so) while qwen2 keeps ROCm.
func TestForkQuirkNoVulkan(t *testing.T) {
	bed := newForkBed(t, Flat, fakegpu.HIP)
	s := bed.start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t))
	rec := forkOneRecord(t, s.Server, "backend library chosen")
	forkCheckFields(t, "backend library chosen", rec, map[string]string{"library": "ROCm", "alternates": "none"})
	q3, q2 := forkCreateTiny(t, s.Server, "qwen3"), forkCreateTiny(t, s.Server, "qwen2")
	forkGenerate(t, s.Server, q2)
	if e := forkPsEntry(t, s.Server, q2); e.Library != "ROCm" {
		t.Errorf("/api/ps qwen2 library %q, want ROCm", e.Library)
	}

	forkGenerate(t, s.Server, q3)
	const leftOut = "backend quirk: GPU left out for this model, no allowed library can drive it; install the Vulkan backend (ollama-vulkan) to use it"
	rec = forkOneRecord(t, s.Server, leftOut)
	forkCheckFields(t, "left out", rec, map[string]string{"level": "WARN", "arch": "qwen3", "pci_id": forkPCIID, "denied": "ROCm", "rule": "~rocm:gfx1200:qwen3"})
	if e := forkPsEntry(t, s.Server, q3); e.SizeVRAM != 0 || e.Library != "" {
		t.Errorf("/api/ps qwen3 %+v, want it on the CPU", e)
	}
	r := forkLastRunner(t, s.Server, q3)
	if got := r.Env["OLLAMA_GGML_BACKENDS"]; got != "cpu" {
		t.Errorf("qwen3 runner OLLAMA_GGML_BACKENDS=%q, want cpu", got)
	}
	s.checkRunnerLibs(t, r)
	forkCheckServes(t, s.Server, q3)
	forkCheckServes(t, s.Server, q2)
}
