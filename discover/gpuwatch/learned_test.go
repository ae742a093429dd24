package gpuwatch

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/costa-os/ollama-backend-select/discover"
	"github.com/costa-os/ollama-backend-select/envconfig"
)

var learnedAt = time.Date(2026, 3, 22, 12, 0, 0, 0, time.UTC)

func openTestQuirks(t *testing.T, path string) (*learnedQuirks, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	q := openLearnedQuirks(path, slog.New(logs))
	q.now = func() time.Time { return learnedAt }
	return q, logs
}

func TestLearnedQuirksRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", stateFileName)
	q, logs := openTestQuirks(t, path)
	if got := q.rules(); len(got) != 0 {
		t.Fatalf("rules of a missing file: %v", got)
	}

	added, err := q.record(learnedQuirk{Library: "hip", Compute: "GFX1200", Arch: "Qwen3", Cause: causeStuckBusy, Evidence: "100% for 10s", Model: "qwen3:8b", PCIID: "0000:03:00.0"})
	if err != nil || !added {
		t.Fatalf("Record = %v, %v", added, err)
	}
	// The same triple, spelled differently, is not added twice.
	added, err = q.record(learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "qwen3", Cause: causeCrashes})
	if err != nil || added {
		t.Fatalf("second Record = %v, %v; want false, nil", added, err)
	}
	if _, err := q.record(learnedQuirk{Library: "CUDA", Compute: "8.9", Arch: "gemma3", Cause: causeCrashes, LearnedAt: learnedAt.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	want := []learnedQuirk{
		{Library: "ROCm", Compute: "gfx1200", Arch: "qwen3", Cause: causeStuckBusy, Evidence: "100% for 10s", Model: "qwen3:8b", PCIID: "0000:03:00.0", LearnedAt: learnedAt},
		{Library: "CUDA", Compute: "8.9", Arch: "gemma3", Cause: causeCrashes, LearnedAt: learnedAt.Add(time.Hour)},
	}
	again, logs2 := openTestQuirks(t, path)
	if diff := cmp.Diff(want, again.all()); diff != "" {
		t.Errorf("reopened quirks mismatch (-want +got):\n%s", diff)
	}
	wantRules := []discover.QuirkRule{
		{
			Library: "ROCm", ComputePattern: "gfx1200", ArchPatterns: []string{"qwen3"}, Action: discover.QuirkUseOtherLibrary, Source: discover.QuirkSourceLearned,
			Reason: "learned on this machine on 2026-03-22 (stuck-busy: 100% for 10s); clear with OLLAMA_BACKEND_QUIRKS_RESET=1",
		},
		{
			Library: "CUDA", ComputePattern: "8.9", ArchPatterns: []string{"gemma3"}, Action: discover.QuirkUseOtherLibrary, Source: discover.QuirkSourceLearned,
			Reason: "learned on this machine on 2026-03-22 (crashes); clear with OLLAMA_BACKEND_QUIRKS_RESET=1",
		},
	}
	if diff := cmp.Diff(wantRules, again.rules()); diff != "" {
		t.Errorf("rules mismatch (-want +got):\n%s", diff)
	}
	if err := discover.ValidateQuirks(again.rules()); err != nil {
		t.Errorf("learned rules do not validate: %v", err)
	}
	if r, ok := discover.DeniesLibrary(again.rules(), "ROCm", "gfx1200", discover.ModelLoad{Arch: "qwen3"}); !ok || r.Source != discover.QuirkSourceLearned {
		t.Errorf("discover.DeniesLibrary(ROCm, gfx1200, qwen3) = %v, %v", r, ok)
	}
	if _, ok := discover.DeniesLibrary(again.rules(), "ROCm", "gfx1200", discover.ModelLoad{Arch: "gemma3"}); ok {
		t.Errorf("learned rules deny gemma3 on ROCm")
	}
	if n := len(logs.recs) + len(logs2.recs); n != 0 {
		t.Errorf("%d log records, want none: %+v %+v", n, logs.recs, logs2.recs)
	}

	// The file is the documented format.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["version"] != float64(1) || len(doc["quirks"].([]any)) != 2 {
		t.Errorf("file content %s", data)
	}
}

func TestLearnedQuirksRecordInvalid(t *testing.T) {
	tests := []struct {
		q       learnedQuirk
		wantErr string
	}{
		{learnedQuirk{Library: "cpu", Compute: "x", Arch: "qwen3", Cause: causeCrashes}, `learned quirk: library "cpu": accepted: ROCm, CUDA, Vulkan`},
		{learnedQuirk{Library: "ROCm", Compute: "", Arch: "qwen3", Cause: causeCrashes}, "learned quirk: empty compute"},
		{learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "", Cause: causeCrashes}, "learned quirk: empty arch"},
		{learnedQuirk{Library: "ROCm", Compute: "gfx12*", Arch: "qwen3", Cause: causeCrashes}, `compute "gfx12*": a learned compute is exact, not a pattern`},
		{learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "qwen[3]", Cause: causeCrashes}, `arch "qwen[3]"`},
		{learnedQuirk{Library: "ROCm", Compute: "9.0", Arch: "qwen3", Cause: causeCrashes}, `compute "9.0"`},
		{learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "qwen 3", Cause: causeCrashes}, `"qwen 3"`},
		{learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "qwen3:x", Cause: causeCrashes}, `arch "qwen3:x": only letters`},
		{learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "qwen3", Cause: "vibes"}, `cause "vibes"`},
	}
	for _, tt := range tests {
		t.Run(tt.wantErr, func(t *testing.T) {
			q, _ := openTestQuirks(t, filepath.Join(t.TempDir(), stateFileName))
			added, err := q.record(tt.q)
			checkErr(t, err, tt.wantErr)
			if added {
				t.Errorf("added an invalid quirk")
			}
			if _, err := os.Stat(q.path()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("file written for an invalid quirk: %v", err)
			}
		})
	}
}

func TestLearnedQuirksBadFile(t *testing.T) {
	good := `{"library":"ROCm","compute":"gfx1200","arch":"qwen3","cause":"stuck-busy","learned_at":"2026-03-22T12:00:00Z"}`
	tests := []struct {
		name    string
		content string
		setup   func(t *testing.T, path string) // instead of content
		wantIn  []string                        // in the WARN's error
		want    []string                        // rules kept
		keep    bool                            // Record must not overwrite
	}{
		{name: "not JSON", content: "hello", wantIn: []string{"not a JSON object"}},
		{name: "empty", content: "", wantIn: []string{"not a JSON object"}},
		{name: "truncated", content: `{"version":1,"quirks":[` + good, wantIn: []string{"not a JSON object", "unexpected end of JSON input"}},
		{name: "wrong type of quirks", content: `{"version":1,"quirks":"rocm:gfx1200:qwen3"}`, wantIn: []string{"version 1 content", "cannot unmarshal string"}},
		{name: "wrong type of entry field", content: `{"version":1,"quirks":[{"library":7}]}`, wantIn: []string{"cannot unmarshal number"}},
		{name: "wrong type of version", content: `{"version":"one","quirks":[]}`, wantIn: []string{`version "one": want a whole number`}},
		{name: "no version", content: `{"quirks":[` + good + `]}`, wantIn: []string{`no "version" field`}},
		{name: "array", content: `[` + good + `]`, wantIn: []string{"not a JSON object"}},
		{name: "trailing data", content: `{"version":1,"quirks":[]} {}`, wantIn: []string{"not a JSON object"}},
		{name: "unknown version", content: `{"version":2,"quirks":{"new":"shape"}}`, wantIn: []string{"version 2, this server reads version 1", "left as it is"}, keep: true},
		{name: "huge", content: `{"version":1,"quirks":[],"pad":"` + strings.Repeat("x", learnedQuirksMaxSize) + `"}`, wantIn: []string{"larger than the 1048576 accepted"}},
		{
			name:    "bad entries left out, good kept",
			content: `{"version":1,"quirks":[{"library":"cpu","compute":"x","arch":"y","cause":"crashes"},` + good + `,{"library":"ROCm","compute":"gfx1*","arch":"qwen3","cause":"crashes"}]}`,
			wantIn:  []string{`entries left out`, `quirks[0]: library "cpu"`, `quirks[2]: compute "gfx1*"`},
			want:    []string{"rocm:gfx1200:qwen3"},
		},
		{
			name:    "bad stuck record",
			content: `{"version":1,"quirks":[` + good + `],"stuck_gpus":[{"boot_id":"b","finding":{"pci_id":"nope"}},{"boot_id":"","finding":{"pci_id":"0000:03:00.0"}}]}`,
			wantIn:  []string{`stuck_gpus[0]: PCI address "nope"`, "stuck_gpus[1]: empty boot_id"},
			want:    []string{"rocm:gfx1200:qwen3"},
		},
		{
			name:   "a directory",
			setup:  func(t *testing.T, path string) { mkdir(t, path) },
			wantIn: []string{"not a regular file"},
		},
		{
			name: "unreadable",
			setup: func(t *testing.T, path string) {
				// A path through a regular file cannot be stat'ed (ENOTDIR),
				// which also holds for root, unlike a chmod 000 file.
				writeFile(t, filepath.Dir(path), "")
			},
			wantIn: []string{"blocker"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), stateFileName)
			if tt.name == "unreadable" {
				path = filepath.Join(filepath.Dir(path), "blocker", stateFileName)
			}
			if tt.setup != nil {
				tt.setup(t, path)
			} else {
				writeFile(t, path, tt.content)
			}
			q, logs := openTestQuirks(t, path)
			for range 3 {
				if diff := cmp.Diff(tt.want, ruleStrings(q.rules()), cmpopts.EquateEmpty()); diff != "" {
					t.Fatalf("rules mismatch (-want +got):\n%s", diff)
				}
			}
			warns := logs.At(slog.LevelWarn)
			if len(warns) != 1 || len(logs.recs) != 1 {
				t.Fatalf("log records %+v, want one WARN", logs.recs)
			}
			if warns[0].Attrs["file"] != path {
				t.Errorf("WARN names file %q, want %q", warns[0].Attrs["file"], path)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(warns[0].Attrs["error"], s) {
					t.Errorf("WARN error %q does not contain %q", warns[0].Attrs["error"], s)
				}
			}
			if !strings.Contains(warns[0].Attrs["reset"], envconfig.BackendQuirksResetEnv) {
				t.Errorf("WARN does not say how to reset: %+v", warns[0].Attrs)
			}

			if tt.setup != nil {
				return
			}
			before, _ := os.ReadFile(path)
			_, err := q.record(learnedQuirk{Library: "ROCm", Compute: "gfx1100", Arch: "llama", Cause: causeCrashes})
			after, _ := os.ReadFile(path)
			if tt.keep {
				if err == nil || string(before) != string(after) {
					t.Errorf("Record over an unknown version: err %v, file changed %v; want an error and the file kept", err, string(before) != string(after))
				}
				return
			}
			// A corrupt file is replaced by a good one.
			if err != nil {
				t.Fatalf("Record over a bad file: %v", err)
			}
			q2, logs2 := openTestQuirks(t, path)
			if got := ruleStrings(q2.rules()); len(got) != len(tt.want)+1 || len(logs2.recs) != 0 {
				t.Errorf("after Record: rules %v, logs %+v", got, logs2.recs)
			}
		})
	}
}

func TestLearnedQuirksChangedOnDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), stateFileName)
	q, logs := openTestQuirks(t, path)
	if _, err := q.record(learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "qwen3", Cause: causeStuckBusy}); err != nil {
		t.Fatal(err)
	}
	// Someone else adds an entry.
	other, _ := openTestQuirks(t, path)
	if _, err := other.record(learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "qwen3moe", Cause: causeStuckBusy, LearnedAt: learnedAt.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"rocm:gfx1200:qwen3", "rocm:gfx1200:qwen3moe"}, ruleStrings(q.rules())); diff != "" {
		t.Errorf("rules after another writer (-want +got):\n%s", diff)
	}
	// The user deletes the file.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := q.rules(); len(got) != 0 {
		t.Errorf("rules after removal: %v", got)
	}
	// A broken edit is reported once, however often it is read.
	writeFile(t, path, "{oops")
	for range 3 {
		q.rules()
	}
	if n := len(logs.At(slog.LevelWarn)); n != 1 {
		t.Errorf("%d WARN lines for a broken edit, want 1", n)
	}
}

func TestLearnedQuirksAtomicWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, stateFileName)
	q, _ := openTestQuirks(t, path)
	if _, err := q.record(learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "qwen3", Cause: causeStuckBusy}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// The write fails half way.
	q.writeHook = func(w io.Writer, data []byte) error {
		if _, err := w.Write(data[:len(data)/2]); err != nil {
			return err
		}
		return errors.New("disk full")
	}
	added, err := q.record(learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "gemma3", Cause: causeStuckBusy})
	if added || err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Record = %v, %v; want an error naming the file and the cause", added, err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(before) {
		t.Errorf("file changed by a failed write:\n%s", after)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want the state file alone", names)
	}
	if diff := cmp.Diff([]string{"rocm:gfx1200:qwen3"}, ruleStrings(q.rules())); diff != "" {
		t.Errorf("in-memory rules changed by a failed write (-want +got):\n%s", diff)
	}

	// The rename fails: the target became a directory.
	q.writeHook = nil
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(path, "x"))
	if _, err := q.record(learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "gemma3", Cause: causeStuckBusy}); err == nil {
		t.Fatalf("Record over a directory succeeded")
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary file left behind: %v", entries)
	}
}

func TestLearnedQuirksForget(t *testing.T) {
	path := filepath.Join(t.TempDir(), stateFileName)
	q, logs := openTestQuirks(t, path)
	for _, arch := range []string{"qwen3", "qwen3moe"} {
		if _, err := q.record(learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: arch, Cause: causeStuckBusy}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.setStuck("boot-1", "0000:03:00.0", &finding{PCIID: "0000:03:00.0"}); err != nil {
		t.Fatal(err)
	}
	n, err := q.forget()
	if err != nil || n != 2 {
		t.Fatalf("Forget = %d, %v; want 2, nil", n, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there: %v", err)
	}
	if len(q.rules()) != 0 || q.hasStuck() {
		t.Errorf("state after Forget: %v", q.rules())
	}
	if info := logs.At(slog.LevelInfo); len(info) != 1 || info[0].Attrs["quirks"] != "2" {
		t.Errorf("INFO lines %+v", info)
	}
	if n, err := q.forget(); n != 0 || err != nil {
		t.Errorf("Forget of nothing = %d, %v", n, err)
	}

	// An unknown version is removed too: the user asked.
	writeFile(t, path, `{"version":9}`)
	q2, _ := openTestQuirks(t, path)
	if _, err := q2.forget(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unknown-version file still there: %v", err)
	}
	if _, err := q2.record(learnedQuirk{Library: "ROCm", Compute: "gfx1200", Arch: "qwen3", Cause: causeStuckBusy}); err != nil {
		t.Errorf("Record after Forget: %v", err)
	}
}

func TestLearnedQuirksStuck(t *testing.T) {
	path := filepath.Join(t.TempDir(), stateFileName)
	q, _ := openTestQuirks(t, path)
	a := finding{PCIID: "0000:03:00.0", Card: "card1", Arch: "qwen3"}
	b := finding{PCIID: "0000:0c:00.0", Card: "card0", Arch: "gemma3"}
	if err := q.setStuck("boot-1", a.PCIID, &a); err != nil {
		t.Fatal(err)
	}
	if err := q.setStuck("boot-1", b.PCIID, &b); err != nil {
		t.Fatal(err)
	}
	q2, _ := openTestQuirks(t, path)
	if diff := cmp.Diff([]finding{a, b}, q2.stuckGPUs("boot-1")); diff != "" {
		t.Errorf("stuck GPUs mismatch (-want +got):\n%s", diff)
	}
	if got := q2.stuckGPUs("boot-2"); len(got) != 0 {
		t.Errorf("stuck GPUs of another boot: %v", got)
	}
	if got := q2.stuckGPUs(""); len(got) != 0 {
		t.Errorf("stuck GPUs of an unknown boot: %v", got)
	}
	// A record of the next boot drops the old boot's.
	if err := q2.setStuck("boot-2", a.PCIID, &a); err != nil {
		t.Fatal(err)
	}
	if got := q2.stuckGPUs("boot-1"); len(got) != 0 {
		t.Errorf("old boot kept: %v", got)
	}
	if err := q2.setStuck("boot-2", a.PCIID, nil); err != nil {
		t.Fatal(err)
	}
	if q2.hasStuck() {
		t.Errorf("cleared record kept")
	}
}

func TestLearnedQuirksNil(t *testing.T) {
	var q *learnedQuirks
	if q.path() != "" || q.rules() != nil || q.all() != nil || q.hasStuck() || q.stuckGPUs("b") != nil || q.setStuck("b", "p", nil) != nil {
		t.Errorf("nil learnedQuirks is not empty")
	}
	if added, err := q.record(learnedQuirk{}); added || err != nil {
		t.Errorf("nil Record = %v, %v", added, err)
	}
	if n, err := q.forget(); n != 0 || err != nil {
		t.Errorf("nil Forget = %d, %v", n, err)
	}
}

func TestCrashCounter(t *testing.T) {
	type ev struct {
		ok                     bool // Succeeded instead of Crashed
		library, compute, arch string
	}
	rocm := ev{library: "ROCm", compute: "gfx1200", arch: "qwen3"}
	hip := ev{library: "hip", compute: "GFX1200", arch: "QWEN3"}
	okRocm := rocm
	okRocm.ok = true
	tests := []struct {
		name  string
		limit int
		evs   []ev
		want  []int // count after each crash event; 0 for Succeeded
		hits  []int // indexes where reached
	}{
		{name: "three in a row", evs: []ev{rocm, rocm, rocm, rocm}, want: []int{1, 2, 3, 1}, hits: []int{2}},
		{name: "spellings are one key", evs: []ev{rocm, hip, rocm}, want: []int{1, 2, 3}, hits: []int{2}},
		{name: "success resets", evs: []ev{rocm, rocm, okRocm, rocm}, want: []int{1, 2, 0, 1}},
		{name: "keys apart", evs: []ev{rocm, {library: "ROCm", compute: "gfx1200", arch: "gemma3"}, rocm}, want: []int{1, 1, 2}},
		{name: "limit 1", limit: 1, evs: []ev{rocm}, want: []int{1}, hits: []int{0}},
		{name: "never", limit: -1, evs: []ev{rocm, rocm, rocm, rocm}, want: []int{1, 2, 3, 4}},
		{name: "not countable", evs: []ev{{library: "cpu", compute: "x", arch: "qwen3"}, {library: "ROCm", arch: "qwen3"}, {library: "ROCm", compute: "gfx1200"}}, want: []int{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &crashCounter{Limit: tt.limit}
			var got, hits []int
			for i, e := range tt.evs {
				if e.ok {
					c.succeeded(e.library, e.compute, e.arch)
					got = append(got, c.count(e.library, e.compute, e.arch))
					continue
				}
				n, reached := c.crashed(e.library, e.compute, e.arch)
				got = append(got, n)
				if reached {
					hits = append(hits, i)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("counts mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.hits, hits); diff != "" {
				t.Errorf("limit reached mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzLearnedQuirksDecode feeds junk to the state file decoder: it never
// panics, and what it accepts encodes and decodes back to the same state.
func FuzzLearnedQuirksDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"quirks":[{"library":"ROCm","compute":"gfx1200","arch":"qwen3","cause":"stuck-busy","learned_at":"2026-03-22T12:00:00Z"}]}`))
	f.Add([]byte(`{"version":1,"quirks":[],"stuck_gpus":[{"boot_id":"b","finding":{"pci_id":"0000:03:00.0","busy_min":100}}]}`))
	f.Add([]byte(`{"version":1,"quirks":[{"library":"hip","compute":"GFX1200","arch":"Qwen3","cause":"crashes","learned_at":"2026-03-22T12:00:00Z"},{"library":"cpu"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":"1"}`))
	f.Add([]byte(`{"version":1,"quirks":"x"}`))
	f.Add([]byte(`{"version":1} []`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		state, _, err := decodeLearnedQuirks(data)
		if err != nil {
			return
		}
		for _, q := range state.Quirks {
			if _, err := q.normalize(); err != nil {
				t.Fatalf("accepted an invalid quirk %+v: %v", q, err)
			}
		}
		enc, err := encodeLearnedQuirks(state)
		if err != nil {
			t.Fatalf("encoding %+v: %v", state, err)
		}
		again, problems, err := decodeLearnedQuirks(enc)
		if err != nil || len(problems) > 0 {
			t.Fatalf("re-encoded state %s does not decode: %v %v", enc, err, problems)
		}
		if diff := cmp.Diff(state, again, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
			t.Fatalf("round trip differs (-first +second):\n%s", diff)
		}
	})
}
