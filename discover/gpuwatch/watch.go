package gpuwatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/costa-os/ollama-backend-select/discover"
	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/ml/backends"
	"github.com/ollama/ollama/ml"
)

// Watcher defaults.
const (
	defaultWindow        = 10 * time.Second
	defaultInterval      = 500 * time.Millisecond
	defaultBusyThreshold = 95
)

// watchdogMaxSuspects bounds the runners remembered per GPU between two idle
// observations.
const watchdogMaxSuspects = 8

type runnerGPU struct {
	// PCIID is "" when the library does not report it; then it is not watched.
	PCIID string `json:"pci_id,omitempty"`

	Library string `json:"library"`

	// Compute is "0.0" for every Vulkan device.
	Compute string `json:"compute"`
}

// runnerGPUs returns the devices the runner reported, from the list it was
// loaded with; CPU devices are left out.
func runnerGPUs(ids []ml.DeviceID, devices []ml.DeviceInfo) []runnerGPU {
	var out []runnerGPU
	for _, id := range ids {
		if id.Library == "" || strings.EqualFold(id.Library, "cpu") {
			continue
		}
		for _, d := range devices {
			if d.DeviceID != id {
				continue
			}
			if g, ok := gpuOf(d); ok {
				out = append(out, g)
			}
			break
		}
	}
	return out
}

func (g runnerGPU) quirk(model, arch string, cause learnedCause, evidence string) learnedQuirk {
	return learnedQuirk{Library: g.Library, Compute: g.Compute, Arch: arch, Cause: cause, Evidence: evidence, Model: model, PCIID: g.PCIID}
}

// gpuOf is d as the watchdog needs it; ok is false for the CPU.
func gpuOf(d ml.DeviceInfo) (g runnerGPU, ok bool) {
	if d.Library == "" || strings.EqualFold(d.Library, "cpu") {
		return runnerGPU{}, false
	}
	g = runnerGPU{Library: d.Library, Compute: d.Compute()}
	if pci, err := normalizePCIID(d.PCIID); err == nil {
		g.PCIID = pci
	}
	return g, true
}

// runnerExit describes a runner that was unloaded or died on its own.
type runnerExit struct {
	Model string

	Arch string

	// Vision: public reports tie a loaded vision projector to a GPU left busy.
	Vision bool

	GPUs []runnerGPU

	// Crashed is set when the process exited on its own.
	Crashed bool

	// Remote is set when the runner also used remote (RPC) devices.
	Remote bool
}

// usesPCIID reports whether the runner used the GPU at the PCI address.
func (e runnerExit) usesPCIID(pciID string) bool {
	want, err := normalizePCIID(pciID)
	if err != nil {
		return false
	}
	for _, g := range e.GPUs {
		if g.PCIID == want {
			return true
		}
	}
	return false
}

// finding is a stuck GPU as the listing shows it and the learned-quirks file
// keeps it for later server processes of the same boot.
type finding = discover.StuckGPU

// watcher notices GPUs left busy after their runners exit: the RDNA4
// symptom where Qwen3 models on ROCm leave the GPU at 100% busy and top
// clock until reboot. After a runner exits it reads gpu_busy_percent for
// Window while no runner is on the GPU; if every reading is busy, it reports
// a finding and records the triple in Quirks. It reads nothing unless a
// runner exited. Zero fields take the defaults.
type watcher struct {
	// Root is the filesystem root sysfs is read under; "" means "/".
	Root string

	// Window is how long the GPU must stay busy; BusyThreshold the
	// gpu_busy_percent counted as busy.
	Window        time.Duration
	Interval      time.Duration
	BusyThreshold int

	// RunnerAlive reports whether a runner is on the GPU. It is called from
	// the watcher's goroutines only, so runnerExited may be called with the
	// scheduler's locks held. Nil turns sampling off.
	RunnerAlive func(pciID string) bool

	// Quirks records what was learned; nil learns nothing.
	Quirks *learnedQuirks

	// ReportOnly is `ollama rpc`'s watcher: its runners are RPC clients
	// whose model it does not know, so a finding is logged, with this
	// host's remedy, and nothing else.
	ReportOnly bool

	// Crashes counts consecutive runner deaths; nil counts nothing.
	Crashes *crashCounter

	Logger *slog.Logger

	Discovery func() discover.Discovery

	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	// fsys and goos stand in for the filesystem and runtime.GOOS in tests.
	fsys watchdogFS
	goos string

	wg sync.WaitGroup

	drmOnce  sync.Once
	drmKnown bool // guarded by mu
	drmOK    bool // guarded by mu

	mu          sync.Mutex
	cards       map[string]string // PCI id to card, nil until scanned
	noCard      map[string]bool   // PCI ids without a DRM card
	unsupported map[string]bool   // PCI ids whose card has no usable gpu_busy_percent
	watches     map[string]*gpuWatch
	findings    map[string]finding
	restored    bool
	bootID      *string
}

type gpuWatch struct {
	gen      int
	cancel   context.CancelFunc
	suspects []runnerSuspect // most recent first
}

// runnerSuspect is a runner that used a GPU since it was last seen idle.
type runnerSuspect struct {
	Library, Compute, Arch, Model string
	Vision                        bool
}

func (s runnerSuspect) String() string {
	out := s.Library + " " + cmp.Or(s.Arch, "unknown-arch")
	if s.Vision {
		out += "+vision"
	}
	if s.Model != "" {
		out += " (" + s.Model + ")"
	}
	return out
}

func (s runnerSuspect) same(o runnerSuspect) bool {
	return backends.Same(s.Library, o.Library) && strings.EqualFold(s.Compute, o.Compute) && strings.EqualFold(s.Arch, o.Arch)
}

func (w *watcher) logger() *slog.Logger { return cmp.Or(w.Logger, slog.Default()) }
func (w *watcher) window() time.Duration {
	return cmp.Or(max(w.Window, 0), defaultWindow)
}

func (w *watcher) interval() time.Duration {
	return cmp.Or(max(w.Interval, 0), defaultInterval)
}

func (w *watcher) threshold() int {
	if w.BusyThreshold <= 0 || w.BusyThreshold > 100 {
		return defaultBusyThreshold
	}
	return w.BusyThreshold
}

func (w *watcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *watcher) sleep(ctx context.Context, d time.Duration) error {
	if w.Sleep != nil {
		return w.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (w *watcher) fs() watchdogFS {
	if w.fsys != nil {
		return w.fsys
	}
	return osWatchdogFS{root: cmp.Or(w.Root, "/")}
}

func (w *watcher) root() string { return cmp.Or(w.Root, "/") }

// runnerExited tells the watcher that a runner exited and is no longer
// counted by RunnerAlive. ctx must live as long as the server; ending it
// stops the watch. It counts crashes at once; watching happens in goroutines.
func (w *watcher) runnerExited(ctx context.Context, exit runnerExit) {
	w.countCrash(exit)

	if w.RunnerAlive == nil || cmp.Or(w.goos, runtime.GOOS) != "linux" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.drmKnown && !w.drmOK {
		return
	}
	seen := make(map[string]bool)
	for _, g := range exit.GPUs {
		pci, err := normalizePCIID(g.PCIID)
		if err != nil || seen[pci] || w.noCard[pci] || w.unsupported[pci] {
			continue
		}
		seen[pci] = true
		if w.watches == nil {
			w.watches = make(map[string]*gpuWatch)
		}
		gw := w.watches[pci]
		if gw == nil {
			gw = &gpuWatch{}
			w.watches[pci] = gw
		}
		s := runnerSuspect{Library: g.Library, Compute: g.Compute, Arch: exit.Arch, Model: exit.Model, Vision: exit.Vision}
		gw.suspects = slices.DeleteFunc(gw.suspects, s.same)
		gw.suspects = append([]runnerSuspect{s}, gw.suspects...)
		if len(gw.suspects) > watchdogMaxSuspects {
			gw.suspects = gw.suspects[:watchdogMaxSuspects]
		}
		if gw.cancel != nil {
			gw.cancel()
		}
		gw.gen++
		wctx, cancel := context.WithCancel(ctx)
		gw.cancel = cancel
		w.wg.Add(1)
		go w.watch(wctx, pci, gw.gen)
	}
}

func (w *watcher) wait() { w.wg.Wait() }

// stuckGPUs returns the GPUs found stuck and not recovered, by PCI address.
func (w *watcher) stuckGPUs() []finding {
	w.restore()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]finding, 0, len(w.findings))
	for _, f := range w.findings {
		f.OtherRunners = slices.Clone(f.OtherRunners)
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b finding) int { return strings.Compare(a.PCIID, b.PCIID) })
	return out
}

func (w *watcher) countCrash(exit runnerExit) {
	if w.Crashes == nil {
		return
	}
	for _, g := range exit.GPUs {
		if !exit.Crashed {
			w.Crashes.succeeded(g.Library, g.Compute, exit.Arch)
			continue
		}
		n, reached := w.Crashes.crashed(g.Library, g.Compute, exit.Arch)
		if !reached {
			continue
		}
		q := g.quirk(exit.Model, exit.Arch, causeCrashes, fmt.Sprintf("the runner died %d times in a row", n))
		// At once: the scheduler loads the model again right after this runner
		// is stopped, and that load must see it.
		w.learnFromDeath(q, exit.Vision, crashQuirkMsg)
	}
}

// learnFromDeath records q and logs msg with the library the model's next
// load uses, which it returns; "" when nothing was recorded.
func (w *watcher) learnFromDeath(q learnedQuirk, vision bool, msg string, attrs ...any) string {
	if card, ok := w.cardFor(q.PCIID); ok && w.drmAvailable() {
		q.MESFirmware = readMESFirmware(w.fs(), card)
	}
	entry := ""
	if n, err := q.normalize(); err == nil {
		entry = n.rule().String()
	}
	attrs = append([]any{"library", q.Library, "compute", q.Compute, "arch", q.Arch, "model", q.Model, "pci_id", q.PCIID, "evidence", q.Evidence}, attrs...)
	added, err := w.Quirks.record(q)
	if err != nil {
		w.logger().Warn(msg+"; could not record a learned backend quirk", append(attrs, "record_error", err,
			"remedy", remedyText(entry, q.Arch, q.Library, "", false))...)
		return ""
	}
	var found discover.Discovery
	if w.Discovery != nil {
		found = w.Discovery()
	}
	next := discover.NextLibrary(found, q.PCIID, q.Library, q.Compute, discover.ModelLoad{Name: q.Model, Arch: q.Arch, Vision: vision}, w.Quirks.rules()...)
	if added {
		w.logger().Error(msg, append(attrs, "next", next, "file", w.Quirks.path(), "remedy", remedyText(entry, q.Arch, q.Library, "", true))...)
	}
	return next
}

const loadDeathMsg = "runner died while loading the model; the model's loads use another library of this GPU"

// loadDied learns from a runner that died while loading m on gpus. A death
// before the model served anything is a library that cannot run it on this
// GPU, not chance, so each triple is learned at once rather than after
// crashLimit deaths. It returns the next library per PCI address.
func (w *watcher) loadDied(m discover.ModelLoad, gpus []runnerGPU, cause string) map[string]string {
	next := map[string]string{}
	for _, g := range gpus {
		if _, ok := crashKey(g.Library, g.Compute, m.Arch); !ok {
			continue
		}
		q := g.quirk(m.Name, m.Arch, causeLoadDeath, "the runner died while loading: "+envconfig.Shorten(cause))
		next[q.PCIID] = w.learnFromDeath(q, m.Vision, loadDeathMsg, "error", cause)
	}
	return next
}

// learnedRules returns the learned quirks as rules, without those learned
// under another MES firmware than the GPU reports now: a firmware update may
// have fixed the cause, so the library is tried again once. A GPU whose
// version cannot be read keeps its quirks.
func (w *watcher) learnedRules() []discover.QuirkRule {
	for _, q := range w.Quirks.all() {
		if q.MESFirmware == "" || q.PCIID == "" || !w.drmAvailable() {
			continue
		}
		card, ok := w.cardFor(q.PCIID)
		if !ok {
			continue
		}
		now := readMESFirmware(w.fs(), card)
		if now == "" || now == q.MESFirmware {
			continue
		}
		dropped, err := w.Quirks.drop(q.key())
		switch {
		case err != nil:
			w.logger().Warn("GPU watchdog: the GPU's firmware changed, but the learned quirk could not be dropped", "pci_id", q.PCIID, "rule", q.rule().String(), "error", err)
		case dropped:
			w.logger().Info("GPU watchdog: the GPU's MES firmware changed since a quirk was learned; trying the library again for this model",
				"pci_id", q.PCIID, "rule", q.rule().String(), "learned_with", q.MESFirmware, "mes_fw_version", now, "model", q.Model)
		}
	}
	return w.Quirks.rules()
}

// drmAvailable reports, looking once, whether the root has DRM sysfs.
func (w *watcher) drmAvailable() bool {
	w.drmOnce.Do(func() {
		fi, err := w.fs().Stat(watchdogDRMDir)
		ok := err == nil && fi.IsDir()
		w.mu.Lock()
		w.drmKnown, w.drmOK = true, ok
		w.mu.Unlock()
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.drmOK
}

// cardFor returns the DRM card of a PCI address, rescanning once for an
// address not found.
func (w *watcher) cardFor(pci string) (string, bool) {
	w.mu.Lock()
	card, ok := w.cards[pci]
	scanned := w.cards != nil
	w.mu.Unlock()
	if ok {
		return card, true
	}
	cards, err := scanDRMCards(w.fs())
	if err != nil {
		w.logger().Debug("GPU watchdog: cannot list DRM cards", "error", err)
		cards = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if cards != nil {
		w.cards = cards
	}
	card, ok = w.cards[pci]
	if !ok && (scanned || cards != nil) {
		if w.noCard == nil {
			w.noCard = make(map[string]bool)
		}
		w.noCard[pci] = true
	}
	return card, ok
}

type watchOutcome int

const (
	watchAborted watchOutcome = iota // a runner is on the GPU, or no reading
	watchIdle                        // a reading below the threshold
	watchStuck                       // busy for the whole window
)

// watch samples one GPU for the window; a newer runnerExited supersedes it.
func (w *watcher) watch(ctx context.Context, pci string, gen int) {
	defer w.wg.Done()
	log := w.logger()
	n := max(1, int(w.window()/w.interval()))
	threshold := w.threshold()
	fsys := w.fs()

	var (
		card     string
		f        finding
		outcome  = watchAborted
		finished = false
	)
	for range n {
		if err := w.sleep(ctx, w.interval()); err != nil {
			return // superseded or server stopping: the newer watch owns the state
		}
		if w.RunnerAlive(pci) {
			log.Debug("GPU watchdog: a runner is on the GPU, not watching it", "pci_id", pci)
			finished = true
			break
		}
		if card == "" {
			if !w.drmAvailable() {
				break
			}
			var ok bool
			if card, ok = w.cardFor(pci); !ok {
				log.Debug("GPU watchdog: no DRM card for the GPU", "pci_id", pci)
				break
			}
		}
		busy, err := readBusy(fsys, card)
		if err != nil {
			w.markUnsupported(pci)
			if errors.Is(err, fs.ErrNotExist) {
				log.Debug("GPU watchdog: the GPU reports no busy percentage, not watching it", "pci_id", pci, "card", card)
			} else {
				log.Warn("GPU watchdog: cannot read GPU busy percentage; not watching this GPU", "pci_id", pci, "card", card, "error", err)
			}
			card = ""
			break
		}
		if f.Samples == 0 {
			f.BusyMin, f.BusyMax = busy, busy
		}
		f.Samples++
		f.BusyMin, f.BusyMax = min(f.BusyMin, busy), max(f.BusyMax, busy)
		if busy < threshold {
			outcome, finished = watchIdle, true
			break
		}
	}
	if !finished && card != "" {
		if w.RunnerAlive(pci) {
			log.Debug("GPU watchdog: a runner is on the GPU, not watching it", "pci_id", pci)
		} else {
			outcome = watchStuck
		}
	}
	if outcome == watchStuck {
		f.PCIID, f.Card = pci, card
		f.Window = time.Duration(f.Samples) * w.interval()
		f.ClockMHz, f.MaxClockMHz = -1, -1
		if cur, top, err := readClock(fsys, card); err == nil {
			f.ClockMHz, f.MaxClockMHz = cur, top
		} else if !errors.Is(err, fs.ErrNotExist) {
			log.Debug("GPU watchdog: cannot read the clock", "pci_id", pci, "error", err)
		}
		f.PowerMicrowatts = -1
		if name := findPowerFile(fsys, card); name != "" {
			if p, err := readPower(fsys, name); err == nil {
				f.PowerMicrowatts = p
			} else {
				log.Debug("GPU watchdog: cannot read the power draw", "pci_id", pci, "error", err)
			}
		}
	}
	w.finish(pci, gen, outcome, f)
}

func (w *watcher) markUnsupported(pci string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unsupported == nil {
		w.unsupported = make(map[string]bool)
	}
	w.unsupported[pci] = true
}

func (w *watcher) finish(pci string, gen int, outcome watchOutcome, f finding) {
	if outcome != watchAborted {
		w.restore()
	}
	w.mu.Lock()
	gw := w.watches[pci]
	if gw == nil || gw.gen != gen {
		w.mu.Unlock()
		return
	}
	gw.cancel()
	gw.cancel = nil
	suspects := gw.suspects
	if outcome != watchAborted {
		delete(w.watches, pci)
	}
	prev, wasStuck := w.findings[pci]
	switch outcome {
	case watchIdle:
		delete(w.findings, pci)
	case watchStuck:
		if w.findings == nil {
			w.findings = make(map[string]finding)
		}
		if wasStuck {
			// Stuck before these runners ran: keep the first attribution.
			prev.DetectedAt, prev.Window, prev.Samples = w.now(), f.Window, f.Samples
			prev.BusyMin, prev.BusyMax = f.BusyMin, f.BusyMax
			prev.ClockMHz, prev.MaxClockMHz, prev.PowerMicrowatts = f.ClockMHz, f.MaxClockMHz, f.PowerMicrowatts
			w.findings[pci] = prev
		}
	}
	w.mu.Unlock()

	switch {
	case outcome == watchIdle && wasStuck:
		w.logger().Info("GPU watchdog: the GPU is idle again", "pci_id", pci, "card", prev.Card, "busy", f.BusyMin)
		w.persistStuck(pci, nil)
	case outcome == watchStuck && wasStuck:
		w.logger().Warn("GPU watchdog: the GPU is still busy with no runner on it; not blaming the runners since",
			"pci_id", pci, "card", prev.Card, "busy_min", f.BusyMin, "busy_max", f.BusyMax,
			"stuck_since", prev.DetectedAt, "stuck_after", runnerSuspect{prev.Library, prev.Compute, prev.Arch, prev.Model, prev.Vision}.String(),
			"since", joinSuspects(suspects), "remedy", prev.Remedy)
	case outcome == watchStuck:
		w.report(pci, f, suspects)
	}
}

func (w *watcher) report(pci string, f finding, suspects []runnerSuspect) {
	last := runnerSuspect{}
	if len(suspects) > 0 {
		last = suspects[0]
	}
	f.Library, f.Compute, f.Arch, f.Model, f.Vision = last.Library, last.Compute, last.Arch, last.Model, last.Vision
	f.MESFirmware = readMESFirmware(w.fs(), f.Card)
	for _, s := range suspects[min(1, len(suspects)):] {
		f.OtherRunners = append(f.OtherRunners, s.String())
	}
	f.GfxTarget = w.gfxTarget(pci, last.Compute)
	f.DetectedAt = w.now()

	q := learnedQuirk{
		Library:     last.Library,
		Compute:     last.Compute,
		Arch:        last.Arch,
		Cause:       causeStuckBusy,
		Evidence:    stuckEvidence(f),
		Model:       last.Model,
		PCIID:       pci,
		MESFirmware: f.MESFirmware,
	}
	var learnErr error
	if n, err := q.normalize(); err == nil {
		f.DenylistEntry = n.rule().String()
		// Vulkan reports compute "0.0" for every device, so its entry would cover
		// every GPU; with several suspects the blame is uncertain.
		if len(f.OtherRunners) == 0 && !backends.Same(n.Library, "Vulkan") && w.Quirks != nil {
			f.Learned, learnErr = w.Quirks.record(q)
			if learnErr == nil && !f.Learned {
				f.Learned = true
			}
		}
	}
	if w.ReportOnly {
		f.Remedy = rpcRemedyText(f)
	} else {
		f.Remedy = remedyText(f.DenylistEntry, f.Arch, f.Library, f.GfxTarget, f.Learned)
		if f.GfxTarget != "" {
			f.Remedy += "; " + causeText(f, q)
		}
	}
	if len(f.OtherRunners) > 0 {
		f.Remedy = "several runners used this GPU since it was last idle (" + joinSuspects(suspects) +
			"), so nothing was learned; if it happens again with one of them, " + f.Remedy
	}

	w.mu.Lock()
	if w.findings == nil {
		w.findings = make(map[string]finding)
	}
	w.findings[pci] = f
	w.mu.Unlock()
	w.persistStuck(pci, &f)

	attrs := []any{
		"pci_id", f.PCIID, "card", f.Card, "gfx_target", f.GfxTarget,
		"library", f.Library, "compute", f.Compute, "arch", f.Arch, "model", f.Model, "vision", f.Vision,
		"mes_fw_version", cmp.Or(f.MESFirmware, "unknown"),
		"busy_min", f.BusyMin, "busy_max", f.BusyMax, "window", f.Window,
		"sclk_mhz", f.ClockMHz, "sclk_max_mhz", f.MaxClockMHz, "power_w", powerWatts(f.PowerMicrowatts),
	}
	if len(f.OtherRunners) > 0 {
		attrs = append(attrs, "other_runners", strings.Join(f.OtherRunners, "; "))
	}
	attrs = append(attrs, "learned", f.Learned)
	if f.Learned {
		attrs = append(attrs, "file", w.Quirks.path())
	}
	if learnErr != nil {
		attrs = append(attrs, "learn_error", learnErr)
	}
	attrs = append(attrs, "remedy", f.Remedy)
	w.logger().Error("GPU stayed busy after its runner exited; it may stay stuck until reboot", attrs...)
}

// gfxTarget returns the AMD gfx target: ROCm's compute, else KFD's name.
func (w *watcher) gfxTarget(pci, compute string) string {
	if strings.HasPrefix(strings.ToLower(compute), "gfx") {
		return strings.ToLower(compute)
	}
	return discover.KFDGfxTarget(w.root(), pci)
}

// restore loads, once, the stuck GPUs an earlier server process recorded
// during this boot.
func (w *watcher) restore() {
	w.mu.Lock()
	if w.restored {
		w.mu.Unlock()
		return
	}
	w.restored = true
	w.mu.Unlock()
	if w.Quirks == nil || !w.Quirks.hasStuck() {
		return
	}
	for _, f := range w.Quirks.stuckGPUs(w.currentBootID()) {
		f.Restored = true
		w.mu.Lock()
		if w.findings == nil {
			w.findings = make(map[string]finding)
		}
		if _, ok := w.findings[f.PCIID]; !ok {
			w.findings[f.PCIID] = f
		}
		w.mu.Unlock()
	}
}

func (w *watcher) currentBootID() string {
	w.mu.Lock()
	cached := w.bootID
	w.mu.Unlock()
	if cached != nil {
		return *cached
	}
	id := readBootID(w.fs())
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bootID = &id
	return id
}

func (w *watcher) persistStuck(pci string, f *finding) {
	if w.Quirks == nil {
		return
	}
	if f == nil && !w.Quirks.hasStuck() {
		return
	}
	if err := w.Quirks.setStuck(w.currentBootID(), pci, f); err != nil {
		w.logger().Warn("GPU watchdog: cannot record the stuck GPU", "pci_id", pci, "error", err)
	}
}

func joinSuspects(suspects []runnerSuspect) string {
	parts := make([]string, len(suspects))
	for i, s := range suspects {
		parts[i] = s.String()
	}
	return strings.Join(parts, "; ")
}

func stuckEvidence(f finding) string {
	s := fmt.Sprintf("GPU %s stayed %d-%d%% busy for %s after the runner exited", f.PCIID, f.BusyMin, f.BusyMax, f.Window)
	if f.ClockMHz >= 0 {
		s += fmt.Sprintf(", core clock %d MHz", f.ClockMHz)
		if f.MaxClockMHz > 0 {
			s += fmt.Sprintf(" of %d", f.MaxClockMHz)
		}
	}
	if f.PowerMicrowatts >= 0 {
		s += fmt.Sprintf(", %.1f W", powerWatts(f.PowerMicrowatts))
	}
	return s
}

func powerWatts(uw int64) float64 {
	if uw < 0 {
		return -1
	}
	return float64(uw) / 1e6
}

// causeText points at the likely cause: AMD puts the stuck-busy state on the
// MES firmware; llama.cpp reports tie it to a loaded vision projector; one
// hardware queue helped an R9700 owner.
// gpuRecovery is how a stuck AMD GPU comes back, on either side.
const gpuRecovery = "the GPU itself recovers only after a reboot or an amdgpu module reload"

func firmwareCause(f finding) string {
	fw := "the MES firmware version is not exposed by this kernel"
	if f.MESFirmware != "" {
		fw = "MES firmware " + f.MESFirmware
	}
	return fmt.Sprintf("likely cause: GPU firmware (%s; AMD tracks this state at https://github.com/ROCm/ROCm/issues/6298, report the version there)", fw)
}

// rpcRemedyText is the remedy on `ollama rpc`'s side, where the fix is what
// this host exposes. Whatever else uses the GPU (a local ollama serve) may
// also keep it busy, so it is a report, not proof.
func rpcRemedyText(f finding) string {
	parts := []string{"nothing was learned: ollama rpc does not know the client's model, and another program on this host may be what keeps the GPU busy"}
	if !backends.Same(f.Library, "Vulkan") {
		parts = append(parts, "OLLAMA_LLM_LIBRARY=vulkan for ollama rpc exposes this GPU through Vulkan instead")
	}
	if f.GfxTarget != "" {
		parts = append(parts, gpuRecovery, firmwareCause(f))
	}
	return strings.Join(parts, "; ")
}

func causeText(f finding, q learnedQuirk) string {
	parts := []string{firmwareCause(f)}
	if f.Vision {
		parts = append(parts, "the model had a vision projector loaded, which https://github.com/ggml-org/llama.cpp/issues/21430 and /23965 tie to a busy GPU (OLLAMA_BACKEND_DENYLIST="+
			strings.ToLower(q.Library)+":"+strings.ToLower(q.Compute)+":*:vision covers every vision model)")
	}
	if !backends.Same(q.Library, "ROCm") {
		return strings.Join(parts, "; ")
	}
	if n, err := q.normalize(); err == nil {
		parts = append(parts, "to keep "+q.Library+" with one hardware queue instead (helped on gfx1201, https://github.com/ROCm/ROCm/issues/5706): OLLAMA_BACKEND_DENYLIST="+n.rule().String()+"=queues1")
	}
	if f.Model != "" {
		parts = append(parts, "to move only this model: PARAMETER library vulkan in its Modelfile, or \"options\": {\"library\": \"vulkan\"} per request")
	}
	return strings.Join(parts, "; ")
}

func remedyText(entry, arch, library, gfx string, learned bool) string {
	var parts []string
	if learned {
		parts = append(parts, fmt.Sprintf("learned: %s models will not use %s on this GPU from their next load (to forget: %s=1 and restart)",
			cmp.Or(arch, "these"), library, envconfig.BackendQuirksResetEnv))
	}
	var fixes []string
	if entry != "" {
		fixes = append(fixes, fmt.Sprintf("OLLAMA_BACKEND_DENYLIST=%s keeps %s off this GPU for %s models", entry, library, cmp.Or(arch, "these")))
	}
	switch {
	case !backends.Same(library, "Vulkan"):
		fixes = append(fixes, "OLLAMA_LLM_LIBRARY=vulkan uses Vulkan for every model")
	case strings.HasPrefix(gfx, "gfx"):
		fixes = append(fixes, "OLLAMA_LLM_LIBRARY=rocm uses ROCm for every model")
	}
	if len(fixes) > 0 {
		verb := "set "
		if learned {
			verb = "to make it permanent, set "
		}
		parts = append(parts, verb+strings.Join(fixes, ", or "))
	}
	if gfx != "" {
		parts = append(parts, gpuRecovery)
	}
	return strings.Join(parts, "; ")
}
