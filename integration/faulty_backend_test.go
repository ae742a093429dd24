//go:build integration

package integration

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

// TestLlamaServerRunnerDiesLoading: the fake ROCm backend aborts on its
// first allocation, as a HIP build without code objects for the GPU does.
// The request that loads a qwen2 model on ROCm still gets its tokens: the
// runner's death is learned at once (one ERROR line), and the model is
// loaded again on the GPU's Vulkan twin. A model whose own library option
// says rocm is not moved: its request gets the runner's error.
func TestLlamaServerRunnerDiesLoading(t *testing.T) {
	b := newLSBed(t, forkBin(t), fakegpu.HIP, fakegpu.Vulkan)
	s := b.start(t, fakegpu.HIP.Env("FAULT", "crash-alloc"), "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t))
	q2 := forkCreateTiny(t, s, "qwen2")
	q2rocm := forkCreateModel(t, s, "qwen2-rocm", "qwen2", 7, false, map[string]any{"library": "rocm"})

	forkGenerate(t, s, q2)
	r := forkLastRunner(t, s, q2)
	if got := runnerDevice(r); got != "Vulkan0" {
		t.Errorf("runner --device %q after the ROCm runner died, want Vulkan0", got)
	}
	if ps := forkPsEntry(t, s, q2); ps.Library != "Vulkan" || ps.LibraryDecidedBy != "rule" || ps.SizeVRAM == 0 {
		t.Errorf("/api/ps %+v, want Vulkan decided by a rule, with VRAM", ps)
	}
	if !strings.Contains(s.Log(), "using device Vulkan0 (Fake Vulkan GPU)") {
		t.Errorf("llama-server did not log 'using device Vulkan0 (Fake Vulkan GPU)'")
	}
	rec := forkOneRecord(t, s, "runner died while loading the model; the model's loads use another library of this GPU")
	for k, want := range map[string]string{"level": "ERROR", "library": "ROCm", "compute": "gfx1200", "arch": "qwen2", "next": "Vulkan", "pci_id": "0000:03:00.0"} {
		if rec[k] != want {
			t.Errorf("ERROR line %s=%q, want %q (%v)", k, rec[k], want, rec)
		}
	}
	if !strings.Contains(rec["error"], "signal: aborted") || !strings.HasPrefix(rec["model"], q2.Name) || rec["remedy"] == "" {
		t.Errorf("ERROR line does not name the model, the signal and a remedy: %v", rec)
	}
	if backends := forkCli(t, s, "backends"); !strings.Contains(backends, "rocm:gfx1200:qwen2") {
		t.Errorf("ollama backends does not list the learned rule:\n%s", backends)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := s.Generate(ctx, q2rocm.Name, "Hi", 2, nil)
	if err == nil || !strings.Contains(err.Error(), "signal: aborted") {
		t.Errorf("generate %s (PARAMETER library rocm): err %v, want the runner's death", q2rocm.Name, err)
	}
}

// TestLlamaServerBackendFailsAtDiscovery: the fake ROCm backend aborts
// (crash) or never returns (hang) while ggml initialises it, which stops
// every llama-server of the flat folder, discovery's first. The server still
// starts, on the CPU, and says why in one ERROR line, and `ollama backends`
// lists it: what happened, the folder's GPU backend libraries and the
// server's last words.
func TestLlamaServerBackendFailsAtDiscovery(t *testing.T) {
	for _, tc := range []struct {
		fault, msg, failure, exit, words string
	}{
		{"crash", "llama-server died during GPU discovery; no GPU of these folders is used", "died", "signal: aborted", "injected crash in ggml_backend_init"},
		// upstream's first discovery gives up after 30 s
		{"hang", "llama-server hung during GPU discovery; no GPU of these folders is used", "hung", "~no answer in ", "injected hang in ggml_backend_init"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			b := newLSBed(t, forkBin(t), fakegpu.HIP, fakegpu.Vulkan)
			s := b.start(t, fakegpu.HIP.Env("FAULT", tc.fault), "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t))
			// Discovery ends after the API answers, and a hung server's
			// report comes after upstream's watchdog has given up on it: wait
			// for both lines.
			for _, line := range []string{`msg="inference compute"`, regexp.QuoteMeta(`msg="` + tc.msg + `"`)} {
				if _, err := s.WaitForLog(regexp.MustCompile(line), 2*time.Minute); err != nil {
					t.Fatalf("no %s: %v\n%s", line, err, tail(s.Log(), 30))
				}
			}
			rec := forkOneRecord(t, s, tc.msg)
			forkCheckFields(t, tc.fault, rec, map[string]string{
				"level": "ERROR", "exit": tc.exit, "backends": "~libggml-hip.so", "last_output": "~" + tc.words, "remedy": "~move the backend library",
			})
			exit := regexp.QuoteMeta(strings.TrimPrefix(tc.exit, "~"))
			if backends := forkCli(t, s, "backends"); !regexp.MustCompile(`llama-server ` + tc.failure + ` during GPU discovery in \S+ \(` + exit + `[^)]*\); GPU backends there: .*libggml-hip\.so.*` + tc.words).MatchString(backends) {
				t.Errorf("ollama backends does not list the discovery failure:\n%s", backends)
			}
		})
	}
}
