//go:build integration

package integration

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/tinymodel"
)

// binaries returns the binaries to exercise: the fork and pristine upstream.
func binaries() []struct{ name, bin string } {
	return []struct{ name, bin string }{
		{"fork", OllamaBin()},
		{"upstream", UpstreamBin()},
	}
}

// TestSmokeTinyModelCPU: with no GPU libraries the server reports CPU
// inference, and tiny random-weight qwen3 (Ollama engine) and qwen2
// (llama.cpp runner) models import and generate 8 tokens.
func TestSmokeTinyModelCPU(t *testing.T) {
	for _, b := range binaries() {
		t.Run(b.name, func(t *testing.T) {
			RequireBinary(t, b.bin, b.name)
			s := StartServer(t, ServerOptions{Bin: b.bin})
			ic := s.InferenceCompute()
			if len(ic) != 1 || ic[0]["library"] != "cpu" {
				t.Fatalf("inference compute = %v, want one library=cpu record", ic)
			}
			for _, arch := range []string{"qwen3", "qwen2"} {
				t.Run(arch, func(t *testing.T) {
					gguf := filepath.Join(t.TempDir(), "tiny-"+arch+".gguf")
					if err := tinymodel.Write(gguf, tinymodel.Tiny(arch)); err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
					defer cancel()
					name := "tiny-" + arch
					start := time.Now()
					if err := s.CreateModel(ctx, name, gguf); err != nil {
						t.Fatal(err)
					}
					created := time.Since(start)
					res, err := s.Generate(ctx, name, "Hello, world", 8, nil)
					if err != nil {
						t.Fatal(err)
					}
					if res.EvalCount != 8 {
						t.Errorf("eval_count = %d, want 8 (done_reason %q)", res.EvalCount, res.DoneReason)
					}
					t.Logf("%s: create %s, first generate %s (load %s, eval %d tokens in %s): %q",
						name, created.Round(time.Millisecond), res.Wall.Round(time.Millisecond),
						res.LoadDuration.Round(time.Millisecond), res.EvalCount, res.EvalDuration.Round(time.Microsecond), res.Response)
					res, err = s.Generate(ctx, name, "Hello, world", 8, nil)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%s: warm generate %s", name, res.Wall.Round(time.Millisecond))
					ps, err := s.PS(ctx)
					if err != nil {
						t.Fatal(err)
					}
					for _, m := range ps.Models {
						if m.SizeVRAM != 0 {
							t.Errorf("%s: size_vram = %d on a CPU-only server", m.Name, m.SizeVRAM)
						}
					}
					live := s.LiveRunners()
					if len(live) == 0 {
						t.Errorf("no live runner process found")
					}
					for _, r := range live {
						if len(r.Libs) != 0 {
							t.Errorf("runner %d maps GPU libraries %v", r.PID, r.Libs)
						}
					}
				})
			}
		})
	}
}

// TestServerRefusesBusyPort: a server that cannot start reports it through
// the harness (exit code and log).
func TestServerRefusesBusyPort(t *testing.T) {
	bin := OllamaBin()
	RequireBinary(t, bin, "ollama")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := StartServer(t, ServerOptions{Bin: bin, NoWait: true, Env: []string{"OLLAMA_HOST=" + l.Addr().String()}})
	code, err := s.WaitExit(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 || !strings.Contains(s.Log(), "address already in use") {
		t.Errorf("exit code %d, log:\n%s", code, s.Log())
	}
	t.Logf("refused with exit code %d: %s", code, strings.TrimSpace(tail(s.Log(), 1)))
}
