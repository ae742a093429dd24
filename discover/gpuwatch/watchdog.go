package gpuwatch

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/costa-os/ollama-backend-select/discover"
	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/ollama/ollama/ml"
)

// Options configure a Watchdog. The zero value is what the server uses.
type Options struct {
	// SysfsRoot is the filesystem root sysfs (DRM, KFD) and the kernel's
	// boot id are read under; "" means discover.SysfsRoot() ("/" unless
	// OLLAMA_SYSFS_ROOT says otherwise).
	SysfsRoot string

	// StateFile is the learned-quirks file; "" means backend-quirks.json in
	// ~/.ollama of the server's user.
	StateFile string

	// Now and Sleep stand in for the clock; nil means the real one. Sleep
	// must return early with ctx's error when ctx ends.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	// Logger is where the watchdog's lines go; nil means slog.Default().
	Logger *slog.Logger

	// Discovery returns what the server's discovery recorded, from which
	// the library a model moves to is decided; nil: nothing was found.
	Discovery func() discover.Discovery
}

// loadingGrace bounds how long a load in progress keeps the watchdog from
// sampling: a load that failed without a word must not silence it forever.
const loadingGrace = 10 * time.Minute

// Watchdog is the server's idle-GPU watchdog and what it learned: the
// scheduler tells it when a load starts, when a runner is loaded on its GPUs
// and when one is about to be stopped; it then watches the GPUs that runner
// used (docs/watchdog.md) and counts runners that keep dying, and records
// what misbehaved in the learned-quirks file. Model loads and the backend
// listing read that back (LearnedRules, StuckGPUs).
//
// It is safe for concurrent use. A nil *Watchdog watches and learns
// nothing, so a scheduler built without one works as upstream's.
type Watchdog struct {
	now func() time.Time

	// watch is nil when the learned-quirks file has no place (no home
	// folder): then nothing is watched or learned, as before the watchdog.
	watch *watcher

	mu          sync.Mutex
	alive       map[int]runnerExit // the loaded runners, by pid
	loadStarted time.Time          // last load not yet reported loaded
}

// The backend listing asks a Watchdog what was learned.
var _ discover.Learned = (*Watchdog)(nil)

// New sets up a watchdog and opens its learned-quirks file;
// OLLAMA_BACKEND_QUIRKS_RESET=1 forgets what the file holds. It costs
// nothing until a runner exits: no goroutine runs and nothing is read.
func New(opts Options) *Watchdog {
	log := cmp.Or(opts.Logger, slog.Default())
	w := &Watchdog{now: opts.Now, alive: map[int]runnerExit{}}
	if w.now == nil {
		w.now = time.Now
	}
	file := opts.StateFile
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			log.Warn("idle-GPU watchdog: no home folder for its learned quirks", "error", err)
			return w
		}
		file = filepath.Join(home, ".ollama", stateFileName)
	}
	learned := openLearnedQuirks(file, log)
	learned.now = w.now
	if envconfig.BackendQuirksReset() {
		// forget logs what it removed.
		if _, err := learned.forget(); err != nil {
			log.Warn("forgetting learned backend quirks", "file", learned.path(), "error", err)
		}
	}
	w.watch = &watcher{
		Root:        cmp.Or(opts.SysfsRoot, discover.SysfsRoot()),
		RunnerAlive: w.runnerAliveOn,
		Quirks:      learned,
		Crashes:     &crashCounter{},
		Logger:      opts.Logger,
		Discovery:   opts.Discovery,
		Now:         opts.Now,
		Sleep:       opts.Sleep,
	}
	return w
}

// LoadStarting tells the watchdog a model load began: its GPUs are not
// known yet, so no GPU is judged idle until it ends.
func (w *Watchdog) LoadStarting() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.loadStarted = w.now()
	w.mu.Unlock()
}

// RunnerLoaded records a runner that is now alive on its GPUs: ids are the
// devices the runner reported (llm.LlamaServer.Load's result), devices the
// list it was loaded with; m is the model (its name for logs, its GGUF
// general.architecture and whether it loaded a vision projector).
func (w *Watchdog) RunnerLoaded(pid int, m discover.ModelLoad, ids []ml.DeviceID, devices []ml.DeviceInfo) {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.alive[pid] = runnerExit{Model: m.Name, Arch: m.Arch, Vision: m.Vision, GPUs: runnerGPUs(ids, devices)}
	w.loadStarted = time.Time{}
	w.mu.Unlock()
}

// RunnerExiting is called when the scheduler unloads a runner (expiry,
// keep_alive 0, eviction, crash), before it is stopped; hasExited tells a
// runner that died by itself. The watchdog then counts the death, if it
// was one, and samples the runner's GPUs in its own goroutines.
func (w *Watchdog) RunnerExiting(pid int, hasExited func() bool) {
	if w == nil {
		return
	}
	w.mu.Lock()
	exit, ok := w.alive[pid]
	delete(w.alive, pid)
	w.mu.Unlock()
	if !ok || w.watch == nil {
		return
	}
	exit.Crashed = (hasExited != nil && hasExited()) || processGone(pid)
	w.watch.runnerExited(context.Background(), exit)
}

// LoadFailed tells the watchdog that loading model m on devices failed
// with cause; the caller has ruled out memory too small and a canceled
// request. Only a runner killed by a signal before it was ready counts (an
// abort or a fault in a backend: missing code objects for the GPU, a driver
// error); a runner that exited with a status refused the model itself and
// teaches nothing. Each GPU library the runner used is learned as a quirk
// for the model's architecture on that GPU (one ERROR line each, with the
// library that comes next). retry reports whether loading again may succeed: a GPU
// has another library for the model and the model names no library of its
// own (that choice is the user's, and the error is theirs to see).
func (w *Watchdog) LoadFailed(m discover.ModelLoad, devices []ml.DeviceInfo, cause error) (retry bool) {
	if w == nil || w.watch == nil || !killedBySignal(cause) {
		return false
	}
	w.mu.Lock()
	w.loadStarted = time.Time{}
	w.mu.Unlock()
	var gpus []runnerGPU
	for _, d := range devices {
		if g, ok := gpuOf(d); ok {
			gpus = append(gpus, g)
		}
	}
	for _, next := range w.watch.loadDied(m, gpus, cause.Error()) {
		if next != "" && next != "CPU" && !m.Library.IsSet() {
			retry = true
		}
	}
	return retry
}

// killedBySignal reports whether err is upstream's error for a llama-server
// that a signal ended ("llama-server process has terminated: signal:
// aborted: ..."); its exit is only known as text there.
func killedBySignal(err error) bool {
	return err != nil && strings.Contains(err.Error(), "process has terminated: signal: ")
}

// LearnedRules returns what was learned as quirk rules, for
// discover.PlaceModel and the backend listing. The file is read
// again when it changed on disk.
func (w *Watchdog) LearnedRules() []discover.QuirkRule {
	if w == nil || w.watch == nil {
		return nil
	}
	return w.watch.learnedRules()
}

// StuckGPUs lists the GPUs found stuck and not seen recovered since,
// including those an earlier server process found during this boot, for
// the backend listing.
func (w *Watchdog) StuckGPUs() []discover.StuckGPU {
	if w == nil || w.watch == nil {
		return nil
	}
	return w.watch.stuckGPUs()
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

// runnerAliveOn is the watcher's RunnerAlive: a load in progress, or a
// loaded runner on the GPU at the PCI address.
func (w *Watchdog) runnerAliveOn(pci string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.loadStarted.IsZero() && w.now().Sub(w.loadStarted) < loadingGrace {
		return true
	}
	for _, r := range w.alive {
		if r.usesPCIID(pci) {
			return true
		}
	}
	return false
}
