package discover

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// discoveryDeathMsg is the ERROR line of a discovery llama-server that a
// signal ended before it listed its devices.
const discoveryDeathMsg = "llama-server died during GPU discovery; no GPU of these folders is used"

// discoveryDeathLines is how many of the dead server's last output lines
// the ERROR line quotes.
const discoveryDeathLines = 3

// reportDiscoveryDeath reports, once per set of folders, a discovery
// llama-server that ended with exit ("signal: aborted") before it listed
// its devices: ggml loads every backend library of its folders when it
// starts, so one of them crashed it, and every runner started on those
// folders will crash the same way. The line names the GPU backend libraries
// of libDirs and quotes the last lines the server wrote (output). An exit that
// is not a signal is llama-server refusing something, not a crash, and is
// left to upstream's log.
func reportDiscoveryDeath(exit string, libDirs, output []string) {
	if !strings.HasPrefix(exit, "signal: ") || !reportOnce("discovery-death\x00"+strings.Join(libDirs, "\x00")) {
		return
	}
	d := discoveryFailure{
		LibDirs:    strings.Join(libDirs, string(filepath.ListSeparator)),
		Exit:       exit,
		Backends:   backendLibraries(libDirs),
		LastOutput: strings.Join(output[max(0, len(output)-discoveryDeathLines):], " | "),
	}
	discoveryFaultsMu.Lock()
	discoveryFailures = append(discoveryFailures, d)
	discoveryFaultsMu.Unlock()
	slog.Error(discoveryDeathMsg, "exit", d.Exit, "libDirs", d.LibDirs, "backends", strings.Join(d.Backends, ","),
		"last_output", d.LastOutput, "remedy", discoveryDeathRemedy)
}

// discoveryDeathRemedy is what the user can do about a backend that kills
// llama-server.
const discoveryDeathRemedy = "move the backend library that crashes out of the folder (or remove its package); in a folder shared by every backend OLLAMA_LLM_LIBRARY cannot keep ggml from loading it"

// discoveryFailure is a discovery llama-server that a signal ended: the
// folders it searched, how it ended, the GPU backend libraries there (one
// of them crashed it) and its last output. GET /api/backends and `ollama
// backends` list them.
type discoveryFailure struct {
	LibDirs    string   `json:"lib_dirs"`
	Exit       string   `json:"exit"`
	Backends   []string `json:"backends,omitempty"`
	LastOutput string   `json:"last_output,omitempty"`
}

// discoveryFailures are the failures reported so far, for the listing.
var discoveryFailures []discoveryFailure

// currentDiscoveryFailures returns a copy of what was reported.
func currentDiscoveryFailures() []discoveryFailure {
	discoveryFaultsMu.Lock()
	defer discoveryFaultsMu.Unlock()
	return slices.Clone(discoveryFailures)
}

// backendLibraries lists the ggml GPU backend libraries (libggml-<name>*.so)
// in dirs, by file name, sorted: the suspects. The base library is not a
// backend, and the CPU variants (a dozen in upstream's layout) are left out.
func backendLibraries(dirs []string) []string {
	var out []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			n := e.Name()
			if strings.HasPrefix(n, "libggml-") && strings.Contains(n, ".so") && !strings.HasPrefix(n, "libggml-base") && !strings.HasPrefix(n, "libggml-cpu") && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}
