//go:build integration

package integration

// Runner faults on the chosen backend: the test kills the model's runner
// in the middle of a generation. One death: the request fails, the server
// serves the next request on the same library, and the idle-GPU watchdog
// (watching a fake amdgpu card that reads idle) reports nothing. Deaths in
// a row (crashLimit = 3 in discover/gpuwatch) for one model on one library: one
// ERROR line, the triple is learned in ~/.ollama/backend-quirks.json, the
// next load uses the other library of the GPU, also after a restart, until
// OLLAMA_BACKEND_QUIRKS_RESET=1.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
)

const (
	relCrashLimit    = 3 // crashLimit in discover/gpuwatch
	relCrashQuirkMsg = "runner keeps dying; the model's next load uses another library of this GPU"
)

// relKillMidGeneration starts a long streamed generation of m, kills the
// model's runner (SIGKILL) once the first token has arrived, and returns
// the error the request ended with and the killed runner.
func relKillMidGeneration(t *testing.T, s *forkServer, m forkModel) (error, Proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var victim Proc
	tokens := 0
	req := &api.GenerateRequest{Model: m.Name, Prompt: "Once upon a time", Raw: true,
		Options: map[string]any{"num_predict": 100000, "temperature": 0, "seed": 1}}
	err := s.Client.Generate(ctx, req, func(r api.GenerateResponse) error {
		tokens++
		if tokens == 1 {
			victim = forkLastRunner(t, s.Server, m)
			if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
				t.Errorf("kill runner %d: %v", victim.PID, err)
			}
		}
		if r.Done {
			return errors.New("generation finished although its runner was killed")
		}
		return nil
	})
	if victim.PID == 0 {
		t.Fatalf("no token arrived before the request ended: %v", err)
	}
	t.Logf("killed runner pid %d after the first token; the request ended after %d responses with: %v", victim.PID, tokens, err)
	return err, victim
}

// relRunnerBed is a flat twin on a gfx1200 with an idle amdgpu card, so the
// watchdog samples the GPU after every runner exit.
func relRunnerBed(t *testing.T) (*forkBed, []string) {
	bed := newForkBed(t, Flat)
	root := forkRdna4Sysfs(t)
	forkWriteFakeDRM(t, root, "card1", forkPCIID, 0)
	return bed, []string{"OLLAMA_SYSFS_ROOT=" + root}
}

// TestForkReliabilityRunnerKilled: one death mid-generation.
func TestForkReliabilityRunnerKilled(t *testing.T) {
	forkBin(t)
	bed, env := relRunnerBed(t)
	s := bed.start(t, env...)
	m := forkCreateTiny(t, s.Server, "qwen2")
	forkGenerate(t, s.Server, m)
	if e := forkPsEntry(t, s.Server, m); e.Library != "ROCm" {
		t.Fatalf("/api/ps library %q, want ROCm (qwen2 is not denied on the gfx1200)", e.Library)
	}

	err, victim := relKillMidGeneration(t, s, m)
	if err == nil {
		t.Errorf("the request whose runner was killed ended without an error")
	}
	if s.Exited() {
		t.Fatalf("server exited: %s", s.ExitDescription())
	}
	// The next request reloads the model on the same library.
	forkGenerate(t, s.Server, m)
	next := forkLastRunner(t, s.Server, m)
	if next.PID == victim.PID {
		t.Errorf("the next request used the killed runner %d", victim.PID)
	}
	if e := forkPsEntry(t, s.Server, m); e.Library != "ROCm" {
		t.Errorf("/api/ps after the reload: library %q, want ROCm", e.Library)
	}
	s.checkRunnerLibs(t, next, "libggml-hip.so")
	// The watchdog sampled the idle card after the death: no finding, and
	// one death teaches nothing.
	time.Sleep(2 * time.Second)
	for _, msg := range []string{forkStuckMsg, relCrashQuirkMsg, forkQuirkMsg} {
		if recs := s.LogRecords(msg); len(recs) != 0 {
			t.Errorf("after one runner death: %q logged: %v", msg, recs)
		}
	}
	if l := forkBackends(t, s.Server); len(l.StuckGPUs) != 0 {
		t.Errorf("/api/backends stuck_gpus %v after a crash on an idle GPU", l.StuckGPUs)
	}
	if _, err := os.Stat(filepath.Join(s.Home, ".ollama", "backend-quirks.json")); err == nil {
		data, _ := os.ReadFile(filepath.Join(s.Home, ".ollama", "backend-quirks.json"))
		var lf forkLearnedFile
		if json.Unmarshal(data, &lf) == nil && len(lf.Quirks) != 0 {
			t.Errorf("learned after one death: %s", data)
		}
	}
	forkCheckServes(t, s.Server, m)
	relStopClean(t, s.Server)
}

// TestForkReliabilityRunnerKeepsDying: crashLimit deaths in a row.
func TestForkReliabilityRunnerKeepsDying(t *testing.T) {
	forkBin(t)
	bed, env := relRunnerBed(t)
	s := bed.start(t, env...)
	home := s.Home
	state := filepath.Join(home, ".ollama", "backend-quirks.json")
	m := forkCreateTiny(t, s.Server, "qwen2")
	forkGenerate(t, s.Server, m)

	for i := 1; i <= relCrashLimit; i++ {
		if e := forkPsEntry(t, s.Server, m); e.Library != "ROCm" {
			t.Fatalf("before death %d: library %q, want ROCm", i, e.Library)
		}
		if err, _ := relKillMidGeneration(t, s, m); err == nil {
			t.Errorf("death %d: the request ended without an error", i)
		}
		if i < relCrashLimit {
			if recs := s.LogRecords(relCrashQuirkMsg); len(recs) != 0 {
				t.Fatalf("after %d deaths (limit %d): %v", i, relCrashLimit, recs)
			}
		}
		// The next request unloads the dead runner (counting the death)
		// and loads the model again.
		forkGenerate(t, s.Server, m)
	}
	rec := forkOneRecord(t, s.Server, relCrashQuirkMsg)
	forkCheckFields(t, "crash quirk", rec, map[string]string{
		"level": "ERROR", "library": "ROCm", "compute": "gfx1200", "arch": "qwen2", "pci_id": forkPCIID,
		"next": "Vulkan", "evidence": "the runner died 3 times in a row", "file": state, "remedy": "~OLLAMA_BACKEND_QUIRKS_RESET=1",
	})
	if rec != nil {
		t.Logf("log: level=%s msg=%q library=%s next=%s evidence=%q file=%s", rec["level"], rec["msg"], rec["library"], rec["next"], rec["evidence"], rec["file"])
	}
	if e := forkPsEntry(t, s.Server, m); e.Library != "Vulkan" {
		t.Errorf("/api/ps after %d deaths: library %q, want Vulkan", relCrashLimit, e.Library)
	}
	s.checkRunnerLibs(t, forkLastRunner(t, s.Server, m), "libggml-vulkan.so")
	quirk := forkOneRecord(t, s.Server, forkQuirkMsg)
	forkCheckFields(t, "quirk", quirk, map[string]string{"arch": "qwen2", "denied": "ROCm", "library": "Vulkan", "rule": "~rocm:gfx1200:qwen2"})
	forkCheckLearned(t, state, "qwen2", "crashes")
	if recs := s.LogRecords(forkStuckMsg); len(recs) != 0 {
		t.Errorf("the watchdog reported an idle GPU stuck: %v", recs)
	}
	forkCheckServes(t, s.Server, m)
	relStopClean(t, s.Server)

	t.Run("survives-restart", func(t *testing.T) {
		s2 := bed.start(t, append(env, "HOME="+home)...)
		m2 := forkCreateTiny(t, s2.Server, "qwen2")
		forkGenerate(t, s2.Server, m2)
		if e := forkPsEntry(t, s2.Server, m2); e.Library != "Vulkan" {
			t.Errorf("/api/ps after a restart: library %q, want Vulkan", e.Library)
		}
		if rec := forkOneRecord(t, s2.Server, forkQuirkMsg); rec != nil && rec["rule_source"] != "learned" {
			t.Errorf("quirk line rule_source=%q, want learned", rec["rule_source"])
		}
		relStopClean(t, s2.Server)
	})
	t.Run("reset", func(t *testing.T) {
		s3 := bed.start(t, append(env, "HOME="+home, "OLLAMA_BACKEND_QUIRKS_RESET=1")...)
		forkOneRecord(t, s3.Server, "forgot learned backend quirks")
		m3 := forkCreateTiny(t, s3.Server, "qwen2")
		forkGenerate(t, s3.Server, m3)
		if e := forkPsEntry(t, s3.Server, m3); e.Library != "ROCm" {
			t.Errorf("/api/ps after OLLAMA_BACKEND_QUIRKS_RESET=1: library %q, want ROCm", e.Library)
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("state file still there after the reset: %v", err)
		}
		relStopClean(t, s3.Server)
	})
}
