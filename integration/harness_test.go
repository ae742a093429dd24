//go:build integration

package integration

// Self-tests of the harness that need no ollama build: the test binary
// re-executes itself as a stand-in "ollama" (OBS_HARNESS_FAKE_OLLAMA=1).

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeOllamaMain implements `serve` (answers /api/version on OLLAMA_HOST
// and spawns two `runner` children, one with --model) and `runner` (sleeps).
// OBS_FAKE_FAIL=1 makes serve refuse to start.
func fakeOllamaMain() {
	if len(os.Args) > 1 && os.Args[1] == "runner" {
		time.Sleep(10 * time.Minute)
		os.Exit(0)
	}
	if os.Getenv("OBS_FAKE_FAIL") == "1" {
		fmt.Fprintln(os.Stderr, "Error: listen tcp: address already in use")
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, `time=2026-01-01T00:00:00.000Z level=INFO source=types.go:60 msg="inference compute" id=cpu library=cpu compute="" name=cpu description=cpu libdirs=ollama driver="" pci_id="" type="" total="1 GiB" available="1 GiB"`)
	for _, args := range [][]string{{"runner", "--ollama-engine", "--port", "1"}, {"runner", "--model", "/x", "--port", "2"}} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "OLLAMA_LIBRARY_PATH=/fake/lib/ollama")
		if err := cmd.Start(); err != nil {
			panic(err)
		}
	}
	l, err := net.Listen("tcp", os.Getenv("OLLAMA_HOST"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.HandleFunc("/api/version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"version":"0.0.0"}`)
	})
	_ = http.Serve(l, nil)
	os.Exit(0)
}

func selfBin(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestHarnessLifecycle(t *testing.T) {
	s := StartServer(t, ServerOptions{
		Bin:    selfBin(t),
		Prefix: []string{},
		Env:    []string{"OBS_HARNESS_FAKE_OLLAMA=1", "FOO=bar"},
	})
	if ic := s.InferenceCompute(); len(ic) != 1 || ic[0]["library"] != "cpu" {
		t.Errorf("inference compute: %v", ic)
	}
	var runners []Proc
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if runners = s.LiveRunners(); len(runners) == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(runners) != 2 {
		t.Fatalf("want 2 live runners, got %+v", runners)
	}
	disc := 0
	for _, r := range runners {
		if r.IsDiscovery() {
			disc++
		}
		if r.Env["OLLAMA_LIBRARY_PATH"] != "/fake/lib/ollama" || r.Env["FOO"] != "bar" {
			t.Errorf("runner env not captured: %v", r.Env)
		}
		if r.Env["HOME"] != s.Home || r.Env["OLLAMA_MODELS"] != s.Models || r.Env["OLLAMA_HOST"] != s.Host {
			t.Errorf("server env not set up: HOME=%q MODELS=%q HOST=%q", r.Env["HOME"], r.Env["OLLAMA_MODELS"], r.Env["OLLAMA_HOST"])
		}
		if len(r.Maps) == 0 {
			t.Errorf("no maps read for pid %d", r.PID)
		}
	}
	if disc != 1 {
		t.Errorf("want 1 discovery runner, got %d", disc)
	}
	pids := []int{s.PID()}
	for _, r := range runners {
		pids = append(pids, r.PID)
	}
	s.Stop()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("pid %d still alive after Stop", pid)
		}
	}
	if s.ExitCode() != -1 {
		t.Logf("exit: %s", s.ExitDescription())
	}
}

func TestHarnessRefusesToStart(t *testing.T) {
	s := StartServer(t, ServerOptions{
		Bin:    selfBin(t),
		Prefix: []string{},
		Env:    []string{"OBS_HARNESS_FAKE_OLLAMA=1", "OBS_FAKE_FAIL=1"},
		NoWait: true,
	})
	code, err := s.WaitExit(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 || !strings.Contains(s.Log(), "address already in use") {
		t.Errorf("exit %d, log %q", code, s.Log())
	}
	if err := s.WaitReady(time.Second); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("WaitReady on an exited server: %v", err)
	}
}
