package discover

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/ollama/ollama/ml"
)

func TestRunnerAliveOn(t *testing.T) {
	serverWatchdogMu.Lock()
	aliveRunners, loadStarted, serverWatchdog = map[int]RunnerExit{}, time.Time{}, nil
	serverWatchdogMu.Unlock()

	gpu := ml.DeviceInfo{DeviceID: ml.DeviceID{ID: "0", Library: "Vulkan"}, PCIID: "0000:03:00.0"}
	if runnerAliveOn("0000:03:00.0") {
		t.Fatal("alive with no runner")
	}
	NoteLoadStarting()
	if !runnerAliveOn("0000:03:00.0") {
		t.Error("a load in progress must count as alive on every GPU")
	}
	NoteRunnerLoaded(42, "qwen3-tiny", "qwen3", []ml.DeviceID{gpu.DeviceID}, []ml.DeviceInfo{gpu})
	if !runnerAliveOn("0000:03:00.0") || runnerAliveOn("0000:04:00.0") {
		t.Error("alive must follow the runner's GPUs once loaded")
	}
	// No watchdog set up (not Linux, no home): exiting is still tracked.
	NoteRunnerExiting(42, func() bool { return false })
	if runnerAliveOn("0000:03:00.0") {
		t.Error("still alive after the runner exited")
	}
	NoteRunnerExiting(43, nil) // unknown pid: nothing happens
	if got := StuckGPUs(); got != nil {
		t.Errorf("StuckGPUs() = %v without a watchdog", got)
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
