// Package listing serves GET /api/backends and prints it for `ollama
// backends`: every device x library the server's discovery recorded, with
// the choice, the reasons, the rules, stuck GPUs and discovery failures
// (discover.ListBackends).
package listing

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/costa-os/ollama-backend-select/discover"
	"github.com/ollama/ollama/format"
)

// Handler serves GET /api/backends: what discovery recorded, the remote
// endpoints probed now, with what learned holds (nil: nothing learned).
func Handler(d discover.Discovery, learned discover.Learned) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d := d.WithRemotes(r.Context())
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if err := json.NewEncoder(w).Encode(discover.ListBackends(d, learned)); err != nil {
			slog.Warn("writing the backend listing", "error", err)
		}
	}
}

// Write fetches the listing from the server at base and prints it as a
// table, for `ollama backends`.
func Write(ctx context.Context, w io.Writer, base *url.URL) error {
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
	var l discover.BackendListing
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&l); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return writeTable(w, l)
}

// writeTable prints the listing: the table, then the preference, the stuck
// GPUs and the discovery failures, a line each.
func writeTable(w io.Writer, l discover.BackendListing) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tPCI ID\tCOMPUTE\tLIBRARY\tMEMORY\tSTATUS\tREASON\tRULES")
	for _, b := range l.Backends {
		device, memory := b.Description, ""
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
		model := f.Model
		if f.Vision {
			model += " with a vision projector"
		}
		if _, err := fmt.Fprintf(w, "GPU %s (MES firmware %s) stayed %d%%-%d%% busy after %s (%s) unloaded; %s\n",
			f.PCIID, cmp.Or(f.MESFirmware, "unknown"), f.BusyMin, f.BusyMax, model, f.Library, f.Remedy); err != nil {
			return err
		}
	}
	for _, f := range l.DiscoveryFailures {
		if _, err := fmt.Fprintf(w, "llama-server %s during GPU discovery in %s (%s); GPU backends there: %s; last output: %s; %s\n",
			f.Failure, f.LibDirs, f.Exit, dash(strings.Join(f.Backends, ", ")), dash(f.LastOutput), f.Remedy); err != nil {
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
