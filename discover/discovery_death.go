package discover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// discoveryDeathMsg and discoveryHangMsg are the ERROR lines of a discovery
// llama-server that a signal ended, or that gave no answer before its
// deadline, before it listed its devices.
const (
	discoveryDeathMsg = "llama-server died during GPU discovery; no GPU of these folders is used"
	discoveryHangMsg  = "llama-server hung during GPU discovery; no GPU of these folders is used"
)

// discoveryFailureLines is how many of the server's last output lines the
// ERROR line quotes.
const discoveryFailureLines = 3

// reportDiscoveryDeath reports, once per set of folders, a discovery
// llama-server that ended with exit ("signal: aborted") before it listed
// its devices: ggml loads every backend library of its folders when it
// starts, so one of them crashed it, and every runner started on those
// folders will crash the same way. The line names the GPU backend libraries
// of libDirs and quotes the last lines the server wrote (output). An exit that
// is not a signal is llama-server refusing something, not a crash, and is
// left to upstream's log.
func reportDiscoveryDeath(exit string, libDirs, output []string) {
	if !strings.HasPrefix(exit, "signal: ") {
		return
	}
	reportDiscoveryFailure(DiscoveryFailure{Failure: "died", Exit: exit}, discoveryDeathMsg, libDirs, output)
}

// reportDiscoveryHang reports, once per set of folders, a discovery
// llama-server that had not written its system information when ctx's
// deadline passed, waited after it started: a backend library stuck in its
// initialisation (a driver that never answers), which will hold every runner
// started on those folders the same way. Only a wait of discoveryHangMin or
// more is a hang: upstream gives the discovery runs that decide the devices
// 30 s, and the refreshes while models run 3 s, after which it keeps the
// devices it had; a refresh that runs out of time is a busy machine. A
// cancelled ctx is a stopping server.
func reportDiscoveryHang(ctx context.Context, waited time.Duration, libDirs, output []string) {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || waited < discoveryHangMin {
		return
	}
	exit := fmt.Sprintf("no answer in %s, stopped", waited.Round(time.Second))
	reportDiscoveryFailure(DiscoveryFailure{Failure: "hung", Exit: exit}, discoveryHangMsg, libDirs, output)
}

// discoveryHangMin is the shortest discovery wait that counts as a hang.
const discoveryHangMin = 10 * time.Second

// reportDiscoveryFailure completes d with the folders, their GPU backend
// libraries and the server's last output, and logs it at ERROR as msg and
// keeps it for the listing, once per kind of failure and set of folders.
func reportDiscoveryFailure(d DiscoveryFailure, msg string, libDirs, output []string) {
	d.LibDirs = strings.Join(libDirs, string(filepath.ListSeparator))
	d.Remedy = discoveryFailureRemedy
	discoveryFailuresMu.Lock()
	seen := slices.ContainsFunc(discoveryFailures, func(f DiscoveryFailure) bool { return f.Failure == d.Failure && f.LibDirs == d.LibDirs })
	if !seen {
		d.Backends = backendLibraries(libDirs)
		d.LastOutput = strings.Join(output[max(0, len(output)-discoveryFailureLines):], " | ")
		discoveryFailures = append(discoveryFailures, d)
	}
	discoveryFailuresMu.Unlock()
	if seen {
		return
	}
	slog.Error(msg, "exit", d.Exit, "libDirs", d.LibDirs, "backends", strings.Join(d.Backends, ","),
		"last_output", d.LastOutput, "remedy", discoveryFailureRemedy)
}

// discoveryFailureRemedy is what the user can do about a backend that kills
// or hangs llama-server.
const discoveryFailureRemedy = "move the backend library that crashes or hangs out of the folder (or remove its package); in a folder shared by every backend OLLAMA_LLM_LIBRARY cannot keep ggml from loading it"

// DiscoveryFailure is a discovery llama-server that a signal ended or that
// hung: the folders it searched, what happened to it ("died" or "hung") and
// how it ended, the GPU backend libraries there (one of them is the cause)
// and its last output. GET /api/backends and `ollama backends` list them.
type DiscoveryFailure struct {
	Failure    string   `json:"failure"`
	LibDirs    string   `json:"lib_dirs"`
	Exit       string   `json:"exit"`
	Backends   []string `json:"backends,omitempty"`
	LastOutput string   `json:"last_output,omitempty"`
	Remedy     string   `json:"remedy"`
}

// discoveryFailures are the failures reported so far, for the listing.
var discoveryFailures []DiscoveryFailure

// currentDiscoveryFailures returns a copy of what was reported.
func currentDiscoveryFailures() []DiscoveryFailure {
	discoveryFailuresMu.Lock()
	defer discoveryFailuresMu.Unlock()
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
