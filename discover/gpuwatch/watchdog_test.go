package gpuwatch

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/discover"
)

func TestRunnerAliveOn(t *testing.T) {
	w := &Watchdog{now: time.Now, alive: map[int]runnerExit{}} // no learned-quirks file: nothing watched

	gpu := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "0", Library: "Vulkan"}, PCIID: "0000:03:00.0"}
	if w.runnerAliveOn("0000:03:00.0") {
		t.Fatal("alive with no runner")
	}
	w.LoadStarting()
	if !w.runnerAliveOn("0000:03:00.0") {
		t.Error("a load in progress must count as alive on every GPU")
	}
	w.RunnerLoaded(42, discover.ModelLoad{Name: "qwen3-tiny", Arch: "qwen3"}, []ml.DeviceID{gpu.DeviceID}, []ml.DeviceInfo{gpu})
	if !w.runnerAliveOn("0000:03:00.0") || w.runnerAliveOn("0000:04:00.0") {
		t.Error("alive must follow the runner's GPUs once loaded")
	}
	// No watcher set up (not Linux, no home): exiting is still tracked.
	w.RunnerExiting(42, func() bool { return false })
	if w.runnerAliveOn("0000:03:00.0") {
		t.Error("still alive after the runner exited")
	}
	w.RunnerExiting(43, nil) // unknown pid: nothing happens
	if got := w.StuckGPUs(); got != nil {
		t.Errorf("StuckGPUs() = %v without a watcher", got)
	}
	if got := w.LearnedRules(); got != nil {
		t.Errorf("LearnedRules() = %v without a watcher", got)
	}
}

// TestWatchdogNil: a scheduler built without a watchdog calls a nil one.
func TestWatchdogNil(t *testing.T) {
	var w *Watchdog
	w.LoadStarting()
	w.RunnerLoaded(1, discover.ModelLoad{Name: "m", Arch: "qwen3"}, nil, nil)
	w.RunnerExiting(1, nil)
	if w.LearnedRules() != nil || w.StuckGPUs() != nil {
		t.Error("a nil Watchdog reports something")
	}
}

// TestNew: the server's set-up learns from runners that keep dying, and
// model loads see what it learned at once; OLLAMA_BACKEND_QUIRKS_RESET=1
// forgets it at the next start.
func TestNew(t *testing.T) {
	state := filepath.Join(t.TempDir(), ".ollama", stateFileName)
	logs := &logCapture{}
	opts := Options{
		SysfsRoot: t.TempDir(), StateFile: state, Logger: slog.New(logs),
		Now:   func() time.Time { return testNow },
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	}
	t.Setenv("OLLAMA_BACKEND_QUIRKS_RESET", "")
	w := New(opts)
	gpu := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "0", Library: "ROCm"}, PCIID: "0000:03:00.0", ComputeMajor: 0x12}
	for pid := range crashLimit {
		w.LoadStarting()
		w.RunnerLoaded(pid+100, discover.ModelLoad{Name: "qwen3:8b", Arch: "qwen3"}, []ml.DeviceID{gpu.DeviceID}, []ml.DeviceInfo{gpu})
		w.RunnerExiting(pid+100, func() bool { return true })
	}
	if diff := cmp.Diff([]string{"rocm:gfx1200:qwen3"}, ruleStrings(w.LearnedRules())); diff != "" {
		t.Errorf("learned rules (-want +got):\n%s", diff)
	}
	if errs := logs.At(slog.LevelError); len(errs) != 1 || errs[0].Msg != crashQuirkMsg || errs[0].Attrs["file"] != state {
		t.Errorf("ERROR lines %+v", errs)
	}
	w.watch.wait()
	if got := w.StuckGPUs(); len(got) != 0 {
		t.Errorf("StuckGPUs = %+v, want none (no DRM under the root)", got)
	}

	// Another server process reads the file back; with the reset it
	// starts from nothing and removes the file.
	if got := ruleStrings(New(opts).LearnedRules()); len(got) != 1 {
		t.Errorf("a new server's learned rules = %v, want the one", got)
	}
	t.Setenv("OLLAMA_BACKEND_QUIRKS_RESET", "1")
	if got := New(opts).LearnedRules(); len(got) != 0 {
		t.Errorf("learned rules after the reset = %v", got)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state file after the reset: %v", err)
	}
}

func TestProcessGone(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if processGone(os.Getpid()) {
		t.Error("this process reported gone")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	pid := cmd.Process.Pid
	if processGone(pid) {
		t.Error("a running child reported gone")
	}
	// Killed by a signal: a zombie until reaped, then no /proc entry.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !processGone(pid) {
		t.Error("a killed child (zombie) not reported gone")
	}
	_ = cmd.Wait()
	if !processGone(pid) {
		t.Error("a reaped child not reported gone")
	}
	if processGone(0) || processGone(-1) {
		t.Error("no pid reported gone")
	}
}

// TestLoadFailed: a runner that dies while loading teaches its triple at
// once, with one ERROR line, and another server process reads it back.
// No discovery ran in this test binary, so no GPU has another library and
// nothing asks for a retry (integration/faulty_backend_test.go proves the
// retry on the Vulkan twin).
func TestLoadFailed(t *testing.T) {
	rocm := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "0", Library: "ROCm"}, PCIID: "0000:03:00.0", ComputeMajor: 0x12}
	cpu := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "0", Library: "cpu"}}
	died := errors.New("llama-server process has terminated: signal: aborted")
	qwen3 := discover.ModelLoad{Name: "qwen3:8b", Arch: "qwen3"}
	ownLibrary, err := qwen3.WithLibraryOption("rocm", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		m       discover.ModelLoad
		devices []ml.DeviceInfo
		cause   error
		want    []string
	}{
		{name: "ROCm runner died", m: qwen3, devices: []ml.DeviceInfo{rocm}, cause: died, want: []string{"rocm:gfx1200:qwen3"}},
		{name: "the model's own library", m: ownLibrary, devices: []ml.DeviceInfo{rocm}, cause: died, want: []string{"rocm:gfx1200:qwen3"}},
		{name: "CPU runner", m: qwen3, devices: []ml.DeviceInfo{cpu}, cause: died},
		{name: "no architecture", m: discover.ModelLoad{Name: "x"}, devices: []ml.DeviceInfo{rocm}, cause: died},
		{name: "no error", m: qwen3, devices: []ml.DeviceInfo{rocm}},
		{name: "exited with a status", m: qwen3, devices: []ml.DeviceInfo{rocm}, cause: errors.New("llama-server process has terminated: exit status 1: error loading model")},
		{name: "timed out", m: qwen3, devices: []ml.DeviceInfo{rocm}, cause: errors.New("timed out waiting for llama-server to start: context canceled")},
		{name: "with a remote device, which may be what died", m: qwen3, devices: []ml.DeviceInfo{rocm, {DeviceID: ml.DeviceID{ID: "10.0.0.2:50052/0", Library: "RPC"}}}, cause: died},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), stateFileName)
			logs := &logCapture{}
			opts := Options{SysfsRoot: t.TempDir(), StateFile: state, Logger: slog.New(logs), Now: func() time.Time { return testNow }}
			w := New(opts)
			if w.LoadFailed(tt.m, tt.devices, tt.cause) {
				t.Errorf("LoadFailed asked for a retry with no other library known")
			}
			if diff := cmp.Diff(tt.want, ruleStrings(w.LearnedRules())); diff != "" {
				t.Errorf("learned rules (-want +got):\n%s", diff)
			}
			errs := logs.At(slog.LevelError)
			if len(tt.want) == 0 {
				if len(errs) != 0 {
					t.Errorf("ERROR lines %+v, want none", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Msg != loadDeathMsg || errs[0].Attrs["next"] != "CPU" ||
				errs[0].Attrs["model"] != "qwen3:8b" || errs[0].Attrs["error"] != died.Error() || errs[0].Attrs["remedy"] == "" {
				t.Errorf("ERROR lines %+v, want one %q naming the model, the error, next=CPU and a remedy", errs, loadDeathMsg)
			}
			if q := w.watch.Quirks.all(); len(q) != 1 || q[0].Cause != causeLoadDeath || !strings.Contains(q[0].Evidence, "signal: aborted") {
				t.Errorf("learned %+v", q)
			}
			if diff := cmp.Diff(tt.want, ruleStrings(New(opts).LearnedRules())); diff != "" {
				t.Errorf("another server's learned rules (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRemoteRunnersAreNotBlamed: runners that also used a remote device die
// when the remote does, so their deaths teach nothing about this host.
func TestRemoteRunnersAreNotBlamed(t *testing.T) {
	opts := Options{
		SysfsRoot: t.TempDir(), StateFile: filepath.Join(t.TempDir(), stateFileName), Logger: slog.New(&logCapture{}),
		Now:   func() time.Time { return testNow },
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	}
	w := New(opts)
	gpu := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "0", Library: "ROCm"}, PCIID: "0000:03:00.0", ComputeMajor: 0x12}
	remote := ml.DeviceID{ID: "10.0.0.2:50052/0", Library: "RPC"}
	for pid := range crashLimit + 1 {
		w.LoadStarting()
		w.RunnerLoaded(pid+100, discover.ModelLoad{Name: "qwen3:8b", Arch: "qwen3"}, []ml.DeviceID{gpu.DeviceID, remote}, []ml.DeviceInfo{gpu})
		w.RunnerExiting(pid+100, func() bool { return true })
	}
	w.watch.wait()
	if got := ruleStrings(w.LearnedRules()); len(got) != 0 {
		t.Errorf("learned %v from runners with a remote device", got)
	}
}

// TestReportOnly: `ollama rpc`'s watchdog reports a GPU a client left busy
// and writes nothing, though it reads what the host learned as a server.
func TestReportOnly(t *testing.T) {
	t.Setenv("OLLAMA_BACKEND_QUIRKS_RESET", "")
	state := filepath.Join(t.TempDir(), stateFileName)
	now := func() time.Time { return testNow }
	sleep := func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	server := New(Options{SysfsRoot: t.TempDir(), StateFile: state, Logger: slog.New(&logCapture{}), Now: now, Sleep: sleep})
	gpu := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "0", Library: "ROCm"}, PCIID: "0000:03:00.0", ComputeMajor: 0x12}
	for pid := range crashLimit {
		server.RunnerLoaded(pid+100, discover.ModelLoad{Name: "qwen3:8b", Arch: "qwen3"}, []ml.DeviceID{gpu.DeviceID}, []ml.DeviceInfo{gpu})
		server.RunnerExiting(pid+100, func() bool { return true })
	}
	server.watch.wait()
	before, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv("OLLAMA_BACKEND_QUIRKS_RESET", "1") // forgets nothing here
	logs := &logCapture{}
	rpc := New(Options{SysfsRoot: "testdata/sysfs-rdna4", StateFile: state, Logger: slog.New(logs), Now: now, Sleep: sleep, ReportOnly: true})
	if diff := cmp.Diff([]string{"rocm:gfx1200:qwen3"}, ruleStrings(rpc.LearnedRules())); diff != "" {
		t.Errorf("rules the rpc side reads (-want +got):\n%s", diff)
	}
	for pid := range crashLimit + 1 {
		rpc.RunnerLoaded(pid+200, discover.ModelLoad{Name: "RPC client"}, []ml.DeviceID{gpu.DeviceID}, []ml.DeviceInfo{gpu})
		rpc.RunnerExiting(pid+200, func() bool { return true })
	}
	rpc.watch.wait()
	errs := logs.At(slog.LevelError)
	if len(errs) == 0 || errs[0].Msg != "GPU stayed busy after its runner exited; it may stay stuck until reboot" {
		t.Fatalf("ERROR lines %+v, want the stuck GPU reported", errs)
	}
	got := errs[0].Attrs
	if got["learned"] != "false" || got["model"] != "RPC client" ||
		!strings.Contains(got["remedy"], "nothing was learned") || !strings.Contains(got["remedy"], "OLLAMA_LLM_LIBRARY=vulkan for ollama rpc") ||
		strings.Contains(got["remedy"], "PARAMETER library") {
		t.Errorf("report %v, want an unlearned finding with this host's remedy", got)
	}
	if after, err := os.ReadFile(state); err != nil || string(after) != string(before) {
		t.Errorf("the rpc side wrote the learned-quirks file (%v):\nbefore %s\nafter  %s", err, before, after)
	}
}
