//go:build integration

package integration

// The fork's idle-GPU watchdog (docs/watchdog.md) against a fake sysfs
// whose DRM card for the fake twin's PCI address reports a static 100%
// gpu_busy_percent: a GPU that stays busy after its runner exits is
// reported once, learned in ~/.ollama/backend-quirks.json, and the next
// load of that architecture uses the other library.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

const forkStuckMsg = "GPU stayed busy after its runner exited; it may stay stuck until reboot"

type forkLearnedFile struct {
	Version int `json:"version"`
	Quirks  []struct {
		Library, Compute, Arch, Cause, Evidence, Model string
		PCIID                                          string `json:"pci_id"`
	} `json:"quirks"`
	StuckGPUs []json.RawMessage `json:"stuck_gpus"`
}

// TestForkWatchdog: learn from a stuck GPU, use what was learned, forget it.
func TestForkWatchdog(t *testing.T) {
	forkBin(t)
	bed := newForkBed(t, Flat)
	root := forkRdna4Sysfs(t)
	forkWriteFakeDRM(t, root, "card1", forkPCIID, 100)
	env := []string{"OLLAMA_SYSFS_ROOT=" + root, "OLLAMA_BACKEND_DENYLIST=none"}

	s := bed.start(t, env...)
	home := s.Home
	state := filepath.Join(home, ".ollama", "backend-quirks.json")
	q3 := forkCreateTiny(t, s.Server, "qwen3")

	t.Run("learn", func(t *testing.T) {
		forkGenerate(t, s.Server, q3)
		if e := forkPsEntry(t, s.Server, q3); e.Library != "ROCm" {
			t.Fatalf("qwen3 on %q with OLLAMA_BACKEND_DENYLIST=none, want ROCm", e.Library)
		}
		start := time.Now()
		forkUnload(t, s.Server, q3)
		if _, err := s.WaitForLog(regexp.MustCompile(regexp.QuoteMeta(`msg="`+forkStuckMsg+`"`)), 20*time.Second); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("stuck GPU reported %s after keep_alive 0", took.Round(100*time.Millisecond))
		if took > 16*time.Second {
			t.Errorf("took %s to report, want about 10.5 s", took)
		}
		rec := forkOneRecord(t, s.Server, forkStuckMsg)
		forkCheckFields(t, "watchdog", rec, map[string]string{
			"level": "ERROR", "pci_id": forkPCIID, "card": "card1", "gfx_target": "gfx1200",
			"library": "ROCm", "compute": "gfx1200", "arch": "qwen3", "model": "~" + q3.Name,
			"busy_min": "100", "busy_max": "100", "sclk_mhz": "3470", "sclk_max_mhz": "3470",
			"power_w": "66", "learned": "true", "file": state, "remedy": "~OLLAMA_BACKEND_QUIRKS_RESET=1",
		})
		t.Logf("log: level=%s msg=%q window=%s busy=%s-%s sclk=%s/%s MHz power_w=%s learned=%s file=%s",
			rec["level"], rec["msg"], rec["window"], rec["busy_min"], rec["busy_max"], rec["sclk_mhz"], rec["sclk_max_mhz"], rec["power_w"], rec["learned"], rec["file"])

		forkCheckLearned(t, state, "qwen3", "stuck-busy")
		if l := forkBackends(t, s.Server); len(l.StuckGPUs) != 1 {
			t.Errorf("/api/backends stuck_gpus %v, want the one GPU", l.StuckGPUs)
		}
	})

	t.Run("next-load-uses-vulkan", func(t *testing.T) {
		forkGenerate(t, s.Server, q3)
		rec := forkOneRecord(t, s.Server, forkQuirkMsg)
		forkCheckFields(t, "quirk", rec, map[string]string{"arch": "qwen3", "denied": "ROCm", "library": "Vulkan", "rule": "~rocm:gfx1200:qwen3"})
		if rec != nil && !forkHasValue(rec, "learned") {
			t.Errorf("quirk line does not name the rule's source learned: %v", rec)
		}
		if e := forkPsEntry(t, s.Server, q3); e.Library != "Vulkan" {
			t.Errorf("/api/ps qwen3 library %q after the learned quirk, want Vulkan", e.Library)
		}
		s.checkRunnerLibs(t, forkLastRunner(t, s.Server, q3), "libggml-vulkan.so")
		forkCheckServes(t, s.Server, q3)
	})
	s.Stop()

	t.Run("reset", func(t *testing.T) {
		if _, err := os.Stat(state); err != nil {
			t.Skipf("no state file to forget: %v", err)
		}
		s2 := bed.start(t, append(env, "HOME="+home, "OLLAMA_BACKEND_QUIRKS_RESET=1")...)
		// One line says what the reset removed.
		recs := s2.LogRecords("forgot learned backend quirks")
		if len(recs) != 1 {
			t.Fatalf("want one \"forgot learned backend quirks\" line for one reset, got %d: %v", len(recs), recs)
		}
		forkCheckFields(t, "reset", recs[0], map[string]string{"level": "INFO", "quirks": "1", "file": state})
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("state file still there after OLLAMA_BACKEND_QUIRKS_RESET=1: %v", err)
		}
		m := forkCreateTiny(t, s2.Server, "qwen3")
		forkGenerate(t, s2.Server, m)
		if e := forkPsEntry(t, s2.Server, m); e.Library != "ROCm" {
			t.Errorf("/api/ps qwen3 library %q after the reset, want ROCm", e.Library)
		}
		if recs := s2.LogRecords(forkQuirkMsg); len(recs) != 0 {
			t.Errorf("quirk still applied after the reset: %v", recs)
		}
		forkCheckServes(t, s2.Server, m)
	})
}

// TestForkWatchdogCorruptState: a state file cut short gives one WARN naming
// it, and the server serves.
func TestForkWatchdogCorruptState(t *testing.T) {
	forkBin(t)
	bed := newForkBed(t, Flat)
	home := t.TempDir()
	state := filepath.Join(home, ".ollama", "backend-quirks.json")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte(`{"version": 1, "quirks": [{"library": "ROCm", "comp`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := bed.start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t), "HOME="+home)
	m := forkCreateTiny(t, s.Server, "qwen2")
	forkGenerate(t, s.Server, m)
	forkCheckServes(t, s.Server, m)
	rec := forkOneRecord(t, s.Server, "ignoring learned backend quirks file")
	forkCheckFields(t, "corrupt state", rec, map[string]string{"level": "WARN", "file": state})
	t.Logf("log: level=%s msg=%q error=%q", rec["level"], rec["msg"], rec["error"])
	if e := forkPsEntry(t, s.Server, m); e.Library != "ROCm" {
		t.Errorf("/api/ps library %q, want ROCm", e.Library)
	}
}

// forkCheckLearned asserts the learned-quirks file holds exactly one quirk:
// ROCm on the fake gfx1200 GPU for arch, learned from cause.
func forkCheckLearned(t *testing.T, state, arch, cause string) {
	t.Helper()
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	var lf forkLearnedFile
	if err := json.Unmarshal(data, &lf); err != nil {
		t.Fatalf("state file %s: %v\n%s", state, err, data)
	}
	if lf.Version != 1 || len(lf.Quirks) != 1 {
		t.Fatalf("state file: %s", data)
	}
	q := lf.Quirks[0]
	if q.Library != "ROCm" || q.Compute != "gfx1200" || q.Arch != arch || q.Cause != cause || q.PCIID != forkPCIID {
		t.Errorf("learned %+v, want ROCm gfx1200 %s %s on %s", q, arch, cause, forkPCIID)
	}
	t.Logf("learned: %+v", q)
}
