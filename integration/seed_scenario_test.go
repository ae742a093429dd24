//go:build integration

package integration

// The seed report's machine, end to end, on the real llama-server: one
// gfx1200 seen through ROCm and its Vulkan twin (the fakes, one PCI id), a
// Qwen3 model with a vision projector and a Qwen2.5 model in one server.
// The built-in rule, the user's per-model `library` choice (a Modelfile
// parameter and a request option) and what the idle-GPU watchdog learns
// each send the right model to the right library, and every choice is
// explained where users look: the log's plan line, /api/ps, `ollama ps`,
// `ollama show` and `ollama backends`.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
	"github.com/costa-os/ollama-backend-select/integration/internal/tinymodel"
)

// planLine is the last "backend plan for model" record of m.
func planLine(t *testing.T, s *Server, m forkModel) LogRecord {
	t.Helper()
	recs := s.LogRecords("backend plan for model")
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i]["model"] == m.Name || strings.HasPrefix(recs[i]["model"], m.Name+":") {
			return recs[i]
		}
	}
	t.Fatalf("%s: no 'backend plan for model' line", m.Name)
	return nil
}

// checkPlaced asserts where m's last runner runs, and that the plan line,
// /api/ps and the runner agree on it and on the input that decided.
func checkPlaced(t *testing.T, b *lsBed, s *Server, m forkModel, library, decidedBy string) Proc {
	t.Helper()
	r := forkLastRunner(t, s, m)
	if got, want := runnerDevice(r), library+"0"; got != want {
		t.Errorf("%s: runner --device %q, want %q", m.Name, got, want)
	}
	checkPlanLine(t, s, m, r)
	if rec := planLine(t, s, m); rec["decided_by"] != decidedBy || rec["library"] != library {
		t.Errorf("%s: plan line library=%q decided_by=%q, want %q and %q", m.Name, rec["library"], rec["decided_by"], library, decidedBy)
	}
	if ps := forkPsEntry(t, s, m); ps.Library != library || ps.LibraryDecidedBy != decidedBy || ps.SizeVRAM == 0 {
		t.Errorf("%s: /api/ps %+v, want library %s decided by %s with VRAM", m.Name, ps, library, decidedBy)
	}
	if n := b.hipVisible(t, r.PID); (n > 0) != (library == "ROCm") {
		t.Errorf("%s: the fake HIP saw its GPU %d times in the %s runner", m.Name, n, library)
	}
	return r
}

func TestLlamaServerSeedScenario(t *testing.T) {
	b := newLSBed(t, forkBin(t), fakegpu.HIP, fakegpu.Vulkan)
	root := forkRdna4Sysfs(t)
	// The GPU's DRM card, idle while the choices are checked.
	forkWriteFakeDRM(t, root, "card1", forkPCIID, 0)
	mes := filepath.Join(root, "sys", "devices", "pci0000:00", "0000:00:01.1", forkPCIID, "fw_version", "mes_fw_version")
	if err := os.MkdirAll(filepath.Dir(mes), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mes, []byte("0x00000083\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	busy := filepath.Join(filepath.Dir(filepath.Dir(mes)), "gpu_busy_percent")

	s := b.start(t, "OLLAMA_SYSFS_ROOT="+root)
	state := filepath.Join(s.Home, ".ollama", "backend-quirks.json")

	// A typo in the Modelfile is refused by `ollama create`, naming it.
	bad := filepath.Join(s.Dir, "Modelfile.bad")
	ggufBad := filepath.Join(s.Dir, "bad.gguf")
	if err := tinymodel.Write(ggufBad, tinymodel.Tiny("qwen2")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("FROM "+ggufBad+"\nPARAMETER library vulkn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.Bin, "create", "bad", "-f", bad)
	cmd.Env = []string{"OLLAMA_HOST=" + s.Host, "HOME=" + s.Home, "PATH=" + os.Getenv("PATH"), "TERM=dumb"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `"vulkn" is not a library name`) {
		t.Errorf("ollama create with PARAMETER library vulkn: err %v, output %q; want a refusal naming vulkn", err, out)
	}

	q3v := forkCreateModel(t, s, "qwen3-vision", "qwen3", 1, true, nil)
	q25 := forkCreateModel(t, s, "qwen2.5", "qwen2", 2, false, nil)
	q25vk := forkCreateModel(t, s, "qwen2.5-vulkan", "qwen2", 3, false, map[string]any{"library": "vulkan"})

	t.Run("rules and the model's parameter place three models on one GPU", func(t *testing.T) {
		forkGenerate(t, s, q3v)
		forkGenerate(t, s, q25)
		forkGenerate(t, s, q25vk)
		checkPlaced(t, b, s, q3v, "Vulkan", "rule")
		checkPlaced(t, b, s, q25, "ROCm", "default order")
		checkPlaced(t, b, s, q25vk, "Vulkan", "model parameter")
		if rec := planLine(t, s, q3v); rec["vision"] != "true" {
			t.Errorf("qwen3-vision's plan line vision=%q, want true (the projector is loaded)", rec["vision"])
		}
		if r := forkLastRunner(t, s, q3v); !strings.Contains(strings.Join(r.Args, " "), "--mmproj") {
			t.Errorf("qwen3-vision's runner has no --mmproj: %q", r.Args)
		}
		wantPS := map[string]string{
			q25vk.Name + ":latest": "100% GPU (Vulkan, model parameter)",
			q25.Name + ":latest":   "100% GPU (ROCm)",
			q3v.Name + ":latest":   "100% GPU (Vulkan, rule)",
		}
		if diff := cmp.Diff(wantPS, psProcessors(t, forkCli(t, s, "ps"))); diff != "" {
			t.Errorf("ollama ps PROCESSOR cells (-want +got):\n%s", diff)
		}
		if show := forkCli(t, s, "show", q25vk.Name, "--parameters"); !regexp.MustCompile(`library\s+"vulkan"`).MatchString(show) {
			t.Errorf("ollama show --parameters lacks library vulkan:\n%s", show)
		}
	})

	t.Run("a request option reloads a loaded model on ROCm, over the built-in rule", func(t *testing.T) {
		before := len(forkModelRunners(s, q3v))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := s.Generate(ctx, q3v.Name, "Hi", 2, map[string]any{"library": "rocm"}); err != nil {
			t.Fatal(err)
		}
		if after := len(forkModelRunners(s, q3v)); after != before+1 {
			t.Errorf("%d runners of qwen3-vision after the request, want a reload (%d)", after, before+1)
		}
		checkPlaced(t, b, s, q3v, "ROCm", "request option")
		warn := forkOneRecord(t, s, "backend plan: the model's library option overrides a rule")
		forkCheckFields(t, "override", warn, map[string]string{
			"level": "WARN", "library": "ROCm", "rule": "rocm:gfx1200:qwen3,qwen3moe,qwen35,qwen35moe,qwen3next,qwen3vl,qwen3vlmoe", "rule_source": "builtin", "option_source": "request option",
		})
		// A request option that is not a library name is a 400 naming it.
		if _, err := s.Generate(ctx, q25.Name, "Hi", 2, map[string]any{"library": "vulkn"}); err == nil || !strings.Contains(err.Error(), `"vulkn" is not a library name`) {
			t.Errorf("request with library vulkn: %v, want a refusal naming it", err)
		}
	})

	t.Run("the watchdog learns from a stuck unload and names the firmware; the next load goes to Vulkan", func(t *testing.T) {
		for _, m := range []forkModel{q3v, q25vk, q25} {
			forkUnload(t, s, m)
		}
		// Every runner is gone with the GPU idle: the last watch ends idle
		// at its first reading (every 500 ms), which clears the runners
		// suspected on this GPU. Nothing is logged for it; give it time.
		time.Sleep(3 * time.Second)
		if len(s.LogRecords(forkStuckMsg)) != 0 {
			t.Fatalf("a stuck GPU was reported while it was idle")
		}
		if err := os.WriteFile(busy, []byte("100\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		forkGenerate(t, s, q25)
		checkPlaced(t, b, s, q25, "ROCm", "default order")
		forkUnload(t, s, q25)
		if _, err := s.WaitForLog(regexp.MustCompile(regexp.QuoteMeta(`msg="`+forkStuckMsg+`"`)), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		rec := forkOneRecord(t, s, forkStuckMsg)
		forkCheckFields(t, "watchdog", rec, map[string]string{
			"level": "ERROR", "pci_id": forkPCIID, "library": "ROCm", "arch": "qwen2", "model": "qwen2.5:latest",
			"mes_fw_version": "0x00000083", "vision": "false", "learned": "true",
		})
		for _, part := range []string{"MES firmware 0x00000083", "ROCm/ROCm/issues/6298", "=queues1", "PARAMETER library vulkan"} {
			if !strings.Contains(rec["remedy"], part) {
				t.Errorf("the ERROR line's remedy lacks %q: %q", part, rec["remedy"])
			}
		}
		forkCheckLearned(t, state, "qwen2", "stuck-busy")
		if backends := forkCli(t, s, "backends"); !strings.Contains(backends, "rocm:gfx1200:qwen2 (learned, MES firmware 0x00000083)") ||
			!strings.Contains(backends, "(MES firmware 0x00000083) stayed 100%-100% busy after qwen2.5:latest") {
			t.Errorf("ollama backends does not list the learned rule with its firmware:\n%s", backends)
		}

		if err := os.WriteFile(busy, []byte("0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		forkGenerate(t, s, q25)
		checkPlaced(t, b, s, q25, "Vulkan", "rule")
	})
}
