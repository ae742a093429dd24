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
	"sync"
	"time"
)

// discoveryDeathMsg and discoveryHangMsg report a discovery llama-server that
// a signal ended, or that did not answer, before it listed its devices.
const (
	discoveryDeathMsg = "llama-server died during GPU discovery; no GPU of these folders is used"
	discoveryHangMsg  = "llama-server hung during GPU discovery; no GPU of these folders is used"
)

const discoveryFailureLines = 3

// reportDiscoveryDeath reports, once per set of folders, a discovery
// llama-server that a signal ended before it listed its devices. ggml loads
// every backend library of its folders at start, so one of them crashed it
// and every runner on those folders will crash the same way. Other exits are
// llama-server refusing something, left to upstream's log.
func reportDiscoveryDeath(exit string, libDirs, output []string) {
	if !strings.HasPrefix(exit, "signal: ") {
		return
	}
	reportDiscoveryFailure(DiscoveryFailure{Failure: "died", Exit: exit}, discoveryDeathMsg, libDirs, output)
}

// reportDiscoveryHang reports, once per set of folders, a discovery
// llama-server that had not listed its devices by ctx's deadline: a backend
// library stuck in its initialisation. Only a wait of discoveryHangMin is a
// hang: upstream's refreshes while models run get 3 s, and one that runs out
// is a busy machine.
func reportDiscoveryHang(ctx context.Context, waited time.Duration, libDirs, output []string) {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || waited < discoveryHangMin {
		return
	}
	exit := fmt.Sprintf("no answer in %s, stopped", waited.Round(time.Second))
	reportDiscoveryFailure(DiscoveryFailure{Failure: "hung", Exit: exit}, discoveryHangMsg, libDirs, output)
}

const discoveryHangMin = 10 * time.Second

// reportDiscoveryFailure logs d and keeps it for the listing, once per kind.
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
		"last_output", d.LastOutput, "remedy", d.Remedy)
}

const discoveryFailureRemedy = "move the backend library that crashes or hangs out of the folder (or remove its package); in a folder shared by every backend OLLAMA_LLM_LIBRARY cannot keep ggml from loading it"

// DiscoveryFailure is a discovery llama-server that a signal ended or that
// hung, with the GPU backend libraries of its folders (one is the cause).
type DiscoveryFailure struct {
	Failure    string   `json:"failure"`
	LibDirs    string   `json:"lib_dirs"`
	Exit       string   `json:"exit"`
	Backends   []string `json:"backends,omitempty"`
	LastOutput string   `json:"last_output,omitempty"`
	Remedy     string   `json:"remedy"`
}

var (
	discoveryFailuresMu sync.Mutex
	discoveryFailures   []DiscoveryFailure
)

func currentDiscoveryFailures() []DiscoveryFailure {
	discoveryFailuresMu.Lock()
	defer discoveryFailuresMu.Unlock()
	return slices.Clone(discoveryFailures)
}

// backendLibraries lists the ggml GPU backend libraries in dirs: the suspects.
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
