//go:build assembled

package discover

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	gguftest "github.com/ollama/ollama/internal/testutil/gguf"
	"github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/ml"
)

// runnerVariables are the variables a plan may set on a runner; each is in
// the runner's environment exactly when the plan sets it.
var runnerVariables = []string{"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GGML_VK_VISIBLE_DEVICES", "GPU_MAX_HW_QUEUES"}

// TestLaunchCarriesOutThePlan walks Decide's table and starts llama-server
// for each row through upstream's launch path (llm.NewLlamaServerRunner),
// with the plan's runner for the row's placement. A fake llama-server
// records its arguments and environment: its --device and its visibility
// variables are the plan's, no more and no less. It runs in the assembled
// tree only (make test-upstream), where upstream's llm is.
func TestLaunchCarriesOutThePlan(t *testing.T) {
	dir := t.TempDir()
	fake := "#!/bin/sh\n{ for a in \"$@\"; do echo \"arg $a\"; done; env | sed 's/^/env /'; } >\"$OBS_RECORD.tmp\" && mv \"$OBS_RECORD.tmp\" \"$OBS_RECORD\"\nexec sleep 60\n"
	if err := os.WriteFile(filepath.Join(dir, "llama-server"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	saved := ml.LibOllamaPath
	ml.LibOllamaPath = dir
	t.Cleanup(func() { ml.LibOllamaPath = saved })
	for _, k := range runnerVariables {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}

	model, err := os.Create(filepath.Join(dir, "model.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := gguftest.Write(model, gguftest.KV{"general.architecture": "llama", "llama.block_count": uint32(1)}, nil); err != nil {
		t.Fatal(err)
	}
	model.Close()
	f, err := llm.LoadModel(model.Name(), 1024)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range decideCases() {
		if tc.wantErr != "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			in, placed := tc.input(t)
			p, err := Decide(in)
			if err != nil {
				t.Fatal(err)
			}
			gpus := placed(p)
			want := p.Runner(gpus, tc.need)
			record := filepath.Join(t.TempDir(), "record")
			t.Setenv("OBS_RECORD", record)
			s, err := llm.NewLlamaServerRunner(gpus, model.Name(), f, nil, nil, api.DefaultOptions(), 1, "", llm.LlamaServerConfig{Runner: want})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			args, env := readRecord(t, record)

			device := ""
			if i := slices.Index(args, "--device"); i >= 0 && i+1 < len(args) {
				device = args[i+1]
			}
			if device != want.Device || want.Device != tc.want.Device {
				t.Errorf("llama-server --device %q, plan %q, table %q", device, want.Device, tc.want.Device)
			}
			rpc := ""
			if i := slices.Index(args, "--rpc"); i >= 0 && i+1 < len(args) {
				rpc = args[i+1]
			}
			if rpc != strings.Join(want.RPC, ",") || rpc != tc.want.RPC {
				t.Errorf("llama-server --rpc %q, plan %q, table %q", rpc, want.RPC, tc.want.RPC)
			}
			for _, k := range runnerVariables {
				got, gotSet := env[k]
				planned, planSet := want.Env[k]
				if got != planned || gotSet != planSet {
					t.Errorf("llama-server %s=%q (set %v), plan %q (set %v)", k, got, gotSet, planned, planSet)
				}
			}
		})
	}
}

// readRecord waits for the fake llama-server's record: its arguments, and
// its environment by name.
func readRecord(t *testing.T, path string) ([]string, map[string]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var args []string
			env := map[string]string{}
			for _, line := range strings.Split(string(b), "\n") {
				if a, ok := strings.CutPrefix(line, "arg "); ok {
					args = append(args, a)
				} else if kv, ok := strings.CutPrefix(line, "env "); ok {
					k, v, _ := strings.Cut(kv, "=")
					env[k] = v
				}
			}
			return args, env
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake llama-server wrote no record in 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
