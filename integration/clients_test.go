//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// clientsDir is where the pinned npm clients (testdata/clients) are
// installed once, beside the roots (OBS_ROOTS), as the Mesa shader cache.
func clientsDir() string {
	roots := os.Getenv("OBS_ROOTS")
	if roots == "" {
		roots = "/var/cache/ollama-backend-select/roots"
	}
	return filepath.Join(filepath.Dir(roots), "npm-clients")
}

// installClients runs `npm ci` for testdata/clients into clientsDir when
// its lock file changed, and returns the folder to run node in.
func installClients(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("npm is needed for the client test (.ci/run installs it): %v", err)
	}
	src := filepath.Join(RepoRoot(), "integration", "testdata", "clients")
	dir := clientsDir()
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if have, _ := os.ReadFile(filepath.Join(dir, "package-lock.json")); !bytes.Equal(have, lock) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(filepath.Join(dir, "package-lock.json"))
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, tail(string(out), 20))
		}
	}
	script, err := os.ReadFile(filepath.Join(src, "clients.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clients.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestClients: Ollama's JavaScript client (ollama-js) and the OpenAI client
// generate, chat (streamed), list and show running models against the fork,
// on the CPU and on lavapipe; /api/ps through ollama-js carries the fork's
// library fields.
func TestClients(t *testing.T) {
	dir := installClients(t)
	b := newLSBed(t, forkBin(t))
	tests := []struct {
		name       string
		env        []string
		wantVRAM   bool
		wantLib    string
		wantDecide string
	}{
		{"cpu", []string{"OLLAMA_LLM_LIBRARY=cpu"}, false, "", "OLLAMA_LLM_LIBRARY"},
		{"lavapipe", []string{"GGML_VK_VISIBLE_DEVICES=0", "OLLAMA_LLM_LIBRARY=vulkan"}, true, "Vulkan", "OLLAMA_LLM_LIBRARY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := b.start(t, tt.env...)
			m := forkCreateTiny(t, s, "qwen3")
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "clients.mjs")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "OLLAMA_HOST="+s.Host, "MODEL="+m.Name)
			out, err := cmd.Output()
			if err != nil {
				stderr := ""
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("node clients.mjs: %v\n%s%s", err, out, stderr)
			}
			var got struct {
				Version  string   `json:"version"`
				List     []string `json:"list"`
				Generate struct {
					Response  string `json:"response"`
					Done      bool   `json:"done"`
					EvalCount int    `json:"eval_count"`
				} `json:"generate"`
				ChatStream string `json:"chat_stream"`
				PS         []struct {
					Name             string `json:"name"`
					SizeVRAM         int64  `json:"size_vram"`
					Library          string `json:"library"`
					LibraryDecidedBy string `json:"library_decided_by"`
				} `json:"ps"`
				OpenAIChat struct {
					Content      string `json:"content"`
					FinishReason string `json:"finish_reason"`
				} `json:"openai_chat"`
				OpenAIModels []string `json:"openai_models"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("client output %q: %v", out, err)
			}
			full := m.Name + ":latest"
			if got.Version == "" || !slices.Contains(got.List, full) || !slices.Contains(got.OpenAIModels, full) {
				t.Errorf("version %q, ollama-js list %v, openai models %v: want the version and %s", got.Version, got.List, got.OpenAIModels, full)
			}
			if got.Generate.Response == "" || !got.Generate.Done || got.Generate.EvalCount != 8 {
				t.Errorf("ollama-js generate = %+v, want 8 tokens of text, done", got.Generate)
			}
			if got.ChatStream == "" || got.OpenAIChat.Content == "" || got.OpenAIChat.FinishReason != "length" {
				t.Errorf("ollama-js chat stream %q, openai chat %+v: want text, and finish_reason length (max_tokens 8)", got.ChatStream, got.OpenAIChat)
			}
			if len(got.PS) != 1 {
				t.Fatalf("ollama-js ps = %+v, want the model", got.PS)
			}
			ps := got.PS[0]
			if (ps.SizeVRAM > 0) != tt.wantVRAM || ps.Library != tt.wantLib || ps.LibraryDecidedBy != tt.wantDecide {
				t.Errorf("ollama-js ps = %+v, want VRAM %v, library %q, decided by %q", ps, tt.wantVRAM, tt.wantLib, tt.wantDecide)
			}
		})
	}
}
