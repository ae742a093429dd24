package discover

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/ollama/ollama/format"
	"github.com/ollama/ollama/ml"
)

// Backend statuses in the listing.
const (
	BackendChosen       = "chosen"
	BackendAlternate    = "alternate"
	BackendNotRequested = "not requested"
	BackendLoadFailed   = "failed to load"
)

// BackendStatus is one row of the backend listing: a device seen through
// one library, or a library file that failed to load.
type BackendStatus struct {
	Library     string   `json:"library"`
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	PCIID       string   `json:"pci_id,omitempty"`
	Compute     string   `json:"compute,omitempty"`
	TotalMemory uint64   `json:"total_memory,omitempty"`
	Status      string   `json:"status"`
	Reason      string   `json:"reason,omitempty"`
	File        string   `json:"file,omitempty"`
	Rules       []string `json:"rules,omitempty"`
}

// BackendListing is what GET /api/backends answers.
type BackendListing struct {
	LLMLibrary   string          `json:"llm_library,omitempty"`
	DefaultOrder string          `json:"default_order"`
	Backends     []BackendStatus `json:"backends"`
	// StuckGPUs are GPUs the idle-GPU watchdog found busy after a runner
	// left them.
	StuckGPUs []Finding `json:"stuck_gpus,omitempty"`
}

// ListBackends lists every device x library discovery found, with what was
// chosen and why, the quirk rules that apply to it, and the library files
// that failed to load.
func ListBackends() BackendListing {
	pref := envconfig.LLMLibraryPreference()
	rules := BackendQuirkRules()
	l := BackendListing{LLMLibrary: pref.String(), DefaultOrder: envconfig.DefaultLibraryOrder(), Backends: []BackendStatus{}}
	row := func(d ml.DeviceInfo, status, reason string) BackendStatus {
		s := BackendStatus{
			Library: d.Library, Name: d.Name, Description: d.Description, PCIID: d.PCIID,
			Compute: d.Compute(), TotalMemory: d.TotalMemory, Status: status, Reason: reason,
		}
		for _, r := range rules {
			if r.matchesDevice(d.Library, d.Compute()) {
				s.Rules = append(s.Rules, fmt.Sprintf("%s (%s)", r.String(), r.Source))
			}
		}
		return s
	}
	libraryChoicesMu.Lock()
	choices, excluded := libraryChoices, libraryExcluded
	libraryChoicesMu.Unlock()
	for _, c := range choices {
		l.Backends = append(l.Backends, row(c.Chosen, BackendChosen, ""))
		for i, a := range c.Alternates {
			l.Backends = append(l.Backends, row(a, BackendAlternate, c.Reasons[i]))
		}
	}
	for _, e := range excluded {
		l.Backends = append(l.Backends, row(e.Device, BackendNotRequested, e.Reason))
	}
	for _, f := range LibraryLoadFailures() {
		l.Backends = append(l.Backends, BackendStatus{Library: f.Library, File: f.File, Status: BackendLoadFailed, Reason: f.Message})
	}
	l.StuckGPUs = StuckGPUs()
	return l
}

// BackendsHandler serves GET /api/backends.
func BackendsHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if err := json.NewEncoder(w).Encode(ListBackends()); err != nil {
		slog.Warn("writing the backend listing", "error", err)
	}
}

// WriteBackends fetches the listing from the server at base and prints it
// as a table, for `ollama backends`.
func WriteBackends(ctx context.Context, w io.Writer, base *url.URL) error {
	u := base.JoinPath("/api/backends")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var l BackendListing
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&l); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return formatBackends(w, l)
}

func formatBackends(w io.Writer, l BackendListing) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tPCI ID\tCOMPUTE\tLIBRARY\tMEMORY\tSTATUS\tREASON\tRULES")
	for _, b := range l.Backends {
		device, memory := b.Description, ""
		if device == "" {
			device = b.File
		}
		if b.TotalMemory > 0 {
			memory = format.HumanBytes2(b.TotalMemory)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(device), dash(b.PCIID), dash(b.Compute), b.Library, dash(memory), b.Status, dash(b.Reason), dash(strings.Join(b.Rules, "; ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	pref := "not set"
	if l.LLMLibrary != "" {
		pref = l.LLMLibrary
	}
	if _, err := fmt.Fprintf(w, "\nOLLAMA_LLM_LIBRARY: %s; default order: %s\n", pref, l.DefaultOrder); err != nil {
		return err
	}
	for _, f := range l.StuckGPUs {
		if _, err := fmt.Fprintf(w, "GPU %s stayed %d%%-%d%% busy after %s (%s) unloaded; %s\n", f.PCIID, f.BusyMin, f.BusyMax, f.Model, f.Library, f.Remedy); err != nil {
			return err
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// LibraryLoadFailure is a backend library file that is present but that
// the loader could not open.
type LibraryLoadFailure struct {
	Library string // GGML name, e.g. "vulkan"
	File    string
	Message string // the loader's error
}

var (
	loadFailuresMu sync.Mutex
	loadFailures   = map[string]LibraryLoadFailure{}
)

// LibraryLoadFailures lists the failures seen so far, by file name.
func LibraryLoadFailures() []LibraryLoadFailure {
	loadFailuresMu.Lock()
	defer loadFailuresMu.Unlock()
	out := make([]LibraryLoadFailure, 0, len(loadFailures))
	for _, f := range loadFailures {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}
