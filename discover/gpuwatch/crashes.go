package gpuwatch

import (
	"strings"
	"sync"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

// crashLimit is how many consecutive runner deaths of one model
// architecture on one library and compute make a learned quirk.
const crashLimit = 3

// crashQuirkMsg is the one ERROR line of a runner that died
// crashLimit times in a row: the triple is learned, and the next load
// of the architecture goes to the library its "next" field names.
const crashQuirkMsg = "runner keeps dying; the model's next load uses another library of this GPU"

// crashCounter counts consecutive runner deaths per (library, compute,
// model architecture). A runner that exits normally resets its count. It is
// safe for concurrent use; the zero value is ready, with Limit
// crashLimit.
type crashCounter struct {
	// Limit is the count at which crashed reports the limit reached; 0
	// means crashLimit, a negative value never.
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

func (c *crashCounter) limit() int {
	if c.Limit == 0 {
		return crashLimit
	}
	return c.Limit
}

// crashed counts a runner death and returns the consecutive count. reached
// is true exactly when the count gets to the limit; the count then starts
// over, so the next limit deaths report it again. Deaths that cannot become
// a quirk (a CPU runner, an unknown compute or arch) are not counted.
func (c *crashCounter) crashed(library, compute, arch string) (count int, reached bool) {
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

// succeeded resets the count: the runner exited normally (unloaded by the
// scheduler after it ran).
func (c *crashCounter) succeeded(library, compute, arch string) {
	k, ok := crashKey(library, compute, arch)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.counts, k)
}

// count returns the current consecutive count.
func (c *crashCounter) count(library, compute, arch string) int {
	k, ok := crashKey(library, compute, arch)
	if !ok {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}
