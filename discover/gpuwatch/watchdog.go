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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/costa-os/ollama-backend-select/discover"
	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/ml/backends"
	"github.com/ollama/ollama/ml"
)

// Options configure a Watchdog. The zero value is what the server uses.
type Options struct {
	// SysfsRoot is where sysfs is read; "" means discover.SysfsRoot().
	SysfsRoot string

	// StateFile is the learned-quirks file; "" means ~/.ollama/backend-quirks.json.
	StateFile string

	// Now and Sleep stand in for the clock; Sleep must return early when ctx ends.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	// Logger is where the watchdog's lines go; nil means slog.Default().
	Logger *slog.Logger

	// Discovery returns what the server's discovery recorded; nil means nothing.
	Discovery func() discover.Discovery

	// ReportOnly logs a stuck GPU and writes nothing, for `ollama rpc`:
	// its runners are RPC clients whose model it does not know, and its
	// GPUs may be a local server's too. LearnedRules still reads the file.
	ReportOnly bool
}

// loadingGrace bounds how long a load keeps the watchdog from sampling, so a
// load that failed silently does not silence it forever.
const loadingGrace = 10 * time.Minute

// Watchdog is the server's idle-GPU watchdog (docs/watchdog.md): it watches
// the GPUs of runners that exit, counts runners that keep dying and records
// what misbehaved in the learned-quirks file. It is safe for concurrent use;
// a nil *Watchdog does nothing, as upstream.
type Watchdog struct {
	now func() time.Time

	// watch is nil when the learned-quirks file has no place (no home folder).
	watch *watcher
	// readOnly is the learned-quirks file of a ReportOnly watchdog.
	readOnly *learnedQuirks

	mu          sync.Mutex
	alive       map[int]runnerExit // the loaded runners, by pid
	loadStarted time.Time          // last load not yet reported loaded
}

var _ discover.Learned = (*Watchdog)(nil)

// New sets up a watchdog and opens its learned-quirks file. Nothing runs
// until a runner exits.
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
	if envconfig.BackendQuirksReset() && !opts.ReportOnly {
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
	if opts.ReportOnly {
		w.readOnly, w.watch.Quirks, w.watch.Crashes, w.watch.ReportOnly = learned, nil, nil, true
	}
	return w
}

// LoadStarting tells the watchdog a model load began; no GPU is judged idle
// until it ends.
func (w *Watchdog) LoadStarting() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.loadStarted = w.now()
	w.mu.Unlock()
}

// RunnerLoaded records a runner now alive on the devices ids, loaded with
// devices.
func (w *Watchdog) RunnerLoaded(pid int, m discover.ModelLoad, ids []ml.DeviceID, devices []ml.DeviceInfo) {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.alive[pid] = runnerExit{
		Model: m.Name, Arch: m.Arch, Vision: m.Vision, GPUs: runnerGPUs(ids, devices),
		Remote: slices.ContainsFunc(ids, func(id ml.DeviceID) bool { return id.Library == backends.RPC }),
	}
	w.loadStarted = time.Time{}
	w.mu.Unlock()
}

// RunnerExiting is called when the scheduler unloads a runner, before it is
// stopped; hasExited tells a runner that died by itself.
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
	// A runner with remote devices may have died of a remote: no blame.
	exit.Crashed = !exit.Remote && ((hasExited != nil && hasExited()) || processGone(pid))
	w.watch.runnerExited(context.Background(), exit)
}

// LoadFailed tells the watchdog that loading m on devices failed with cause,
// memory and cancellation ruled out. Only a runner killed by a signal before
// it was ready counts; an exit status means it refused the model itself.
// retry reports whether another library may serve the model, which names
// none itself.
func (w *Watchdog) LoadFailed(m discover.ModelLoad, devices []ml.DeviceInfo, cause error) (retry bool) {
	// llama-server aborts when a remote device fails: no library of this host to blame.
	remote := slices.ContainsFunc(devices, func(d ml.DeviceInfo) bool { return d.Library == backends.RPC })
	if w == nil || w.watch == nil || !killedBySignal(cause) || remote {
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
// that a signal ended, known only as text.
func killedBySignal(err error) bool {
	return err != nil && strings.Contains(err.Error(), "process has terminated: signal: ")
}

// LearnedRules returns what was learned as quirk rules.
func (w *Watchdog) LearnedRules() []discover.QuirkRule {
	switch {
	case w == nil || w.watch == nil:
		return nil
	case w.readOnly != nil:
		return w.readOnly.rules()
	}
	return w.watch.learnedRules()
}

// StuckGPUs lists the GPUs found stuck during this boot and not recovered.
func (w *Watchdog) StuckGPUs() []discover.StuckGPU {
	if w == nil || w.watch == nil {
		return nil
	}
	return w.watch.stuckGPUs()
}

// processGone reports whether a process has ended or is a zombie, from
// Linux's /proc. Upstream's HasExited misses a death by a signal (an OOM
// kill, SIGSEGV), whose exit code is -1.
func processGone(pid int) bool {
	if runtime.GOOS != "linux" || pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	// The command name may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

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
