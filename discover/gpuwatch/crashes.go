package gpuwatch

import (
	"strings"
	"sync"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

// crashLimit is how many consecutive runner deaths make a learned quirk.
const crashLimit = 3

const crashQuirkMsg = "runner keeps dying; the model's next load uses another library of this GPU"

// crashCounter counts consecutive runner deaths per (library, compute,
// model architecture). It is safe for concurrent use.
type crashCounter struct {
	// Limit is 0 for crashLimit, negative for never.
	Limit int

	mu     sync.Mutex
	counts map[string]int
}

// crashKey is the counter's key; ok is false for what cannot become a quirk
// (the CPU, an empty compute or arch).
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

// crashed counts a runner death; reached is true when the count gets to the
// limit, and the count then starts over.
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

// succeeded resets the count of a runner that exited normally.
func (c *crashCounter) succeeded(library, compute, arch string) {
	k, ok := crashKey(library, compute, arch)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.counts, k)
}

func (c *crashCounter) count(library, compute, arch string) int {
	k, ok := crashKey(library, compute, arch)
	if !ok {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[k]
}
