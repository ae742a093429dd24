//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunKeepsStateOutsideTheRoot: what `make run` serves from (models,
// keys, learned rules) lives in the user's ~/.ollama on the host, so
// rebuilding the run-time root (buildroot.sh --force) loses none of it. A
// model made by `make model` and a learned rule are in place before the
// rebuild; after it, the model answers and the rule is listed.
func TestRunKeepsStateOutsideTheRoot(t *testing.T) {
	RequireBinary(t, OllamaBin(), "fork")
	home := t.TempDir()
	state := filepath.Join(home, ".ollama")
	// A rule learned for lavapipe (Vulkan, compute 0.0) and qwen3: the
	// listing shows it on lavapipe's row.
	quirks := `{"version":1,"quirks":[{"library":"Vulkan","compute":"0.0","arch":"qwen3","cause":"crashes","learned_at":"2026-12-01T00:00:00Z"}]}`
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "backend-quirks.json"), []byte(quirks), 0o644); err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	env := append(os.Environ(), "HOME="+home, "OLLAMA_HOST="+host, "GGML_VK_VISIBLE_DEVICES=0")
	// The Go caches stay where they are: a new HOME must not mean a cold build.
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, k+"="+strings.TrimSpace(string(out)))
	}
	runMake := func(timeout time.Duration, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "make", append([]string{"-s", "-C", RepoRoot()}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 20))
		}
		return string(out)
	}
	serve := func() func() {
		t.Helper()
		cmd := exec.Command("make", "-s", "-C", RepoRoot(), "run")
		cmd.Env = env
		log, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stop := func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			if resp, err := http.Get("http://" + host + "/api/version"); err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				stop()
				b, _ := os.ReadFile(log.Name())
				t.Fatalf("make run did not serve on %s in 5m:\n%s", host, tail(string(b), 20))
			}
			time.Sleep(500 * time.Millisecond)
		}
		if b, _ := os.ReadFile(log.Name()); !strings.Contains(string(b), "run: models, keys and learned rules in "+state) {
			t.Errorf("make run does not say where the models are:\n%s", tail(string(b), 20))
		}
		return stop
	}
	check := func(when string) {
		t.Helper()
		out, err := exec.Command(OllamaBin(), "run", "tiny", "hello").CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) == 0 {
			t.Errorf("%s: ollama run tiny hello: %v\n%s", when, err, out)
		}
		resp, err := http.Get("http://" + host + "/api/backends")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l struct {
			Backends []struct {
				Library string   `json:"library"`
				Rules   []string `json:"rules"`
			} `json:"backends"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
			t.Fatal(err)
		}
		for _, b := range l.Backends {
			for _, r := range b.Rules {
				if strings.HasPrefix(r, "vulkan:0.0:qwen3 (learned") {
					return
				}
			}
		}
		t.Errorf("%s: /api/backends lists no learned rule vulkan:0.0:qwen3: %+v", when, l.Backends)
	}
	os.Setenv("OLLAMA_HOST", host)
	defer os.Unsetenv("OLLAMA_HOST")

	stop := serve()
	runMake(5*time.Minute, "model")
	check("before the rebuild")
	stop()

	// A file left in the old root proves the rebuild replaced it.
	root, err := exec.Command(filepath.Join(RepoRoot(), "scripts", "buildroot.sh"), "--path", "runtime").Output()
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(strings.TrimSpace(string(root)), "root", "left-in-the-old-root")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(RepoRoot(), "scripts", "buildroot.sh"), "--force", "runtime")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rebuilding the run-time root: %v\n%s", err, tail(string(out), 20))
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("buildroot.sh --force left the old root in place")
	}
	stop = serve()
	defer stop()
	check("after the rebuild")
	if _, err := os.Stat(filepath.Join(state, "models", "manifests")); err != nil {
		t.Errorf("the models are not in %s: %v", state, err)
	}
}
