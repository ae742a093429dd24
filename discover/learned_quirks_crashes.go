package discover

import (
	"slices"
	"strings"
	"sync"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/ollama/ollama/ml"
)

// DefaultCrashLimit is how many consecutive runner deaths of one model
// architecture on one library and compute make a learned quirk.
const DefaultCrashLimit = 3

// CrashQuirkMsg is the one ERROR line of a runner that died
// DefaultCrashLimit times in a row: the triple is learned, and the next load
// of the architecture goes to the library its "next" field names.
const CrashQuirkMsg = "runner keeps dying; the model's next load uses another library of this GPU"

// nextLibrary names where a model of q's architecture loads next on q's GPU
// under rules: the first library of the GPU (chosen, then alternates) that
// the rules allow, or "CPU" when none does.
func nextLibrary(q LearnedQuirk, rules []QuirkRule, choices []LibraryChoice) string {
	want, _ := normalizePCIID(q.PCIID)
	for _, c := range choices {
		devs := append([]ml.DeviceInfo{c.Chosen}, c.Alternates...)
		if !slices.ContainsFunc(devs, func(d ml.DeviceInfo) bool {
			pci, _ := normalizePCIID(d.PCIID)
			return sameQuirkLibrary(d.Library, q.Library) && strings.EqualFold(d.Compute(), q.Compute) && pci == want
		}) {
			continue
		}
		for _, d := range devs {
			if _, denied := DeniesLibrary(rules, d.Library, d.Compute(), q.Arch); !denied {
				return d.Library
			}
		}
	}
	return "CPU"
}

// CrashCounter counts consecutive runner deaths per (library, compute,
// model architecture). A runner that exits normally resets its count. It is
// safe for concurrent use; the zero value is ready, with Limit
// DefaultCrashLimit.
type CrashCounter struct {
	// Limit is the count at which Crashed reports the limit reached; 0
	// means DefaultCrashLimit, a negative value never.
	Limit int

	mu     sync.Mutex
	counts map[string]int
}

// crashKey is the counter's key: canonical library, lower-case compute and
// arch. ok is false for what cannot become a quirk: a library outside the
// quirk table (the CPU) or an empty compute or arch.
func crashKey(library, compute, arch string) (string, bool) {
	lib, ok := envconfig.CanonicalLibraryName(library)
	if !ok || compute == "" || arch == "" {
		return "", false
	}
	return lib + "\x00" + strings.ToLower(compute) + "\x00" + strings.ToLower(arch), true
}

func (c *CrashCounter) limit() int {
	if c.Limit == 0 {
		return DefaultCrashLimit
	}
	return c.Limit
}

// Crashed counts a runner death and returns the consecutive count. reached
// is true exactly when the count gets to the limit; the count then starts
// over, so the next limit deaths report it again. Deaths that cannot become
// a quirk (a CPU runner, an unknown compute or arch) are not counted.
func (c *CrashCounter) Crashed(library, compute, arch string) (count int, reached bool) {
	k, ok := crashKey(library, compute, arch)
	if !ok {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = make(map[string]int)
	}
	c.counts[k]++
	count = c.counts[k]
	if l := c.limit(); l > 0 && count >= l {
		delete(c.counts, k)
		return count, true
	}
	return count, false
}

// Succeeded resets the count: the runner exited normally (unloaded by the
// scheduler after it ran).
func (c *CrashCounter) Succeeded(library, compute, arch string) {
	k, ok := crashKey(library, compute, arch)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.counts, k)
}

// Count returns the current consecutive count.
func (c *CrashCounter) Count(library, compute, arch string) int {
	k, ok := crashKey(library, compute, arch)
	if !ok {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}
