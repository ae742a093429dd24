//go:build integration

package integration

// The fork on today's Ollama (v0.34, llama-server runner) in Debian's flat
// layout: the runtime root's real llama-server and ggml backends, Mesa
// lavapipe as a real Vulkan device, and the fake GPU backends (a ROCm
// gfx1200 and its Vulkan twin, one PCI id) built against the root's ggml.
// A runner's library is proven from the runner itself: its --device
// argument and environment, llama-server's own "using device" line, the
// fake backends' trace, and /api/ps.

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

// lsBed is an install tree in Debian's flat layout: bin/ollama and
// lib/ollama holding llama-server (a copy, so ggml searches that folder)
// and every ggml backend, with the fakes in place of real ones. With
// OBS_NATIVE_LIB (make integration RUNTIME=native) lib/ollama is a copy of
// that folder instead: the from-source build in its own layout.
type lsBed struct {
	dir   string
	bin   string
	trace string
}

func newLSBed(t testing.TB, bin string, fakes ...fakegpu.Variant) *lsBed {
	t.Helper()
	if err := fakegpu.Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	if native := os.Getenv("OBS_NATIVE_LIB"); native != "" {
		// The from-source build (make native): its own llama-server and
		// backends in their layout (subdir: lib/ollama/vulkan/). The fakes
		// are built against the runtime root's ggml, not this one.
		if len(fakes) > 0 {
			t.Skip("OBS_NATIVE_LIB: the fake backends match the runtime root's ggml, not the native build's")
		}
		if err := copyTree(native, filepath.Join(dir, "lib", "ollama")); err != nil {
			t.Fatal(err)
		}
	} else {
		var libs []string
		for _, v := range fakes {
			libs = append(libs, FakeLib(t, v))
		}
		if _, err := fakegpu.FlatTree(filepath.Join(dir, "lib", "ollama"), libs...); err != nil {
			t.Fatal(err)
		}
	}
	b := &lsBed{dir: dir, bin: filepath.Join(dir, "bin", "ollama"), trace: filepath.Join(dir, "trace.log")}
	if err := os.MkdirAll(filepath.Dir(b.bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(bin, b.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *lsBed) start(t testing.TB, env ...string) *Server {
	t.Helper()
	// One trace per server: the checks are about this server's processes.
	if err := os.Remove(b.trace); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	env = append([]string{fakegpu.SharedEnv("TRACE", b.trace), fakegpu.SharedEnv("PCI_ID", "0000:03:00.0")}, env...)
	return StartServer(t, ServerOptions{
		Bin:    b.bin,
		Env:    env,
		Prefix: []string{filepath.Join(RepoRoot(), "scripts", "inroot.sh"), fakegpu.RootName},
		// The test's temporary folders (the tree, fake sysfs trees) are
		// siblings of b.dir: the server runs in the root and must see them.
		Binds: []string{filepath.Dir(b.dir)},
	})
}

// runnerDevice is the --device argument of a runner ("" without one).
func runnerDevice(p Proc) string {
	if i := slices.Index(p.Args, "--device"); i >= 0 && i+1 < len(p.Args) {
		return p.Args[i+1]
	}
	return ""
}

// checkPlanLine asserts that the server's explanation of m's placement
// names the device its runner really got.
func checkPlanLine(t *testing.T, s *Server, m forkModel, r Proc) {
	t.Helper()
	if upstreamOnly() {
		return
	}
	recs := s.LogRecords("backend plan for model")
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i]["model"] == m.Name || strings.HasPrefix(recs[i]["model"], m.Name+":") {
			if got, want := recs[i]["device"], runnerDevice(r); got != want {
				t.Errorf("%s: the log's plan says device %q, the runner got --device %q", m.Name, got, want)
			}
			return
		}
	}
	t.Errorf("%s: no 'backend plan for model' line", m.Name)
}

// hipVisible counts the fake HIP's "visible" trace events of process
// pid (0: any) that saw its device: HIP initialised on the GPU.
func (b *lsBed) hipVisible(t *testing.T, pid int) int {
	t.Helper()
	evs, err := fakegpu.ReadTrace(b.trace)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range fakegpu.Filter(evs, "visible") {
		if e.Library == "ROCm" && e.Fields["visible"] == "1" && (pid == 0 || e.PID == pid) {
			n++
		}
	}
	return n
}

// TestLlamaServerLavapipe: OLLAMA_LLM_LIBRARY against the real Vulkan
// backend on lavapipe. The user's GGML_VK_VISIBLE_DEVICES=0 admits the
// CPU-type lavapipe device, which ggml skips by default.
func TestLlamaServerLavapipe(t *testing.T) {
	b := newLSBed(t, forkBin(t))
	cases := []struct {
		library    string
		wantDevice string
		wantVRAM   bool
		decidedBy  string // /api/ps library_decided_by
	}{
		{"", "Vulkan0", true, "default order"},
		{"vulkan", "Vulkan0", true, "OLLAMA_LLM_LIBRARY"},
		{"vulkan,cpu", "Vulkan0", true, "OLLAMA_LLM_LIBRARY"},
		{"cpu", "none", false, "OLLAMA_LLM_LIBRARY"},
	}
	for _, tc := range cases {
		t.Run("OLLAMA_LLM_LIBRARY="+tc.library, func(t *testing.T) {
			s := b.start(t, "GGML_VK_VISIBLE_DEVICES=0", "OLLAMA_LLM_LIBRARY="+tc.library)
			m := forkCreateTiny(t, s, "qwen3")
			forkGenerate(t, s, m)
			r := forkLastRunner(t, s, m)
			if got := runnerDevice(r); got != tc.wantDevice {
				t.Errorf("runner --device %q, want %q (args %q)", got, tc.wantDevice, r.Args)
			}
			checkPlanLine(t, s, m, r)
			ps := forkPsEntry(t, s, m)
			if (ps.SizeVRAM > 0) != tc.wantVRAM {
				t.Errorf("/api/ps size_vram %d, want >0: %v", ps.SizeVRAM, tc.wantVRAM)
			}
			used := strings.Contains(s.Log(), "using device Vulkan0")
			if used != tc.wantVRAM {
				t.Errorf("llama-server log says 'using device Vulkan0': %v, want %v", used, tc.wantVRAM)
			}
			if !tc.wantVRAM {
				if v, ok := r.Env["GGML_VK_VISIBLE_DEVICES"]; !ok || v != "" {
					t.Errorf("CPU runner GGML_VK_VISIBLE_DEVICES=%q (set: %v), want empty: no Vulkan device", v, ok)
				}
			}
			if upstreamOnly() {
				return
			}
			if tc.wantVRAM && ps.Library != "Vulkan" {
				t.Errorf("/api/ps library %q, want Vulkan", ps.Library)
			}
			if ps.LibraryDecidedBy != tc.decidedBy {
				t.Errorf("/api/ps library_decided_by %q, want %q", ps.LibraryDecidedBy, tc.decidedBy)
			}
			backends := forkCli(t, s, "backends")
			if !tc.wantVRAM && !regexp.MustCompile(`(?m)^CPU .*chosen`).MatchString(backends) {
				t.Errorf("ollama backends has no chosen CPU row:\n%s", backends)
			}
			if tc.wantVRAM {
				if !regexp.MustCompile(`(?m)^llvmpipe.*Vulkan .*chosen`).MatchString(backends) {
					t.Errorf("ollama backends does not list lavapipe's Vulkan device as chosen:\n%s", backends)
				}
				// ollama ps names the library, and the input that chose it
				// unless that was the default order.
				want := "100% GPU (Vulkan)"
				if tc.decidedBy != "default order" {
					want = "100% GPU (Vulkan, " + tc.decidedBy + ")"
				}
				if got := psProcessors(t, forkCli(t, s, "ps"))[m.Name+":latest"]; got != want {
					t.Errorf("ollama ps PROCESSOR %q, want %q", got, want)
				}
			}
		})
	}
	t.Run("OLLAMA_LLM_LIBRARY=vulkn", func(t *testing.T) {
		if upstreamOnly() {
			// The pull request reports the value and goes on with every
			// library; the fork refuses to serve.
			s := b.start(t, "GGML_VK_VISIBLE_DEVICES=0", "OLLAMA_LLM_LIBRARY=vulkn")
			m := forkCreateTiny(t, s, "qwen3")
			forkGenerate(t, s, m)
			if got := runnerDevice(forkLastRunner(t, s, m)); got != "Vulkan0" {
				t.Errorf("runner --device %q, want Vulkan0", got)
			}
			if log := s.Log(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, `OLLAMA_LLM_LIBRARY=\"vulkn\" is not a library`) {
				t.Errorf("no ERROR line naming vulkn in the log:\n%s", tail(log, 20))
			}
			return
		}
		forkRefuseToServe(t, b.bin, []string{"OLLAMA_LLM_LIBRARY=vulkn"}, "Error: ", `"vulkn"`, "vulkan")
	})
}

// checkOnFakeVulkan asserts that m's last runner ran on the fake Vulkan
// twin: its --device, /api/ps (the library, which a pristine build lacks,
// and VRAM), llama-server's device line, and that the fake HIP never saw
// its GPU: in any process (discovery included), or with runnerOnly in that
// runner.
func (b *lsBed) checkOnFakeVulkan(t *testing.T, s *Server, m forkModel, runnerOnly bool) {
	t.Helper()
	r := forkLastRunner(t, s, m)
	if got := runnerDevice(r); got != "Vulkan0" {
		t.Errorf("runner --device %q, want Vulkan0", got)
	}
	if ps := forkPsEntry(t, s, m); (!upstreamOnly() && ps.Library != "Vulkan") || ps.SizeVRAM == 0 {
		t.Errorf("/api/ps %+v, want library Vulkan with VRAM", ps)
	}
	if !strings.Contains(s.Log(), "using device Vulkan0 (Fake Vulkan GPU)") {
		t.Errorf("llama-server did not log 'using device Vulkan0 (Fake Vulkan GPU)'")
	}
	pid, where := 0, "discovery or runner"
	if runnerOnly {
		pid, where = r.PID, "the Vulkan runner"
	}
	if n := b.hipVisible(t, pid); n != 0 {
		t.Errorf("the fake HIP saw its GPU %d times (%s); want never", n, where)
	}
}

// TestLlamaServerFakeTwin: one gfx1200 seen through ROCm and Vulkan (the
// fakes, one PCI id) by the real llama-server.
func TestLlamaServerFakeTwin(t *testing.T) {
	b := newLSBed(t, forkBin(t), fakegpu.HIP, fakegpu.Vulkan)
	kfd := forkRdna4Sysfs(t)

	t.Run("vulkan: no ROCm device in any runner", func(t *testing.T) {
		s := b.start(t, "OLLAMA_LLM_LIBRARY=vulkan", "OLLAMA_SYSFS_ROOT="+kfd)
		m := forkCreateTiny(t, s, "qwen3")
		forkGenerate(t, s, m)
		b.checkOnFakeVulkan(t, s, m, false)
	})

	t.Run("OLLAMA_LLM_LIBRARY=vulkan,rocm: the Vulkan twin wins, HIP not in the runner", func(t *testing.T) {
		s := b.start(t, "OLLAMA_LLM_LIBRARY=vulkan,rocm", "OLLAMA_SYSFS_ROOT="+kfd)
		m := forkCreateTiny(t, s, "qwen2")
		forkGenerate(t, s, m)
		b.checkOnFakeVulkan(t, s, m, true)
	})

	t.Run("unset: qwen3 on the Vulkan twin, qwen2 on ROCm, one server", func(t *testing.T) {
		s := b.start(t, "OLLAMA_SYSFS_ROOT="+kfd)
		q3 := forkCreateTiny(t, s, "qwen3")
		q2 := forkCreateTiny(t, s, "qwen2")
		forkGenerate(t, s, q3)
		forkGenerate(t, s, q2)
		for _, tc := range []struct {
			m      forkModel
			device string
			lib    string
		}{{q3, "Vulkan0", "Vulkan"}, {q2, "ROCm0", "ROCm"}} {
			r := forkLastRunner(t, s, tc.m)
			if got := runnerDevice(r); got != tc.device {
				t.Errorf("%s: runner --device %q, want %q", tc.m.Name, got, tc.device)
			}
			checkPlanLine(t, s, tc.m, r)
			if ps := forkPsEntry(t, s, tc.m); !upstreamOnly() && ps.Library != tc.lib {
				t.Errorf("%s: /api/ps library %q, want %q", tc.m.Name, ps.Library, tc.lib)
			}
			// The ROCm runner is the trace's positive control: HIP saw the GPU there.
			if n := b.hipVisible(t, r.PID); (n > 0) != (tc.lib == "ROCm") {
				t.Errorf("%s: the fake HIP saw its GPU %d times in the %s runner", tc.m.Name, n, tc.lib)
			}
		}
		if !strings.Contains(s.Log(), "using device ROCm0 (Fake ROCm GPU)") {
			t.Errorf("llama-server did not log 'using device ROCm0 (Fake ROCm GPU)'")
		}
		// One GPU: the twins are paired (the native probe's PCI id), and
		// qwen3 moved by the rule, not because the twin was a GPU of its own.
		chosen := s.LogRecords("backend library chosen")
		if len(chosen) != 1 || chosen[0]["library"] != "ROCm" || chosen[0]["pci_id"] != "0000:03:00.0" || !strings.HasPrefix(chosen[0]["alternates"], "Vulkan") {
			t.Errorf("discovery should pair the twins (one GPU, ROCm with the Vulkan alternate): %v", chosen)
		}
		for _, rec := range s.LogRecords("backend plan for model") {
			if strings.HasPrefix(rec["model"], q3.Name) && !strings.Contains(rec["placement"], "rule rocm:gfx1200:qwen3") {
				t.Errorf("qwen3's plan does not name the built-in rule: %q", rec["placement"])
			}
		}
	})

	t.Run("denylist rocm:gfx1200 without KFD: HIP never sees the GPU", func(t *testing.T) {
		s := b.start(t, "OLLAMA_BACKEND_DENYLIST=rocm:gfx1200", "OLLAMA_SYSFS_ROOT="+t.TempDir())
		m := forkCreateTiny(t, s, "qwen2")
		forkGenerate(t, s, m)
		if ps := forkPsEntry(t, s, m); ps.Library != "Vulkan" {
			t.Errorf("/api/ps library %q, want Vulkan", ps.Library)
		}
		if n := b.hipVisible(t, 0); n != 0 {
			t.Errorf("the fake HIP saw its GPU %d times; want never", n)
		}
		if !strings.Contains(s.Log(), "AMD GPU topology not readable") {
			t.Errorf("no WARN that KFD could not be read")
		}
	})
}

// TestLlamaServerFakeCUDATwin: one GPU seen through CUDA and Vulkan (the
// fakes, one PCI id; the H200's case in Debian's flat layout), every row of
// OLLAMA_LLM_LIBRARY: the log's plan, /api/ps and the device llama-server
// really used agree.
func TestLlamaServerFakeCUDATwin(t *testing.T) {
	b := newLSBed(t, forkBin(t), fakegpu.CUDA, fakegpu.Vulkan)
	cases := []struct {
		library string
		device  string // the runner's --device
		using   string // llama-server's "using device" line; "" for none
		psLib   string
	}{
		{"", "CUDA0", "using device CUDA0 (Fake CUDA GPU)", "CUDA"},
		{"vulkan", "Vulkan0", "using device Vulkan0 (Fake Vulkan GPU)", "Vulkan"},
		{"cuda", "CUDA0", "using device CUDA0 (Fake CUDA GPU)", "CUDA"},
		{"vulkan,cpu", "Vulkan0", "using device Vulkan0 (Fake Vulkan GPU)", "Vulkan"},
		{"vulkan,cuda", "Vulkan0", "using device Vulkan0 (Fake Vulkan GPU)", "Vulkan"},
		{"cuda,vulkan", "CUDA0", "using device CUDA0 (Fake CUDA GPU)", "CUDA"},
		{"cpu", "none", "", ""},
	}
	for _, tc := range cases {
		t.Run("OLLAMA_LLM_LIBRARY="+tc.library, func(t *testing.T) {
			s := b.start(t, "OLLAMA_LLM_LIBRARY="+tc.library)
			m := forkCreateTiny(t, s, "qwen3")
			forkGenerate(t, s, m)
			r := forkLastRunner(t, s, m)
			if got := runnerDevice(r); got != tc.device {
				t.Errorf("runner --device %q, want %q", got, tc.device)
			}
			checkPlanLine(t, s, m, r)
			ps := forkPsEntry(t, s, m)
			if upstreamOnly() {
				// upstream's /api/ps has no library
				ps.Library = tc.psLib
			}
			if ps.Library != tc.psLib || (ps.SizeVRAM > 0) != (tc.psLib != "") {
				t.Errorf("/api/ps library %q size_vram %d, want library %q", ps.Library, ps.SizeVRAM, tc.psLib)
			}
			log := s.Log()
			for _, line := range []string{"using device CUDA0", "using device Vulkan0"} {
				if used := strings.Contains(log, line); used != (tc.using != "" && strings.HasPrefix(tc.using, line)) {
					t.Errorf("llama-server log has %q: %v; want only %q", line, used, tc.using)
				}
			}
			if tc.library == "" {
				chosen := s.LogRecords("backend library chosen")
				if len(chosen) != 1 || chosen[0]["library"] != "CUDA" || !strings.HasPrefix(chosen[0]["alternates"], "Vulkan") {
					t.Errorf("discovery should pair the twins (CUDA with the Vulkan alternate): %v", chosen)
				}
			}
		})
	}
}

// TestLlamaServerWatchdog: the idle-GPU watchdog on the llama-server
// runtime. The fake sysfs's DRM card of the twin's PCI address reports a
// static 100% gpu_busy_percent: after qwen3's ROCm runner exits the GPU is
// reported stuck once, the rule is learned, and the next qwen3 load gets
// the Vulkan twin (--device Vulkan0).
func TestLlamaServerWatchdog(t *testing.T) {
	b := newLSBed(t, forkBin(t), fakegpu.HIP, fakegpu.Vulkan)
	root := forkRdna4Sysfs(t)
	forkWriteFakeDRM(t, root, "card1", forkPCIID, 100)
	s := b.start(t, "OLLAMA_SYSFS_ROOT="+root, "OLLAMA_BACKEND_DENYLIST=none")
	state := filepath.Join(s.Home, ".ollama", "backend-quirks.json")
	q3 := forkCreateTiny(t, s, "qwen3")

	forkGenerate(t, s, q3)
	if r := forkLastRunner(t, s, q3); runnerDevice(r) != "ROCm0" {
		t.Fatalf("qwen3 runner --device %q with OLLAMA_BACKEND_DENYLIST=none, want ROCm0", runnerDevice(r))
	}
	forkUnload(t, s, q3)
	if _, err := s.WaitForLog(regexp.MustCompile(regexp.QuoteMeta(`msg="`+forkStuckMsg+`"`)), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	rec := forkOneRecord(t, s, forkStuckMsg)
	forkCheckFields(t, "watchdog", rec, map[string]string{
		"level": "ERROR", "pci_id": forkPCIID, "card": "card1", "library": "ROCm", "arch": "qwen3", "busy_min": "100", "learned": "true", "file": state,
	})
	forkCheckLearned(t, state, "qwen3", "stuck-busy")

	forkGenerate(t, s, q3)
	r := forkLastRunner(t, s, q3)
	if runnerDevice(r) != "Vulkan0" {
		t.Errorf("qwen3 runner --device %q after the learned rule, want Vulkan0", runnerDevice(r))
	}
	checkPlanLine(t, s, q3, r)
	if e := forkPsEntry(t, s, q3); e.Library != "Vulkan" {
		t.Errorf("/api/ps qwen3 library %q after the learned rule, want Vulkan", e.Library)
	}
	if n := b.hipVisible(t, r.PID); n != 0 {
		t.Errorf("the fake HIP saw its GPU in qwen3's Vulkan runner")
	}
}
