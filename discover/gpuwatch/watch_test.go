package gpuwatch

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/discover"
)

// fakeCard is one DRM card of a fake sysfs tree.
type fakeCard struct {
	name string // "card1"
	pci  string // "0000:03:00.0"
	// link lays the card out as the kernel does, with "device" a link to
	// the PCI function; otherwise "device" is a directory with a uevent.
	link bool
	// busy, sclk, power and mes (fw_version/mes_fw_version) are file
	// contents; "" leaves the file out.
	busy, sclk, power, mes string
}

// buildFakeSysfs builds a sysfs tree of cards in a temporary root.
func buildFakeSysfs(t *testing.T, cards ...fakeCard) string {
	t.Helper()
	root := t.TempDir()
	drm := filepath.Join(root, "sys", "class", "drm")
	mkdir(t, drm)
	for _, c := range cards {
		var dev string
		if c.link {
			// sys/devices/pci0000:00/<pci>/drm/cardN, linked from
			// sys/class/drm/cardN, and cardN/device -> ../../../<pci>.
			pciDir := filepath.Join(root, "sys", "devices", "pci0000:00", c.pci)
			cardDir := filepath.Join(pciDir, "drm", c.name)
			mkdir(t, cardDir)
			symlink(t, filepath.Join("..", "..", "..", c.pci), filepath.Join(cardDir, "device"))
			symlink(t, filepath.Join("..", "..", "devices", "pci0000:00", c.pci, "drm", c.name), filepath.Join(drm, c.name))
			dev = pciDir
		} else {
			dev = filepath.Join(drm, c.name, "device")
			mkdir(t, dev)
		}
		writeFile(t, filepath.Join(dev, "uevent"), "DRIVER=amdgpu\nPCI_SLOT_NAME="+c.pci+"\n")
		if c.busy != "" {
			writeFile(t, filepath.Join(dev, watchdogBusyFile), c.busy)
		}
		if c.sclk != "" {
			writeFile(t, filepath.Join(dev, watchdogSclkFile), c.sclk)
		}
		if c.power != "" {
			writeFile(t, filepath.Join(dev, "hwmon", "hwmon4", "power1_average"), c.power)
		}
		if c.mes != "" {
			mkdir(t, filepath.Join(dev, "fw_version"))
			writeFile(t, filepath.Join(dev, filepath.FromSlash(watchdogMESFile)), c.mes)
		}
		// A connector, which is not a card.
		mkdir(t, filepath.Join(drm, c.name+"-DP-1"))
	}
	writeFile(t, filepath.Join(root, filepath.FromSlash(watchdogBootIDFile)), "boot-1\n")
	return root
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	mkdir(t, filepath.Dir(name))
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("sysfs links")
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// scriptFS wraps a watchdogFS: it records every call and can script file
// contents, the n-th read of a scripted file returning script[n] (the last
// entry repeated).
type scriptFS struct {
	base   watchdogFS
	script map[string][]string

	mu    sync.Mutex
	calls []string
	reads map[string]int
}

func (s *scriptFS) record(op, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, op+" "+name)
	if s.reads == nil {
		s.reads = make(map[string]int)
	}
	n := s.reads[op+" "+name]
	s.reads[op+" "+name]++
	return n
}

func (s *scriptFS) ReadFile(name string, max int) ([]byte, error) {
	n := s.record("read", name)
	if vals, ok := s.script[name]; ok {
		return []byte(vals[min(n, len(vals)-1)]), nil
	}
	return s.base.ReadFile(name, max)
}

func (s *scriptFS) ReadDir(name string) ([]fs.DirEntry, error) {
	s.record("readdir", name)
	return s.base.ReadDir(name)
}

func (s *scriptFS) Readlink(name string) (string, error) {
	s.record("readlink", name)
	return s.base.Readlink(name)
}

func (s *scriptFS) Stat(name string) (fs.FileInfo, error) {
	s.record("stat", name)
	return s.base.Stat(name)
}

// Calls returns the calls so far.
func (s *scriptFS) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Reads returns how many times the file was read.
func (s *scriptFS) Reads(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads["read "+name]
}

func busyFile(card string) string { return path.Join(watchdogDRMDir, card, "device", watchdogBusyFile) }

// logCapture is a slog.Handler that keeps the records.
type logCapture struct {
	mu   sync.Mutex
	recs []capturedLog
}

type capturedLog struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	rec := capturedLog{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.Resolve().String()
		return true
	})
	c.mu.Lock()
	c.recs = append(c.recs, rec)
	c.mu.Unlock()
	return nil
}

// At returns the records at the level.
func (c *logCapture) At(level slog.Level) []capturedLog {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []capturedLog
	for _, r := range c.recs {
		if r.Level == level {
			out = append(out, r)
		}
	}
	return out
}

var testNow = time.Date(2026, 3, 22, 12, 0, 0, 0, time.UTC)

// newTestWatcher returns a watchdog over root that never really sleeps:
// Window 2s and Interval 500ms make 4 readings.
func newTestWatcher(t *testing.T, root string, fsys *scriptFS, alive func(string) bool) (*watcher, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	if fsys.base == nil {
		fsys.base = osWatchdogFS{root: root}
	}
	w := &watcher{
		Root:          root,
		Window:        2 * time.Second,
		Interval:      500 * time.Millisecond,
		BusyThreshold: 95,
		RunnerAlive:   alive,
		Quirks:        openLearnedQuirks(filepath.Join(t.TempDir(), stateFileName), slog.New(logs)),
		Crashes:       &crashCounter{},
		Logger:        slog.New(logs),
		Now:           func() time.Time { return testNow },
		Sleep:         func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		fsys:          fsys,
		goos:          "linux",
	}
	w.Quirks.now = w.Now
	return w, logs
}

func noRunner(string) bool { return false }

var (
	qwen3OnROCm = runnerExit{Model: "qwen3:8b", Arch: "qwen3", GPUs: []runnerGPU{{PCIID: "0000:03:00.0", Library: "ROCm", Compute: "gfx1200"}}}
	card1       = fakeCard{name: "card1", pci: "0000:03:00.0", busy: "100\n", sclk: "0: 500Mhz \n1: 3470Mhz *\n", power: "66000000\n"}
	card0       = fakeCard{name: "card0", pci: "0000:0c:00.0", busy: "2\n", sclk: "0: 600Mhz *\n", power: "9000000\n"}
)

func TestWatchdogSampling(t *testing.T) {
	stuck := finding{
		PCIID: "0000:03:00.0", Card: "card1", GfxTarget: "gfx1200",
		Library: "ROCm", Compute: "gfx1200", Arch: "qwen3", Model: "qwen3:8b",
		DetectedAt: testNow, Window: 2 * time.Second, Samples: 4, BusyMin: 100, BusyMax: 100,
		ClockMHz: 3470, MaxClockMHz: 3470, PowerMicrowatts: 66_000_000,
		DenylistEntry: "rocm:gfx1200:qwen3", Learned: true,
	}
	tests := []struct {
		name   string
		cards  []fakeCard
		script map[string][]string
		exit   runnerExit
		alive  func(calls int) bool // by call number, from 1
		// want is the findings; wantBusyReads how often card1's busy file
		// was read; wantLogs counts records by level.
		want          []finding
		wantBusyReads int
		wantLogs      map[slog.Level]int
		wantLearned   int
	}{
		{
			name:          "stuck for the whole window",
			cards:         []fakeCard{card1},
			exit:          qwen3OnROCm,
			want:          []finding{stuck},
			wantBusyReads: 4,
			wantLogs:      map[slog.Level]int{slog.LevelError: 1},
			wantLearned:   1,
		},
		{
			name:          "at the threshold counts as busy",
			cards:         []fakeCard{card1},
			script:        map[string][]string{busyFile("card1"): {"95\n", "99\n"}},
			exit:          qwen3OnROCm,
			want:          []finding{func() finding { f := stuck; f.BusyMin, f.BusyMax = 95, 99; return f }()},
			wantBusyReads: 4,
			wantLogs:      map[slog.Level]int{slog.LevelError: 1},
			wantLearned:   1,
		},
		{
			name:          "recovering",
			cards:         []fakeCard{card1},
			script:        map[string][]string{busyFile("card1"): {"100\n", "100\n", "5\n"}},
			exit:          qwen3OnROCm,
			wantBusyReads: 3,
		},
		{
			name:          "flapping",
			cards:         []fakeCard{card1},
			script:        map[string][]string{busyFile("card1"): {"100\n", "94\n", "100\n", "100\n"}},
			exit:          qwen3OnROCm,
			wantBusyReads: 2,
		},
		{
			name:          "idle",
			cards:         []fakeCard{card1},
			script:        map[string][]string{busyFile("card1"): {"0\n"}},
			exit:          qwen3OnROCm,
			wantBusyReads: 1,
		},
		{
			name:          "a runner starts during the window",
			cards:         []fakeCard{card1},
			exit:          qwen3OnROCm,
			alive:         func(n int) bool { return n >= 3 },
			wantBusyReads: 2,
			wantLogs:      map[slog.Level]int{slog.LevelDebug: 1},
		},
		{
			name:          "a runner starts at the last moment",
			cards:         []fakeCard{card1},
			exit:          qwen3OnROCm,
			alive:         func(n int) bool { return n >= 5 },
			wantBusyReads: 4,
			wantLogs:      map[slog.Level]int{slog.LevelDebug: 1},
		},
		{
			name:          "busy file missing",
			cards:         []fakeCard{{name: "card1", pci: "0000:03:00.0"}},
			exit:          qwen3OnROCm,
			wantBusyReads: 1,
			wantLogs:      map[slog.Level]int{slog.LevelDebug: 1},
		},
		{
			name:          "non-numeric",
			cards:         []fakeCard{card1},
			script:        map[string][]string{busyFile("card1"): {"100\n", "busy\n"}},
			exit:          qwen3OnROCm,
			wantBusyReads: 2,
			wantLogs:      map[slog.Level]int{slog.LevelWarn: 1},
		},
		{
			name:          "negative",
			cards:         []fakeCard{card1},
			script:        map[string][]string{busyFile("card1"): {"-100\n"}},
			exit:          qwen3OnROCm,
			wantBusyReads: 1,
			wantLogs:      map[slog.Level]int{slog.LevelWarn: 1},
		},
		{
			name:          "enormous",
			cards:         []fakeCard{card1},
			script:        map[string][]string{busyFile("card1"): {"184467440737095516160\n"}},
			exit:          qwen3OnROCm,
			wantBusyReads: 1,
			wantLogs:      map[slog.Level]int{slog.LevelWarn: 1},
		},
		{
			name:          "longer than a page",
			cards:         []fakeCard{card1},
			script:        map[string][]string{busyFile("card1"): {strings.Repeat("1", 5000)}},
			exit:          qwen3OnROCm,
			wantBusyReads: 1,
			wantLogs:      map[slog.Level]int{slog.LevelWarn: 1},
		},
		{
			name:  "clock and power junk are left out",
			cards: []fakeCard{{name: "card1", pci: "0000:03:00.0", busy: "100\n", sclk: "garbage\n", power: "-1\n"}},
			exit:  qwen3OnROCm,
			want: []finding{func() finding {
				f := stuck
				f.ClockMHz, f.MaxClockMHz, f.PowerMicrowatts = -1, -1, -1
				return f
			}()},
			wantBusyReads: 4,
			wantLogs:      map[slog.Level]int{slog.LevelError: 1, slog.LevelDebug: 2},
			wantLearned:   1,
		},
		{
			name:          "clock and power missing",
			cards:         []fakeCard{{name: "card1", pci: "0000:03:00.0", busy: "100\n"}},
			exit:          qwen3OnROCm,
			want:          []finding{func() finding { f := stuck; f.ClockMHz, f.MaxClockMHz, f.PowerMicrowatts = -1, -1, -1; return f }()},
			wantBusyReads: 4,
			wantLogs:      map[slog.Level]int{slog.LevelError: 1},
			wantLearned:   1,
		},
		{
			name:          "a GPU the runner did not use",
			cards:         []fakeCard{card0, card1},
			exit:          runnerExit{Model: "qwen3:8b", Arch: "qwen3", GPUs: []runnerGPU{{PCIID: "0000:0c:00.0", Library: "ROCm", Compute: "gfx1036"}}},
			wantBusyReads: 0,
		},
		{
			name:  "two cards, both used, one stuck",
			cards: []fakeCard{card0, card1},
			exit: runnerExit{Model: "qwen3:8b", Arch: "qwen3", GPUs: []runnerGPU{
				{PCIID: "0000:0c:00.0", Library: "ROCm", Compute: "gfx1036"},
				{PCIID: "0000:03:00.0", Library: "ROCm", Compute: "gfx1200"},
			}},
			want:          []finding{stuck},
			wantBusyReads: 4,
			wantLogs:      map[slog.Level]int{slog.LevelError: 1},
			wantLearned:   1,
		},
		{
			name:  "Vulkan: not learned",
			cards: []fakeCard{card1},
			exit:  runnerExit{Model: "qwen3:8b", Arch: "qwen3", GPUs: []runnerGPU{{PCIID: "0000:03:00.0", Library: "Vulkan", Compute: "0.0"}}},
			want: []finding{func() finding {
				f := stuck
				f.Library, f.Compute, f.GfxTarget, f.DenylistEntry, f.Learned = "Vulkan", "0.0", "", "vulkan:0.0:qwen3", false
				return f
			}()},
			wantBusyReads: 4,
			wantLogs:      map[slog.Level]int{slog.LevelError: 1},
		},
		{
			name:          "a GPU without PCI address is not watched",
			cards:         []fakeCard{card1},
			exit:          runnerExit{Model: "qwen3:8b", Arch: "qwen3", GPUs: []runnerGPU{{Library: "ROCm", Compute: "gfx1200"}}},
			wantBusyReads: 0,
		},
		{
			name:          "a PCI address without a card",
			cards:         []fakeCard{card1},
			exit:          runnerExit{Model: "qwen3:8b", Arch: "qwen3", GPUs: []runnerGPU{{PCIID: "0000:09:00.0", Library: "ROCm", Compute: "gfx1200"}}},
			wantBusyReads: 0,
			wantLogs:      map[slog.Level]int{slog.LevelDebug: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := buildFakeSysfs(t, tt.cards...)
			fsys := &scriptFS{script: tt.script}
			var aliveCalls atomic.Int32
			alive := func(string) bool {
				n := int(aliveCalls.Add(1))
				return tt.alive != nil && tt.alive(n)
			}
			w, logs := newTestWatcher(t, root, fsys, alive)
			w.runnerExited(context.Background(), tt.exit)
			w.wait()

			opts := cmpopts.IgnoreFields(finding{}, "Remedy")
			if diff := cmp.Diff(tt.want, w.stuckGPUs(), opts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("StuckGPUs mismatch (-want +got):\n%s", diff)
			}
			if got := fsys.Reads(busyFile("card1")); got != tt.wantBusyReads {
				t.Errorf("card1 busy read %d times, want %d", got, tt.wantBusyReads)
			}
			for _, c := range fsys.Calls() {
				if strings.Contains(c, "card0/device/") && !strings.HasSuffix(c, "/uevent") && !slices.ContainsFunc(tt.exit.GPUs, func(g runnerGPU) bool { return g.PCIID == "0000:0c:00.0" }) {
					t.Errorf("read %q of a GPU the runner did not use", c)
				}
			}
			for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
				if got := len(logs.At(level)); got != tt.wantLogs[level] {
					t.Errorf("%d %s records, want %d: %+v", got, level, tt.wantLogs[level], logs.At(level))
				}
			}
			if got := len(w.Quirks.all()); got != tt.wantLearned {
				t.Errorf("%d learned quirks, want %d", got, tt.wantLearned)
			}
		})
	}
}

// TestWatchdogErrorLine checks the one ERROR line of a finding, read from
// the committed RDNA4 tree.
func TestWatchdogErrorLine(t *testing.T) {
	root := "testdata/sysfs-rdna4"
	w, logs := newTestWatcher(t, root, &scriptFS{}, noRunner)
	w.runnerExited(context.Background(), qwen3OnROCm)
	w.wait()

	errs := logs.At(slog.LevelError)
	if len(errs) != 1 {
		t.Fatalf("%d ERROR records, want 1: %+v", len(errs), logs.recs)
	}
	got := errs[0]
	want := capturedLog{
		Level: slog.LevelError,
		Msg:   "GPU stayed busy after its runner exited; it may stay stuck until reboot",
		Attrs: map[string]string{
			"pci_id": "0000:03:00.0", "card": "card1", "gfx_target": "gfx1200",
			"library": "ROCm", "compute": "gfx1200", "arch": "qwen3", "model": "qwen3:8b", "vision": "false",
			"mes_fw_version": "0x00000080",
			"busy_min":       "100", "busy_max": "100", "window": "2s",
			"sclk_mhz": "3470", "sclk_max_mhz": "3470", "power_w": "66",
			"learned": "true", "file": w.Quirks.path(),
			"remedy": "learned: qwen3 models will not use ROCm on this GPU from their next load (to forget: OLLAMA_BACKEND_QUIRKS_RESET=1 and restart); " +
				"to make it permanent, set OLLAMA_BACKEND_DENYLIST=rocm:gfx1200:qwen3 keeps ROCm off this GPU for qwen3 models, " +
				"or OLLAMA_LLM_LIBRARY=vulkan uses Vulkan for every model; " +
				"the GPU itself recovers only after a reboot or an amdgpu module reload; " +
				"likely cause: GPU firmware (MES firmware 0x00000080; AMD tracks this state at https://github.com/ROCm/ROCm/issues/6298, report the version there); " +
				"to keep ROCm with one hardware queue instead (helped on gfx1201, https://github.com/ROCm/ROCm/issues/5706): OLLAMA_BACKEND_DENYLIST=rocm:gfx1200:qwen3=queues1; " +
				`to move only this model: PARAMETER library vulkan in its Modelfile, or "options": {"library": "vulkan"} per request`,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ERROR line mismatch (-want +got):\n%s", diff)
	}
	if f := w.stuckGPUs(); len(f) != 1 || f[0].MESFirmware != "0x00000080" {
		t.Errorf("StuckGPUs = %+v, want the MES firmware version", f)
	}

	rules := w.Quirks.rules()
	if len(rules) != 1 {
		t.Fatalf("learned rules = %v, want one", rules)
	}
	if r := rules[0]; r.String() != "rocm:gfx1200:qwen3" || r.Source != discover.QuirkSourceLearned || r.Action != discover.QuirkUseOtherLibrary ||
		!r.Matches("ROCm", "gfx1200", discover.ModelLoad{Arch: "qwen3"}) || r.Matches("ROCm", "gfx1200", discover.ModelLoad{Arch: "qwen2"}) || r.Matches("Vulkan", "0.0", discover.ModelLoad{Arch: "qwen3"}) {
		t.Errorf("learned rule %+v does not keep ROCm off gfx1200 for qwen3 only", r)
	}
	if !strings.Contains(rules[0].Reason, "stayed 100-100% busy for 2s after the runner exited, core clock 3470 MHz of 3470, 66.0 W") {
		t.Errorf("rule reason %q lacks the evidence", rules[0].Reason)
	}
}

// TestWatchdogDefaults runs the default 10 s window at 500 ms with a fake
// sleep that advances a fake clock, so it takes no time.
func TestWatchdogDefaults(t *testing.T) {
	root := buildFakeSysfs(t, card1)
	fsys := &scriptFS{}
	w, _ := newTestWatcher(t, root, fsys, noRunner)
	w.Window, w.Interval, w.BusyThreshold = 0, 0, 0
	var slept atomic.Int64
	w.Sleep = func(ctx context.Context, d time.Duration) error {
		slept.Add(int64(d))
		return ctx.Err()
	}
	w.runnerExited(context.Background(), qwen3OnROCm)
	w.wait()
	if got := fsys.Reads(busyFile("card1")); got != 20 {
		t.Errorf("busy read %d times, want 20", got)
	}
	if got := time.Duration(slept.Load()); got != defaultWindow {
		t.Errorf("slept %s, want %s", got, defaultWindow)
	}
	if f := w.stuckGPUs(); len(f) != 1 || f[0].Window != defaultWindow {
		t.Errorf("StuckGPUs = %+v, want one over %s", f, defaultWindow)
	}
}

// TestWatchdogRealSleep runs a short window on the real timer.
func TestWatchdogRealSleep(t *testing.T) {
	root := buildFakeSysfs(t, card1)
	w, _ := newTestWatcher(t, root, &scriptFS{}, noRunner)
	w.Sleep, w.Window, w.Interval = nil, 20*time.Millisecond, 5*time.Millisecond
	start := time.Now()
	w.runnerExited(context.Background(), qwen3OnROCm)
	w.wait()
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("window took %s, want at least 20ms", el)
	}
	if len(w.stuckGPUs()) != 1 {
		t.Errorf("no finding")
	}

	// Cancelling the context stops the watch.
	w2, _ := newTestWatcher(t, root, &scriptFS{}, noRunner)
	w2.Sleep, w2.Window, w2.Interval = nil, time.Hour, time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	w2.runnerExited(ctx, qwen3OnROCm)
	cancel()
	w2.wait()
	if len(w2.stuckGPUs()) != 0 {
		t.Errorf("finding after cancel")
	}
}

// TestWatchdogNoReads proves that nothing is read while no runner exited,
// while a runner stays on the GPU, on a machine without DRM sysfs (after
// one look), or off Linux.
func TestWatchdogNoReads(t *testing.T) {
	t.Run("nothing exited", func(t *testing.T) {
		fsys := &scriptFS{}
		w, _ := newTestWatcher(t, buildFakeSysfs(t, card1), fsys, noRunner)
		_ = w.stuckGPUs()
		w.wait()
		if c := fsys.Calls(); len(c) != 0 {
			t.Errorf("calls %v, want none", c)
		}
	})
	t.Run("models stay loaded", func(t *testing.T) {
		fsys := &scriptFS{}
		w, _ := newTestWatcher(t, buildFakeSysfs(t, card1), fsys, func(string) bool { return true })
		for range 3 {
			w.runnerExited(context.Background(), qwen3OnROCm)
			w.wait()
		}
		if c := fsys.Calls(); len(c) != 0 {
			t.Errorf("calls %v, want none", c)
		}
	})
	t.Run("no DRM sysfs", func(t *testing.T) {
		fsys := &scriptFS{}
		w, _ := newTestWatcher(t, t.TempDir(), fsys, noRunner)
		for range 3 {
			w.runnerExited(context.Background(), qwen3OnROCm)
			w.wait()
		}
		if diff := cmp.Diff([]string{"stat sys/class/drm"}, fsys.Calls()); diff != "" {
			t.Errorf("calls mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("not Linux", func(t *testing.T) {
		fsys := &scriptFS{}
		w, _ := newTestWatcher(t, buildFakeSysfs(t, card1), fsys, noRunner)
		w.goos = "darwin"
		w.runnerExited(context.Background(), qwen3OnROCm)
		w.wait()
		if c := fsys.Calls(); len(c) != 0 {
			t.Errorf("calls %v, want none", c)
		}
	})
	t.Run("no RunnerAlive", func(t *testing.T) {
		fsys := &scriptFS{}
		w, _ := newTestWatcher(t, buildFakeSysfs(t, card1), fsys, nil)
		w.runnerExited(context.Background(), qwen3OnROCm)
		w.wait()
		if c := fsys.Calls(); len(c) != 0 {
			t.Errorf("calls %v, want none", c)
		}
	})
	t.Run("a card without busy file is read once", func(t *testing.T) {
		fsys := &scriptFS{}
		w, _ := newTestWatcher(t, buildFakeSysfs(t, fakeCard{name: "card1", pci: "0000:03:00.0"}), fsys, noRunner)
		for range 3 {
			w.runnerExited(context.Background(), qwen3OnROCm)
			w.wait()
		}
		if got := fsys.Reads(busyFile("card1")); got != 1 {
			t.Errorf("busy read %d times, want 1", got)
		}
	})
	t.Run("the DRM class is scanned once", func(t *testing.T) {
		fsys := &scriptFS{script: map[string][]string{busyFile("card1"): {"0\n"}}}
		w, _ := newTestWatcher(t, buildFakeSysfs(t, card1), fsys, noRunner)
		for range 3 {
			w.runnerExited(context.Background(), qwen3OnROCm)
			w.wait()
		}
		n := 0
		for _, c := range fsys.Calls() {
			if c == "readdir sys/class/drm" {
				n++
			}
		}
		if n != 1 || fsys.Reads(busyFile("card1")) != 3 {
			t.Errorf("DRM class listed %d times, busy read %d times; want 1 and 3", n, fsys.Reads(busyFile("card1")))
		}
	})
}

// TestWatchdogLinkedSysfs uses the kernel's layout, where the card is found
// through the device link rather than uevent.
func TestWatchdogLinkedSysfs(t *testing.T) {
	c := card1
	c.link = true
	root := buildFakeSysfs(t, c)
	fsys := &scriptFS{}
	w, _ := newTestWatcher(t, root, fsys, noRunner)
	w.runnerExited(context.Background(), qwen3OnROCm)
	w.wait()
	if f := w.stuckGPUs(); len(f) != 1 || f[0].Card != "card1" || f[0].PowerMicrowatts != 66_000_000 {
		t.Errorf("StuckGPUs = %+v, want card1 at 66 W", f)
	}
	for _, call := range fsys.Calls() {
		if strings.HasSuffix(call, "uevent") {
			t.Errorf("read %q, want the link only", call)
		}
	}
}

// TestWatchdogAttribution covers blame: several runners since the GPU was
// last idle, a GPU already stuck, recovery, and a restarted server.
func TestWatchdogAttribution(t *testing.T) {
	gemma := runnerExit{Model: "gemma3:4b", Arch: "gemma3", GPUs: qwen3OnROCm.GPUs}

	t.Run("runner on the GPU, then both exit", func(t *testing.T) {
		root := buildFakeSysfs(t, card1)
		alive := atomic.Bool{}
		alive.Store(true)
		w, logs := newTestWatcher(t, root, &scriptFS{}, func(string) bool { return alive.Load() })
		w.runnerExited(context.Background(), qwen3OnROCm) // gemma still loaded
		w.wait()
		alive.Store(false)
		w.runnerExited(context.Background(), gemma)
		w.wait()
		f := w.stuckGPUs()
		if len(f) != 1 || f[0].Arch != "gemma3" || f[0].Learned || f[0].DenylistEntry != "rocm:gfx1200:gemma3" {
			t.Fatalf("StuckGPUs = %+v, want gemma3 last, not learned", f)
		}
		if diff := cmp.Diff([]string{"ROCm qwen3 (qwen3:8b)"}, f[0].OtherRunners); diff != "" {
			t.Errorf("OtherRunners mismatch (-want +got):\n%s", diff)
		}
		if !strings.HasPrefix(f[0].Remedy, "several runners used this GPU since it was last idle (ROCm gemma3 (gemma3:4b); ROCm qwen3 (qwen3:8b))") {
			t.Errorf("Remedy = %q", f[0].Remedy)
		}
		if len(w.Quirks.all()) != 0 || len(logs.At(slog.LevelError)) != 1 {
			t.Errorf("learned %v, %d ERROR lines; want nothing and 1", w.Quirks.all(), len(logs.At(slog.LevelError)))
		}
	})

	t.Run("idle between runners clears the blame", func(t *testing.T) {
		root := buildFakeSysfs(t, card1)
		fsys := &scriptFS{script: map[string][]string{busyFile("card1"): {"3\n", "100\n"}}}
		w, _ := newTestWatcher(t, root, fsys, noRunner)
		w.runnerExited(context.Background(), gemma)
		w.wait()
		w.runnerExited(context.Background(), qwen3OnROCm)
		w.wait()
		if f := w.stuckGPUs(); len(f) != 1 || f[0].Arch != "qwen3" || len(f[0].OtherRunners) != 0 || !f[0].Learned {
			t.Fatalf("StuckGPUs = %+v, want qwen3 alone, learned", f)
		}
	})

	t.Run("a newer exit supersedes the watch", func(t *testing.T) {
		root := buildFakeSysfs(t, card1)
		w, _ := newTestWatcher(t, root, &scriptFS{}, noRunner)
		var calls atomic.Int32
		started := make(chan struct{})
		w.Sleep = func(ctx context.Context, _ time.Duration) error {
			if calls.Add(1) == 1 {
				close(started)
				<-ctx.Done()
			}
			return ctx.Err()
		}
		w.runnerExited(context.Background(), qwen3OnROCm)
		<-started
		w.runnerExited(context.Background(), gemma)
		w.wait()
		f := w.stuckGPUs()
		if len(f) != 1 || f[0].Arch != "gemma3" || len(f[0].OtherRunners) != 1 || f[0].Samples != 4 {
			t.Fatalf("StuckGPUs = %+v, want one gemma3 finding blaming both, 4 samples", f)
		}
	})

	t.Run("already stuck: later runners not blamed, then recovery", func(t *testing.T) {
		root := buildFakeSysfs(t, card1)
		fsys := &scriptFS{script: map[string][]string{busyFile("card1"): {"100\n", "100\n", "100\n", "100\n", "100\n", "100\n", "100\n", "100\n", "4\n"}}}
		w, logs := newTestWatcher(t, root, fsys, noRunner)
		w.runnerExited(context.Background(), qwen3OnROCm)
		w.wait()
		w.runnerExited(context.Background(), gemma)
		w.wait()
		f := w.stuckGPUs()
		if len(f) != 1 || f[0].Arch != "qwen3" {
			t.Fatalf("StuckGPUs = %+v, want qwen3 kept", f)
		}
		if len(logs.At(slog.LevelError)) != 1 || len(logs.At(slog.LevelWarn)) != 1 {
			t.Errorf("%d ERROR, %d WARN; want 1 and 1", len(logs.At(slog.LevelError)), len(logs.At(slog.LevelWarn)))
		}
		if got := logs.At(slog.LevelWarn)[0].Attrs["since"]; got != "ROCm gemma3 (gemma3:4b)" {
			t.Errorf("WARN since = %q", got)
		}
		if diff := cmp.Diff([]string{"rocm:gfx1200:qwen3"}, ruleStrings(w.Quirks.rules())); diff != "" {
			t.Errorf("learned rules mismatch (-want +got):\n%s", diff)
		}
		// The GPU recovers (reboot-less amdgpu reload, say).
		w.runnerExited(context.Background(), gemma)
		w.wait()
		if f := w.stuckGPUs(); len(f) != 0 {
			t.Errorf("StuckGPUs = %+v after recovery, want none", f)
		}
		if len(logs.At(slog.LevelInfo)) != 1 {
			t.Errorf("%d INFO lines, want 1 (idle again)", len(logs.At(slog.LevelInfo)))
		}
		if w.Quirks.hasStuck() {
			t.Errorf("stuck record kept after recovery")
		}
	})

	t.Run("restarted server remembers the stuck GPU for this boot", func(t *testing.T) {
		root := buildFakeSysfs(t, card1)
		w, _ := newTestWatcher(t, root, &scriptFS{}, noRunner)
		w.runnerExited(context.Background(), qwen3OnROCm)
		w.wait()

		// A new server process, same boot, same state file.
		fsys2 := &scriptFS{}
		w2, logs2 := newTestWatcher(t, root, fsys2, noRunner)
		w2.Quirks = openLearnedQuirks(w.Quirks.path(), slog.New(logs2))
		f := w2.stuckGPUs()
		if len(f) != 1 || !f[0].Restored || f[0].Arch != "qwen3" {
			t.Fatalf("restored StuckGPUs = %+v, want qwen3", f)
		}
		if diff := cmp.Diff([]string{"read " + watchdogBootIDFile}, fsys2.Calls()); diff != "" {
			t.Errorf("restoring read (-want +got):\n%s", diff)
		}
		w2.runnerExited(context.Background(), gemma)
		w2.wait()
		if len(logs2.At(slog.LevelError)) != 0 || len(logs2.At(slog.LevelWarn)) != 1 {
			t.Errorf("%d ERROR, %d WARN; want 0 and 1", len(logs2.At(slog.LevelError)), len(logs2.At(slog.LevelWarn)))
		}
		if diff := cmp.Diff([]string{"rocm:gfx1200:qwen3"}, ruleStrings(w2.Quirks.rules())); diff != "" {
			t.Errorf("learned rules mismatch (-want +got):\n%s", diff)
		}

		// After a reboot the record no longer applies.
		writeFile(t, filepath.Join(root, filepath.FromSlash(watchdogBootIDFile)), "boot-2\n")
		w3, logs3 := newTestWatcher(t, root, &scriptFS{}, noRunner)
		w3.Quirks = openLearnedQuirks(w.Quirks.path(), slog.New(logs3))
		if f := w3.stuckGPUs(); len(f) != 0 {
			t.Errorf("StuckGPUs after reboot = %+v, want none", f)
		}
		w3.runnerExited(context.Background(), gemma)
		w3.wait()
		if len(logs3.At(slog.LevelError)) != 1 {
			t.Errorf("%d ERROR lines after reboot, want 1", len(logs3.At(slog.LevelError)))
		}
	})
}

func ruleStrings(rules []discover.QuirkRule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.String())
	}
	return out
}

func TestWatchdogCrashes(t *testing.T) {
	// No discovery ran in this test binary: no alternate library is known.
	crash := qwen3OnROCm
	crash.Crashed = true
	tests := []struct {
		name   string
		exits  []runnerExit
		want   []string
		wantIn string
	}{
		{name: "three in a row", exits: []runnerExit{crash, crash, crash}, want: []string{"rocm:gfx1200:qwen3"}, wantIn: "the runner died 3 times in a row"},
		{name: "two", exits: []runnerExit{crash, crash}},
		{name: "a clean exit resets", exits: []runnerExit{crash, crash, qwen3OnROCm, crash, crash}},
		{name: "other arch does not reset", exits: []runnerExit{crash, crash, {Arch: "gemma3", GPUs: qwen3OnROCm.GPUs}, crash}, want: []string{"rocm:gfx1200:qwen3"}},
		{name: "CPU runner not counted", exits: []runnerExit{
			{Arch: "qwen3", Crashed: true, GPUs: []runnerGPU{{Library: "cpu"}}},
			{Arch: "qwen3", Crashed: true, GPUs: []runnerGPU{{Library: "cpu"}}},
			{Arch: "qwen3", Crashed: true, GPUs: []runnerGPU{{Library: "cpu"}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Idle GPU, no DRM: only the counter is at work.
			w, logs := newTestWatcher(t, t.TempDir(), &scriptFS{}, noRunner)
			for _, e := range tt.exits {
				w.runnerExited(context.Background(), e)
				w.wait()
			}
			if diff := cmp.Diff(tt.want, ruleStrings(w.Quirks.rules())); diff != "" {
				t.Errorf("learned rules mismatch (-want +got):\n%s", diff)
			}
			if tt.wantIn != "" {
				errs := logs.At(slog.LevelError)
				if len(errs) != 1 || errs[0].Msg != crashQuirkMsg || !strings.Contains(errs[0].Attrs["evidence"], tt.wantIn) ||
					errs[0].Attrs["remedy"] == "" || errs[0].Attrs["next"] != "CPU" {
					t.Errorf("ERROR lines %+v, want one %q with %q, a remedy and next=CPU (no alternate known)", errs, crashQuirkMsg, tt.wantIn)
				}
				if q := w.Quirks.all(); q[0].Cause != causeCrashes || q[0].PCIID != "0000:03:00.0" || q[0].Model != "qwen3:8b" {
					t.Errorf("learned %+v", q[0])
				}
			}
		})
	}
}

func TestRunnerGPUs(t *testing.T) {
	devices := []ml.DeviceInfo{
		{DeviceID: ml.DeviceID{ID: "0", Library: "ROCm"}, PCIID: "0000:03:00.0", ComputeMajor: 0x12, ComputeMinor: 0x00},
		{DeviceID: ml.DeviceID{ID: "1", Library: "ROCm"}, PCIID: "0000:0C:00.0", ComputeMajor: 0x10, ComputeMinor: 0x36},
		{DeviceID: ml.DeviceID{ID: "0", Library: "Vulkan"}, PCIID: "0000:03:00.0"},
		{DeviceID: ml.DeviceID{ID: "0", Library: "Metal"}},
	}
	ids := []ml.DeviceID{
		{ID: "0", Library: "ROCm"},
		{ID: "1", Library: "ROCm"},
		{ID: "0", Library: "Vulkan"},
		{ID: "0", Library: "Metal"},
		{ID: "cpu", Library: "cpu"},
		{ID: "9", Library: "CUDA"},
	}
	want := []runnerGPU{
		{PCIID: "0000:03:00.0", Library: "ROCm", Compute: devices[0].Compute()},
		{PCIID: "0000:0c:00.0", Library: "ROCm", Compute: devices[1].Compute()},
		{PCIID: "0000:03:00.0", Library: "Vulkan", Compute: devices[2].Compute()},
		{Library: "Metal", Compute: devices[3].Compute()},
	}
	got := runnerGPUs(ids, devices)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("runnerGPUs mismatch (-want +got):\n%s", diff)
	}
	if want[0].Compute != "gfx1200" {
		t.Errorf("ROCm compute %q, want gfx1200 (upstream's Compute changed?)", want[0].Compute)
	}
	exit := runnerExit{GPUs: got}
	for pci, want := range map[string]bool{"0000:03:00.0": true, "0000:0c:00.0": true, "0000:0C:00.0": true, "0000:04:00.0": false, "": false} {
		if exit.usesPCIID(pci) != want {
			t.Errorf("usesPCIID(%q) = %v, want %v", pci, !want, want)
		}
	}
}

func TestRemedyText(t *testing.T) {
	tests := []struct {
		entry, arch, library, gfx string
		learned                   bool
		want                      string
	}{
		{
			entry: "rocm:gfx1200:qwen3", arch: "qwen3", library: "ROCm", gfx: "gfx1200",
			want: "set OLLAMA_BACKEND_DENYLIST=rocm:gfx1200:qwen3 keeps ROCm off this GPU for qwen3 models, or OLLAMA_LLM_LIBRARY=vulkan uses Vulkan for every model; " +
				"the GPU itself recovers only after a reboot or an amdgpu module reload",
		},
		{
			entry: "vulkan:0.0:qwen3", arch: "qwen3", library: "Vulkan", gfx: "gfx1200",
			want: "set OLLAMA_BACKEND_DENYLIST=vulkan:0.0:qwen3 keeps Vulkan off this GPU for qwen3 models, or OLLAMA_LLM_LIBRARY=rocm uses ROCm for every model; " +
				"the GPU itself recovers only after a reboot or an amdgpu module reload",
		},
		{library: "Vulkan", want: ""},
		{library: "CUDA", arch: "x", learned: true, want: "learned: x models will not use CUDA on this GPU from their next load (to forget: OLLAMA_BACKEND_QUIRKS_RESET=1 and restart); " +
			"to make it permanent, set OLLAMA_LLM_LIBRARY=vulkan uses Vulkan for every model"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if got := remedyText(tt.entry, tt.arch, tt.library, tt.gfx, tt.learned); got != tt.want {
				t.Errorf("remedyText = %q\nwant          %q", got, tt.want)
			}
		})
	}
}

// TestWatchdogGfxFromKFD: under Vulkan the compute says nothing ("0.0"), so
// the gfx target comes from the KFD topology of the committed tree. Vulkan
// entries would cover every Vulkan GPU, so nothing is learned.
func TestWatchdogGfxFromKFD(t *testing.T) {
	w, logs := newTestWatcher(t, "testdata/sysfs-rdna4", &scriptFS{}, noRunner)
	w.runnerExited(context.Background(), runnerExit{Model: "qwen3:8b", Arch: "qwen3", GPUs: []runnerGPU{{PCIID: "0000:03:00.0", Library: "Vulkan", Compute: "0.0"}}})
	w.wait()
	f := w.stuckGPUs()
	if len(f) != 1 || f[0].GfxTarget != "gfx1200" || f[0].Learned || f[0].DenylistEntry != "vulkan:0.0:qwen3" {
		t.Fatalf("StuckGPUs = %+v, want gfx1200 from KFD, not learned", f)
	}
	want := "set OLLAMA_BACKEND_DENYLIST=vulkan:0.0:qwen3 keeps Vulkan off this GPU for qwen3 models, or OLLAMA_LLM_LIBRARY=rocm uses ROCm for every model; " +
		"the GPU itself recovers only after a reboot or an amdgpu module reload; " +
		"likely cause: GPU firmware (MES firmware 0x00000080; AMD tracks this state at https://github.com/ROCm/ROCm/issues/6298, report the version there)"
	if f[0].Remedy != want {
		t.Errorf("Remedy = %q\nwant     %q", f[0].Remedy, want)
	}
	if errs := logs.At(slog.LevelError); len(errs) != 1 || errs[0].Attrs["learned"] != "false" || errs[0].Attrs["gfx_target"] != "gfx1200" {
		t.Errorf("ERROR lines %+v", errs)
	}
	if len(w.Quirks.all()) != 0 {
		t.Errorf("learned %v", w.Quirks.all())
	}
}

// TestWatchdogVisionModel: the finding says that a projector was loaded and
// points at the vision entry.
func TestWatchdogVisionModel(t *testing.T) {
	root := buildFakeSysfs(t, card1)
	w, logs := newTestWatcher(t, root, &scriptFS{}, noRunner)
	exit := qwen3OnROCm
	exit.Vision = true
	w.runnerExited(context.Background(), exit)
	w.wait()
	errs := logs.At(slog.LevelError)
	if len(errs) != 1 {
		t.Fatalf("%d ERROR records, want 1", len(errs))
	}
	if errs[0].Attrs["vision"] != "true" || errs[0].Attrs["mes_fw_version"] != "unknown" {
		t.Errorf("ERROR attrs vision=%q mes_fw_version=%q, want true and unknown (no fw_version file)", errs[0].Attrs["vision"], errs[0].Attrs["mes_fw_version"])
	}
	for _, part := range []string{"the MES firmware version is not exposed by this kernel", "OLLAMA_BACKEND_DENYLIST=rocm:gfx1200:*:vision covers every vision model"} {
		if !strings.Contains(errs[0].Attrs["remedy"], part) {
			t.Errorf("remedy %q lacks %q", errs[0].Attrs["remedy"], part)
		}
	}
}

// TestWatchdogFirmwareUpdate: a quirk learned under one MES firmware is
// dropped once the GPU reports another, so the library is tried again; a
// second stuck-busy unload learns it again with the new version.
func TestWatchdogFirmwareUpdate(t *testing.T) {
	c := card1
	c.mes = "0x00000080\n"
	root := buildFakeSysfs(t, c)
	w, logs := newTestWatcher(t, root, &scriptFS{}, noRunner)
	w.runnerExited(context.Background(), qwen3OnROCm)
	w.wait()
	rules := w.learnedRules()
	if len(rules) != 1 || rules[0].MESFirmware != "0x00000080" || !strings.Contains(rules[0].Reason, "with MES firmware 0x00000080") {
		t.Fatalf("learned rules %+v, want one with MES firmware 0x00000080", rules)
	}
	if again := w.learnedRules(); len(again) != 1 {
		t.Fatalf("same firmware: rules %+v, want the rule kept", again)
	}

	mes := filepath.Join(root, "sys", "class", "drm", "card1", "device", filepath.FromSlash(watchdogMESFile))
	writeFile(t, mes, "0x81\n")
	if rules := w.learnedRules(); len(rules) != 0 {
		t.Fatalf("after a firmware update: rules %+v, want none (tried again)", rules)
	}
	var info []capturedLog
	for _, l := range logs.At(slog.LevelInfo) {
		if strings.Contains(l.Msg, "MES firmware changed") {
			info = append(info, l)
		}
	}
	if len(info) != 1 || info[0].Attrs["learned_with"] != "0x00000080" || info[0].Attrs["mes_fw_version"] != "0x00000081" {
		t.Errorf("INFO lines %+v, want one naming both versions", info)
	}

	// The GPU was reset for the update (idle again), then sticks again
	// under the new firmware: learned again, with it.
	busy := filepath.Join(root, "sys", "class", "drm", "card1", "device", watchdogBusyFile)
	writeFile(t, busy, "0\n")
	w.runnerExited(context.Background(), qwen3OnROCm)
	w.wait()
	if f := w.stuckGPUs(); len(f) != 0 {
		t.Fatalf("idle GPU still listed stuck: %+v", f)
	}
	writeFile(t, busy, "100\n")
	w.runnerExited(context.Background(), qwen3OnROCm)
	w.wait()
	if rules := w.learnedRules(); len(rules) != 1 || rules[0].MESFirmware != "0x00000081" {
		t.Errorf("after sticking again: rules %+v, want one with MES firmware 0x00000081", rules)
	}
}
