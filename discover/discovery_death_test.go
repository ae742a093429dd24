package discover

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReportDiscoveryDeath(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"libggml-base.so.0", "libggml-cpu.so", "libggml-cpu-haswell.so", "libggml-hip.so", "libggml-vulkan.so", "llama-server"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"libggml-hip.so", "libggml-vulkan.so"}, backendLibraries([]string{dir, filepath.Join(dir, "missing")})); diff != "" {
		t.Errorf("backendLibraries (-want +got):\n%s", diff)
	}

	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	stderr := []string{"load_backend: loaded CPU backend", "one", "two", "fakegpu: ROCm: injected crash in ggml_backend_init"}

	reportDiscoveryDeath("exit status 1", []string{dir}, stderr)
	if buf.Len() != 0 {
		t.Errorf("an exit status was reported as a crash: %s", buf.String())
	}
	reportDiscoveryDeath("signal: aborted", []string{dir}, stderr)
	reportDiscoveryDeath("signal: aborted", []string{dir}, stderr) // once per folders
	want := DiscoveryFailure{
		Failure: "died", LibDirs: dir, Exit: "signal: aborted", Backends: []string{"libggml-hip.so", "libggml-vulkan.so"},
		LastOutput: "one | two | fakegpu: ROCm: injected crash in ggml_backend_init", Remedy: discoveryFailureRemedy,
	}
	if !slices.ContainsFunc(ListBackends(Discovery{}, nil).DiscoveryFailures, func(f DiscoveryFailure) bool { return cmp.Equal(f, want) }) {
		t.Errorf("the backend listing lacks %+v: %+v", want, ListBackends(Discovery{}, nil).DiscoveryFailures)
	}
	out := buf.String()
	if n := strings.Count(out, discoveryDeathMsg); n != 1 {
		t.Fatalf("%d ERROR lines, want 1:\n%s", n, out)
	}
	for _, want := range []string{
		"level=ERROR", `exit="signal: aborted"`, "backends=libggml-hip.so,libggml-vulkan.so",
		`last_output="one | two | fakegpu: ROCm: injected crash in ggml_backend_init"`, "remedy=",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ERROR line lacks %s:\n%s", want, out)
		}
	}
}

func TestReportDiscoveryHang(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libggml-hip.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	stderr := []string{"load_backend: loaded CPU backend", "fakegpu: ROCm: injected hang in ggml_backend_init"}

	stopping, cancel := context.WithCancel(context.Background())
	cancel()
	reportDiscoveryHang(stopping, 2*time.Second, []string{dir}, stderr)
	if buf.Len() != 0 {
		t.Errorf("a stopping server was reported as a hang: %s", buf.String())
	}
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	reportDiscoveryHang(expired, 3*time.Second, []string{dir}, stderr) // a refresh on a busy machine
	if buf.Len() != 0 {
		t.Errorf("a refresh that ran out of time was reported as a hang: %s", buf.String())
	}
	reportDiscoveryHang(expired, 30*time.Second+400*time.Millisecond, []string{dir}, stderr)
	reportDiscoveryHang(expired, 30*time.Second, []string{dir}, stderr) // once per folders

	want := DiscoveryFailure{
		Failure: "hung", LibDirs: dir, Exit: "no answer in 30s, stopped", Backends: []string{"libggml-hip.so"},
		LastOutput: "load_backend: loaded CPU backend | fakegpu: ROCm: injected hang in ggml_backend_init", Remedy: discoveryFailureRemedy,
	}
	l := ListBackends(Discovery{}, nil)
	if !slices.ContainsFunc(l.DiscoveryFailures, func(f DiscoveryFailure) bool { return cmp.Equal(f, want) }) {
		t.Errorf("the backend listing lacks %+v: %+v", want, l.DiscoveryFailures)
	}
	out := buf.String()
	if n := strings.Count(out, discoveryHangMsg); n != 1 {
		t.Fatalf("%d ERROR lines, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, `exit="no answer in 30s, stopped"`) {
		t.Errorf("ERROR line lacks the level or the exit:\n%s", out)
	}
}
