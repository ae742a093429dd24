package discover

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/ollama/ollama/ml"
)

// The server's one idle-GPU watchdog and what it needs to know of the
// scheduler: which runners are alive on which GPU, and whether a load is
// under way. The scheduler reports through the functions below, so that its
// patch only adds calls.

var (
	serverWatchdogMu sync.Mutex
	serverWatchdog   *Watchdog
	aliveRunners     = map[int]RunnerExit{} // by runner pid
	loadStarted      time.Time              // last load not yet reported loaded
)

// loadingGrace bounds how long a load in progress keeps the watchdog from
// sampling: a load that failed without a word must not silence it forever.
const loadingGrace = 10 * time.Minute

// StartIdleWatchdog sets up the server's watchdog and its learned quirks
// (~/.ollama/backend-quirks.json; OLLAMA_BACKEND_QUIRKS_RESET=1 forgets
// them at start). It costs nothing until a runner exits.
func StartIdleWatchdog() {
	home, err := os.UserHomeDir()
	if err != nil {
		slog.Warn("idle-GPU watchdog: no home folder for its learned quirks", "error", err)
		return
	}
	learned := OpenLearnedQuirks(filepath.Join(home, ".ollama", LearnedQuirksFileName), nil)
	if envconfig.BackendQuirksReset() {
		// Forget logs what it removed.
		if _, err := learned.Forget(); err != nil {
			slog.Warn("forgetting learned backend quirks", "file", learned.Path(), "error", err)
		}
	}
	serverWatchdogMu.Lock()
	defer serverWatchdogMu.Unlock()
	LearnedQuirkSource = learned.Rules
	serverWatchdog = &Watchdog{Root: SysfsRoot(), RunnerAlive: runnerAliveOn, Quirks: learned, Crashes: &CrashCounter{}}
}

// NoteLoadStarting tells the watchdog a model load began: its GPUs are not
// known yet, so no GPU is judged idle until it ends.
func NoteLoadStarting() {
	serverWatchdogMu.Lock()
	loadStarted = time.Now()
	serverWatchdogMu.Unlock()
}

// NoteRunnerLoaded records a runner that is now alive on its GPUs.
func NoteRunnerLoaded(pid int, model, arch string, ids []ml.DeviceID, devices []ml.DeviceInfo) {
	serverWatchdogMu.Lock()
	aliveRunners[pid] = RunnerExit{Model: model, Arch: arch, GPUs: RunnerGPUs(ids, devices)}
	loadStarted = time.Time{}
	serverWatchdogMu.Unlock()
}

// NoteRunnerExiting is called when the scheduler unloads a runner (expiry,
// keep_alive 0, eviction, crash), before it is stopped; hasExited tells a
// runner that died by itself. The watchdog then samples its GPUs.
func NoteRunnerExiting(pid int, hasExited func() bool) {
	serverWatchdogMu.Lock()
	exit, ok := aliveRunners[pid]
	delete(aliveRunners, pid)
	w := serverWatchdog
	serverWatchdogMu.Unlock()
	if !ok || w == nil {
		return
	}
	exit.Crashed = (hasExited != nil && hasExited()) || processGone(pid)
	w.RunnerExited(context.Background(), exit)
}

// processGone reports whether a process has ended (reaped, or a zombie).
// The scheduler asks before it stops a runner, so a runner already gone
// died by itself; upstream's HasExited misses a death by a signal (SIGKILL
// from the OOM killer, SIGSEGV), whose exit code is -1. Only Linux's /proc
// is read; elsewhere it reports false.
func processGone(pid int) bool {
	if runtime.GOOS != "linux" || pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	// The state follows the command name, which may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// StuckGPUs lists what the server's watchdog found, for listings.
func StuckGPUs() []Finding {
	serverWatchdogMu.Lock()
	w := serverWatchdog
	serverWatchdogMu.Unlock()
	if w == nil {
		return nil
	}
	return w.StuckGPUs()
}

func runnerAliveOn(pci string) bool {
	serverWatchdogMu.Lock()
	defer serverWatchdogMu.Unlock()
	if !loadStarted.IsZero() && time.Since(loadStarted) < loadingGrace {
		return true
	}
	for _, r := range aliveRunners {
		if r.UsesPCIID(pci) {
			return true
		}
	}
	return false
}
