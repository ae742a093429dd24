package discover

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// loaderFailure matches ggml's message for a backend library it found but
// could not open: "<func>: failed to load <path>: <dlerror>".
var loaderFailure = regexp.MustCompile(`failed to load (\S+\.(?:so|dll|dylib)): (.+)$`)

// backendFileName matches a backend library's file name; the group is the
// GGML backend name ("vulkan" in libggml-vulkan.so, "cpu" in
// libggml-cpu-haswell.so).
var backendFileName = regexp.MustCompile(`^(?:lib)?ggml-([a-z0-9]+)(?:-[A-Za-z0-9_]+)?\.(?:so|dll|dylib)$`)

// newDiscoveryOutput returns where a discovery runner's output goes: next (nil
// discards it, as upstream does below trace level), with each line also
// scanned for backend libraries that failed to load. Such a library is
// reported once per server with the file and the loader's message: ERROR,
// or WARN when it only lacks a shared object it depends on (a driver or
// runtime that is not installed, e.g. libcuda.so.1 on a machine without
// NVIDIA's driver). It is listed by listBackends.
func newDiscoveryOutput(next io.Writer) io.Writer {
	return &discoveryOutput{next: next}
}

// loadedBackend matches ggml's line for a backend library it loaded and
// initialised: "load_backend: loaded <name> backend from <path>".
var loadedBackend = regexp.MustCompile(`loaded \S+ backend from (\S+\.(?:so|dll|dylib))\s*$`)

// discoveryOutput splits what a runner writes into lines. The runner's
// stdout and stderr are copied into it from two goroutines, hence the lock.
type discoveryOutput struct {
	mu      sync.Mutex
	next    io.Writer
	partial []byte
	// loaded are the base names of the backend libraries the runner
	// reported initialised, so a crash or hang can be put on the next one.
	loaded map[string]bool
}

// loadedFiles returns the base names of the libraries the runner loaded.
func (o *discoveryOutput) loadedFiles() map[string]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]bool, len(o.loaded))
	for k := range o.loaded {
		out[k] = true
	}
	return out
}

// maxDiscoveryLine bounds a line kept for scanning; longer ones are passed
// through but not scanned.
const maxDiscoveryLine = 64 << 10

func (o *discoveryOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.next != nil {
		if _, err := o.next.Write(p); err != nil {
			return 0, err
		}
	}
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		if m := loaderFailure.FindSubmatch(o.partial[:i]); m != nil {
			recordLibraryLoadFailure(string(m[1]), string(m[2]))
		} else if m := loadedBackend.FindSubmatch(o.partial[:i]); m != nil {
			if o.loaded == nil {
				o.loaded = make(map[string]bool)
			}
			o.loaded[filepath.Base(string(m[1]))] = true
		}
		o.partial = o.partial[i+1:]
	}
	if len(o.partial) > maxDiscoveryLine {
		o.partial = o.partial[:0]
	}
	return len(p), nil
}

// recordLibraryLoadFailure records and reports, once per file, a backend
// library that failed to load.
func recordLibraryLoadFailure(file, message string) {
	message = strings.TrimSpace(message)
	name := filepath.Base(file)
	library := name
	if m := backendFileName.FindStringSubmatch(name); m != nil {
		library = m[1]
	}
	loadFailuresMu.Lock()
	_, seen := loadFailures[file]
	if !seen {
		loadFailures[file] = libraryLoadFailure{Library: library, File: file, Message: message}
	}
	loadFailuresMu.Unlock()
	if seen {
		return
	}
	if strings.Contains(message, "cannot open shared object file") {
		slog.Warn("backend library not loaded: a library it needs is not installed", "library", library, "file", file, "error", message)
		return
	}
	slog.Error("backend library failed to load; its devices are not used", "library", library, "file", file, "error", message)
}
